//! The request as the engine sees it: the full header list (repeats kept), and a
//! request target normalised once, strictly. Ambiguous targets are errors, never guesses.

use std::fmt;

/// Why a request could not be understood: the message, and its kind. Always denies
/// (403, reason `undecodable: …`; the kind is the refusal's `undecodable` member).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String, pub DecodeKind);

/// What kind of thing made a request undecodable — what the agent (or the operator)
/// can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeKind {
    /// Not well-formed for its protocol: bad JSON, a parse error, a missing member.
    Malformed,
    /// Something the upstream would act on that scopegate does not model (a statement
    /// kind, a parameter source, an option, a method): refused, never ignored.
    Unmodelled,
    /// Readable two ways: a repeated header or parameter, a query beside a body, two
    /// sources of one value, names that may bind to something else.
    Ambiguous,
    /// Over one of the service's limits (size, depth, batch, cost).
    OverLimit,
}

impl DecodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeKind::Malformed => "malformed",
            DecodeKind::Unmodelled => "unmodelled",
            DecodeKind::Ambiguous => "ambiguous",
            DecodeKind::OverLimit => "over_limit",
        }
    }
}

impl DecodeError {
    pub fn malformed(msg: impl Into<String>) -> Self {
        DecodeError(msg.into(), DecodeKind::Malformed)
    }
    pub fn unmodelled(msg: impl Into<String>) -> Self {
        DecodeError(msg.into(), DecodeKind::Unmodelled)
    }
    pub fn ambiguous(msg: impl Into<String>) -> Self {
        DecodeError(msg.into(), DecodeKind::Ambiguous)
    }
    pub fn kind(&self) -> DecodeKind {
        self.1
    }
    /// The same error, said of a part (`batch element 2: …`).
    pub fn within(self, part: impl fmt::Display) -> Self {
        DecodeError(format!("{part}: {}", self.0), self.1)
    }
}

/// Not well-formed ([`DecodeKind::Malformed`]).
pub(crate) fn undecodable<T>(msg: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError::malformed(msg))
}

/// Not modelled ([`DecodeKind::Unmodelled`]).
pub(crate) fn unmodelled<T>(msg: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError::unmodelled(msg))
}

/// Readable two ways ([`DecodeKind::Ambiguous`]).
pub(crate) fn ambiguous<T>(msg: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError::ambiguous(msg))
}

/// Over a limit ([`DecodeKind::OverLimit`]).
pub(crate) fn over_limit<T>(msg: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(msg.into(), DecodeKind::OverLimit))
}

/// A request's full header list as the host gives it: lower-case names (pseudo-headers
/// included), raw values, one entry per value (repeats kept).
pub type HeaderList = Vec<(String, Vec<u8>)>;

/// Request line and headers. Header names are lower-case (HTTP/2 and Envoy's view);
/// values are raw bytes; repeated headers appear once per value.
#[derive(Debug, Clone, Default)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    pub authority: String,
    pub headers: HeaderList,
}

/// Result of reading one header from the full list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderValue<'a> {
    Absent,
    One(&'a [u8]),
    Repeated,
}

impl RequestHead {
    /// Builds the head from the host's header list (`:method`, `:path`, `:authority` included).
    pub fn from_headers(headers: HeaderList) -> Result<Self, DecodeError> {
        let mut head = RequestHead {
            headers: headers
                .into_iter()
                .map(|(mut n, v)| {
                    n.make_ascii_lowercase();
                    (n, v)
                })
                .collect(),
            ..RequestHead::default()
        };
        head.method = head.required_pseudo(":method")?;
        head.path = head.required_pseudo(":path")?;
        head.authority = match head.header(":authority") {
            HeaderValue::One(v) => ascii(v, ":authority")?,
            HeaderValue::Absent => match head.header("host") {
                HeaderValue::One(v) => ascii(v, "host")?,
                HeaderValue::Absent => String::new(),
                HeaderValue::Repeated => return ambiguous("repeated host header"),
            },
            HeaderValue::Repeated => return ambiguous("repeated :authority"),
        };
        Ok(head)
    }

    fn required_pseudo(&self, name: &str) -> Result<String, DecodeError> {
        match self.header(name) {
            HeaderValue::One(v) => ascii(v, name),
            HeaderValue::Absent => undecodable(format!("missing {name}")),
            HeaderValue::Repeated => ambiguous(format!("repeated {name}")),
        }
    }

