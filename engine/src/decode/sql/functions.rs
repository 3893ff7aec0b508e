//! Functions, types and options by name: the built-in tables that say what a call, a
//! cast, a collation or an `EXPLAIN` option does, and the checks that read them.

use super::*;
use crate::request::unmodelled;

/// Built-in functions that only compute: calling them reads or changes nothing.
/// Matched on the lower-cased name, unqualified or in `pg_catalog`.
const SAFE_FUNCTIONS: &[&str] = &[
    // strings
    "lower",
    "upper",
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "bit_length",
    "substring",
    "substr",
    "trim",
    "btrim",
    "ltrim",
    "rtrim",
    "concat",
    "concat_ws",
    "replace",
    "split_part",
    "position",
    "strpos",
    "left",
    "right",
    "lpad",
    "rpad",
    "repeat",
    "reverse",
    "initcap",
    "format",
    "translate",
    "regexp_replace",
    "regexp_match",
    "regexp_matches",
    "regexp_split_to_array",
    "starts_with",
    "ascii",
    "chr",
    "md5",
    "encode",
    "decode",
    "quote_ident",
    "quote_literal",
    "to_hex",
    "string_to_array",
    "array_to_string",
    // numbers
    "abs",
    "ceil",
    "ceiling",
    "floor",
    "round",
    "trunc",
    "mod",
    "power",
    "pow",
    "sqrt",
    "cbrt",
    "exp",
    "ln",
    "log",
    "log10",
    "sign",
    "pi",
    "degrees",
    "radians",
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "atan2",
    "width_bucket",
    "random",
    "greatest",
    "least",
    "div",
    // conditionals and casts
    "coalesce",
    "nullif",
    "to_char",
    "to_date",
    "to_timestamp",
    "to_number",
    "cast",
    // date and time
    "now",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "clock_timestamp",
    "date_trunc",
    "date_part",
    "extract",
    "age",
    "make_date",
    "make_time",
    "make_timestamp",
    "make_timestamptz",
    "make_interval",
    "date_bin",
    "isfinite",
    "justify_days",
    "justify_hours",
    "justify_interval",
    "date",
    // aggregates and windows
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "every",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "percentile_cont",
    "percentile_disc",
    "mode",
    "corr",
    "covar_pop",
    "covar_samp",
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    "grouping",
    // JSON and arrays
    "json_build_object",
    "jsonb_build_object",
    "json_build_array",
    "jsonb_build_array",
    "to_json",
    "to_jsonb",
    "row_to_json",
    "json_extract_path",
    "jsonb_extract_path",
    "json_extract_path_text",
    "jsonb_extract_path_text",
    "json_array_length",
    "jsonb_array_length",
    "json_typeof",
    "jsonb_typeof",
    "jsonb_set",
    "jsonb_insert",
    "jsonb_strip_nulls",
    "jsonb_pretty",
    "json_object_keys",
    "jsonb_object_keys",
    "json_array_elements",
    "jsonb_array_elements",
    "json_each",
    "jsonb_each",
    "jsonb_path_query",
    "jsonb_path_exists",
    "json_object",
    "array_length",
    "array_upper",
    "array_lower",
    "cardinality",
    "array_position",
    "array_append",
    "array_prepend",
    "array_cat",
    "array_remove",
    "unnest",
    "generate_series",
    "generate_subscripts",
    // misc pure
    "gen_random_uuid",
    "num_nulls",
    "num_nonnulls",
    "version",
    // session facts and sizes
    "array",
    "current_user",
    "session_user",
    "current_role",
    "user",
    "current_schema",
    "current_database",
    "current_catalog",
    "pg_backend_pid",
    "txid_current_if_assigned",
    "pg_size_pretty",
    // types, regular expressions, full-text search, JSON/JSONB set-returning functions
    "pg_typeof",
    "regexp_count",
    "regexp_instr",
    "regexp_like",
    "regexp_substr",
    "regexp_split_to_table",
    "to_tsvector",
    "to_tsquery",
    "plainto_tsquery",
    "phraseto_tsquery",
    "websearch_to_tsquery",
    "json_to_tsvector",
    "jsonb_to_tsvector",
    "array_to_tsvector",
    "tsvector_to_array",
    "ts_rank",
    "ts_rank_cd",
    "ts_headline",
    "ts_delete",
    "ts_filter",
    "setweight",
    "numnode",
    "querytree",
    "strip",
    "json_array_elements_text",
    "jsonb_array_elements_text",
    "json_each_text",
    "jsonb_each_text",
    "json_to_record",
    "jsonb_to_record",
    "json_to_recordset",
    "jsonb_to_recordset",
    "json_populate_record",
    "jsonb_populate_record",
    "json_populate_recordset",
    "jsonb_populate_recordset",
    "json_strip_nulls",
    "jsonb_set_lax",
    "jsonb_path_query_array",
    "jsonb_path_query_first",
    "jsonb_path_match",
    "array_to_json",
];

