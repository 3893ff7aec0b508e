//! SQL decoding: every statement of a request, parsed with `sqlparser`, turned into
//! operations on every table (and function) it touches.
//!
//! How it works: each statement is walked once with sqlparser's `Visitor`.
//! * `pre_visit_statement` classifies the statement kind (also statements nested in
//!   queries: writable CTEs, `EXPLAIN ANALYZE`, `PREPARE`), emits its write operations
//!   and marks the target names (by address) so they are not also counted as reads.
//! * `pre_visit_relation` sees every table reference the parser knows as a relation,
//!   wherever it sits (joins, subqueries in any expression, CTE bodies, set operations):
//!   each one not marked and not a CTE in scope is a `read`.
//! * `pre_visit_expr` / `pre_visit_table_factor` see every function call: pure
//!   built-ins are free, server/admin functions are `admin`, anything else `execute`.
//!
//! A statement kind not listed in `classify` is refused, as is anything the parser
//! cannot parse: the decoder never guesses towards allowing.
//!
//! What PostgreSQL executes, not what the text looks like (issue 17; each rule is judged
//! against PostgreSQL itself by the effect oracle in `tests/oracle/`):
//! * **EXPLAIN that runs is not a read.** `ANALYZE`/`ANALYSE`, as a keyword or as an
//!   option with any value, runs the statement: its operations stand unchanged. Only a
//!   plan-only EXPLAIN turns the statement's row writes into reads (function calls stay:
//!   the planner folds immutable ones); an option the decoder does not know is refused.
//! * **Names bind as PostgreSQL binds them** (`TargetCtx`): an alias hides its table's
//!   name; a qualified column binds to the FROM item exposing that name at its level; an
//!   unqualified one only when the target is the only FROM item and no enclosing query's
//!   FROM item is visible (tracked per statement/query/select in `outer`, with CTE bodies
//!   and plain derived tables scoped to what their query sees from outside).
//! * **A proof is an equality on the unchanged value** (`literal`, `column`): a cast that
//!   can change the value, a function on either side, a collation that may not be exact,
//!   proves nothing.
//! * **Bounds are semantic** (`expr::Expr::bounded`): `scope: some` only when a conjunct
//!   proves record values.
//! * **Writes carry their post-image** (`post_image`): every column an UPDATE, upsert or
//!   MERGE assigns, with the literal values it receives or `None`.
//! * A request that reads no relation decodes to `read sql:constant`.

use super::expr::{Cmp, Expr as Filter};
use super::memo::{self, Memo};
use super::sql_fast;
use crate::bundle::{Problems, SqlConfig, SqlDialectName};
use crate::json::parse_strict;
use crate::operation::{
    proves_rows, upsert_scope, Action, Operation, Records, Scope, Sets, NO_RELATION,
};
use crate::request::{content_type, undecodable, DecodeError, HeaderValue, RequestHead, Target};
use hashbrown::HashSet;
use serde_json::Value as Json;
use sqlparser::ast::{
    Assignment, AssignmentTarget, BinaryOperator, CastKind, ConflictTarget, CopySource, DataType,
    Expr, FromTable, InTarget, Insert, MergeAction, MergeUpdateKind, ObjectName, ObjectNamePart,
    OnConflictAction, OnInsert, Query, Select, SetExpr, Statement, TableFactor, TableObject,
    TableWithJoins, UnaryOperator, UpdateTableFromKind, UtilityOption, Value, Visit, Visitor,
};
use sqlparser::dialect::{Dialect, GenericDialect, MySqlDialect, SQLiteDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};
use std::fmt::Write as _;
use std::ops::ControlFlow;

/// Parser recursion limit (nesting of expressions and queries). sqlparser's own stack
/// protection is off for wasm, so this bound is what keeps deep input from overflowing.
pub const RECURSION_LIMIT: usize = 50;
pub const DEFAULT_MAX_STATEMENT_BYTES: usize = 64 * 1024;
pub const DEFAULT_MAX_STATEMENTS: usize = 50;
/// Most operators (binary, unary, casts, set operations) a request may hold. Operator
/// chains (`a AND b AND …`, `x::t::t…`, `… UNION …`) are parsed iteratively but build
/// trees as deep as they are long, and walking or dropping such a tree recurses: this
/// bound keeps that depth within the Wasm stack, whatever the statement length.
pub const MAX_OPERATORS: usize = 1000;
/// Longest `detail` (normalised statement text) kept on an operation.
pub const DETAIL_CHARS: usize = 240;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Postgres,
    MySql,
    Sqlite,
    Generic,
}

#[derive(Debug, Clone)]
enum Source {
    JsonPointer(String),
    Raw,
    QueryParam(String),
}

#[derive(Debug, Clone)]
pub struct SqlDecoder {
    flavor: Flavor,
    default_schema: String,
    source: Source,
    params: Option<String>,
    extra_safe: Vec<String>,
    /// JSON pointers of the members a JSON body may hold (statement, parameters,
    /// `body_members`, `body_values`); objects on the way to them are checked member by
    /// member.
    members: Vec<String>,
    /// Members that must hold exactly these values (`body_values`).
    values: Vec<(String, Json)>,
    max_statement_bytes: usize,
    max_statements: usize,
    max_recursion: usize,
    /// Statements already decoded by this VM (see `memo.rs`).
    memo: Memo<Vec<Operation>>,
}