    /// Looks a header up by lower-case name in the full list, so repeats are visible.
    pub fn header(&self, name: &str) -> HeaderValue<'_> {
        let mut found = HeaderValue::Absent;
        for (n, v) in &self.headers {
            if n == name {
                if found != HeaderValue::Absent {
                    return HeaderValue::Repeated;
                }
                found = HeaderValue::One(v);
            }
        }
        found
    }

    /// A header that must appear at most once and be printable ASCII.
    pub fn single_header(&self, name: &str) -> Result<Option<String>, DecodeError> {
        match self.header(name) {
            HeaderValue::Absent => Ok(None),
            HeaderValue::One(v) => ascii(v, name).map(Some),
            HeaderValue::Repeated => ambiguous(format!("repeated {name} header")),
        }
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n == name)
    }

    /// Names of the headers that start with one of `prefixes` (each once).
    pub fn prefixed(&self, prefixes: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (n, _) in &self.headers {
            if prefixes.iter().any(|p| n.starts_with(p)) && !out.iter().any(|o| o == n) {
                out.push(n.clone());
            }
        }
        out
    }

    /// Names of the headers with an `_` that are one of `names`, or start with one of
    /// `prefixes`, once `_` is read as `-`: `x_api_key` is `x-api-key` to PHP and WSGI
    /// upstreams (each once).
    pub fn underscore_aliases(&self, names: &[&str], prefixes: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (n, _) in self.headers.iter().filter(|(n, _)| n.contains('_')) {
            let dashed = n.replace('_', "-");
            let hit =
                names.contains(&dashed.as_str()) || prefixes.iter().any(|p| dashed.starts_with(p));
            if hit && !out.iter().any(|o| o == n) {
                out.push(n.clone());
            }
        }
        out
    }

    /// Host part of the authority, lower-case, without port.
    pub fn host(&self) -> String {
        let a = self.authority.to_ascii_lowercase();
        if let Some(rest) = a.strip_prefix('[') {
            // IPv6 literal: keep the brackets' content.
            return rest.split(']').next().unwrap_or_default().to_string();
        }
        match a.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h.to_string(),
            _ => a,
        }
    }
}

fn ascii(v: &[u8], what: &str) -> Result<String, DecodeError> {
    if v.iter().all(|b| (0x20..0x7f).contains(b) || *b == b'\t') {
        Ok(String::from_utf8_lossy(v).into_owned())
    } else {
        undecodable(format!("{what} is not printable ASCII"))
    }
}

/// The request's media type, one of `accepted`, with no parameter but `charset=utf-8`;
/// a missing, repeated or other content type is refused (`what` names the protocol).
pub fn content_type<'a>(
    head: &RequestHead,
    accepted: &[&'a str],
    what: &str,
) -> Result<&'a str, DecodeError> {
    let raw = match head.header("content-type") {
        HeaderValue::One(v) => String::from_utf8_lossy(v).to_ascii_lowercase(),
        HeaderValue::Absent => return unmodelled(format!("{what} POST without content-type")),
        HeaderValue::Repeated => return ambiguous("repeated content-type header"),
    };
    let mut parts = raw.split(';').map(str::trim);
    let media = parts.next().unwrap_or_default();
    let Some(found) = accepted.iter().find(|a| **a == media) else {
        return unmodelled(format!(
            "content-type `{raw}`: {what} is POSTed as {}",
            accepted.join(" or ")
        ));
    };
    for p in parts {
        if !matches!(p, "charset=utf-8" | "charset=\"utf-8\"") {
            return unmodelled(format!("content-type parameter `{p}`: only charset=utf-8"));
        }
    }
    Ok(found)
}

/// A request target after strict normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Percent-decoded path segments (no empty, `.` or `..` segment; none contains `/`).
    pub segments: Vec<String>,
    /// The query exactly as received (without `?`), for digests.
    pub raw_query: String,
    /// Decoded `name=value` pairs in order (`+` is a space); repeats kept.
    pub query: Vec<(String, String)>,
}

