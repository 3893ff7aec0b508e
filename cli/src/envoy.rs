//! `scopegate envoy`: a complete Envoy configuration from a bundle and an upstream map, and
//! `scopegate reload`: a new bundle for running Envoys, through Envoy's own extension config
//! discovery (a watched file).
//!
//! What the rendered configuration guarantees by construction:
//! - the bundle is embedded as JSON (the configuration is JSON, which Envoy reads as YAML:
//!   no indentation to get right);
//! - `allow_on_headers_stop_iteration` and `FAIL_CLOSED` are set;
//! - one cluster per service's upstream; a request reaches a service's cluster **only when
//!   scopegate decided it for that service**: routes match the `x-scopegate-service` header
//!   the filter sets on every request it forwards (and removes when an agent sends it), so
//!   Envoy's routing and the bundle's `match` rules cannot disagree; anything else gets a
//!   404 from Envoy;
//! - every secret the bundle reads comes from Envoy's environment (`host_env_keys`), never
//!   inlined.

use crate::*;
use serde_json::Value;

#[derive(clap::Args)]
pub(crate) struct EnvoyArgs {
    /// Bundle JSON file.
    #[arg(long)]
    bundle: PathBuf,
    /// Where each service's upstream is: SERVICE=HOST:PORT, or SERVICE=https://HOST:PORT
    /// (TLS, with SNI and the system CA bundle). Every service of the bundle needs one.
    #[arg(long = "upstream", value_name = "SERVICE=ADDRESS")]
    upstreams: Vec<String>,
    /// The listener's address.
    #[arg(long, default_value = "0.0.0.0:10000")]
    listen: String,
    /// The admin interface's address (keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:9901")]
    admin: String,
    /// The module as a local file ...
    #[arg(long, default_value = "/etc/scopegate/scopegate_filter.wasm")]
    wasm: String,
    /// ... or fetched by Envoy itself from this http(s) URL (with --wasm-sha256).
    #[arg(long, requires = "wasm_sha256")]
    wasm_url: Option<String>,
    /// The SHA-256 (hex) of the module at --wasm-url: Envoy refuses another file.
    #[arg(long)]
    wasm_sha256: Option<String>,
    /// Access log path (one JSON line per request, with scopegate's decision).
    #[arg(long, default_value = "/dev/stdout")]
    access_log: String,
    /// The audit sink's collector (when the bundle has `audit.sink`): HOST:PORT.
    #[arg(long)]
    collector: Option<String>,
    /// The JSON Web Key Set of an issuer the bundle's `identities` trust, as a file Envoy
    /// reads at start: ISSUER=FILE, one per issuer (Envoy's jwt_authn is rendered ahead of
    /// scopegate to verify their tokens).
    #[arg(long = "jwks", value_name = "ISSUER=FILE")]
    jwks: Vec<String>,
    /// The etcd members' client addresses (when the bundle's state store is etcd):
    /// HOST:PORT, repeatable.
    #[arg(long = "etcd", value_name = "HOST:PORT")]
    etcd: Vec<String>,
    /// More environment variables to pass to the Wasm VM (e.g. SCOPEGATE_ENVIRONMENT).
    #[arg(long = "env", value_name = "NAME")]
    env: Vec<String>,
    /// Deliver the bundle through extension config discovery from a watched file in this
    /// directory (`scopegate-filter.json`), so `scopegate reload` updates running Envoys
    /// without a restart.
    #[arg(long, value_name = "DIR")]
    reload_dir: Option<PathBuf>,
    /// Without --out, replace the filter file a running Envoy watches in --reload-dir
    /// (that is a bundle change: `scopegate reload` is the checked way).
    #[arg(long)]
    force: bool,
    /// Per-request upstream timeout.
    #[arg(long, default_value = "30s")]
    timeout: String,
    /// Write `envoy.yaml` (and, with --reload-dir, the filter file, to be deployed there)
    /// here instead of printing the configuration.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct ReloadArgs {
    /// The new bundle.
    #[arg(long)]
    bundle: PathBuf,
    /// The directory given to `scopegate envoy --reload-dir`.
    #[arg(long, value_name = "DIR")]
    reload_dir: PathBuf,
    /// An Envoy's admin address (HOST:PORT): wait until it applied the bundle, and fail if
    /// it refused it.
    #[arg(long)]
    admin: Option<String>,
}

/// The file Envoy watches for the filter's configuration.
pub(crate) const FILTER_FILE: &str = "scopegate-filter.json";
const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

