//! The `identities` section: verified-token holders (Envoy's `jwt_authn` verified the
//! token; its payload reaches the filter in dynamic metadata) mapped to roles by issuer,
//! audience, claims and OAuth scopes.

use super::*;
use serde_json::Map;

/// The metadata namespace Envoy's `jwt_authn` writes verified payloads under.
pub const JWT_AUTHN_NAMESPACE: &str = "envoy.filters.http.jwt_authn";

#[derive(Debug)]
pub struct Identities {
    /// `payload_in_metadata` name under [`JWT_AUTHN_NAMESPACE`].
    pub metadata_key: String,
    /// RFC 9728 protected-resource metadata URL, for MCP services' 401s.
    pub resource_metadata: Option<String>,
    pub entries: Vec<IdentityEntry>,
}

#[derive(Debug)]
pub struct IdentityEntry {
    pub id: String,
    pub issuer: String,
    pub audiences: Vec<String>,
    /// Claim → patterns, all claims required.
    pub claims: Vec<(String, Vec<Glob>)>,
    pub scopes: Vec<String>,
    pub role: usize,
    pub environments: Option<Vec<String>>,
    pub id_claim: String,
    /// The role's destructive budget, counted per holder.
    pub budget: Option<Budget>,
}

/// A verified token's holder, as an entry saw it.
#[derive(Debug)]
pub struct Holder<'p> {
    pub entry: &'p IdentityEntry,
    /// `<entry id>/<id claim>`.
    pub id: String,
}

/// A claim's values: a string, a list of strings, or (for `scope`/`scp`) space-separated.
fn values<'a>(claims: &'a Map<String, Value>, name: &str) -> Vec<&'a str> {
    match claims.get(name) {
        Some(Value::String(s)) if name == "scope" || name == "scp" => {
            s.split(' ').filter(|x| !x.is_empty()).collect()
        }
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

impl Identities {
    /// The first entry the verified payload meets, with the holder's id; else why none.
    pub fn find(&self, claims: &Map<String, Value>, now_ms: i64) -> Result<Holder<'_>, String> {
        // `jwt_authn` checked these; checked again, so a misconfigured provider (no
        // audiences, a clock skew setting) does not widen what the bundle admits.
        let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        let secs = |name: &str| claims.get(name).and_then(Value::as_f64);
        let now = now_ms as f64 / 1000.0;
        match secs("exp") {
            Some(exp) if exp > now => {}
            Some(_) => return Err(format!("the token from `{iss}` has expired")),
            None => return Err(format!("the token from `{iss}` has no `exp`")),
        }
        if secs("nbf").is_some_and(|nbf| nbf > now) {
            return Err(format!("the token from `{iss}` is not valid yet (`nbf`)"));
        }
        let aud = values(claims, "aud");
        let scopes: Vec<&str> = values(claims, "scope")
            .into_iter()
            .chain(values(claims, "scp"))
            .collect();
        for e in &self.entries {
            let fits = e.issuer == iss
                && aud.iter().any(|a| e.audiences.iter().any(|x| x == a))
                && e.scopes.iter().all(|s| scopes.contains(&s.as_str()))
                && e.claims.iter().all(|(name, patterns)| {
                    values(claims, name)
                        .iter()
                        .any(|v| patterns.iter().any(|p| p.matches(v)))
                });
            if !fits {
                continue;
            }
            return match claims.get(&e.id_claim).and_then(Value::as_str) {
                Some(who) if who.len() > 256 || who.chars().any(char::is_control) => Err(format!(
                    "identity `{}`: the token's `{}` is not a printable name of at most 256 bytes",
                    e.id, e.id_claim
                )),
                Some(who) if !who.is_empty() => Ok(Holder {
                    entry: e,
                    id: format!("{}/{who}", e.id),
                }),
                _ => Err(format!(
                    "identity `{}` matches, but the token has no `{}` to name its holder",
                    e.id, e.id_claim
                )),
            };
        }
        let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("-");
        Err(format!(
            "no identity of the bundle matches the verified token (iss `{iss}`, sub `{sub}`)"
        ))
    }
}