impl Target {
    /// Normalises an origin-form request target. Denied rather than guessed:
    /// absolute or asterisk forms, fragments, non-ASCII or control bytes, backslashes,
    /// `;` (matrix parameters, and a query separator for some servers), empty segments
    /// (`//`), dot segments (also percent-encoded), encoded `/` or `\`, bad escapes, and
    /// decoded text that is not UTF-8 or holds control characters (tab, CR, LF allowed in query components).
    /// One trailing slash is dropped: `/t/` is `/t`.
    pub fn parse(raw: &str) -> Result<Target, DecodeError> {
        if !raw.starts_with('/') {
            return undecodable("request target is not a path");
        }
        if let Some(b) = raw.bytes().find(|b| !(0x21..0x7f).contains(b)) {
            return undecodable(format!("path holds byte 0x{b:02x} (non-ASCII or control)"));
        }
        if raw.contains('#') {
            return undecodable("path holds a fragment");
        }
        if raw.contains('\\') {
            return ambiguous("path holds a backslash");
        }
        if raw.contains(';') {
            return ambiguous("path or query holds ';' (matrix parameters are not accepted)");
        }
        let (path, raw_query) = raw.split_once('?').unwrap_or((raw, ""));
        let path = path.strip_prefix('/').unwrap_or(path);
        // One trailing slash is dropped (`/t/` is `/t`); a bare `//` keeps its empty
        // segment and is refused below.
        let path = match path.strip_suffix('/') {
            Some(rest) if !rest.is_empty() => rest,
            _ => path,
        };
        let mut segments = Vec::new();
        if !path.is_empty() {
            for seg in path.split('/') {
                if seg.is_empty() {
                    return ambiguous("path holds an empty segment ('//')");
                }
                let decoded = percent_decode(seg, false)?;
                if decoded == "." || decoded == ".." {
                    return ambiguous("path holds a dot segment");
                }
                if decoded.contains(['/', '\\']) {
                    return ambiguous("path holds an encoded slash or backslash");
                }
                if decoded.contains(['?', '#', ';']) {
                    return ambiguous("path holds an encoded '?', '#' or ';'");
                }
                segments.push(decoded);
            }
        }
        let mut query = Vec::new();
        for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
            let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(n, true)?;
            let value = percent_decode(v, true)?;
            if name.is_empty() {
                return undecodable("query holds a parameter without a name");
            }
            query.push((name, value));
        }
        Ok(Target {
            segments,
            raw_query: raw_query.to_string(),
            query,
        })
    }

    /// The normalised path: `/` + decoded segments joined by `/`.
    pub fn path(&self) -> String {
        let mut s = String::with_capacity(64);
        if self.segments.is_empty() {
            s.push('/');
        }
        for seg in &self.segments {
            s.push('/');
            s.push_str(seg);
        }
        s
    }

    /// Segments after `prefix` when the path starts with it segment-wise.
    pub fn strip_prefix<'a>(&'a self, prefix: &[String]) -> Option<&'a [String]> {
        if self.segments.len() >= prefix.len()
            && self.segments.iter().zip(prefix).all(|(a, b)| a == b)
        {
            self.segments.get(prefix.len()..)
        } else {
            None
        }
    }

    /// Refuses a path other than `endpoint` exactly: a protocol served at one endpoint
    /// (GraphQL, SQL, MCP) is not also answered below it, where a server may route to
    /// handlers of its own.
    pub fn only_at(&self, endpoint: &[String], protocol: &str) -> Result<(), DecodeError> {
        match self.strip_prefix(endpoint) {
            Some([]) => Ok(()),
            _ => unmodelled(format!(
                "{protocol} is served at `/{}` only",
                endpoint.join("/")
            )),
        }
    }

    /// Query parameters with this name.
    pub fn params<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A parameter that may appear at most once.
    pub fn single_param<'a>(&'a self, name: &'a str) -> Result<Option<&'a str>, DecodeError> {
        let mut it = self.params(name);
        let first = it.next();
        if it.next().is_some() {
            return ambiguous(format!("query parameter `{name}` is repeated"));
        }
        Ok(first)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// Splits a normalised configuration path (`/api/v2/rentals`) into segments.
pub fn config_segments(path: &str) -> Result<Vec<String>, DecodeError> {
    let t = Target::parse(path)?;
    if !t.raw_query.is_empty() || path.contains('?') {
        return undecodable("a configured path cannot hold a query");
    }
    Ok(t.segments)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes one path segment or query component; `plus_is_space` for queries.
/// Control characters are refused, except tab, CR and LF in query components (a GraphQL
/// document or a filter spread over lines).
pub fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, DecodeError> {
    if !s.contains(['%', '+']) {
        return Ok(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'%' => {
                let hi = b.get(i + 1).copied().and_then(hex);
                let lo = b.get(i + 2).copied().and_then(hex);
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push(h * 16 + l),
                    _ => return undecodable("malformed percent-escape"),
                }
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    let text =
        String::from_utf8(out).or_else(|_| undecodable("escape decodes to invalid UTF-8"))?;
    if text
        .chars()
        .any(|c| c.is_control() && !(plus_is_space && matches!(c, '\t' | '\n' | '\r')))
    {
        return undecodable("escape decodes to a control character");
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(raw: &str) -> Result<Vec<String>, String> {
        Target::parse(raw).map(|t| t.segments).map_err(|e| e.0)
    }

    #[test]
    fn target_normalisation_table() {
        let ok: &[(&str, &[&str])] = &[
            ("/", &[]),
            ("/reservations", &["reservations"]),
            ("/reservations/", &["reservations"]),
            (
                "/api/v2/rentals/_table/reservations?ids=1",
                &["api", "v2", "rentals", "_table", "reservations"],
            ),
            ("/a%20b/c", &["a b", "c"]),
            ("/r%65servations", &["reservations"]),
            ("/caf%C3%A9", &["café"]),
            ("/a+b", &["a+b"]),
        ];
        for (raw, want) in ok {
            assert_eq!(segs(raw).unwrap(), *want, "{raw}");
        }
        let denied = [
            ("http://x/a", "not a path"),
            ("*", "not a path"),
            ("/a/../b", "dot segment"),
            ("/a/./b", "dot segment"),
            ("/a/%2e%2e/b", "dot segment"),
            ("/a/%2E/b", "dot segment"),
            ("/a//b", "empty segment"),
            ("//a", "empty segment"),
            ("//", "empty segment"),
            ("/a//", "empty segment"),
            ("/a%2fb", "encoded slash"),
            ("/a%2Fb", "encoded slash"),
            ("/a%5cb", "encoded slash"),
            ("/a\\b", "backslash"),
            ("/a;x=1/b", "matrix"),
            ("/a?x=1;y=2", "matrix"),
            ("/a#frag", "fragment"),
            ("/a%zz", "malformed"),
            ("/a%4", "malformed"),
            ("/a%00b", "control"),
            ("/a%0d%0a", "control"),
            ("/a?x=%00", "control"),
            ("/a%ff", "UTF-8"),
            ("/a%3fb", "encoded '?'"),
            ("/a b", "0x20"),
            ("/caf\u{e9}", "non-ASCII"),
            ("/a?=1", "without a name"),
        ];
        for (raw, why) in denied {
            let err = segs(raw).unwrap_err();
            assert!(err.contains(why), "{raw}: {err}");
        }
    }

    #[test]
    fn query_decoding() {
        let t = Target::parse("/t?id=eq.1&name=a+b%2Bc&flag&id=gt.0").unwrap();
        assert_eq!(t.raw_query, "id=eq.1&name=a+b%2Bc&flag&id=gt.0");
        assert_eq!(t.params("id").collect::<Vec<_>>(), ["eq.1", "gt.0"]);
        assert_eq!(t.single_param("name").unwrap(), Some("a b+c"));
        assert_eq!(t.single_param("flag").unwrap(), Some(""));
        assert!(t.single_param("id").is_err());
        assert_eq!(t.path(), "/t");
        let prefix = config_segments("/api/v2").unwrap();
        let t = Target::parse("/api/v2/rentals").unwrap();
        assert_eq!(t.strip_prefix(&prefix).unwrap(), ["rentals"]);
        let t = Target::parse("/api/v22/rentals").unwrap();
        assert!(t.strip_prefix(&prefix).is_none());
    }

    #[test]
    fn head_reads_repeats() {
        let h = |n: &str, v: &str| (n.to_string(), v.as_bytes().to_vec());
        let head = RequestHead::from_headers(vec![
            h(":method", "GET"),
            h(":path", "/x"),
            h(":authority", "API.example.com:8080"),
            h("X-Api-Key", "a"),
            h("x-api-key", "b"),
        ])
        .unwrap();
        assert_eq!(head.host(), "api.example.com");
        assert_eq!(head.header("x-api-key"), HeaderValue::Repeated);
        assert!(head.single_header("x-api-key").is_err());
        assert!(RequestHead::from_headers(vec![h(":path", "/")]).is_err());
        assert!(RequestHead::from_headers(vec![
            h(":method", "GET"),
            h(":method", "POST"),
            h(":path", "/")
        ])
        .is_err());
    }
}