fn address(a: &str, what: &str) -> Result<(String, u16), String> {
    let (host, port) = a
        .rsplit_once(':')
        .ok_or_else(|| format!("{what} `{a}`: expected HOST:PORT"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("{what} `{a}`: bad port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{what} `{a}`: no host"));
    }
    Ok((host.to_string(), port))
}

fn socket(host: &str, port: u16) -> Value {
    json!({"socket_address": {"address": host, "port_value": port}})
}

/// A cluster of endpoints; STATIC for IP addresses, STRICT_DNS for names.
fn cluster(name: &str, endpoints: &[(String, u16)], tls_sni: Option<&str>) -> Value {
    let dns = endpoints
        .iter()
        .any(|(h, _)| h.parse::<std::net::IpAddr>().is_err());
    let lb: Vec<Value> = endpoints
        .iter()
        .map(|(h, p)| json!({"endpoint": {"address": socket(h, *p)}}))
        .collect();
    let mut c = json!({
        "name": name,
        "type": if dns { "STRICT_DNS" } else { "STATIC" },
        "connect_timeout": "2s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": lb}]},
    });
    if let (Some(sni), Some(o)) = (tls_sni, c.as_object_mut()) {
        o.insert(
            "transport_socket".into(),
            json!({"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": sni,
                "common_tls_context": {"validation_context": {
                    "trusted_ca": {"filename": "/etc/ssl/certs/ca-certificates.crt"},
                    "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": sni}}]}}}}),
        );
    }
    c
}

/// The Wasm filter's configuration (the `Wasm` message) for a bundle.
fn wasm_config(bundle_text: &str, env_keys: &[String], code: &Value) -> Value {
    json!({
        "@type": WASM_TYPE,
        "config": {
            "name": "scopegate",
            "root_id": "scopegate",
            // Envoy >= 1.35 honours a pause from the request-headers callback only with
            // this; without it a request with a body would go on undecided (scopegate
            // then refuses it and logs which setting is missing).
            "allow_on_headers_stop_iteration": true,
            // A VM that crashed or failed to load denies traffic instead of passing it.
            "failure_policy": "FAIL_CLOSED",
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": bundle_text},
            "vm_config": {
                "vm_id": "scopegate",
                "runtime": "envoy.wasm.runtime.v8",
                "environment_variables": {"host_env_keys": env_keys},
                "code": code,
            },
        },
    })
}

/// The extension config discovery file: one `TypedExtensionConfig` named `scopegate`.
fn filter_file(wasm: &Value) -> Value {
    json!({"resources": [{
        "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
        "name": "scopegate",
        "typed_config": wasm,
    }]})
}

/// Reads and compiles a bundle as the filter would (secrets unchecked): a bundle that does
/// not compile is never rendered or shipped.
fn checked_bundle(path: &Path) -> Result<(scopegate_engine::bundle::Bundle, String), String> {
    let (b, _) = load_both(path, &[])?;
    let text = String::from_utf8(read(path)?).map_err(|_| "the bundle is not UTF-8")?;
    Ok((b, text))
}

