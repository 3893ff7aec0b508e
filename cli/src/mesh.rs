//! `scopegate istio` and `scopegate envoy-gateway`: Kubernetes manifests that load the
//! module from an OCI image pinned by digest, with the bundle as the plugin configuration
//! and every secret it reads taken from the proxy's own environment (never inlined).
//!
//! Said plainly: Envoy (>= 1.35) hands a filter the body of a request it held in the
//! request-headers callback only with `allow_on_headers_stop_iteration: true`, and neither
//! Istio's `WasmPlugin` nor Envoy Gateway's `EnvoyExtensionPolicy` can set it (Istio's
//! EnvoyFilter cannot MERGE into the extension config a WasmPlugin becomes: EXTENSION_CONFIG
//! patches only ADD). So for Istio the default output is an `EnvoyFilter` that adds the
//! whole Wasm filter configuration itself (the flag, FAIL_CLOSED, the module by its oci://
//! url and digest, which istio-agent fetches as it does for WasmPlugins); `--kind
//! wasmplugin` gives the WasmPlugin for bundles whose decisions read no bodies. For Envoy
//! Gateway, the EnvoyExtensionPolicy comes with an EnvoyPatchPolicy that sets the flag.
//! Without the flag, scopegate answers requests with bodies 500 and names the setting.

use crate::*;
use serde_json::Value;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum IstioKind {
    /// An EnvoyFilter adding the Wasm filter with every setting scopegate needs.
    Envoyfilter,
    /// A WasmPlugin (cannot set allow_on_headers_stop_iteration: bodies are not read).
    Wasmplugin,
}

#[derive(clap::Args)]
pub(crate) struct MeshArgs {
    /// Bundle JSON file.
    #[arg(long)]
    bundle: PathBuf,
    /// The module's image, pinned: oci://REGISTRY/REPO@sha256:<manifest digest> (`make oci`
    /// prints it).
    #[arg(long)]
    image: String,
    /// The dedicated Gateway (Kubernetes Gateway API) the filter attaches to.
    #[arg(long)]
    gateway: String,
    /// Namespace of the Gateway and the manifests.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Name of the manifests.
    #[arg(long, default_value = "scopegate")]
    name: String,
    /// Istio only: what to emit.
    #[arg(long, value_enum, default_value = "envoyfilter")]
    kind: IstioKind,
}

/// A JSON value as block-style YAML. Every string is written as a JSON string, which is a
/// valid YAML double-quoted scalar: nothing can be misread as another type or as YAML syntax.
pub(crate) fn yaml(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let key = key(k);
                match x {
                    Value::Object(o) if !o.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        yaml(x, indent + 2, out);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        yaml(x, indent, out);
                    }
                    _ => out.push_str(&format!("{pad}{key}: {}\n", ascii(x))),
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for x in a {
                let mut item = String::new();
                yaml(x, indent + 2, &mut item);
                match x {
                    Value::Object(o) if !o.is_empty() => {
                        // First line after "- ", the rest as they are.
                        let trimmed = item.get(indent + 2..).unwrap_or_default();
                        out.push_str(&format!("{pad}- {trimmed}"));
                    }
                    Value::Array(inner) if !inner.is_empty() => {
                        out.push_str(&format!("{pad}-\n{item}"));
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", ascii(x))),
                }
            }
        }
        scalar => out.push_str(&format!("{pad}{}\n", ascii(scalar))),
    }
}

/// A JSON scalar in ASCII: every other character (and DEL) as `\\uXXXX`, so a YAML 1.1
/// parser (Kubernetes') reads the same string — it folds U+0085/U+2028/U+2029 and refuses
/// C1 controls and a BOM written raw.
fn ascii(v: &Value) -> String {
    let mut out = String::new();
    for c in v.to_string().chars() {
        if c.is_ascii() && c != '\u{7f}' {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{:04x}", u));
            }
        }
    }
    out
}

/// A mapping key: bare when it cannot be read as anything but that string, else quoted.
fn key(k: &str) -> String {
    let plain = k
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'$' || b == b'_')
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.$/-@".contains(&b))
        && !matches!(
            k.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~"
        );
    if plain {
        k.to_string()
    } else {
        ascii(&Value::String(k.to_string()))
    }
}

fn documents(docs: &[Value], header: &str) -> String {
    let mut out = String::new();
    for line in header.lines() {
        out.push_str(&format!("# {line}\n"));
    }
    for d in docs {
        out.push_str("---\n");
        yaml(d, 0, &mut out);
    }
    out
}

/// (registry/repo, sha256 hex) of a pinned oci:// image.
fn pinned(image: &str) -> Result<(&str, &str), String> {
    let rest = image
        .strip_prefix("oci://")
        .ok_or("--image: an oci:// url")?;
    let (repo, digest) = rest.split_once("@sha256:").ok_or(
        "--image: pin it by digest (oci://REGISTRY/REPO@sha256:<manifest digest>, from `make oci`)",
    )?;
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("--image: the digest is 64 hex digits".into());
    }
    Ok((repo, digest))
}

fn load_bundle(path: &Path) -> Result<(scopegate_engine::bundle::Bundle, Value), String> {
    let (b, _) = load_both(path, &[])?;
    let v: Value = serde_json::from_slice(&read(path)?).map_err(|e| e.to_string())?;
    Ok((b, v))
}

fn header(a: &MeshArgs, env: &[String], what: &str) -> String {
    format!(
        "Generated by `scopegate {what}` from {} — regenerate, do not edit.\nThe gateway's proxy must have these variables in its environment (a Secret): {}.",
        a.bundle.display(),
        if env.is_empty() {
            "none".to_string()
        } else {
            env.join(", ")
        }
    )
}