/// Collations that compare exactly as the bytes do (PostgreSQL's built-in deterministic
/// collations, resolved in `pg_catalog` first): a `COLLATE` naming one keeps a proof.
/// Any other collation may be non-deterministic (`CREATE COLLATION … deterministic =
/// false` makes `'acme' = 'ACME'` true), so an equality under it proves nothing.
const EXACT_COLLATIONS: &[&str] = &["C", "POSIX", "default", "ucs_basic"];

/// `EXPLAIN` options that only shape a plan-only output. `ANALYZE`/`ANALYSE` (with any
/// value, or none) runs the statement; any other option name is refused.
const EXPLAIN_PLAN_OPTIONS: &[&str] = &[
    "verbose",
    "costs",
    "settings",
    "generic_plan",
    "buffers",
    "wal",
    "timing",
    "summary",
    "serialize",
    "memory",
    "format",
];

/// Functions that read settings: the operation `SHOW` has (`read sql:settings`).
const SETTINGS_FUNCTIONS: &[&str] = &["current_setting"];

/// Functions that read the catalog or storage of any relation by name, without the
/// relation's privileges (its size, so roughly its row count): `read sql:catalog`, as
/// `SHOW TABLES` is.
const CATALOG_FUNCTIONS: &[&str] = &[
    "pg_relation_size",
    "pg_total_relation_size",
    "pg_table_size",
    "pg_indexes_size",
    "pg_database_size",
    "pg_tablespace_size",
    "to_regclass",
    "to_regtype",
    "to_regproc",
    "to_regnamespace",
];

/// Names in `SAFE_FUNCTIONS` that PostgreSQL parses as syntax, not as a call
/// (`COALESCE(…)`, `GREATEST(…)`, `CURRENT_DATE`): not functions of `pg_catalog`, so the
/// quoted spelling (`"coalesce"(…)`) calls whatever the search path finds.
const PG_SYNTAX_FUNCTIONS: &[&str] = &[
    "trim",
    "greatest",
    "least",
    "coalesce",
    "nullif",
    "cast",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "grouping",
    "array",
    "current_role",
    "user",
    "current_catalog",
];

/// Pure built-ins of MySQL and SQLite (and an extension's) that are not in PostgreSQL 15's
/// `pg_catalog`: free in those dialects; on postgres an unqualified call finds a user
/// function of that name on the search path, which can do anything (`execute`).
const OTHER_DIALECT_SAFE_FUNCTIONS: &[&str] = &[
    "instr",
    "ifnull",
    "iif",
    "group_concat",
    "to_days",
    "datetime",
    "strftime",
    "julianday",
    "unixepoch",
    "date_format",
    "date_add",
    "date_sub",
    "datediff",
    "json_extract",
    "json_array",
    "uuid_generate_v4",
];

/// Type names a cast may use without reading anything: PostgreSQL's built-in types that
/// sqlparser does not name itself (the `reg*` lookups read the catalog: `read sql:catalog`).
const BUILTIN_TYPE_NAMES: &[&str] = &[
    "oid",
    "name",
    "xid",
    "cid",
    "tid",
    "xid8",
    "money",
    "inet",
    "cidr",
    "macaddr",
    "macaddr8",
    "tsvector",
    "tsquery",
    "point",
    "line",
    "lseg",
    "box",
    "path",
    "polygon",
    "circle",
    "int4range",
    "int8range",
    "numrange",
    "tsrange",
    "tstzrange",
    "daterange",
    "pg_lsn",
    "txid_snapshot",
    "pg_snapshot",
    "jsonpath",
    "varbit",
    "bool",
    "float4",
    "float8",
    "serial",
    "bigserial",
    "smallserial",
    "timetz",
    "timestamptz",
    "record",
    "void",
];

/// Functions that act on the server, its files, other sessions, or run SQL text the
/// decoder cannot see: always `admin`, whatever schema they are called in.
const ADMIN_FUNCTIONS: &[&str] = &[
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "pg_ls_logdir",
    "pg_ls_waldir",
    "pg_ls_tmpdir",
    "pg_ls_archive_statusdir",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "lo_import",
    "lo_export",
    "lo_unlink",
    "lo_create",
    "lo_creat",
    "lo_open",
    "lo_write",
    "lo_put",
    "lo_from_bytea",
    "lo_truncate",
    "lowrite",
    "dblink",
    "dblink_exec",
    "dblink_connect",
    "dblink_connect_u",
    "dblink_send_query",
    "dblink_open",
    "setval",
    "nextval",
    "set_config",
    "pg_advisory_lock",
    "pg_advisory_xact_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_xact_lock",
    "pg_advisory_unlock",
    "pg_advisory_unlock_all",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_promote",
    "pg_logical_emit_message",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_drop_replication_slot",
    "pg_replication_origin_create",
    "pg_notify",
    "pg_import_system_collations",
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    "table_to_xml",
    "table_to_xmlschema",
    "table_to_xml_and_xmlschema",
    "schema_to_xml",
    "database_to_xml",
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    "txid_current",
    "pg_current_xact_id",
    // MySQL and SQLite
    "load_file",
    "sleep",
    "benchmark",
    "sys_exec",
    "sys_eval",
    "get_lock",
    "release_lock",
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
    "pg_stat_reset",
    "pg_stat_reset_shared",
    "pg_stat_reset_single_table_counters",
];