pub(crate) fn envoy(a: &EnvoyArgs) -> Result<(), String> {
    let (b, text) = checked_bundle(&a.bundle)?;
    let mut upstreams: Vec<(String, String)> = Vec::new();
    for u in &a.upstreams {
        let (svc, addr) = u
            .split_once('=')
            .ok_or_else(|| format!("--upstream `{u}`: expected SERVICE=ADDRESS"))?;
        if !b.services.iter().any(|s| s.name == svc) {
            return Err(format!(
                "--upstream `{u}`: the bundle has no service `{svc}`"
            ));
        }
        if upstreams.iter().any(|(s, _)| s == svc) {
            return Err(format!("--upstream: `{svc}` given twice"));
        }
        upstreams.push((svc.to_string(), addr.to_string()));
    }
    let mut clusters = Vec::new();
    let mut routes = Vec::new();
    for s in &b.services {
        let addr = upstreams
            .iter()
            .find(|(n, _)| *n == s.name)
            .map(|(_, a)| a.as_str())
            .ok_or_else(|| {
                format!(
                    "service `{}` has no upstream: add --upstream {}=HOST:PORT",
                    s.name, s.name
                )
            })?;
        let (tls, hostport) = match addr.strip_prefix("https://") {
            Some(rest) => (true, rest),
            None => (false, addr.strip_prefix("http://").unwrap_or(addr)),
        };
        let (host, port) = address(hostport.trim_end_matches('/'), "--upstream")?;
        let name = format!("scopegate-service-{}", s.name);
        clusters.push(cluster(
            &name,
            &[(host.clone(), port)],
            tls.then_some(host.as_str()),
        ));
        // The upstream sees its own name as the host, never the one the agent sent (which
        // could aim the injected credential at another virtual host of the same endpoint).
        let default_port = if tls { 443 } else { 80 };
        let upstream_host = if port == default_port {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        routes.push(json!({
            "match": {"prefix": "/", "headers": [{"name": scopegate_engine::pipeline::SERVICE_HEADER,
                                                 "string_match": {"exact": s.name}}]},
            "route": {"cluster": name, "timeout": a.timeout, "host_rewrite_literal": upstream_host},
        }));
    }
    routes.push(json!({
        "match": {"prefix": "/"},
        "direct_response": {"status": 404, "body": {"inline_string":
            "{\"decision\":\"deny\",\"reason\":\"no service of the bundle was decided for this request\"}"}},
    }));
    // Clusters the filter calls out to.
    if let Some(sink) = b.audit.as_ref().and_then(|x| x.sink.as_ref()) {
        let c = a.collector.as_deref().ok_or_else(|| {
            format!(
                "the bundle sends audit records to cluster `{}`: give --collector HOST:PORT",
                sink.cluster
            )
        })?;
        clusters.push(cluster(&sink.cluster, &[address(c, "--collector")?], None));
    } else if a.collector.is_some() {
        return Err("--collector: the bundle has no `audit.sink`".into());
    }
    let etcd_cluster = b
        .state
        .as_ref()
        .and_then(|s| s.cluster.clone())
        .filter(|_| {
            b.state
                .as_ref()
                .is_some_and(|s| matches!(s.store, scopegate_engine::bundle::StateStoreName::Etcd))
        });
    match (&etcd_cluster, a.etcd.is_empty()) {
        (Some(name), false) => {
            let members = a
                .etcd
                .iter()
                .map(|e| address(e, "--etcd"))
                .collect::<Result<Vec<_>, _>>()?;
            let mut c = cluster(name, &members, None);
            if let Some(o) = c.as_object_mut() {
                // HTTP/1.1 (etcd's JSON gateway); a dead member leaves the pool fast.
                o.insert("health_checks".into(), json!([{"timeout": "0.5s", "interval": "1s",
                    "no_traffic_interval": "1s", "unhealthy_threshold": 1, "healthy_threshold": 1,
                    "http_health_check": {"path": "/health"}}]));
                o.insert("outlier_detection".into(), json!({"consecutive_5xx": 2,
                    "consecutive_gateway_failure": 2, "interval": "1s", "base_ejection_time": "5s",
                    "max_ejection_percent": 67}));
            }
            clusters.push(c);
        }
        (Some(name), true) => {
            return Err(format!(
                "the bundle keeps state in etcd (cluster `{name}`): give --etcd HOST:PORT for each member"
            ))
        }
        (None, false) => return Err("--etcd: the bundle's state store is not etcd".into()),
        (None, true) => {}
    }
    let code = match (&a.wasm_url, &a.wasm_sha256) {
        (Some(url), Some(sha)) => {
            let sha = sha.trim().to_ascii_lowercase();
            if sha.len() != 64 || !sha.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err("--wasm-sha256: 64 hex digits".into());
            }
            let (tls, rest) = match url.strip_prefix("https://") {
                Some(r) => (true, r),
                None => (
                    false,
                    url.strip_prefix("http://")
                        .ok_or("--wasm-url: an http:// or https:// URL")?,
                ),
            };
            let hostport = rest.split('/').next().unwrap_or_default();
            let (host, port) = match hostport.rsplit_once(':') {
                Some(_) => address(hostport, "--wasm-url")?,
                None => (hostport.to_string(), if tls { 443 } else { 80 }),
            };
            clusters.push(cluster(
                "scopegate-module",
                &[(host.clone(), port)],
                tls.then_some(host.as_str()),
            ));
            json!({"remote": {"http_uri": {"uri": url, "cluster": "scopegate-module", "timeout": "10s"},
                              "sha256": sha,
                              "retry_policy": {"num_retries": 5}}})
        }
        _ => json!({"local": {"filename": a.wasm}}),
    };
    let mut env_keys = policy::required_env(&b);
    for e in &a.env {
        if !env_keys.contains(e) {
            env_keys.push(e.clone());
        }
    }
    let wasm = wasm_config(&text, &env_keys, &code);
    let (filter, filter_doc) = match &a.reload_dir {
        None => (json!({"name": "scopegate", "typed_config": wasm}), None),
        Some(dir) => {
            let dir = std::path::absolute(dir).map_err(|e| format!("--reload-dir: {e}"))?;
            (
                json!({"name": "scopegate", "config_discovery": {
                    "config_source": {"path_config_source": {
                        "path": dir.join(FILTER_FILE),
                        "watched_directory": {"path": dir}}},
                    "type_urls": [WASM_TYPE]}}),
                Some((dir, filter_file(&wasm))),
            )
        }
    };
    let max_body = b
        .services
        .iter()
        .filter_map(|s| s.limits.as_ref().and_then(|l| l.max_body_bytes))
        .max()
        .unwrap_or(1 << 20)
        .max(1 << 20);
    let (lhost, lport) = address(&a.listen, "--listen")?;
    let (ahost, aport) = address(&a.admin, "--admin")?;
    let access_log = json!([{"name": "envoy.access_loggers.file", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path": a.access_log,
        "log_format": {"json_format": {
            "start_time": "%START_TIME%",
            "request_id": "%REQ(X-REQUEST-ID)%",
            "method": "%REQ(:METHOD)%",
            "path": "%REQ(:PATH)%",
            "status": "%RESPONSE_CODE%",
            "duration_ms": "%DURATION%",
            "upstream_cluster": "%UPSTREAM_CLUSTER%",
            "upstream": "%UPSTREAM_HOST%",
            "response_flags": "%RESPONSE_FLAGS%",
            "scopegate": "%FILTER_STATE(wasm.scopegate:PLAIN)%"}}}}]);
    let router = json!({"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}});
    let hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "scopegate",
        "codec_type": "AUTO",
        // Decide on the path Envoy routes: normalised, slashes merged, encoded slashes
        // rejected.
        "normalize_path": true,
        "merge_slashes": true,
        "path_with_escaped_slashes_action": "REJECT_REQUEST",
        // The edge: Envoy sets x-forwarded-for and a fresh x-request-id itself (the audit
        // record's request id is then not the agent's to choose).
        "use_remote_address": true,
        "access_log": access_log,
        "route_config": {"name": "scopegate", "virtual_hosts": [{
            "name": "scopegate", "domains": ["*"], "routes": routes}]},
        "http_filters": jwt_authn(&b, &a.jwks)?
            .into_iter()
            .chain([filter, router])
            .collect::<Vec<_>>(),
    });
    let listener = json!({
        "name": "scopegate",
        "address": socket(&lhost, lport),
        // Above the largest body the bundle lets scopegate buffer, so scopegate (not Envoy)
        // answers oversized bodies with its JSON 413.
        "per_connection_buffer_limit_bytes": max_body.saturating_mul(2),
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": hcm}]}],
    });
    let config = json!({
        // Extension config discovery needs a node identity.
        "node": {"id": "scopegate", "cluster": "scopegate"},
        "admin": {"address": socket(&ahost, aport)},
        "stats_config": {"stats_tags": stats_tags()},
        "static_resources": {"listeners": [listener], "clusters": clusters},
    });
    let rendered = serde_json::to_string_pretty(&config).map_err(|e| e.to_string())?;
    match &a.out {
        None => {
            println!("{rendered}");
            if let Some((dir, doc)) = &filter_doc {
                if dir.join(FILTER_FILE).exists() && !a.force {
                    return Err(format!(
                        "{} exists: Envoys watching it would switch to this bundle at once; use `scopegate reload` (or --out, or --force)",
                        dir.join(FILTER_FILE).display()
                    ));
                }
                write_filter(dir, doc)?;
                eprintln!("filter configuration: {}", dir.join(FILTER_FILE).display());
            }
        }
        Some(out) => {
            // Both files go to --out; the filter file is then deployed to --reload-dir,
            // where the configuration says Envoy finds it.
            std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
            let path = out.join("envoy.yaml");
            std::fs::write(&path, rendered + "\n")
                .map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!("wrote {}", path.display());
            if let Some((dir, doc)) = &filter_doc {
                write_filter(out, doc)?;
                eprintln!(
                    "wrote {} (Envoy reads it from {})",
                    out.join(FILTER_FILE).display(),
                    dir.join(FILTER_FILE).display()
                );
            }
        }
    }
    eprintln!(
        "the Wasm VM reads from Envoy's environment: {}",
        if env_keys.is_empty() {
            "nothing".to_string()
        } else {
            env_keys.join(", ")
        }
    );
    Ok(())
}

