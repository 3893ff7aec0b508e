//! What every command shares: reading files, loading a bundle (with schemas attached),
//! raw HTTP requests, the clock.

use crate::*;

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, String> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| format!("stdin: {e}"))?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Compiles a bundle as the filter would, with GraphQL schemas attached from files.
pub(crate) fn load(bundle: &Path, schemas: &[String]) -> Result<policy::Policy, String> {
    load_both(bundle, schemas).map(|(_, p)| p)
}

/// The parsed bundle and its compiled policy.
pub(crate) fn load_both(
    bundle: &Path,
    schemas: &[String],
) -> Result<(scopegate_engine::bundle::Bundle, policy::Policy), String> {
    let json = read(bundle)?;
    let mut b =
        scopegate_engine::bundle::parse(&json).map_err(|e| format!("{}: {e}", bundle.display()))?;
    for spec in schemas {
        let (service, file) = spec
            .split_once('=')
            .ok_or_else(|| format!("--schema `{spec}`: expected SERVICE=FILE"))?;
        let svc = b
            .services
            .iter_mut()
            .find(|s| s.name == service)
            .ok_or_else(|| format!("--schema: no service `{service}` in the bundle"))?;
        let text = read(Path::new(file))?;
        let schema = if file.ends_with(".json") {
            let value = serde_json::from_slice(&text).map_err(|e| format!("{file}: {e}"))?;
            GraphqlSchema {
                sdl: None,
                introspection: Some(value),
            }
        } else {
            let sdl = String::from_utf8(text).map_err(|_| format!("{file}: not UTF-8"))?;
            GraphqlSchema {
                sdl: Some(sdl),
                introspection: None,
            }
        };
        svc.graphql.get_or_insert_with(Default::default).schema = Some(schema);
    }
    let p = policy::compile(&b, &Secrets::Unchecked)
        .map_err(|e| format!("{}: {e}", bundle.display()))?;
    Ok((b, p))
}

/// Splits a raw HTTP/1.1 request into the header list the filter would see
/// (`:method`, `:path`, `:authority` first) and the body.
pub(crate) fn parse_raw_request(raw: &[u8]) -> Result<(HeaderList, Vec<u8>), String> {
    let (head, body) = match find(raw, b"\r\n\r\n") {
        Some(i) => (raw.get(..i), raw.get(i + 4..)),
        None => match find(raw, b"\n\n") {
            Some(i) => (raw.get(..i), raw.get(i + 2..)),
            None => (Some(raw), Some(&[][..])),
        },
    };
    let head = std::str::from_utf8(head.unwrap_or_default())
        .map_err(|_| "request head is not UTF-8".to_string())?;
    let mut lines = head.lines().map(|l| l.trim_end_matches('\r'));
    let request_line = lines.next().ok_or("empty request")?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("bad request line `{request_line}`"));
    };
    if !version.starts_with("HTTP/") {
        return Err(format!("bad request line `{request_line}`"));
    }
    let (authority, path) = match target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        Some(rest) => match rest.find('/') {
            Some(i) => (
                Some(rest.get(..i).unwrap_or_default()),
                rest.get(i..).unwrap_or("/"),
            ),
            None => (Some(rest), "/"),
        },
        None => (None, target),
    };
    let mut headers = vec![
        (":method".to_string(), method.as_bytes().to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
    ];
    let mut rest = Vec::new();
    let mut host = authority.map(str::to_string);
    let mut content_length = None;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line `{line}`"))?;
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        match name.as_str() {
            "host" if host.is_none() => host = Some(value.to_string()),
            "host" => {}
            "content-length" => {
                content_length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| format!("bad content-length `{value}`"))?,
                );
                rest.push((name, value.as_bytes().to_vec()));
            }
            _ => rest.push((name, value.as_bytes().to_vec())),
        }
    }
    if let Some(h) = host {
        headers.push((":authority".to_string(), h.into_bytes()));
    }
    headers.extend(rest);
    let mut body = body.unwrap_or_default().to_vec();
    if let Some(n) = content_length {
        body.truncate(n);
    }
    Ok((headers, body))
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub(crate) fn now_or(now: Option<&str>) -> Result<i64, String> {
    match now {
        Some(s) => parse_rfc3339(s).ok_or_else(|| format!("--now: `{s}` is not RFC 3339")),
        None => Ok(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .unwrap_or(0)),
    }
}
