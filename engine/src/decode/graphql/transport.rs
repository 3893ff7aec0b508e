//! How a GraphQL request arrives: POST JSON (one or a batch), POST application/graphql, GET;
//! one reading of the request, or a refusal.

use super::*;
use crate::request::{ambiguous, over_limit, unmodelled};

impl GraphqlDecoder {
    /// The GraphQL requests an HTTP request carries, by transport.
    pub(super) fn requests(
        &self,
        head: &RequestHead,
        target: &Target,
        body: &[u8],
    ) -> Result<Vec<GqlRequest>, DecodeError> {
        match head.method.as_str() {
            "GET" => {
                if !body.is_empty() {
                    return ambiguous("a GraphQL GET with a body: ambiguous");
                }
                only_params(target, &REQUEST_KEYS)?;
                let variables = target
                    .single_param("variables")?
                    .map(|v| parse_strict(v.as_bytes()))
                    .transpose()?;
                let extensions = target
                    .single_param("extensions")?
                    .map(|v| parse_strict(v.as_bytes()))
                    .transpose()?;
                let request = self.request(
                    target.single_param("query")?.map(str::to_string),
                    variables,
                    target.single_param("operationName")?.map(str::to_string),
                    extensions,
                    true,
                )?;
                Ok(vec![request])
            }
            "POST" => match media_type(head)? {
                Media::Json => {
                    if let Some((name, _)) = target.query.first() {
                        return ambiguous(format!(
                            "query parameter `{name}` beside a GraphQL JSON body: ambiguous"
                        ));
                    }
                    match parse_strict(body)? {
                        Json::Object(m) => Ok(vec![self.request_object(m)?]),
                        Json::Array(items) => {
                            if items.is_empty() {
                                return undecodable("empty GraphQL batch");
                            }
                            if items.len() > self.limits.batch {
                                return over_limit(format!(
                                    "GraphQL batch of {} operations, over the service's max_batch of {}",
                                    items.len(),
                                    self.limits.batch
                                ));
                            }
                            items
                                .into_iter()
                                .enumerate()
                                .map(|(i, item)| match item {
                                    Json::Object(m) => self
                                        .request_object(m)
                                        .map_err(|e| e.within(format!("batch element {i}"))),
                                    _ => undecodable(format!(
                                        "batch element {i} is not a GraphQL request object"
                                    )),
                                })
                                .collect()
                        }
                        _ => undecodable("GraphQL JSON body is not an object or a batch array"),
                    }
                }
                Media::Graphql => {
                    only_params(target, &["variables", "operationName"])?;
                    let Ok(document) = std::str::from_utf8(body) else {
                        return undecodable("GraphQL document is not UTF-8");
                    };
                    let variables = target
                        .single_param("variables")?
                        .map(|v| parse_strict(v.as_bytes()))
                        .transpose()?;
                    let request = self.request(
                        Some(document.to_string()),
                        variables,
                        target.single_param("operationName")?.map(str::to_string),
                        None,
                        false,
                    )?;
                    Ok(vec![request])
                }
            },
            other => unmodelled(format!(
                "GraphQL over {other}: only GET and POST are served"
            )),
        }
    }

    /// One `{"query", "variables", "operationName", "extensions"}` object.
    pub(super) fn request_object(
        &self,
        mut m: Map<String, Json>,
    ) -> Result<GqlRequest, DecodeError> {
        if let Some(k) = m.keys().find(|k| !REQUEST_KEYS.contains(&k.as_str())) {
            return unmodelled(format!("unknown GraphQL request key `{k}`"));
        }
        let query = match m.remove("query") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s),
            Some(_) => return undecodable("`query` is not a string"),
        };
        let operation_name = match m.remove("operationName") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s),
            Some(_) => return undecodable("`operationName` is not a string"),
        };
        self.request(
            query,
            m.remove("variables"),
            operation_name,
            m.remove("extensions"),
            false,
        )
    }

    /// Checks the parts of a request and resolves a persisted query.
    pub(super) fn request(
        &self,
        query: Option<String>,
        variables: Option<Json>,
        operation_name: Option<String>,
        extensions: Option<Json>,
        over_get: bool,
    ) -> Result<GqlRequest, DecodeError> {
        let variables = match variables {
            None | Some(Json::Null) => Map::new(),
            Some(Json::Object(m)) => m,
            Some(_) => return undecodable("`variables` is not an object"),
        };
        let persisted_hash = match &extensions {
            None | Some(Json::Null) => None,
            Some(Json::Object(ext)) => match ext.get("persistedQuery") {
                None | Some(Json::Null) => None,
                Some(pq) => match pq.get("sha256Hash").and_then(Json::as_str) {
                    Some(h) => Some(h.to_ascii_lowercase()),
                    None => return undecodable("`extensions.persistedQuery` has no sha256Hash"),
                },
            },
            Some(_) => return undecodable("`extensions` is not an object"),
        };
        let document = match (query, persisted_hash) {
            (Some(q), None) => q,
            (Some(q), Some(hash)) => {
                // The upstream may run the stored document for the hash, not this text:
                // both must be the same document.
                if hex(&sha256(q.as_bytes())) != hash {
                    return ambiguous("persisted query hash does not match the document sent");
                }
                q
            }
            (None, Some(hash)) => match self.persisted.get(&hash) {
                Some(doc) => doc.clone(),
                None => {
                    return unmodelled(format!(
                        "persisted query {hash} is not listed in the service's persisted_queries"
                    ))
                }
            },
            (None, None) => return undecodable("no GraphQL document (`query`)"),
        };
        Ok(GqlRequest {
            document,
            variables,
            operation_name,
            over_get,
        })
    }
}

/// Request keys of the GraphQL-over-HTTP JSON body; any other key is refused.
pub(super) const REQUEST_KEYS: [&str; 4] = ["query", "variables", "operationName", "extensions"];

pub(super) enum Media {
    Json,
    Graphql,
}

/// The request's media type: `application/json` or `application/graphql`, charset UTF-8
/// at most; anything else (forms, multipart uploads, text/plain) is refused.
pub(super) fn media_type(head: &RequestHead) -> Result<Media, DecodeError> {
    match content_type(
        head,
        &["application/json", "application/graphql"],
        "GraphQL",
    )? {
        "application/graphql" => Ok(Media::Graphql),
        _ => Ok(Media::Json),
    }
}

/// Refuses query parameters outside `allowed`.
pub(super) fn only_params(target: &Target, allowed: &[&str]) -> Result<(), DecodeError> {
    match target
        .query
        .iter()
        .find(|(n, _)| !allowed.contains(&n.as_str()))
    {
        Some((n, _)) => unmodelled(format!("unexpected query parameter `{n}`")),
        None => Ok(()),
    }
}