/// Replaces the watched file atomically (a rename within its directory, which Envoy's
/// watch sees as one update).
fn write_filter(dir: &Path, doc: &Value) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".{FILTER_FILE}.{}", std::process::id()));
    let text = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())?;
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join(FILTER_FILE)).map_err(|e| format!("{}: {e}", dir.display()))
}

/// A new bundle for the Envoys watching `dir`: checked as the filter's configure step
/// would (a bundle that does not compile is refused here; one Envoy still refuses — say
/// a secret it lacks — keeps its old bundle), then swapped into the watched file with the
/// rest of the filter's configuration unchanged.
pub(crate) fn reload(a: &ReloadArgs) -> Result<(), String> {
    let (b, text) = checked_bundle(&a.bundle)?;
    let path = a.reload_dir.join(FILTER_FILE);
    let mut doc: Value =
        serde_json::from_slice(&read(&path)?).map_err(|e| format!("{}: {e}", path.display()))?;
    let config = doc
        .pointer_mut("/resources/0/typed_config/config")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| format!("{}: not written by `scopegate envoy`", path.display()))?;
    // What the rendered configuration was made for must not change under it: the
    // services (their routes and clusters), the audit sink and the state store.
    let old = config
        .get("configuration")
        .and_then(|c| c.get("value"))
        .and_then(Value::as_str)
        .and_then(|t| scopegate_engine::bundle::parse(t.as_bytes()).ok())
        .ok_or_else(|| format!("{}: its bundle does not parse", path.display()))?;
    let shape = |b: &scopegate_engine::bundle::Bundle| {
        (
            b.services
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>(),
            b.audit
                .as_ref()
                .and_then(|x| x.sink.as_ref())
                .map(|s| s.cluster.clone()),
            b.state.as_ref().map(|s| {
                (
                    matches!(s.store, scopegate_engine::bundle::StateStoreName::Etcd),
                    s.cluster.clone(),
                )
            }),
        )
    };
    if shape(&old) != shape(&b) {
        return Err("the new bundle changes its services, audit sink or state store: those are part of the rendered Envoy configuration — render it again (`scopegate envoy`) and roll it out".into());
    }
    let had: Vec<String> = config
        .get("vm_config")
        .and_then(|v| v.pointer("/environment_variables/host_env_keys"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let missing: Vec<String> = policy::required_env(&b)
        .into_iter()
        .filter(|e| !had.contains(e))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the new bundle reads {} from the environment, which this Envoy's Wasm VM is not given: render the configuration again (`scopegate envoy`) and restart",
            missing.join(", ")
        ));
    }
    config.insert(
        "configuration".into(),
        json!({"@type": "type.googleapis.com/google.protobuf.StringValue", "value": text}),
    );
    let before = match &a.admin {
        Some(admin) => Some(ecds_counts(admin)?),
        None => None,
    };
    write_filter(&a.reload_dir, &doc)?;
    if let (Some(admin), Some((ok0, rejected0))) = (&a.admin, before) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let (ok, rejected) = ecds_counts(admin)?;
            if rejected > rejected0 {
                return Err(format!(
                    "the Envoy at {admin} refused the new bundle and keeps the old one: see its log (`Filesystem config update rejected`)"
                ));
            }
            if ok > ok0 {
                eprintln!("the Envoy at {admin} applied it");
                break;
            }
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "the Envoy at {admin} did not take the new bundle within 15 s"
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    eprintln!(
        "{}: bundle `{}` — Envoy applies it within a second, or refuses it and keeps the old one (stat extension_config_discovery.http_filter.scopegate.update_rejected)",
        path.display(),
        b.bundle
    );
    Ok(())
}

