//! `scopegate sql`: what a SQL statement does, as the decoder reads it.

use crate::*;

pub(crate) fn sql(
    dialect: &str,
    default_schema: Option<String>,
    safe_functions: Vec<String>,
    batch: bool,
) -> Result<(), String> {
    let cfg = json!({
        "dialect": dialect,
        "default_schema": default_schema,
        "statement": {"raw": true},
        "safe_functions": safe_functions,
    });
    let cfg: scopegate_engine::bundle::SqlConfig =
        serde_json::from_value(cfg).map_err(|e| format!("--dialect: {e}"))?;
    let mut errs = scopegate_engine::bundle::Problems::default();
    let decoder = SqlDecoder::compile(&cfg, "sql", &mut errs);
    let decoder = match (decoder, errs.0.first()) {
        (Some(d), None) => d,
        (_, Some(e)) => return Err(e.to_string()),
        (None, None) => return Err("SQL settings rejected".into()),
    };
    let classify = |text: &str| match decoder.classify("sql", text, &[]) {
        Ok(ops) => json!({"ok": true, "operations": ops, "error": null}),
        Err(e) => json!({"ok": false, "operations": [], "error": e.to_string()}),
    };
    let input = String::from_utf8(read(Path::new("-"))?).map_err(|_| "stdin is not UTF-8")?;
    if batch {
        for line in input.lines().filter(|l| !l.trim().is_empty()) {
            let text: String =
                serde_json::from_str(line).map_err(|e| format!("--batch line: {e}"))?;
            println!("{}", classify(&text));
        }
    } else {
        println!("{}", classify(&input));
    }
    Ok(())
}