/// The verified payload `jwt_authn` left in the stream's dynamic metadata — given as the
/// serialised `envoy.config.core.v3.Metadata` message (what Envoy's `metadata` property
/// is) — at `filter_metadata[JWT_AUTHN_NAMESPACE][key]`, as JSON. `None` when there is
/// none, or when the bytes are not what Envoy writes (then nothing is trusted).
pub fn verified_payload(metadata: &[u8], key: &str) -> Option<Map<String, Value>> {
    // Metadata { map<string, Struct> filter_metadata = 1; … }
    let mut found = None;
    for (field, value) in pb::fields(metadata)? {
        if let (1, pb::Field::Bytes(entry)) = (field, value) {
            let (name, payload) = pb::map_entry(entry)?;
            if name == JWT_AUTHN_NAMESPACE {
                found = Some(payload);
            }
        }
    }
    match pb::structure(found?)?.remove(key)? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Just enough of the protobuf wire format for `Metadata` and `google.protobuf.Struct`.
mod pb {
    use serde_json::{Map, Number, Value};

    pub enum Field<'a> {
        Varint(u64),
        Fixed64([u8; 8]),
        Bytes(&'a [u8]),
    }

    /// Deepest `Struct` nesting read (a JWT payload is shallow).
    const MAX_DEPTH: usize = 32;

    fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*at)?;
            *at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// Every (field number, value) of a message; `None` if the bytes are malformed.
    pub fn fields(b: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < b.len() {
            let tag = varint(b, &mut at)?;
            let value = match tag & 7 {
                0 => Field::Varint(varint(b, &mut at)?),
                1 => {
                    let raw: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
                    at += 8;
                    Field::Fixed64(raw)
                }
                2 => {
                    let len = usize::try_from(varint(b, &mut at)?).ok()?;
                    let end = at.checked_add(len)?;
                    let bytes = b.get(at..end)?;
                    at = end;
                    Field::Bytes(bytes)
                }
                5 => {
                    at = at.checked_add(4).filter(|e| *e <= b.len())?;
                    continue;
                }
                _ => return None,
            };
            out.push((tag >> 3, value));
        }
        Some(out)
    }

    /// A map entry: `key = 1` (string), `value = 2` (message bytes).
    pub fn map_entry(b: &[u8]) -> Option<(String, &[u8])> {
        let (mut key, mut value) = (None, &[][..]);
        for (f, v) in fields(b)? {
            match (f, v) {
                (1, Field::Bytes(k)) => key = Some(String::from_utf8(k.to_vec()).ok()?),
                (2, Field::Bytes(v)) => value = v,
                _ => {}
            }
        }
        Some((key?, value))
    }

    /// `Struct { map<string, Value> fields = 1; }` as a JSON object.
    pub fn structure(b: &[u8]) -> Option<Map<String, Value>> {
        structure_at(b, 0)
    }

    fn structure_at(b: &[u8], depth: usize) -> Option<Map<String, Value>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut out = Map::new();
        for (f, v) in fields(b)? {
            if let (1, Field::Bytes(entry)) = (f, v) {
                let (k, v) = map_entry(entry)?;
                out.insert(k, value(v, depth + 1)?);
            }
        }
        Some(out)
    }

    /// `Value { oneof kind { null = 1; number = 2; string = 3; bool = 4; Struct = 5;
    /// ListValue = 6 } }`.
    fn value(b: &[u8], depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut out = Value::Null;
        for (f, v) in fields(b)? {
            out = match (f, v) {
                (1, Field::Varint(_)) => Value::Null,
                (2, Field::Fixed64(raw)) => {
                    Value::Number(Number::from_f64(f64::from_le_bytes(raw))?)
                }
                (3, Field::Bytes(s)) => Value::String(String::from_utf8(s.to_vec()).ok()?),
                (4, Field::Varint(x)) => Value::Bool(x != 0),
                (5, Field::Bytes(s)) => Value::Object(structure_at(s, depth + 1)?),
                (6, Field::Bytes(l)) => {
                    // ListValue { repeated Value values = 1; }
                    let mut items = Vec::new();
                    for (lf, lv) in fields(l)? {
                        if let (1, Field::Bytes(item)) = (lf, lv) {
                            items.push(value(item, depth + 1)?);
                        }
                    }
                    Value::Array(items)
                }
                _ => return None,
            };
        }
        Some(out)
    }
}