/// (update_success, update_rejected) of the scopegate extension config at an Envoy admin.
fn ecds_counts(admin: &str) -> Result<(u64, u64), String> {
    use std::io::{Read as _, Write as _};
    let mut conn =
        std::net::TcpStream::connect(admin).map_err(|e| format!("--admin {admin}: {e}"))?;
    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    conn.write_all(
        format!("GET /stats?filter=extension_config_discovery.http_filter.scopegate.update_ HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| format!("--admin {admin}: {e}"))?;
    let mut text = String::new();
    conn.read_to_string(&mut text)
        .map_err(|e| format!("--admin {admin}: {e}"))?;
    let count = |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "extension_config_discovery.http_filter.scopegate.{name}: "
                ))
            })
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    match (count("update_success"), count("update_rejected")) {
        (Some(ok), Some(rejected)) => Ok((ok, rejected)),
        _ => Err(format!("--admin {admin}: no scopegate extension config there (is it the Envoy rendered with --reload-dir?)")),
    }
}

/// Envoy's tag extractors for the filter's labelled counter
/// (`scopegate_decisions.decision.<d>.service.<s>.role.<r>`, see the filter's
/// `stream::labelled`): at `/stats/prometheus` it reads
/// `scopegate_decisions{decision="…",service="…",role="…"}`.
pub(crate) const STATS_TAGS: [(&str, &str); 3] = [
    (
        "decision",
        r"^wasmcustom\.scopegate_decisions(\.decision\.([a-z_]+))",
    ),
    (
        "service",
        r"^wasmcustom\.scopegate_decisions\.decision\.[a-z_]+(\.service\.([a-z0-9_]+))",
    ),
    (
        "role",
        r"^wasmcustom\.scopegate_decisions\.decision\.[a-z_]+\.service\.[a-z0-9_]+(\.role\.([a-z0-9_]+))",
    ),
];