impl Collector<'_> {
    pub(super) fn function(&mut self, name: &ObjectName) -> Result<(), DecodeError> {
        let parts = self.dec.parts(name)?;
        let (schema, fname) = match parts.as_slice() {
            [f] => (None, f.clone()),
            [s, f] => (Some(s.clone()), f.clone()),
            _ => return undecodable(format!("function name `{name}` has too many parts")),
        };
        let lower = fname.to_ascii_lowercase();
        let qualified = match &schema {
            Some(s) => format!("{s}.{fname}"),
            None => self.dec.unqualified(&fname),
        };
        let builtin = matches!(schema.as_deref(), None | Some("pg_catalog"));
        let quoted = matches!(name.0.last(), Some(ObjectNamePart::Identifier(id)) if id.quote_style.is_some());
        let safe_name = if self.dec.flavor == Flavor::Postgres {
            SAFE_FUNCTIONS.contains(&lower.as_str())
                && !(quoted && PG_SYNTAX_FUNCTIONS.contains(&lower.as_str()))
        } else {
            SAFE_FUNCTIONS.contains(&lower.as_str())
                || OTHER_DIALECT_SAFE_FUNCTIONS.contains(&lower.as_str())
        };
        if builtin && CATALOG_FUNCTIONS.contains(&lower.as_str()) {
            self.on_kind(Action::Read, "catalog");
        } else if builtin && SETTINGS_FUNCTIONS.contains(&lower.as_str()) {
            // Reads a server or session setting, as `SHOW` does (settings hold secrets
            // in some stacks: `app.settings.jwt_secret`).
            self.on_kind(Action::Read, "settings");
        } else if ADMIN_FUNCTIONS.contains(&lower.as_str()) {
            self.push(Action::Admin, qualified, Scope::Some, Records::new());
        } else if (builtin && (safe_name || self.dec.extra_safe.contains(&lower)))
            || self
                .dec
                .extra_safe
                .contains(&qualified.to_ascii_lowercase())
        {
            // pure computation: no operation
        } else {
            self.push(Action::Execute, qualified, Scope::Some, Records::new());
        }
        Ok(())
    }

    /// A cast to a type: a named type that is not built in is read (its definition; a
    /// table's row type is the table's columns: `NULL::payments` lists them), a `reg*`
    /// lookup reads the catalog.
    pub(super) fn type_use(&mut self, t: &DataType) -> Result<(), DecodeError> {
        match t {
            DataType::Regclass => self.on_kind(Action::Read, "catalog"),
            DataType::Array(
                sqlparser::ast::ArrayElemTypeDef::AngleBracket(inner)
                | sqlparser::ast::ArrayElemTypeDef::SquareBracket(inner, _)
                | sqlparser::ast::ArrayElemTypeDef::Parenthesis(inner)
                | sqlparser::ast::ArrayElemTypeDef::ParenthesisNotNull(inner)
                | sqlparser::ast::ArrayElemTypeDef::Qualified(inner, _),
            ) => self.type_use(inner)?,
            DataType::Custom(name, _) => {
                let parts = self.dec.parts(name)?;
                let builtin = match parts.as_slice() {
                    [t] => Some(t.as_str()),
                    [s, t] if s == "pg_catalog" => Some(t.as_str()),
                    _ => None,
                };
                match builtin {
                    Some(t) if t.starts_with("reg") => self.on_kind(Action::Read, "catalog"),
                    Some(t) if BUILTIN_TYPE_NAMES.contains(&t) => {}
                    _ => {
                        let resource = self.dec.resource(name)?;
                        self.push(Action::Read, resource, Scope::Some, Records::new());
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether a collation compares exactly (one of `EXACT_COLLATIONS`, unqualified or in
    /// `pg_catalog`).
    pub(super) fn exact_collation(&self, name: &ObjectName) -> bool {
        let Ok(parts) = self.dec.parts(name) else {
            return false;
        };
        match parts.as_slice() {
            [c] => EXACT_COLLATIONS.contains(&c.as_str()),
            [s, c] => s == "pg_catalog" && EXACT_COLLATIONS.contains(&c.as_str()),
            _ => false,
        }
    }
}

/// Whether a plan-only-looking `EXPLAIN` runs its statement: an `ANALYZE`/`ANALYSE`
/// option with any value (or none) runs it; an option this decoder does not know is
/// refused rather than guessed.
pub(super) fn explain_runs(options: &[UtilityOption]) -> Result<bool, DecodeError> {
    let mut runs = false;
    for o in options {
        let name = o.name.value.to_ascii_lowercase();
        if name == "analyze" || name == "analyse" {
            runs = true;
        } else if !EXPLAIN_PLAN_OPTIONS.contains(&name.as_str()) {
            return unmodelled(format!("EXPLAIN option `{}` is not modelled", o.name.value));
        }
    }
    Ok(runs)
}
