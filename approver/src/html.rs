//! Server-rendered pages. Everything that came from a request — operation names, records,
//! statements, comments, key ids — goes through `esc`, which also shows control and
//! bidirectional-override characters escaped, so what an agent sent can neither inject
//! markup nor reorder what the approver reads.

use axum::response::{IntoResponse, Response};

/// HTML-escaped (text and attribute values), control and bidi characters made visible.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in scopegate_engine::approval::printable(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Multi-line text (a statement, a body) for a `<pre>`: lines kept, each escaped.
pub fn esc_block(s: &str) -> String {
    s.split('\n').map(esc).collect::<Vec<_>>().join("\n")
}

/// A whole page: `who` is the signed-in person, (name, form token): the navigation.
pub fn page(title: &str, who: Option<(&str, &str)>, body: &str) -> String {
    let nav = match who {
        Some((name, csrf)) => format!(
            "<nav><a href=\"/\">Pending</a> <a href=\"/history\">History</a> <span class=\"who\">{}</span> <form method=\"post\" action=\"/logout\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\" id=\"sign-out\">Sign out</button></form></nav>",
            esc(name),
            esc(csrf)
        ),
        None => String::new(),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{}</title><link rel=\"stylesheet\" href=\"/static/inbox.css\"><script src=\"/static/inbox.js\" defer></script></head><body><header><span class=\"brand\">scopegate</span> approvals {nav}</header><main>{body}</main></body></html>",
        esc(title)
    )
}

/// A page as a response, with the headers every page carries: nothing from elsewhere
/// runs or frames it, nothing is cached.
pub fn respond(html: String) -> Response {
    (
        [
            ("content-type", "text/html; charset=utf-8"),
            ("cache-control", "no-store"),
            ("content-security-policy", "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
            ("x-content-type-options", "nosniff"),
            // `no-referrer` would make browsers send `Origin: null` on our own forms.
            ("referrer-policy", "same-origin"),
            ("x-frame-options", "DENY"),
        ],
        html,
    )
        .into_response()
}

pub const CSS: &str = include_str!("inbox.css");
pub const JS: &str = include_str!("inbox.js");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_text_cannot_become_markup() {
        assert_eq!(
            esc("<script>alert('x')</script>&\"a\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;a&quot;"
        );
        assert_eq!(esc("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(esc_block("a\n<b>"), "a\n&lt;b&gt;");
    }
}
