//! `scopegate lint` and `scopegate schema`.

use crate::*;

pub(crate) fn lint(bundle: &Path, schemas: &[String], deny_warnings: bool) -> Result<(), String> {
    let (b, p) = load_both(bundle, schemas)?;
    let mut warnings = scopegate_engine::lint::warnings(&b);
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

pub(crate) fn schema() -> Result<(), String> {
    let mut schema = schemars::schema_for!(scopegate_engine::bundle::Bundle);
    schema.insert(
        "$id".into(),
        json!("https://scopegate.dev/schema/bundle-v1.schema.json"),
    );
    schema.insert("title".into(), json!("scopegate policy bundle v1"));
    println!(
        "{}",
        serde_json::to_string_pretty(&schema).map_err(|e| e.to_string())?
    );
    Ok(())
}
