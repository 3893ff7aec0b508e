//! One error type, mapped to a status once: as JSON for the API, as a page for people.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("too many failed sign-ins: try again in 15 minutes")]
    RateLimited,
    #[error("{0}")]
    Busy(String),
    /// The database did not answer: nothing is decided without it.
    #[error("the inbox's database did not answer")]
    Store(#[from] sqlx::Error),
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::RateLimited | Error::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    fn logged(&self) {
        if let Error::Store(e) = self {
            eprintln!("scopegate-approver: database: {e}");
        }
    }
}

/// An API error: `{"error": "..."}`.
pub struct ApiError(pub Error);

impl<E: Into<Error>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.logged();
        let body = serde_json::json!({"error": self.0.to_string()}).to_string();
        (
            self.0.status(),
            [
                ("content-type", "application/json"),
                ("cache-control", "no-store"),
            ],
            body,
        )
            .into_response()
    }
}

/// A page error: the reason on a page.
pub struct PageError(pub Error);

impl<E: Into<Error>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.0.logged();
        if matches!(self.0, Error::Unauthenticated(_)) {
            return axum::response::Redirect::to("/login").into_response();
        }
        let page = crate::html::page(
            "scopegate · error",
            None,
            &format!(
                "<h1>{}</h1><p class=\"refused\">{}</p><p><a href=\"/\">Back to the inbox</a></p>",
                self.0.status().as_u16(),
                crate::html::esc(&self.0.to_string())
            ),
        );
        let mut r = crate::html::respond(page);
        *r.status_mut() = self.0.status();
        r
    }
}