impl SqlDecoder {
    pub fn compile(cfg: &SqlConfig, at: &str, errs: &mut Problems) -> Option<SqlDecoder> {
        let mut err = |path: String, message: &str| errs.push(path, message);
        let flavor = match cfg.dialect {
            SqlDialectName::Postgres => Flavor::Postgres,
            SqlDialectName::Mysql => Flavor::MySql,
            SqlDialectName::Sqlite => Flavor::Sqlite,
            SqlDialectName::Generic => Flavor::Generic,
        };
        let default_schema = match (&cfg.default_schema, flavor) {
            (Some(s), _) => s.clone(),
            (None, Flavor::Postgres) => "public".to_string(),
            (None, Flavor::Sqlite) => "main".to_string(),
            (None, _) => {
                err(
                    format!("{at}.default_schema"),
                    "required for dialects mysql and generic (the database unqualified names resolve to)",
                );
                String::new()
            }
        };
        if !default_schema.is_empty() && !valid_name(&default_schema) {
            err(format!("{at}.default_schema"), "must be a plain name");
        }
        let s = &cfg.statement;
        let source = match (&s.json_pointer, s.raw, &s.query_param) {
            (Some(p), None | Some(false), None) if p.starts_with('/') => {
                Source::JsonPointer(p.clone())
            }
            (None, Some(true), None) => Source::Raw,
            (None, None | Some(false), Some(q)) if !q.is_empty() => Source::QueryParam(q.clone()),
            _ => {
                err(
                    format!("{at}.statement"),
                    "exactly one of {\"json_pointer\": \"/…\"}, {\"raw\": true}, {\"query_param\": \"name\"}",
                );
                return None;
            }
        };
        let params = match &cfg.params {
            None => None,
            Some(p) if !matches!(source, Source::JsonPointer(_)) => {
                err(
                    format!("{at}.params"),
                    "parameters are read from a JSON body only",
                );
                Some(p.json_pointer.clone())
            }
            Some(p) if p.json_pointer.starts_with('/') => Some(p.json_pointer.clone()),
            Some(_) => {
                err(format!("{at}.params.json_pointer"), "must start with `/`");
                None
            }
        };
        let max_statement_bytes = cfg
            .max_statement_bytes
            .unwrap_or(DEFAULT_MAX_STATEMENT_BYTES);
        let max_statements = cfg.max_statements.unwrap_or(DEFAULT_MAX_STATEMENTS);
        if max_statement_bytes == 0 || max_statement_bytes > 1024 * 1024 {
            err(
                format!("{at}.max_statement_bytes"),
                "must be between 1 and 1048576",
            );
        }
        if max_statements == 0 || max_statements > 1000 {
            err(format!("{at}.max_statements"), "must be between 1 and 1000");
        }
        let max_recursion = cfg.max_recursion.unwrap_or(RECURSION_LIMIT);
        if max_recursion == 0 || max_recursion > RECURSION_LIMIT {
            err(
                format!("{at}.max_recursion"),
                &format!("must be between 1 and {RECURSION_LIMIT}"),
            );
        }
        let extra_safe = cfg
            .safe_functions
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|f| f.to_ascii_lowercase())
            .collect();
        let values: Vec<(String, Json)> = cfg
            .body_values
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        for (p, _) in &values {
            if !p.starts_with('/') {
                err(
                    format!("{at}.body_values"),
                    &format!("`{p}` is not a JSON pointer (`/…`)"),
                );
            }
        }
        let members = [source_pointer(&source), params.clone()]
            .into_iter()
            .flatten()
            .chain(
                cfg.body_members
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|m| {
                        if m.starts_with('/') {
                            m
                        } else {
                            format!("/{}", m.replace('~', "~0").replace('/', "~1"))
                        }
                    }),
            )
            .chain(values.iter().map(|(p, _)| p.clone()))
            .collect();
        Some(SqlDecoder {
            flavor,
            default_schema,
            source,
            params,
            extra_safe,
            members,
            values,
            max_statement_bytes,
            max_statements,
            max_recursion: max_recursion.clamp(1, RECURSION_LIMIT),
            memo: Memo::new(),
        })
    }

    /// Finds the SQL (and parameters) in the request, then classifies it. Only one
    /// reading of the request is accepted: a JSON body is POSTed as `application/json`
    /// with no query string and no members beyond the statement's, the parameters' and
    /// `body_members` (servers that merge query and body parameters, or read another
    /// member, would run something else); a raw body is POSTed as text with no query
    /// string; a query parameter comes without a body.
    pub fn decode(
        &self,
        service: &str,
        head: &RequestHead,
        target: &Target,
        body: &[u8],
    ) -> Result<Vec<Operation>, DecodeError> {
        // ClickHouse reads the database (and the user) from its own headers.
        if let Some((h, _)) = head
            .headers
            .iter()
            .find(|(n, _)| n.starts_with("x-clickhouse-"))
        {
            return undecodable(format!(
                "header `{h}`: the server may read another database or user from it"
            ));
        }
        if !matches!(self.source, Source::QueryParam(_)) {
            if head.method != "POST" {
                return undecodable(format!("SQL in the body is POSTed (not {})", head.method));
            }
            if let Some((name, _)) = target.query.first() {
                return undecodable(format!(
                    "query parameter `{name}` beside a SQL body: ambiguous"
                ));
            }
        }
        match &self.source {
            Source::JsonPointer(pointer) => {
                content_type(head, &["application/json"], "SQL")?;
                let doc = parse_strict(body)?;
                let Json::Object(members) = &doc else {
                    return undecodable("SQL body is not a JSON object");
                };
                self.check_members(members, "")?;
                for (p, want) in &self.values {
                    if doc.pointer(p) != Some(want) {
                        return undecodable(format!(
                            "the SQL body's `{p}` is not {want} (the service's `sql.body_values`)"
                        ));
                    }
                }
                let Some(sql) = doc.pointer(pointer).and_then(Json::as_str) else {
                    return undecodable(format!("body has no SQL string at `{pointer}`"));
                };
                let params = match &self.params {
                    None => Vec::new(),
                    Some(p) => match doc.pointer(p) {
                        None | Some(Json::Null) => Vec::new(),
                        Some(Json::Array(a)) => a.clone(),
                        Some(_) => {
                            return undecodable(format!("`{p}` is not an array of parameters"))
                        }
                    },
                };
                self.classify(service, sql, &params)
            }
            Source::Raw => {
                if head.header("content-type") != HeaderValue::Absent {
                    // Not a form: an upstream that parses forms would read other SQL.
                    content_type(head, &["text/plain", "application/sql"], "raw SQL")?;
                }
                match std::str::from_utf8(body) {
                    Ok(sql) => self.classify(service, sql, &[]),
                    Err(_) => undecodable("SQL body is not UTF-8"),
                }
            }
            Source::QueryParam(name) => {
                if !body.is_empty() {
                    // Some servers (ClickHouse) append the body to the query parameter.
                    return undecodable("SQL in the query string and a request body: ambiguous");
                }
                // ClickHouse-style servers read the database, settings (`readonly=0`) and a
                // session from the other query parameters: not decoded, so refused.
                if let Some((other, _)) = target.query.iter().find(|(n, _)| n != name) {
                    return undecodable(format!(
                        "query parameter `{other}` beside the SQL: the server may read a database, settings or a session from it"
                    ));
                }
                match target.single_param(name)? {
                    Some(sql) => self.classify(service, sql, &[]),
                    None => undecodable(format!("no `{name}` query parameter")),
                }
            }
        }
    }

    /// Classifies SQL text: every statement, every table and function it touches. The
    /// same text with the same parameters for the same service is decoded once per VM.
    pub fn classify(
        &self,
        service: &str,
        sql: &str,
        params: &[Json],
    ) -> Result<Vec<Operation>, DecodeError> {
        if sql.len() > self.max_statement_bytes {
            return undecodable(format!(
                "SQL is {} bytes, over the service's max_statement_bytes of {}",
                sql.len(),
                self.max_statement_bytes
            ));
        }
        if sql.len() > memo::MAX_KEY_BYTES {
            return self.classify_uncached(service, sql, params);
        }
        // The exact bytes of everything the decode reads. The SQL's length precedes it, so
        // no SQL text can run into the parameters (service names hold no `\0`).
        let params_text = if params.is_empty() {
            String::new()
        } else {
            serde_json::to_string(params).unwrap_or_default()
        };
        let key = format!("{service}\0{}\0{sql}\0{params_text}", sql.len());
        self.memo
            .get_or(&key, || self.classify_uncached(service, sql, params))
    }

    fn classify_uncached(
        &self,
        service: &str,
        sql: &str,
        params: &[Json],
    ) -> Result<Vec<Operation>, DecodeError> {
        // PostgreSQL text takes the shortcuts of `sql_fast.rs` (the same tokens and
        // statements as sqlparser's own, sooner); the other dialects sqlparser's path.
        let (dialect, tokens): (&dyn Dialect, _) = match self.flavor {
            Flavor::Postgres => (&sql_fast::Postgres::DIALECT, sql_fast::tokenize(sql)),
            Flavor::MySql => (&MySqlDialect {}, None),
            Flavor::Sqlite => (&SQLiteDialect {}, None),
            Flavor::Generic => (&GenericDialect {}, None),
        };
        let tokens = match tokens {
            Some(tokens) => tokens,
            None => Tokenizer::new(dialect, sql)
                .tokenize_with_location()
                .or_else(|e| undecodable(format!("SQL does not parse: {e}")))?,
        };
        let operators = count_operators(&tokens);
        if operators > MAX_OPERATORS {
            return undecodable(format!(
                "SQL holds {operators} operators, over the limit of {MAX_OPERATORS}"
            ));
        }
        let statements = Parser::new(dialect)
            .with_recursion_limit(self.max_recursion)
            .with_tokens_with_locations(tokens)
            .parse_statements()
            .or_else(|e| match e {
                sqlparser::parser::ParserError::RecursionLimitExceeded => undecodable(format!(
                    "SQL nests deeper than the service's max_recursion of {}",
                    self.max_recursion
                )),
                e => undecodable(format!("SQL does not parse: {e}")),
            })?;
        if statements.is_empty() {
            return undecodable("no SQL statement");
        }
        if statements.len() > self.max_statements {
            return undecodable(format!(
                "{} statements, over the service's max_statements of {}",
                statements.len(),
                self.max_statements
            ));
        }
        if statements.len() > 1
            && statements.iter().any(|s| {
                matches!(
                    s,
                    Statement::Set(_)
                        | Statement::Reset(_)
                        | Statement::Use(_)
                        | Statement::Discard { .. }
                )
            })
        {
            return undecodable(
                "a batch that changes session settings (SET, RESET, USE, DISCARD) changes what the statements after it mean",
            );
        }
        let mut ops: Vec<Operation> = Vec::new();
        let mut cursors: Vec<&sqlparser::ast::Ident> = Vec::new();
        for stmt in &statements {
            match stmt {
                Statement::Declare { stmts, .. } => {
                    cursors.extend(stmts.iter().flat_map(|d| d.names.iter()));
                }
                // A cursor this request did not declare is another request's query (a
                // session the upstream kept): what it reads cannot be known.
                Statement::Fetch { name, .. }
                    if !cursors
                        .iter()
                        .any(|c| self.ident(c).ok() == self.ident(name).ok()) =>
                {
                    return undecodable(format!(
                        "FETCH from cursor `{}`, which this request does not declare",
                        name.value
                    ));
                }
                _ => {}
            }
            let mut c = Collector::new(self, service, params);
            if let ControlFlow::Break(e) = stmt.visit(&mut c) {
                return Err(e);
            }

            let detail = bounded_display(stmt);
            for op in c.ops {
                let op = op.with_detail(detail.clone());
                if !ops.iter().any(|o| same_effect(o, &op)) {
                    ops.push(op);
                }
            }
        }
        if ops.is_empty()
            && statements
                .iter()
                .any(|s| matches!(s, Statement::Query(_) | Statement::Explain { .. }))
        {
            // Queries that read no relation and call nothing that acts (`SELECT 1`,
            // VALUES, CTEs over literals): a harmless read any read grant covers.
            ops.push(Operation::new(service, Action::Read, NO_RELATION));
        }
        Ok(ops)
    }

    fn ident(&self, id: &sqlparser::ast::Ident) -> Result<String, DecodeError> {
        let v = match (self.flavor, id.quote_style) {
            (Flavor::Sqlite, _) => id.value.to_ascii_lowercase(),
            (Flavor::MySql, _) => id.value.clone(),
            (_, None) => id.value.to_ascii_lowercase(),
            (_, Some(_)) => id.value.clone(),
        };
        if !valid_name(&v) {
            return undecodable(format!("identifier `{}` cannot be named safely", id.value));
        }
        Ok(v)
    }

    fn parts(&self, name: &ObjectName) -> Result<Vec<String>, DecodeError> {
        name.0
            .iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(id) => self.ident(id),
                ObjectNamePart::Function(_) => {
                    undecodable("computed object names are not accepted")
                }
            })
            .collect()
    }

    /// An unqualified relation or function name, qualified as the server resolves it.
    /// PostgreSQL searches `pg_catalog` before the search path (unless the path names
    /// it), so an unqualified `pg_settings` is the catalog's: names starting with `pg_`
    /// (the catalog's namespace) never take `default_schema`.
    fn unqualified(&self, name: &str) -> String {
        if self.flavor == Flavor::Postgres && name.starts_with("pg_") {
            format!("pg_catalog.{name}")
        } else {
            format!("{}.{name}", self.default_schema)
        }
    }

    /// `schema.table` as grants name it: unqualified names take `default_schema`.
    fn resource(&self, name: &ObjectName) -> Result<String, DecodeError> {
        let parts = self.parts(name)?;
        match parts.as_slice() {
            // PostgreSQL searches pg_catalog before the search path (unless the path names
            // it), so an unqualified `pg_settings` is the catalog's. Names starting with
            // `pg_` are the catalog's namespace: never take `default_schema` for them.
            [one] => Ok(self.unqualified(one)),
            [_, _] | [_, _, _] => Ok(parts.join(".")),
            _ => undecodable(format!("object name `{name}` has too many parts")),
        }
    }
}

