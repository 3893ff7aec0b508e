//! The `services` section: each service's match, limits, upstream credentials and decoder.

use super::*;

pub(super) fn compile<'b>(
    b: &'b Bundle,
    secrets: &Secrets,
    errs: &mut Errs,
) -> (Vec<Service>, HashMap<&'b str, usize>) {
    let mut services = Vec::new();
    let mut service_names: HashMap<&str, usize> = HashMap::new();
    for (i, s) in b.services.iter().enumerate() {
        let at = format!("services[{i}]");
        if !is_name(&s.name) {
            errs.push(
                format!("{at}.name"),
                "must be a non-empty name ([A-Za-z0-9._:-])",
            );
        }
        if service_names.insert(&s.name, i).is_some() {
            errs.push(
                format!("{at}.name"),
                format!("duplicate service name `{}`", s.name),
            );
        }
        let m = &s.matcher;
        let prefix = match &m.path_prefix {
            None => Vec::new(),
            Some(p) => match config_segments(p) {
                Ok(segs) => segs,
                Err(e) => {
                    errs.push(
                        format!("{at}.match.path_prefix"),
                        format!("not a normalised path: {e}"),
                    );
                    Vec::new()
                }
            },
        };
        let hosts = match &m.hosts {
            None => Vec::new(),
            Some(h) => {
                for (j, host) in h.iter().enumerate() {
                    if host.is_empty()
                        || host
                            .bytes()
                            .any(|c| c.is_ascii_uppercase() || c == b':' || c == b'/')
                    {
                        errs.push(
                            format!("{at}.match.hosts[{j}]"),
                            "hosts are lower-case names without port",
                        );
                    }
                }
                errs.globs(&format!("{at}.match.hosts"), h)
            }
        };
        if let Some(methods) = &m.methods {
            errs.methods(&format!("{at}.match.methods"), methods);
        }
        let upstream_auth = match &s.upstream_auth {
            None => None,
            Some(ua) => {
                let here = format!("{at}.upstream_auth");
                if !is_header_name(&ua.header)
                    || ua.header.starts_with("x-scopegate-")
                    || ua.header == "host"
                {
                    errs.push(
                        format!("{here}.header"),
                        format!("`{}` is not a usable lower-case header name", ua.header),
                    );
                }
                if ua.env.is_empty() {
                    errs.push(format!("{here}.env"), "must name an environment variable");
                }
                let prefix = ua.prefix.clone().unwrap_or_default();
                let secret = match secrets {
                    Secrets::Unchecked => Some(format!("<{}>", ua.env)),
                    Secrets::Env(lookup) => lookup(&ua.env).filter(|v| !v.is_empty()),
                };
                match secret {
                    Some(v) if v.bytes().all(|c| (0x20..0x7f).contains(&c)) => Some(UpstreamAuth {
                        header: ua.header.clone(),
                        value: format!("{prefix}{v}"),
                    }),
                    Some(_) => {
                        errs.push(
                            format!("{here}.env"),
                            format!("`{}` holds characters not allowed in a header", ua.env),
                        );
                        None
                    }
                    None => {
                        errs.push(format!("{here}.env"), format!("environment variable `{}` is not set in the Wasm VM (vm_config.environment_variables)", ua.env));
                        None
                    }
                }
            }
        };
        let max_body_bytes = match s.limits.as_ref().and_then(|l| l.max_body_bytes) {
            None => DEFAULT_MAX_BODY_BYTES,
            Some(n) => match usize::try_from(n) {
                Ok(n) if n > 0 && n <= MAX_BODY_BYTES_CEILING => n,
                _ => {
                    errs.push(
                        format!("{at}.limits.max_body_bytes"),
                        format!("must be between 1 and {MAX_BODY_BYTES_CEILING}"),
                    );
                    DEFAULT_MAX_BODY_BYTES
                }
            },
        };
        let max_json_depth = match s.limits.as_ref().and_then(|l| l.max_json_depth) {
            None => DEFAULT_MAX_JSON_DEPTH,
            Some(n) if (1..=MAX_JSON_DEPTH_CEILING).contains(&n) => n,
            Some(_) => {
                errs.push(
                    format!("{at}.limits.max_json_depth"),
                    format!("must be between 1 and {MAX_JSON_DEPTH_CEILING}"),
                );
                DEFAULT_MAX_JSON_DEPTH
            }
        };
        let decoder = match s.protocol {
            Protocol::Rest => match &s.rest {
                None => {
                    errs.push(
                        format!("{at}.rest"),
                        "a REST service needs `rest` (style dreamfactory, postgrest or routes)",
                    );
                    None
                }
                Some(cfg) => RestDecoder::compile(cfg, &prefix, &format!("{at}.rest"), errs)
                    .map(Decoder::Rest),
            },
            Protocol::Sql => match &s.sql {
                None => {
                    errs.push(
                        format!("{at}.sql"),
                        "a SQL service needs `sql` (dialect, statement)",
                    );
                    None
                }
                Some(cfg) => SqlDecoder::compile(cfg, &format!("{at}.sql"), errs).map(Decoder::Sql),
            },
            Protocol::Graphql => {
                GraphqlDecoder::compile(s.graphql.as_ref(), &prefix, &format!("{at}.graphql"), errs)
                    .map(Decoder::Graphql)
            }
            Protocol::Mcp => McpDecoder::compile(
                s.mcp.as_ref(),
                &b.services,
                &prefix,
                &format!("{at}.mcp"),
                errs,
            )
            .map(Decoder::Mcp),
        };
        if s.protocol != Protocol::Rest && s.rest.is_some() {
            errs.push(format!("{at}.rest"), "only REST services take `rest`");
        }
        if s.protocol != Protocol::Sql && s.sql.is_some() {
            errs.push(format!("{at}.sql"), "only SQL services take `sql`");
        }
        if s.protocol != Protocol::Graphql && s.graphql.is_some() {
            errs.push(
                format!("{at}.graphql"),
                "only GraphQL services take `graphql`",
            );
        }
        if s.protocol != Protocol::Mcp && s.mcp.is_some() {
            errs.push(format!("{at}.mcp"), "only MCP services take `mcp`");
        }
        let keep = s.keep_headers.as_deref().unwrap_or_default();
        for (k, h) in keep.iter().enumerate() {
            let at = format!("{at}.keep_headers[{k}]");
            let known = UPSTREAM_CREDENTIAL_HEADERS.contains(&h.as_str())
                || UPSTREAM_CREDENTIAL_PREFIXES
                    .iter()
                    .any(|p| h.starts_with(p));
            let agent_key = match &b.credential_headers {
                Some(list) => list.contains(h),
                None => DEFAULT_CREDENTIAL_HEADERS.contains(&h.as_str()),
            };
            if agent_key {
                errs.push(
                    at,
                    format!("`{h}` carries the agent's scopegate key: it is never forwarded"),
                );
            } else if h.starts_with("x-scopegate-") {
                errs.push(at, format!("`{h}` is scopegate's own"));
            } else if !known {
                errs.push(
                    at,
                    format!("`{h}` is not a header scopegate strips (nothing to keep)"),
                );
            }
        }
        let strip_headers: Vec<&'static str> = UPSTREAM_CREDENTIAL_HEADERS
            .into_iter()
            .filter(|h| !keep.iter().any(|k| k == h))
            .collect();
        // Keeping any header of a family keeps the family (its members are many).
        let strip_prefixed = !keep.iter().any(|k| {
            UPSTREAM_CREDENTIAL_PREFIXES
                .iter()
                .any(|p| k.starts_with(p))
        });
        if let Some(decoder) = decoder {
            services.push(Service {
                name: s.name.clone(),
                protocol: s.protocol,
                hosts,
                prefix,
                methods: m.methods.clone(),
                upstream_auth,
                decoder,
                max_body_bytes,
                max_json_depth,
                environments: s
                    .environments
                    .as_ref()
                    .map(|e| env_map(&format!("{at}.environments"), e, errs)),
                strip_headers,
                strip_prefixed,
            });
        }
    }
    (services, service_names)
}

/// A service's record → environment map, from either shape.
fn env_map(at: &str, e: &bundle::RecordEnvironments, errs: &mut Errs) -> EnvMap {
    let mut ids = HashMap::new();
    let pairs = e
        .ids
        .iter()
        .flatten()
        .map(|(id, env)| (id.clone(), env.clone()))
        .chain(
            e.by_environment
                .iter()
                .flatten()
                .flat_map(|(env, list)| list.iter().map(move |id| (id.clone(), env.clone()))),
        );
    for (id, env) in pairs {
        if !is_name(&env) {
            errs.push(at, format!("environment `{env}` of `{id}` must be a name"));
        }
        if let Some(other) = ids.insert(id.clone(), env.clone()) {
            if other != env {
                errs.push(
                    at,
                    format!("`{id}` is mapped to both `{other}` and `{env}`"),
                );
            }
        }
    }
    if ids.is_empty() {
        errs.push(at, "maps no id (give `ids` or `by_environment`)");
    }
    EnvMap {
        records: e.records.clone(),
        ids,
    }
}