fn stats_tags() -> Value {
    STATS_TAGS
        .iter()
        .map(|(tag, regex)| json!({"tag_name": tag, "regex": regex}))
        .collect()
}

/// Envoy's jwt_authn ahead of scopegate when the bundle has `identities`: one provider per
/// issuer (the audiences its entries accept, the JWKS file given for it), the verified
/// payload put in dynamic metadata where the filter reads it. A token that fails
/// verification passes on unverified (`allow_missing_or_failed`) so scoped keys in
/// `Authorization` keep working — and scopegate refuses any JWT-shaped bearer without a
/// verified payload.
fn jwt_authn(
    b: &scopegate_engine::bundle::Bundle,
    jwks: &[String],
) -> Result<Option<Value>, String> {
    let Some(ids) = &b.identities else {
        if !jwks.is_empty() {
            return Err("--jwks: the bundle has no `identities`".into());
        }
        return Ok(None);
    };
    let mut files = std::collections::BTreeMap::new();
    for spec in jwks {
        let (issuer, file) = spec
            .rsplit_once('=')
            .ok_or_else(|| format!("--jwks `{spec}`: expected ISSUER=FILE"))?;
        files.insert(issuer.to_string(), file.to_string());
    }
    let mut issuers: Vec<&str> = ids.entries.iter().map(|e| e.issuer.as_str()).collect();
    issuers.sort_unstable();
    issuers.dedup();
    let key = ids
        .metadata_key
        .clone()
        .unwrap_or_else(|| "jwt_payload".into());
    let mut providers = serde_json::Map::new();
    let mut requirements = Vec::new();
    for (i, issuer) in issuers.iter().enumerate() {
        let file = files.remove(*issuer).ok_or_else(|| {
            format!("the bundle trusts tokens from `{issuer}`: give --jwks '{issuer}=FILE'")
        })?;
        let mut audiences: Vec<&str> = ids
            .entries
            .iter()
            .filter(|e| e.issuer == *issuer)
            .flat_map(|e| e.audiences.iter().map(String::as_str))
            .collect();
        audiences.sort_unstable();
        audiences.dedup();
        let name = format!("issuer-{i}");
        providers.insert(
            name.clone(),
            json!({"issuer": issuer, "audiences": audiences,
                   "local_jwks": {"filename": file}, "payload_in_metadata": key}),
        );
        requirements.push(json!({"provider_name": name}));
    }
    if let Some(extra) = files.keys().next() {
        return Err(format!(
            "--jwks: no identity of the bundle trusts `{extra}`"
        ));
    }
    requirements.push(json!({"allow_missing_or_failed": {}}));
    Ok(Some(json!({
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": providers,
            "rules": [{"match": {"prefix": "/"},
                       "requires": {"requires_any": {"requirements": requirements}}}],
        },
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template the tests and the demo run carries the same extractors.
    #[test]
    fn template_has_the_same_stats_tags() {
        let template = include_str!("../../envoy/scopegate.yaml.tmpl");
        for (tag, regex) in STATS_TAGS {
            assert!(
                template.contains(&format!("- tag_name: {tag}\n    regex: '{regex}'")),
                "{tag}"
            );
        }
    }
}