pub(super) fn compile(
    b: &Bundle,
    role_names: &HashMap<&str, usize>,
    errs: &mut Errs,
) -> Option<Identities> {
    let cfg = b.identities.as_ref()?;
    let mut ids = HashSet::new();
    let mut entries = Vec::new();
    if cfg.entries.is_empty() {
        errs.push("identities.entries", "must not be empty");
    }
    for (i, e) in cfg.entries.iter().enumerate() {
        let at = format!("identities.entries[{i}]");
        if !is_name(&e.id) {
            errs.push(
                format!("{at}.id"),
                "must be a non-empty name ([A-Za-z0-9._:-])",
            );
        }
        if !ids.insert(e.id.as_str()) || b.keys.iter().any(|k| k.id == e.id) {
            errs.push(
                format!("{at}.id"),
                format!("`{}` names another identity or a key", e.id),
            );
        }
        if e.issuer.is_empty() {
            errs.push(format!("{at}.issuer"), "must be the tokens' `iss`");
        }
        if e.audiences.is_empty() || e.audiences.iter().any(String::is_empty) {
            errs.push(
                format!("{at}.audiences"),
                "must list the audiences this gateway accepts (a token for another audience is refused)",
            );
        }
        let role = match role_names.get(e.role.as_str()) {
            Some(r) => *r,
            None => {
                errs.push(format!("{at}.role"), format!("unknown role `{}`", e.role));
                usize::MAX
            }
        };
        let claims: Vec<(String, Vec<Glob>)> = e
            .claims
            .iter()
            .flatten()
            .map(|(name, patterns)| {
                if patterns.is_empty() {
                    errs.push(
                        format!("{at}.claims.{name}"),
                        "must list at least one pattern",
                    );
                }
                (
                    name.clone(),
                    patterns.iter().map(|p| Glob::new(p)).collect(),
                )
            })
            .collect();
        let environments = env_names(&format!("{at}.environments"), &e.environments, errs);
        let budget = b
            .roles
            .get(role)
            .and_then(|r| r.budget.as_ref())
            .and_then(|of_role| keys::budget(&format!("roles[{role}].budget"), of_role, errs));
        entries.push(IdentityEntry {
            id: e.id.clone(),
            issuer: e.issuer.clone(),
            audiences: e.audiences.clone(),
            claims,
            scopes: e.scopes.clone().unwrap_or_default(),
            role,
            environments,
            id_claim: e.id_claim.clone().unwrap_or_else(|| "sub".into()),
            budget,
        });
    }
    let metadata_key = cfg
        .metadata_key
        .clone()
        .unwrap_or_else(|| "jwt_payload".into());
    if metadata_key.is_empty() {
        errs.push("identities.metadata_key", "must not be empty");
    }
    if let Some(url) = &cfg.resource_metadata {
        if !url.starts_with("https://") && !url.starts_with("http://") || url.contains('"') {
            errs.push(
                "identities.resource_metadata",
                "must be an http(s) URL without quotes",
            );
        }
    }
    Some(Identities {
        metadata_key,
        resource_metadata: cfg.resource_metadata.clone(),
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identities() -> Identities {
        let b = crate::bundle::parse(
            br#"{"bundle": "i", "version": 1, "environment": "production",
              "services": [{"name": "s", "protocol": "rest", "match": {"path_prefix": "/s"}, "rest": {"style": "postgrest"}}],
              "roles": [{"name": "writer", "allow": []}, {"name": "reader", "allow": []}],
              "identities": {"entries": [
                {"id": "writers", "issuer": "https://idp.test", "audiences": ["gw"], "scopes": ["rentals.write"], "role": "writer", "id_claim": "client_id"},
                {"id": "agents", "issuer": "https://idp.test", "audiences": ["gw", "other"], "claims": {"client_id": ["agent-*"], "groups": ["data"]}, "role": "reader"}]}}"#,
        )
        .unwrap();
        let mut errs = Errs::default();
        let roles = [("writer", 0), ("reader", 1)].into_iter().collect();
        let i = compile(&b, &roles, &mut errs).unwrap();
        assert!(errs.0.is_empty(), "{:?}", errs.0);
        i
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn entries_match_in_order_on_issuer_audience_claims_and_scopes() {
        let i = identities();
        let now = 1_800_000_000_000;
        let base = json!({"iss": "https://idp.test", "aud": ["x", "gw"], "sub": "u-1",
                          "client_id": "agent-7", "groups": ["ops", "data"], "exp": 1_900_000_000});
        let h = i.find(&claims(base.clone()), now).unwrap();
        assert_eq!(
            (h.entry.id.as_str(), h.id.as_str()),
            ("agents", "agents/u-1")
        );
        // A scope selects the more privileged entry listed first.
        let mut w = base.clone();
        w["scope"] = json!("openid rentals.write");
        assert_eq!(i.find(&claims(w), now).unwrap().id, "writers/agent-7");
        for (field, value, says) in [
            ("iss", json!("https://evil.test"), "no identity"),
            ("aud", json!("elsewhere"), "no identity"),
            ("groups", json!(["ops"]), "no identity"),
            ("client_id", json!("human-1"), "no identity"),
            ("exp", json!(1_700_000_000), "expired"),
            ("nbf", json!(1_900_000_000), "not valid yet"),
        ] {
            let mut c = base.clone();
            c[field] = value;
            let e = i.find(&claims(c), now).unwrap_err();
            assert!(e.contains(says), "{field}: {e}");
        }
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove("exp");
        assert!(i.find(&claims(c), now).unwrap_err().contains("no `exp`"));
        let mut c = base;
        c.as_object_mut().unwrap().remove("sub");
        assert!(i.find(&claims(c), now).unwrap_err().contains("no `sub`"));
    }

    /// Protobuf encoding, for the test: what Envoy's `metadata` property holds.
    fn ld(field: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(field << 3) | 2];
        let mut n = bytes.len();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        out.extend_from_slice(bytes);
        out
    }

    fn pb_value(v: &Value) -> Vec<u8> {
        match v {
            Value::Null => vec![1 << 3, 0],
            Value::Number(n) => {
                let mut out = vec![(2 << 3) | 1];
                out.extend_from_slice(&n.as_f64().unwrap().to_le_bytes());
                out
            }
            Value::String(s) => ld(3, s.as_bytes()),
            Value::Bool(b) => vec![4 << 3, u8::from(*b)],
            Value::Object(m) => ld(5, &pb_struct(m)),
            Value::Array(a) => ld(
                6,
                &a.iter()
                    .flat_map(|x| ld(1, &pb_value(x)))
                    .collect::<Vec<_>>(),
            ),
        }
    }

    fn pb_struct(m: &Map<String, Value>) -> Vec<u8> {
        m.iter()
            .flat_map(|(k, v)| ld(1, &[ld(1, k.as_bytes()), ld(2, &pb_value(v))].concat()))
            .collect()
    }

    #[test]
    fn the_verified_payload_is_read_from_envoys_metadata_message() {
        let payload = json!({"iss": "https://idp.test", "aud": ["gw", "x"], "exp": 1_900_000_000.0,
                             "groups": ["data"], "nested": {"ok": true, "none": null}});
        let ns = |name: &str, inner: &Map<String, Value>| {
            ld(
                1,
                &[ld(1, name.as_bytes()), ld(2, &pb_struct(inner))].concat(),
            )
        };
        let mut wrapped = Map::new();
        wrapped.insert("jwt_payload".into(), payload.clone());
        let mut other = Map::new();
        other.insert("jwt_payload".into(), json!({"iss": "forged"}));
        // Another filter's namespace first: only jwt_authn's counts.
        let metadata = [
            ns("envoy.filters.http.lua", &other),
            ns(JWT_AUTHN_NAMESPACE, &wrapped),
        ]
        .concat();
        assert_eq!(
            verified_payload(&metadata, "jwt_payload"),
            Some(claims(payload))
        );
        assert_eq!(verified_payload(&metadata, "other_key"), None);
        assert_eq!(
            verified_payload(&ns("envoy.filters.http.lua", &other), "jwt_payload"),
            None
        );
        // Truncated or malformed bytes: nothing is trusted.
        assert_eq!(
            verified_payload(&metadata[..metadata.len() - 3], "jwt_payload"),
            None
        );
        assert_eq!(verified_payload(&[0xff, 0xff, 0xff], "jwt_payload"), None);
        assert_eq!(verified_payload(&[], "jwt_payload"), None);
    }
}
