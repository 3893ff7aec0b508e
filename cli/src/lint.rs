//! `scopegate lint` and `scopegate schema`.

use crate::*;

pub(crate) fn lint(
    bundle: &Path,
    schemas: &[String],
    tables: &[String],
    deny_warnings: bool,
) -> Result<(), String> {
    let (b, p) = load_both(bundle, schemas)?;
    let lists = name_lists(tables)?;
    for service in lists.keys() {
        if !b.services.iter().any(|s| &s.name == service) {
            return Err(format!("--tables: no service `{service}` in the bundle"));
        }
    }
    let universe = scopegate_engine::explain::universe(&p, &lists);
    let mut warnings = scopegate_engine::lint::warnings(&b);
    warnings.extend(scopegate_engine::lint::never_matching(&b, &p, &universe));
    warnings.extend(scopegate_engine::lint::expired(&b, now_or(None)?));
    for w in &warnings {
        println!("{}: warning: {w}", bundle.display());
    }
    if deny_warnings && !warnings.is_empty() {
        return Err(format!(
            "{}: {} warning(s) and --deny-warnings",
            bundle.display(),
            warnings.len()
        ));
    }
    let env = policy::required_env(&b);
    if !env.is_empty() {
        println!(
            "{}: the gateway's Wasm VM must be given (from its environment): {}",
            bundle.display(),
            env.join(", ")
        );
    }
    println!(
        "{}: ok: {}{}",
        bundle.display(),
        p.summary(),
        match warnings.len() {
            0 => String::new(),
            n => format!(" ({n} warning(s))"),
        }
    );
    Ok(())
}

/// The JSON Schema of bundle v1, generated from the engine's types (`scopegate schema`).
pub(crate) fn bundle_schema() -> schemars::Schema {
    let mut schema = schemars::schema_for!(scopegate_engine::bundle::Bundle);
    schema.insert(
        "$id".into(),
        json!("https://scopegate.dev/schema/bundle-v1.schema.json"),
    );
    schema.insert("title".into(), json!("scopegate policy bundle v1"));
    schema
}

pub(crate) fn schema() -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(&bundle_schema()).map_err(|e| e.to_string())?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Every member of every `properties` in `node`, at any depth (the root, each
    /// definition, objects nested inline, array items, `anyOf`/`oneOf` branches), as its
    /// JSON pointer, with whether it has a non-empty description. Values that are data,
    /// not schemas (`default`, `examples`, `const`, `enum`), are not walked.
    fn properties(node: &Value, at: &str, out: &mut Vec<(String, bool)>) {
        match node {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("properties", Value::Object(props)) => {
                            for (name, p) in props {
                                let here = format!("{at}/properties/{name}");
                                let described = p
                                    .get("description")
                                    .and_then(Value::as_str)
                                    .is_some_and(|d| !d.trim().is_empty());
                                out.push((here.clone(), described));
                                properties(p, &here, out);
                            }
                        }
                        ("default" | "examples" | "const" | "enum", _) => {}
                        _ => properties(value, &format!("{at}/{key}"), out),
                    }
                }
            }
            Value::Array(items) => {
                for (i, value) in items.iter().enumerate() {
                    properties(value, &format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_bundle_property_has_a_description() {
        let schema = bundle_schema();
        let mut all = Vec::new();
        properties(schema.as_value(), "#", &mut all);
        // The walk reaches the root's properties and the definitions' (not vacuous).
        let found = |p: &str| all.iter().any(|(at, _)| at == p);
        assert!(found("#/properties/services"), "{all:?}");
        assert!(found("#/$defs/Grant/properties/records"), "{all:?}");
        assert!(found("#/$defs/AuditSink/properties/cluster"), "{all:?}");
        let missing: Vec<&str> = all
            .iter()
            .filter(|(_, described)| !described)
            .map(|(at, _)| at.as_str())
            .collect();
        assert!(
            missing.is_empty(),
            "{} of {} bundle properties have no description (a doc comment on the field in \
             engine/src/bundle.rs), first: {}",
            missing.len(),
            all.len(),
            missing
                .iter()
                .take(10)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    #[test]
    fn the_walk_finds_nested_properties() {
        let schema = json!({
            "properties": {"a": {"description": "x", "type": "object",
                                 "properties": {"b": {"type": "string"}}},
                           "c": {"type": "array", "items": {"anyOf": [
                               {"properties": {"d": {"description": " "}}}]}}},
            "$defs": {"E": {"properties": {"f": {"description": "y",
                                                  "default": {"properties": {"g": 1}}}}}}
        });
        let mut all = Vec::new();
        properties(&schema, "#", &mut all);
        let missing: Vec<&str> = all
            .iter()
            .filter(|(_, d)| !d)
            .map(|(at, _)| at.as_str())
            .collect();
        assert_eq!(all.len(), 5, "{all:?}");
        assert_eq!(
            missing,
            [
                "#/properties/a/properties/b",
                "#/properties/c",
                "#/properties/c/items/anyOf/0/properties/d"
            ]
        );
    }
}