fn source_pointer(source: &Source) -> Option<String> {
    match source {
        Source::JsonPointer(p) => Some(p.clone()),
        Source::Raw | Source::QueryParam(_) => None,
    }
}

impl SqlDecoder {
    /// Every member of a JSON body object is one the decoder reads (the statement, the
    /// parameters), one the bundle allows (`body_members`, `body_values`), or an object on
    /// the way to one of those — whose members are checked the same way.
    fn check_members(
        &self,
        members: &serde_json::Map<String, Json>,
        at: &str,
    ) -> Result<(), DecodeError> {
        for (k, v) in members {
            let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
            if self.members.contains(&p) {
                continue;
            }
            let deeper = format!("{p}/");
            match v {
                Json::Object(inner) if self.members.iter().any(|m| m.starts_with(&deeper)) => {
                    self.check_members(inner, &p)?
                }
                _ => {
                    let shown = if at.is_empty() { k.clone() } else { p };
                    return undecodable(format!(
                        "unexpected member `{shown}` in the SQL body (allowed: {}; more with `sql.body_members`)",
                        self.members.join(", ")
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Tokens that can extend an expression or query chain by one level.
fn count_operators(tokens: &[TokenWithSpan]) -> usize {
    tokens
        .iter()
        .filter(|t| match &t.token {
            Token::Word(w) => matches!(
                w.keyword,
                Keyword::AND
                    | Keyword::OR
                    | Keyword::NOT
                    | Keyword::IS
                    | Keyword::IN
                    | Keyword::LIKE
                    | Keyword::ILIKE
                    | Keyword::BETWEEN
                    | Keyword::COLLATE
                    | Keyword::AT
                    | Keyword::UNION
                    | Keyword::INTERSECT
                    | Keyword::EXCEPT
                    | Keyword::MINUS
                    | Keyword::SIMILAR
                    | Keyword::ESCAPE
            ),
            Token::EOF
            | Token::Number(_, _)
            | Token::Comma
            | Token::Period
            | Token::LParen
            | Token::RParen
            | Token::SemiColon
            | Token::Whitespace(_)
            | Token::Placeholder(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::HexStringLiteral(_) => false,
            _ => true,
        })
        .count()
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && !s.contains(['.', '*', '?']) && !s.chars().any(char::is_control)
}

fn same_effect(a: &Operation, b: &Operation) -> bool {
    a.action == b.action
        && a.resource == b.resource
        && a.scope == b.scope
        && a.records == b.records
        && a.sets == b.sets
}

/// The statement's text as sqlparser normalises it, cut at `DETAIL_CHARS`.
fn bounded_display(stmt: &Statement) -> String {
    /// Stops the formatting (an `Err`) once full: a long statement is not displayed whole.
    struct Bounded {
        text: String,
        chars: usize,
    }
    impl std::fmt::Write for Bounded {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            for c in s.chars() {
                if self.chars >= DETAIL_CHARS {
                    return Err(std::fmt::Error);
                }
                self.text.push(c);
                self.chars += 1;
            }
            Ok(())
        }
    }
    let mut b = Bounded {
        text: String::with_capacity(DETAIL_CHARS),
        chars: 0,
    };
    if write!(b, "{stmt}").is_err() {
        b.text.push('…');
    }
    b.text
}

/// How the columns of one query level bind to the table a proof is about (the target of
/// an UPDATE/DELETE, or the only table of a SELECT), as PostgreSQL binds names.
struct TargetCtx {
    /// The name a qualified column uses for the target: its alias when it has one (an
    /// alias hides the table's own name: after `FROM t AS a`, `t.id` is some other FROM
    /// item's column, or an error), else the table's name. `None` when no column binds to
    /// it provably (an alias that renames its columns, `AS a(x, y)`).
    exposed: Option<String>,
    /// Unqualified columns bind to the target: it is the only FROM item at its level and
    /// no enclosing query's FROM item is visible (from a correlated subquery, a column the
    /// inner table lacks binds to the outer query).
    unqualified: bool,
}

struct Collector<'d> {
    dec: &'d SqlDecoder,
    service: &'d str,
    params: &'d [Json],
    ops: Vec<Operation>,
    /// Object names already accounted for (write targets, table functions), by address.
    skip: HashSet<*const ObjectName>,
    /// Records proven for a read relation (single-table SELECTs), by address.
    read_records: Vec<(*const ObjectName, Records)>,
    /// CTE names visible at each query nesting level, innermost last.
    cte_frames: Vec<CteFrame>,
    /// CTE bodies: (query address, owning frame index, CTE position).
    cte_bodies: Vec<(*const Query, usize, usize)>,
    /// Depth of queries with row locks (`FOR UPDATE`/`FOR SHARE`).
    locking: usize,
    /// Statements under a plain `EXPLAIN` (planned, never run): writes count as reads.
    planned_only: Vec<*const Statement>,
    /// Whether a column at the current point may bind to an enclosing query's FROM item
    /// (one entry per statement, query and select being visited; innermost last).
    outer: Vec<bool>,
    /// Queries that do not see what the point they are visited from sees: CTE bodies and
    /// plain (not LATERAL) derived tables see only what their enclosing query sees from
    /// outside, an INSERT's source does not see its target.
    scoped: Vec<(*const Query, bool)>,
}

struct CteFrame {
    query: *const Query,
    names: Vec<String>,
    visible: usize,
}

impl<'d> Collector<'d> {
    fn new(dec: &'d SqlDecoder, service: &'d str, params: &'d [Json]) -> Self {
        Collector {
            dec,
            service,
            params,
            ops: Vec::new(),
            skip: HashSet::new(),
            read_records: Vec::new(),
            cte_frames: Vec::new(),
            cte_bodies: Vec::new(),
            locking: 0,
            planned_only: Vec::new(),
            outer: Vec::new(),
            scoped: Vec::new(),
        }
    }

    fn sees_outer(&self) -> bool {
        self.outer.last().copied().unwrap_or(false)
    }

    fn planned(&self) -> bool {
        !self.planned_only.is_empty()
    }

    fn push(&mut self, action: Action, resource: String, scope: Scope, records: Records) {
        self.push_write(action, resource, scope, records, Sets::new());
    }

    /// An operation, with the post-image of what it assigns. Under a plan-only `EXPLAIN`
    /// the statement's own writes are reads (planned, never run); function calls stay what
    /// they are (the planner folds immutable calls with constant arguments: it runs them).
    fn push_write(
        &mut self,
        action: Action,
        resource: String,
        scope: Scope,
        records: Records,
        sets: Sets,
    ) {
        use Action::*;
        let planned = self.planned() && matches!(action, Create | Update | Delete | Alter);
        let action = if planned { Read } else { action };
        let scope = if action.writes_rows() {
            scope
        } else {
            Scope::Some
        };
        let sets = if planned { Sets::new() } else { sets };
        self.ops.push(
            Operation::new(self.service, action, resource)
                .with_scope(scope)
                .with_records(records)
                .with_sets(sets),
        );
    }

    /// A write (or other) operation on a named object, which is then not also a read.
    fn on_object(
        &mut self,
        action: Action,
        name: &ObjectName,
        scope: Scope,
        records: Records,
    ) -> Result<(), DecodeError> {
        self.on_write(action, name, scope, records, Sets::new())
    }

    /// `on_object` with the post-image of the write.
    fn on_write(
        &mut self,
        action: Action,
        name: &ObjectName,
        scope: Scope,
        records: Records,
        sets: Sets,
    ) -> Result<(), DecodeError> {
        let resource = self.dec.resource(name)?;
        self.skip.insert(name as *const ObjectName);
        self.push_write(action, resource, scope, records, sets);
        Ok(())
    }

    /// An operation on something that is not a named table (`sql:<kind>`).
    fn on_kind(&mut self, action: Action, kind: &str) {
        self.push(action, format!("sql:{kind}"), Scope::Some, Records::new());
    }

    fn is_cte(&self, name: &ObjectName) -> bool {
        let [ObjectNamePart::Identifier(id)] = name.0.as_slice() else {
            return false;
        };
        let Ok(n) = self.dec.ident(id) else {
            return false;
        };
        self.cte_frames
            .iter()
            .any(|f| f.names.iter().take(f.visible).any(|c| *c == n))
    }

    fn function(&mut self, name: &ObjectName) -> Result<(), DecodeError> {
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
    fn type_use(&mut self, t: &DataType) -> Result<(), DecodeError> {
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

    // ------------------------------------------------------------ statements

    fn classify(&mut self, stmt: &Statement) -> Result<(), DecodeError> {
        use Action::*;
        match stmt {
            Statement::Query(_) => {}
            Statement::Insert(ins) => self.insert(ins)?,
            Statement::Update(u) => {
                let others = match &u.from {
                    None => &[][..],
                    Some(UpdateTableFromKind::BeforeSet(f) | UpdateTableFromKind::AfterSet(f)) => {
                        f.as_slice()
                    }
                };
                let (name, ctx) = self.dml_target(&u.table, others)?;
                let (scope, records) = self.where_proof(u.selection.as_ref(), &ctx);
                let sets = self.post_image(&u.assignments, None);
                self.on_write(Update, name, scope, records.clone(), sets)?;
                if u.returning.is_some() {
                    // RETURNING hands the changed rows back: a read of exactly those.
                    self.push(Read, self.dec.resource(name)?, Scope::Some, records);
                }
            }
            Statement::Delete(d) => {
                let from = match &d.from {
                    FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
                };
                if !d.tables.is_empty() {
                    // MySQL multi-table DELETE: every named table loses rows.
                    for name in &d.tables {
                        self.on_object(Delete, name, Scope::All, Records::new())?;
                    }
                } else {
                    let [only] = from.as_slice() else {
                        return undecodable("DELETE from several tables");
                    };
                    let others = d.using.as_deref().unwrap_or_default();
                    let (name, ctx) = self.dml_target(only, others)?;
                    let (scope, records) = self.where_proof(d.selection.as_ref(), &ctx);
                    self.on_object(Delete, name, scope, records.clone())?;
                    if d.returning.is_some() {
                        self.push(Read, self.dec.resource(name)?, Scope::Some, records);
                    }
                }
            }
            Statement::Merge(m) => {
                let TableFactor::Table { name, .. } = &m.table else {
                    return undecodable("MERGE into something other than a table");
                };
                for clause in &m.clauses {
                    let (action, sets) = match &clause.action {
                        MergeAction::Insert(_) => (Create, Sets::new()),
                        MergeAction::Update(u) => match &u.kind {
                            MergeUpdateKind::Set(assignments) => {
                                (Update, self.post_image(assignments, None))
                            }
                            _ => return undecodable("MERGE … UPDATE without a SET list"),
                        },
                        MergeAction::Delete { .. } => (Delete, Sets::new()),
                        MergeAction::DoNothing { .. } => continue,
                    };
                    // A MERGE join condition is not a row filter: matched rows are unbounded.
                    self.on_write(action, name, Scope::All, Records::new(), sets)?;
                }
            }
            Statement::Truncate(t) => {
                if t.cascade
                    .as_ref()
                    .is_some_and(|c| matches!(c, sqlparser::ast::CascadeOption::Cascade))
                {
                    return undecodable(
                        "TRUNCATE … CASCADE empties tables the statement does not name",
                    );
                }
                for tt in &t.table_names {
                    self.on_object(Delete, &tt.name, Scope::All, Records::new())?;
                }
            }
            Statement::Drop {
                names,
                cascade,
                table,
                ..
            } => {
                if *cascade {
                    return undecodable(
                        "DROP … CASCADE removes objects the statement does not name",
                    );
                }
                for n in names {
                    self.on_object(Drop, n, Scope::Some, Records::new())?;
                }
                if let Some(t) = table {
                    self.on_object(Alter, t, Scope::Some, Records::new())?;
                }
            }
            Statement::DropFunction(f) => {
                for d in &f.func_desc {
                    self.on_object(Drop, &d.name, Scope::Some, Records::new())?;
                }
            }
            Statement::DropProcedure { proc_desc, .. } => {
                for d in proc_desc {
                    self.on_object(Drop, &d.name, Scope::Some, Records::new())?;
                }
            }
            Statement::DropTrigger(t) => {
                self.on_object(Drop, &t.trigger_name, Scope::Some, Records::new())?;
                if let Some(table) = &t.table_name {
                    self.on_object(Alter, table, Scope::Some, Records::new())?;
                }
            }
            Statement::CreateTable(ct) => {
                self.on_object(Alter, &ct.name, Scope::Some, Records::new())?
            }
            Statement::CreateView(v) => {
                self.on_object(Alter, &v.name, Scope::Some, Records::new())?
            }
            Statement::CreateIndex(ci) => {
                self.on_object(Alter, &ci.table_name, Scope::Some, Records::new())?;
            }
            Statement::CreateSequence { name, .. } => {
                self.on_object(Alter, name, Scope::Some, Records::new())?
            }
            Statement::CreateFunction(f) => {
                self.on_object(Alter, &f.name, Scope::Some, Records::new())?
            }
            Statement::AlterTable(a) => {
                self.on_object(Alter, &a.name, Scope::Some, Records::new())?
            }
            Statement::AlterIndex { name, .. } => {
                self.on_object(Alter, name, Scope::Some, Records::new())?
            }
            Statement::AlterView(v) => {
                self.on_object(Alter, &v.name, Scope::Some, Records::new())?
            }
            Statement::Comment { object_name, .. } => {
                self.on_object(Alter, object_name, Scope::Some, Records::new())?;
            }
            Statement::CreateSchema { .. } => self.on_kind(Alter, "schema"),
            Statement::AlterSchema(_) => self.on_kind(Alter, "schema"),
            Statement::RenameTable(renames) => {
                for r in renames {
                    self.on_object(Alter, &r.old_name, Scope::Some, Records::new())?;
                    self.on_object(Alter, &r.new_name, Scope::Some, Records::new())?;
                }
            }
            Statement::RefreshMaterializedView(r) => {
                self.on_object(Update, &r.name, Scope::All, Records::new())?;
            }
            Statement::Explain {
                analyze,
                options,
                statement,
                ..
            } => {
                if !*analyze && !explain_runs(options.as_deref().unwrap_or_default())? {
                    // Planned, not run: what it would touch is still read (plans reveal data).
                    self.planned_only.push(&**statement as *const Statement);
                }
                // Run (`ANALYZE`): the statement's own operations, unchanged.
            }
            Statement::ExplainTable { table_name, .. } => {
                self.on_object(Read, table_name, Scope::Some, Records::new())?;
            }
            Statement::ShowColumns { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowViews { .. }
            | Statement::ShowSchemas { .. }
            | Statement::ShowDatabases { .. }
            | Statement::ShowCreate { .. }
            | Statement::ShowFunctions { .. }
            | Statement::ShowObjects(_)
            | Statement::ShowCatalogs { .. }
            | Statement::ShowCollation { .. }
            | Statement::ShowCharset(_) => self.on_kind(Read, "catalog"),
            Statement::ShowVariable { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowStatus { .. } => {
                self.on_kind(Read, "settings");
            }
            Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. } => {
                // Transaction control: no effect of its own on data.
            }
            Statement::Copy { source, .. } => match source {
                CopySource::Table { table_name, .. } => {
                    self.on_object(Admin, table_name, Scope::Some, Records::new())?;
                }
                CopySource::Query(_) => self.on_kind(Admin, "copy"),
            },
            Statement::Lock(l) => {
                for t in &l.tables {
                    self.on_object(Admin, &t.name, Scope::Some, Records::new())?;
                }
            }
            Statement::LockTables { .. } | Statement::UnlockTables => self.on_kind(Admin, "lock"),
            Statement::Grant(_)
            | Statement::Revoke(_)
            | Statement::GrantRole(_)
            | Statement::RevokeRole(_)
            | Statement::Deny(_)
            | Statement::AlterDefaultPrivileges(_)
            | Statement::CreateRole(_)
            | Statement::AlterRole { .. }
            | Statement::CreateUser(_)
            | Statement::AlterUser(_)
            | Statement::CreatePolicy(_)
            | Statement::AlterPolicy(_)
            | Statement::DropPolicy(_) => self.on_kind(Admin, "privileges"),
            Statement::Set(_)
            | Statement::Reset(_)
            | Statement::Discard { .. }
            | Statement::Use(_) => {
                self.on_kind(Admin, "session");
            }
            Statement::Vacuum(_) | Statement::Analyze(_) => self.on_kind(Admin, "maintenance"),
            Statement::CreateDatabase { .. }
            | Statement::CreateExtension(_)
            | Statement::DropExtension(_)
            | Statement::AttachDatabase { .. }
            | Statement::Kill { .. }
            | Statement::Pragma { .. }
            | Statement::LISTEN { .. }
            | Statement::UNLISTEN { .. }
            | Statement::NOTIFY { .. } => self.on_kind(Admin, "server"),
            Statement::Call(f) => self.on_object(Execute, &f.name, Scope::Some, Records::new())?,
            Statement::Execute { .. }
            | Statement::Prepare { .. }
            | Statement::Deallocate { .. } => {
                self.on_kind(Execute, "prepared");
            }
            Statement::Declare { .. } | Statement::Fetch { .. } | Statement::Close { .. } => {
                // Cursors: the declared query is walked as a read; fetching adds nothing.
            }
            other => {
                let kind: String = other
                    .to_string()
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                return undecodable(format!("statement kind `{kind}` is not classified"));
            }
        }
        Ok(())
    }

    fn insert(&mut self, ins: &Insert) -> Result<(), DecodeError> {
        use Action::*;
        let TableObject::TableName(name) = &ins.table else {
            return undecodable("INSERT into a table function");
        };
        let values = self.values_records(ins);
        let sqlite_replace = matches!(ins.or, Some(sqlparser::ast::SqliteOnConflict::Replace));
        if ins.replace_into || sqlite_replace {
            // REPLACE deletes the rows that collide on any unique key: not proven rows.
            self.on_object(Delete, name, Scope::All, Records::new())?;
        }
        if ins.overwrite {
            self.on_object(Delete, name, Scope::All, Records::new())?;
        }
        self.on_object(Create, name, Scope::Some, values.clone())?;
        match &ins.on {
            Some(OnInsert::OnConflict(oc)) => {
                if let OnConflictAction::DoUpdate(du) = &oc.action {
                    // `EXCLUDED.c` is the value the row would have been inserted with.
                    let sets = self.post_image(&du.assignments, Some(&values));
                    // The row updated is the one whose conflict key equals the new row's.
                    let keys: Vec<String> = match &oc.conflict_target {
                        Some(ConflictTarget::Columns { columns, .. }) => columns
                            .iter()
                            .filter_map(|c| self.dec.ident(c).ok())
                            .collect(),
                        _ => Vec::new(),
                    };
                    let records: Records = values
                        .into_iter()
                        .filter(|(k, _)| keys.contains(k))
                        .collect();
                    // Bounded only by the proposed rows' conflict keys: from `INSERT …
                    // SELECT`, or with keys the decoder could not read, any row may be hit.
                    let scope = upsert_scope(&keys, &records);
                    self.on_write(Update, name, scope, records, sets)?;
                }
            }
            Some(OnInsert::DuplicateKeyUpdate(assignments)) => {
                // Which unique key collides is not known: the rows hit are not proven.
                let sets = self.post_image(assignments, None);
                self.on_write(Update, name, Scope::All, Records::new(), sets)?
            }
            Some(_) => self.on_object(Update, name, Scope::All, Records::new())?,
            None => {}
        }
        if ins.returning.is_some() {
            self.push(Read, self.dec.resource(name)?, Scope::Some, Records::new());
        }
        Ok(())
    }

    /// Records an `INSERT … VALUES` proves: for each listed column, the literal values
    /// of every row (a column with any non-literal value proves nothing).
    fn values_records(&self, ins: &Insert) -> Records {
        let mut out = Records::new();
        let Some(src) = &ins.source else {
            return out;
        };
        let SetExpr::Values(values) = src.body.as_ref() else {
            return out;
        };
        if ins.columns.is_empty() || src.with.is_some() {
            return out;
        }
        for (i, col) in ins.columns.iter().enumerate() {
            let Some(ObjectNamePart::Identifier(id)) = col.0.last() else {
                continue;
            };
            let Ok(col) = self.dec.ident(id) else {
                continue;
            };
            let vals: Option<Vec<String>> = values
                .rows
                .iter()
                .map(|row| row.get(i).and_then(|e| self.assigned_literal(e)))
                .collect();
            if let Some(mut vals) = vals {
                vals.sort();
                vals.dedup();
                out.insert(col, vals);
            }
        }
        out
    }

    /// The single table an UPDATE/DELETE writes, and how its `WHERE` binds to it beside
    /// `others` (the `USING` / `FROM` items at the same level).
    fn dml_target<'a>(
        &self,
        t: &'a TableWithJoins,
        others: &[TableWithJoins],
    ) -> Result<(&'a ObjectName, TargetCtx), DecodeError> {
        if !t.joins.is_empty() {
            return undecodable("UPDATE/DELETE over a join: which table changes is ambiguous");
        }
        let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = &t.relation
        else {
            return undecodable("UPDATE/DELETE target is not a table");
        };
        let exposed = self.exposed(name, alias.as_ref())?;
        // Two FROM items exposing one name at one level is an error in PostgreSQL; if the
        // decoder cannot tell the others' names apart from the target's, nothing binds.
        let clash = others
            .iter()
            .flat_map(|o| std::iter::once(&o.relation).chain(o.joins.iter().map(|j| &j.relation)))
            .any(|tf| match (self.exposed_name(tf), &exposed) {
                (Some(n), Some(e)) => n == *e,
                (None, _) => false,
                (_, None) => true,
            });
        let ctx = TargetCtx {
            exposed: if clash { None } else { exposed },
            unqualified: !clash && others.is_empty() && !self.sees_outer(),
        };
        Ok((name, ctx))
    }

    /// The name a table's columns are qualified with: its alias (hiding the table's own
    /// name), else the table's name; `None` when an alias renames its columns.
    fn exposed(
        &self,
        name: &ObjectName,
        alias: Option<&sqlparser::ast::TableAlias>,
    ) -> Result<Option<String>, DecodeError> {
        match alias {
            Some(a) if !a.columns.is_empty() => Ok(None),
            Some(a) => self.dec.ident(&a.name).map(Some),
            None => match name.0.last() {
                Some(ObjectNamePart::Identifier(id)) => self.dec.ident(id).map(Some),
                _ => Ok(None),
            },
        }
    }

    /// The name a FROM item exposes, when the decoder can tell.
    fn exposed_name(&self, tf: &TableFactor) -> Option<String> {
        let alias = match tf {
            TableFactor::Table { name, alias, .. } | TableFactor::Function { name, alias, .. } => {
                return match alias {
                    Some(a) => self.dec.ident(&a.name).ok(),
                    None => match name.0.last() {
                        Some(ObjectNamePart::Identifier(id)) => self.dec.ident(id).ok(),
                        _ => None,
                    },
                }
            }
            TableFactor::Derived { alias, .. }
            | TableFactor::UNNEST { alias, .. }
            | TableFactor::NestedJoin { alias, .. } => alias,
            _ => return None,
        };
        alias.as_ref().and_then(|a| self.dec.ident(&a.name).ok())
    }

    /// The post-image of a list of assignments: each assigned column and the literal
    /// values it receives, or `None` (another column, a subquery, a function, DEFAULT).
    /// `excluded` holds the values an `INSERT` proposed (`EXCLUDED.c` in ON CONFLICT).
    fn post_image(&self, assignments: &[Assignment], excluded: Option<&Records>) -> Sets {
        let mut sets = Sets::new();
        let assign = |sets: &mut Sets, col: String, value: Option<Vec<String>>| {
            let merged = match (sets.remove(&col), value) {
                (None, v) => v,
                (Some(Some(mut a)), Some(b)) => {
                    a.extend(b);
                    a.sort();
                    a.dedup();
                    Some(a)
                }
                (Some(_), _) => None,
            };
            sets.insert(col, merged);
        };
        for a in assignments {
            let columns: Vec<&ObjectName> = match &a.target {
                AssignmentTarget::ColumnName(n) => vec![n],
                AssignmentTarget::Tuple(ns) => ns.iter().collect(),
            };
            let values: Vec<Option<&Expr>> = match (&a.target, &a.value) {
                (AssignmentTarget::ColumnName(_), v) => vec![Some(v)],
                (AssignmentTarget::Tuple(ns), Expr::Tuple(vs)) if vs.len() == ns.len() => {
                    vs.iter().map(Some).collect()
                }
                (AssignmentTarget::Tuple(ns), _) => vec![None; ns.len()],
            };
            for (name, value) in columns.into_iter().zip(values) {
                let parts: Vec<String> = name
                    .0
                    .iter()
                    .filter_map(|p| match p {
                        ObjectNamePart::Identifier(id) => {
                            Some(self.dec.ident(id).unwrap_or_else(|_| id.value.clone()))
                        }
                        ObjectNamePart::Function(_) => None,
                    })
                    .collect();
                let known = match (parts.as_slice(), value) {
                    // `SET c = …`; `SET c.field = …` changes part of `c`: not known.
                    ([_], Some(v)) => self.assigned(v, excluded),
                    _ => None,
                };
                for p in parts {
                    assign(&mut sets, p, known.clone());
                }
            }
        }
        sets
    }

    /// A literal that a column stores as written (`stored_as_written`).
    fn assigned_literal(&self, e: &Expr) -> Option<String> {
        self.literal(e).filter(|v| stored_as_written(v))
    }

    /// The values one assignment gives: a literal, or `EXCLUDED.c` of an upsert.
    fn assigned(&self, v: &Expr, excluded: Option<&Records>) -> Option<Vec<String>> {
        if let Some(l) = self.assigned_literal(v) {
            return Some(vec![l]);
        }
        match (v, excluded) {
            (Expr::CompoundIdentifier(parts), Some(values)) => match parts.as_slice() {
                [t, c] if self.dec.ident(t).ok()? == "excluded" => {
                    values.get(&self.dec.ident(c).ok()?).cloned()
                }
                _ => None,
            },
            (Expr::Nested(inner), _) => self.assigned(inner, excluded),
            _ => None,
        }
    }

    // ------------------------------------------------------------ proofs

    /// Scope and records a `WHERE` proves for the target.
    fn where_proof(&self, selection: Option<&Expr>, ctx: &TargetCtx) -> (Scope, Records) {
        match selection {
            None => (Scope::All, Records::new()),
            Some(e) => {
                let f = self.filter(e, ctx, 0);
                (
                    if f.bounded() { Scope::Some } else { Scope::All },
                    f.records(),
                )
            }
        }
    }

    fn filter(&self, e: &Expr, ctx: &TargetCtx, depth: usize) -> Filter {
        let opaque = |e: &Expr| {
            if has_column(e) {
                Filter::term("", Cmp::Bounding, vec![])
            } else {
                // A constant condition (`true`, `1=1`, `'a'='a'`) selects all or nothing.
                Filter::term("", Cmp::NotEq, vec![])
            }
        };
        if depth > RECURSION_LIMIT {
            return Filter::term("", Cmp::Bounding, vec![]);
        }
        match e {
            Expr::Nested(inner) => self.filter(inner, ctx, depth + 1),
            Expr::BinaryOp {
                op: BinaryOperator::And,
                ..
            } => Filter::And(
                flatten(e, &BinaryOperator::And)
                    .into_iter()
                    .map(|x| self.filter(x, ctx, depth + 1))
                    .collect(),
            ),
            Expr::BinaryOp {
                op: BinaryOperator::Or,
                ..
            } => Filter::Or(
                flatten(e, &BinaryOperator::Or)
                    .into_iter()
                    .map(|x| self.filter(x, ctx, depth + 1))
                    .collect(),
            ),
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => Filter::Not(Box::new(self.filter(expr, ctx, depth + 1))),
            Expr::BinaryOp { left, op, right } if is_comparison(op) => {
                match (has_column(left), has_column(right)) {
                    (false, false) | (true, true) => Filter::term("", Cmp::NotEq, vec![]),
                    (lc, _) => {
                        let (col, val) = if lc { (left, right) } else { (right, left) };
                        match op {
                            BinaryOperator::Eq => {
                                match (self.column(col, ctx), self.literal(val)) {
                                    (Some(c), Some(v)) => Filter::term(c, Cmp::Eq, vec![v]),
                                    _ => Filter::term("", Cmp::Bounding, vec![]),
                                }
                            }
                            BinaryOperator::NotEq => Filter::term("", Cmp::NotEq, vec![]),
                            _ => Filter::term("", Cmp::Bounding, vec![]),
                        }
                    }
                }
            }
            Expr::In {
                expr,
                target: InTarget::List(list),
                negated,
                ..
            } if has_column(expr) => {
                let vals: Option<Vec<String>> = list.iter().map(|v| self.literal(v)).collect();
                let t = match (self.column(expr, ctx), vals) {
                    (Some(c), Some(v)) if list.iter().all(|x| !has_column(x)) => {
                        Filter::term(c, Cmp::Eq, v)
                    }
                    _ => Filter::term("", Cmp::Bounding, vec![]),
                };
                if *negated {
                    Filter::Not(Box::new(t))
                } else {
                    t
                }
            }
            Expr::In { negated: true, .. }
            | Expr::Between { negated: true, .. }
            | Expr::Exists { negated: true, .. }
            | Expr::IsNotNull(_)
            | Expr::IsDistinctFrom(_, _) => Filter::term("", Cmp::NotEq, vec![]),
            Expr::Like {
                negated,
                pattern,
                expr,
                ..
            }
            | Expr::ILike {
                negated,
                pattern,
                expr,
                ..
            } => {
                let all_wild = self
                    .literal(pattern)
                    .is_some_and(|p| p.chars().all(|c| c == '%' || c == '_'));
                if *negated || all_wild || !has_column(expr) {
                    Filter::term("", Cmp::NotEq, vec![])
                } else {
                    Filter::term("", Cmp::Bounding, vec![])
                }
            }
            other => opaque(other),
        }
    }

    /// A column of the target, as PostgreSQL binds it at the target's level: qualified
    /// with the name the target exposes (`q.col`), or unqualified when nothing else is in
    /// scope; under a `COLLATE` that keeps equality exact. Anything around the column (a
    /// cast, a function, an operator) compares something other than its value: no proof.
    fn column(&self, e: &Expr, ctx: &TargetCtx) -> Option<String> {
        match e {
            Expr::Nested(inner) => self.column(inner, ctx),
            Expr::Collate { expr, collation } if self.exact_collation(collation) => {
                self.column(expr, ctx)
            }
            Expr::Identifier(id) if ctx.unqualified => self.dec.ident(id).ok(),
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [table, col] => {
                    let t = self.dec.ident(table).ok()?;
                    (ctx.exposed.as_ref() == Some(&t))
                        .then(|| self.dec.ident(col).ok())
                        .flatten()
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether a collation compares exactly (one of `EXACT_COLLATIONS`, unqualified or in
    /// `pg_catalog`).
    fn exact_collation(&self, name: &ObjectName) -> bool {
        let Ok(parts) = self.dec.parts(name) else {
            return false;
        };
        match parts.as_slice() {
            [c] => EXACT_COLLATIONS.contains(&c.as_str()),
            [s, c] => s == "pg_catalog" && EXACT_COLLATIONS.contains(&c.as_str()),
            _ => false,
        }
    }

    /// A value PostgreSQL compares unchanged: a literal's text (also a bound `$n`
    /// parameter), under a cast only when the cast cannot change it (`value_kept`) and
    /// under a `COLLATE` only when it compares exactly.
    fn literal(&self, e: &Expr) -> Option<String> {
        match e {
            Expr::Nested(inner) => self.literal(inner),
            Expr::Collate { expr, collation } if self.exact_collation(collation) => {
                self.literal(expr)
            }
            Expr::Cast {
                kind: CastKind::Cast | CastKind::DoubleColon,
                expr,
                data_type,
                format: None,
                ..
            } => self.literal(expr).filter(|v| value_kept(data_type, v)),
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => match expr.as_ref() {
                Expr::Value(v) => match &v.value {
                    Value::Number(n, _) => Some(format!("-{n}")),
                    _ => None,
                },
                _ => None,
            },
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Some(s.clone()),
                Value::DollarQuotedString(d) => Some(d.value.clone()),
                Value::Number(n, _) => Some(n.clone()),
                Value::Boolean(b) => Some(b.to_string()),
                Value::Placeholder(p) => {
                    let n: usize = p.strip_prefix('$')?.parse().ok()?;
                    match self.params.get(n.checked_sub(1)?)? {
                        Json::String(s) => Some(s.clone()),
                        Json::Number(num) => Some(num.to_string()),
                        Json::Bool(b) => Some(b.to_string()),
                        _ => None,
                    }
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// Records a single-table SELECT proves for its table (`outer`: an enclosing query's
    /// FROM items are visible from it).
    fn select_records(&mut self, s: &Select, outer: bool) {
        let [only] = s.from.as_slice() else {
            return;
        };
        if !only.joins.is_empty() {
            return;
        }
        let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = &only.relation
        else {
            return;
        };
        let Some(selection) = &s.selection else {
            return;
        };
        let Ok(exposed) = self.exposed(name, alias.as_ref()) else {
            return;
        };
        let ctx = TargetCtx {
            unqualified: exposed.is_some() && !outer,
            exposed,
        };
        let records = self.filter(selection, &ctx, 0).records();
        if !records.is_empty() {
            self.read_records.push((name as *const ObjectName, records));
        }
    }
}

/// Whether casting literal text `v` to `t` keeps the value the text names, so an equality
/// with the cast value proves the text: `text` and unbounded `varchar` (no truncation),
/// integer types of a canonical integer (`'05'::int` is 5, `'1.5'`… is not an integer),
/// `uuid` of a canonical (lower-case, hyphenated) UUID. Length-limited strings (`::varchar(2)`
/// truncates, `char(n)` pads and compares without trailing spaces), numeric precision,
/// dates, and every other type: no.
fn value_kept(t: &DataType, v: &str) -> bool {
    match t {
        DataType::Text | DataType::Varchar(None) | DataType::CharacterVarying(None) => true,
        DataType::Int(None)
        | DataType::Integer(None)
        | DataType::BigInt(None)
        | DataType::SmallInt(None)
        | DataType::Int2(None)
        | DataType::Int4(None)
        | DataType::Int8(None) => canonical_integer(v),
        DataType::Uuid => canonical_uuid(v),
        _ => false,
    }
}

/// Whether a literal assigned to a column (INSERT values, SET) is stored as its text,
/// whatever the column's type: PostgreSQL coerces on assignment, so `2.6` into an integer
/// column is 3, `'1.555'` into `numeric(8,2)` is 1.56, and `'ab  '` into `varchar(2)` loses
/// its blanks. Numbers (and text that reads as one) prove only as canonical integers; text
/// with surrounding whitespace proves nothing.
fn stored_as_written(v: &str) -> bool {
    v.trim() == v && (v.parse::<f64>().is_err() || canonical_integer(v))
}

fn canonical_integer(v: &str) -> bool {
    let digits = v.strip_prefix('-').unwrap_or(v);
    !digits.is_empty()
        && digits.len() <= 19
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && v != "-0"
}

fn canonical_uuid(v: &str) -> bool {
    v.len() == 36
        && v.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// Whether a plan-only-looking `EXPLAIN` runs its statement: an `ANALYZE`/`ANALYSE`
/// option with any value (or none) runs it; an option this decoder does not know is
/// refused rather than guessed.
fn explain_runs(options: &[UtilityOption]) -> Result<bool, DecodeError> {
    let mut runs = false;
    for o in options {
        let name = o.name.value.to_ascii_lowercase();
        if name == "analyze" || name == "analyse" {
            runs = true;
        } else if !EXPLAIN_PLAN_OPTIONS.contains(&name.as_str()) {
            return undecodable(format!("EXPLAIN option `{}` is not modelled", o.name.value));
        }
    }
    Ok(runs)
}

/// The operands of a chain of one associative operator (`a AND b AND (c AND d)`), in
/// order, without recursing: chains are as deep as they are long.
fn flatten<'e>(e: &'e Expr, op: &BinaryOperator) -> Vec<&'e Expr> {
    let mut out = Vec::new();
    let mut stack = vec![e];
    while let Some(x) = stack.pop() {
        match x {
            Expr::BinaryOp { left, op: o, right } if o == op => {
                stack.push(right);
                stack.push(left);
            }
            Expr::Nested(inner) if matches!(inner.as_ref(), Expr::BinaryOp { op: o, .. } if o == op) =>
            {
                stack.push(inner);
            }
            other => out.push(other),
        }
    }
    out
}

fn is_comparison(op: &BinaryOperator) -> bool {
    matches!(
        op,
        BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
            | BinaryOperator::Spaceship
    )
}

/// Whether an expression mentions any column (else it is a constant).
fn has_column(e: &Expr) -> bool {
    struct Finder(bool);
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut f = Finder(false);
    let _ = e.visit(&mut f);
    f.0
}

fn brk<T>(r: Result<T, DecodeError>) -> ControlFlow<DecodeError> {
    match r {
        Ok(_) => ControlFlow::Continue(()),
        Err(e) => ControlFlow::Break(e),
    }
}

impl Visitor for Collector<'_> {
    type Break = DecodeError;

    fn pre_visit_statement(&mut self, stmt: &Statement) -> ControlFlow<DecodeError> {
        let outer = self.sees_outer();
        let classified = self.classify(stmt);
        // What a statement with a target holds (its WHERE, SET, ON CONFLICT, RETURNING
        // subqueries) sees the target; an INSERT's source query does not.
        let sees = match stmt {
            Statement::Insert(ins) => {
                if let Some(src) = &ins.source {
                    self.scoped.push((&**src as *const Query, outer));
                }
                true
            }
            Statement::Update(_) | Statement::Delete(_) | Statement::Merge(_) => true,
            _ => outer,
        };
        self.outer.push(sees);
        brk(classified)
    }

    fn post_visit_statement(&mut self, stmt: &Statement) -> ControlFlow<DecodeError> {
        if self.planned_only.last() == Some(&(stmt as *const Statement)) {
            self.planned_only.pop();
        }
        self.outer.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<DecodeError> {
        // `TABLE t` names its table outside the relation positions the visitor reports.
        if contains_table_expr(&q.body) {
            return ControlFlow::Break(DecodeError(
                "`TABLE name` queries are not accepted; use SELECT".into(),
            ));
        }
        // CTE scoping: a non-recursive WITH makes CTE `i` a name only after its body
        // (for later bodies and the main query), so inside body `i` a later CTE's name
        // still means the real table; under RECURSIVE every CTE is a name throughout.
        // Bodies are visited in order, so `post_visit_query` of body `i` widens the frame.
        let addr = q as *const Query;
        let sees = self
            .scoped
            .iter()
            .rev()
            .find(|(a, _)| *a == addr)
            .map_or_else(|| self.sees_outer(), |(_, v)| *v);
        self.outer.push(sees);
        if let Some(with) = &q.with {
            let mut names = Vec::new();
            for cte in &with.cte_tables {
                match self.dec.ident(&cte.alias.name) {
                    Ok(n) => names.push(n),
                    Err(e) => return ControlFlow::Break(e),
                }
            }
            let frame = self.cte_frames.len();
            for (i, cte) in with.cte_tables.iter().enumerate() {
                self.cte_bodies
                    .push((&*cte.query as *const Query, frame, i));
                // A CTE body sees what its query sees from outside, not its FROM items.
                self.scoped.push((&*cte.query as *const Query, sees));
            }
            let visible = if with.recursive { names.len() } else { 0 };
            self.cte_frames.push(CteFrame {
                query: addr,
                names,
                visible,
            });
        }
        if !q.locks.is_empty() {
            self.locking += 1;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, q: &Query) -> ControlFlow<DecodeError> {
        let addr = q as *const Query;
        // Leaving CTE body `pos`: it becomes visible to the bodies after it and the main query.
        if let Some(&(_, frame, pos)) = self.cte_bodies.iter().find(|(b, _, _)| *b == addr) {
            if let Some(f) = self.cte_frames.get_mut(frame) {
                f.visible = f.visible.max(pos + 1);
            }
        }
        if self.cte_frames.last().is_some_and(|f| f.query == addr) {
            self.cte_frames.pop();
        }
        if !q.locks.is_empty() {
            self.locking = self.locking.saturating_sub(1);
        }
        self.outer.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &Select) -> ControlFlow<DecodeError> {
        if let Some(into) = &s.into {
            // SELECT … INTO new_table creates a table.
            let target = match into.targets.as_slice() {
                [Expr::Identifier(id)] => self
                    .dec
                    .ident(id)
                    .map(|t| format!("{}.{t}", self.dec.default_schema)),
                [Expr::CompoundIdentifier(parts)] if parts.len() <= 3 => parts
                    .iter()
                    .map(|p| self.dec.ident(p))
                    .collect::<Result<Vec<_>, _>>()
                    .map(|v| v.join(".")),
                _ => undecodable("SELECT … INTO names no table"),
            };
            match target {
                Ok(t) => self.push(Action::Alter, t, Scope::Some, Records::new()),
                Err(e) => return ControlFlow::Break(e),
            }
        }
        let outer = self.sees_outer();
        for item in &s.from {
            for tf in std::iter::once(&item.relation).chain(item.joins.iter().map(|j| &j.relation))
            {
                if let TableFactor::Derived {
                    lateral: false,
                    subquery,
                    ..
                } = tf
                {
                    // A plain derived table does not see its siblings.
                    self.scoped.push((&**subquery as *const Query, outer));
                }
            }
        }
        self.select_records(s, outer);
        // Subqueries in this SELECT's expressions (and LATERAL items) see its FROM items.
        self.outer.push(outer || !s.from.is_empty());
        ControlFlow::Continue(())
    }

    fn post_visit_select(&mut self, _: &Select) -> ControlFlow<DecodeError> {
        self.outer.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, tf: &TableFactor) -> ControlFlow<DecodeError> {
        match tf {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => {
                // `FROM f(…)`: a function call, not a table.
                self.skip.insert(name as *const ObjectName);
                brk(self.function(name))
            }
            TableFactor::Function { name, .. } => brk(self.function(name)),
            _ => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_relation(&mut self, name: &ObjectName) -> ControlFlow<DecodeError> {
        if self.skip.contains(&(name as *const ObjectName)) || self.is_cte(name) {
            return ControlFlow::Continue(());
        }
        let resource = match self.dec.resource(name) {
            Ok(r) => r,
            Err(e) => return ControlFlow::Break(e),
        };
        let addr = name as *const ObjectName;
        let records = self
            .read_records
            .iter()
            .find(|(a, _)| *a == addr)
            .map(|(_, r)| r.clone())
            .unwrap_or_default();
        if self.locking > 0 {
            // SELECT … FOR UPDATE/SHARE locks the rows it reads: every row unless a proof
            // bounds them.
            let scope = if proves_rows(&records) {
                Scope::Some
            } else {
                Scope::All
            };
            self.push(Action::Update, resource.clone(), scope, records.clone());
        }
        self.push(Action::Read, resource, Scope::Some, records);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<DecodeError> {
        match e {
            Expr::Cast { data_type, .. } => brk(self.type_use(data_type)),
            Expr::TypedString(ts) => brk(self.type_use(&ts.data_type)),
            // Arguments, including `f(SELECT …)` subqueries, are walked like any other.
            Expr::Function(f) => brk(self.function(&f.name)),
            Expr::In {
                target:
                    InTarget::Table {
                        name,
                        args: Some(_),
                    },
                ..
            } => {
                self.skip.insert(name as *const ObjectName);
                brk(self.function(name))
            }
            _ => ControlFlow::Continue(()),
        }
    }
}

fn contains_table_expr(body: &SetExpr) -> bool {
    match body {
        SetExpr::Table(_) => true,
        SetExpr::SetOperation { left, right, .. } => {
            contains_table_expr(left) || contains_table_expr(right)
        }
        _ => false,
    }
}
