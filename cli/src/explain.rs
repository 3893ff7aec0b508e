//! `scopegate explain`: what authority each key really carries.

use crate::*;

/// How `explain` prints its reports.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum Format {
    /// Plain text, one block per key.
    Table,
    /// Tables for reviews and wikis.
    Markdown,
    /// The reports as JSON.
    Json,
}

pub(crate) fn explain(
    bundle: &Path,
    key: Option<&str>,
    role: Option<&str>,
    format: Format,
    schemas: &[String],
    tables: &[String],
) -> Result<(), String> {
    use scopegate_engine::explain as x;
    let (b, p) = load_both(bundle, schemas)?;
    let lists = name_lists(tables)?;
    let universe = x::universe(&p, &lists);
    let reports = x::explain(&b, &p, &universe, key, role)?;
    match format {
        Format::Table => print!("{}", x::render_table(&reports)),
        Format::Markdown => print!("{}", x::render_markdown(&reports)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&reports).map_err(|e| e.to_string())?
        ),
    }
    Ok(())
}

/// `--tables SERVICE=FILE` lists: the names each service has (one per line, `#` comments).
pub(crate) fn name_lists(
    tables: &[String],
) -> Result<std::collections::HashMap<String, Vec<String>>, String> {
    let mut lists = std::collections::HashMap::new();
    for spec in tables {
        let (service, file) = spec
            .split_once('=')
            .ok_or_else(|| format!("--tables `{spec}`: expected SERVICE=FILE"))?;
        let text =
            String::from_utf8(read(Path::new(file))?).map_err(|_| format!("{file}: not UTF-8"))?;
        let names: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect();
        lists.insert(service.to_string(), names);
    }
    Ok(lists)
}