pub(crate) fn istio(a: &MeshArgs) -> Result<(), String> {
    let (b, bundle) = load_bundle(&a.bundle)?;
    let (_, digest) = pinned(&a.image)?;
    let env = policy::required_env(&b);
    let docs = match a.kind {
        IstioKind::Wasmplugin => vec![json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": {"name": a.name, "namespace": a.namespace},
            "spec": {
                "targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": a.gateway}],
                "url": a.image,
                "sha256": digest,
                "imagePullPolicy": "IfNotPresent",
                "phase": "AUTHZ",
                "failStrategy": "FAIL_CLOSE",
                "type": "HTTP",
                "pluginConfig": bundle,
                "vmConfig": {"env": env.iter().map(|e| json!({"name": e, "valueFrom": "HOST"})).collect::<Vec<_>>()},
            },
        })],
        IstioKind::Envoyfilter => {
            let ext = format!("{}.{}", a.namespace, a.name);
            let text = serde_json::to_string(&bundle).map_err(|e| e.to_string())?;
            let wasm = json!({
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {
                    "name": ext,
                    "root_id": "scopegate",
                    "allow_on_headers_stop_iteration": true,
                    "failure_policy": "FAIL_CLOSED",
                    "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": text},
                    "vm_config": {
                        "vm_id": ext,
                        "runtime": "envoy.wasm.runtime.v8",
                        "environment_variables": {"host_env_keys": env},
                        // istio-agent fetches oci:// (and https://) code in extension
                        // configs and hands Envoy a local file, checked against the digest.
                        "code": {"remote": {"http_uri": {"uri": a.image, "timeout": "30s"}, "sha256": digest}},
                    },
                },
            });
            vec![json!({
                "apiVersion": "networking.istio.io/v1alpha3",
                "kind": "EnvoyFilter",
                "metadata": {"name": a.name, "namespace": a.namespace},
                "spec": {
                    "workloadSelector": {"labels": {"gateway.networking.k8s.io/gateway-name": a.gateway}},
                    "configPatches": [
                        {"applyTo": "EXTENSION_CONFIG", "patch": {"operation": "ADD", "value": {
                            "name": ext, "typed_config": wasm}}},
                        {"applyTo": "HTTP_FILTER", "match": {"context": "GATEWAY", "listener": {"filterChain": {
                            "filter": {"name": "envoy.filters.network.http_connection_manager"}}}},
                         "patch": {"operation": "INSERT_FIRST", "value": {
                            "name": ext,
                            "config_discovery": {
                                "config_source": {"ads": {}, "initial_fetch_timeout": "0s"},
                                "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"]}}}},
                    ],
                },
            })]
        }
    };
    print!("{}", documents(&docs, &header(a, &env, "istio")));
    Ok(())
}

pub(crate) fn envoy_gateway(a: &MeshArgs) -> Result<(), String> {
    let (b, bundle) = load_bundle(&a.bundle)?;
    let (_, digest) = pinned(&a.image)?;
    let env = policy::required_env(&b);
    let policy_doc = json!({
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "EnvoyExtensionPolicy",
        "metadata": {"name": a.name, "namespace": a.namespace},
        "spec": {
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": a.gateway}],
            "wasm": [{
                "name": "scopegate",
                "rootID": "scopegate",
                "code": {"type": "Image", "image": {"url": a.image.trim_start_matches("oci://"), "sha256": digest}},
                "config": bundle,
                "failOpen": false,
                "env": {"hostKeys": env},
            }],
        },
    });
    // EnvoyExtensionPolicy has no field for the pause flag (envoyproxy/gateway#8382): a
    // patch sets it on the Wasm filter Envoy Gateway generates for the policy above.
    let filter = format!(
        "envoy.filters.http.wasm/envoyextensionpolicy/{}/{}/wasm/0",
        a.namespace, a.name
    );
    let patch_doc = json!({
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "EnvoyPatchPolicy",
        "metadata": {"name": format!("{}-pause", a.name), "namespace": a.namespace},
        "spec": {
            "targetRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": a.gateway},
            "type": "JSONPatch",
            "jsonPatches": [{
                "type": "type.googleapis.com/envoy.config.listener.v3.Listener",
                "name": format!("{}/{}/http", a.namespace, a.gateway),
                "operation": {
                    "op": "add",
                    "jsonPath": format!("..http_filters[?(@.name=='{filter}')].typed_config.config"),
                    "path": "allow_on_headers_stop_iteration",
                    "value": true,
                },
            }],
        },
    });
    print!(
        "{}",
        documents(&[policy_doc, patch_doc], &header(a, &env, "envoy-gateway"))
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::yaml;
    use serde_json::json;

    #[test]
    fn yaml_is_block_style_with_json_strings() {
        let mut out = String::new();
        yaml(
            &json!({"a": {"b": [1, {"c": "x: y", "d": []}], "e": "#no comment"}, "yes": null, "k y": 1}),
            0,
            &mut out,
        );
        assert_eq!(
            out,
            "a:\n  b:\n  - 1\n  - c: \"x: y\"\n    d: []\n  e: \"#no comment\"\n\"yes\": null\n\"k y\": 1\n"
        );
        let mut out = String::new();
        yaml(&json!({"s": "a\u{2028}b\u{7f}é😀"}), 0, &mut out);
        assert_eq!(out, "s: \"a\\u2028b\\u007f\\u00e9\\ud83d\\ude00\"\n");
    }
}
