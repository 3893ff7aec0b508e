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

pub mod fast;
mod functions;
mod kinds;
mod records;
mod visitor;

use super::expr::{Cmp, Expr as Filter};
use super::memo::{self, Memo};
use super::{Decode, Decoded, Input};
use crate::bundle::{Problems, SqlConfig, SqlDialectName};
use crate::json::parse_strict;
use crate::operation::{
    proves_rows, upsert_scope, Action, Operation, Records, Scope, Sets, NO_RELATION,
};
use crate::request::{
    ambiguous, content_type, over_limit, undecodable, unmodelled, DecodeError, HeaderValue,
};
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
use visitor::Collector;

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

impl Decode for SqlDecoder {
    fn decode(&self, input: &Input) -> Decoded {
        self.operations(input).into()
    }

    /// The statement as its tokens (whitespace between tokens is not meaning; comments
    /// and everything inside literals are), in the body's canonical JSON where it is one.
    fn meaning(&self, input: &Input) -> Vec<String> {
        let body = input.body();
        let tokens =
            |sql: &str| Json::Array(self.tokens(sql).into_iter().map(Json::String).collect());
        let canonical = match &self.source {
            Source::JsonPointer(pointer) => parse_strict(body).ok().map(|mut doc| {
                if let Some(slot) = doc.pointer_mut(pointer) {
                    if let Some(sql) = slot.as_str().map(str::to_string) {
                        *slot = tokens(&sql);
                    }
                }
                crate::canonical::json(&doc)
            }),
            Source::Raw => std::str::from_utf8(body)
                .ok()
                .map(|sql| crate::canonical::json(&tokens(sql))),
            Source::QueryParam(name) => input
                .target
                .query
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, sql)| crate::canonical::json(&tokens(sql))),
        };
        match canonical {
            Some(c) => vec!["sql".into(), c],
            // Not readable as SQL (refused by the decoder anyway): the bytes stand.
            None => super::raw_meaning(input),
        }
    }
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
    fn operations(&self, input: &Input) -> Result<Vec<Operation>, DecodeError> {
        let Input {
            service,
            head,
            target,
            ..
        } = *input;
        let body = input.body();
        // A SQL endpoint is its prefix exactly, as GraphQL's and MCP's are: ClickHouse
        // routes paths below it to `http_handlers` that run SQL of their own.
        target.only_at(input.prefix, "SQL")?;
        // ClickHouse reads the database (and the user) from its own headers.
        if let Some((h, _)) = head
            .headers
            .iter()
            .find(|(n, _)| n.starts_with("x-clickhouse-"))
        {
            return ambiguous(format!(
                "header `{h}`: the server may read another database or user from it"
            ));
        }
        if !matches!(self.source, Source::QueryParam(_)) {
            if head.method != "POST" {
                return unmodelled(format!("SQL in the body is POSTed (not {})", head.method));
            }
            if let Some((name, _)) = target.query.first() {
                return ambiguous(format!(
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
                    return ambiguous("SQL in the query string and a request body: ambiguous");
                }
                // ClickHouse-style servers read the database, settings (`readonly=0`) and a
                // session from the other query parameters: not decoded, so refused.
                if let Some((other, _)) = target.query.iter().find(|(n, _)| n != name) {
                    return ambiguous(format!(
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

    /// SQL text as its tokens in the service's dialect, whitespace dropped (comments kept:
    /// some servers read them). Text that does not tokenise is one token.
    pub fn tokens(&self, sql: &str) -> Vec<String> {
        use sqlparser::tokenizer::Whitespace;
        let dialect: &dyn Dialect = match self.flavor {
            Flavor::Postgres => &fast::Postgres::DIALECT,
            Flavor::MySql => &MySqlDialect {},
            Flavor::Sqlite => &SQLiteDialect {},
            Flavor::Generic => &GenericDialect {},
        };
        match Tokenizer::new(dialect, sql).tokenize() {
            Ok(tokens) => tokens
                .into_iter()
                .filter(|t| {
                    !matches!(
                        t,
                        Token::Whitespace(
                            Whitespace::Space | Whitespace::Newline | Whitespace::Tab
                        )
                    )
                })
                .map(|t| t.to_string())
                .collect(),
            Err(_) => vec![sql.to_string()],
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
            return over_limit(format!(
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
        // PostgreSQL's Unicode-escaped identifiers (`U&"\0070g_read_file"` is
        // `pg_read_file`) and `UESCAPE`: the tokenizer reads `U&"…"` as `U & "…"`, so the
        // name PostgreSQL calls would go unseen. Refused wherever they appear.
        let lower = sql.to_ascii_lowercase();
        if lower.contains("u&\"") || lower.contains("uescape") {
            return unmodelled(
                "Unicode-escaped identifiers (U&\"…\", UESCAPE) are not decoded: write the name plainly",
            );
        }
        // PostgreSQL text takes the shortcuts of `fast.rs` (the same tokens and
        // statements as sqlparser's own, sooner); the other dialects sqlparser's path.
        let (dialect, tokens): (&dyn Dialect, _) = match self.flavor {
            Flavor::Postgres => (&fast::Postgres::DIALECT, fast::tokenize(sql)),
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
            return over_limit(format!(
                "SQL holds {operators} operators, over the limit of {MAX_OPERATORS}"
            ));
        }
        let statements = Parser::new(dialect)
            .with_recursion_limit(self.max_recursion)
            .with_tokens_with_locations(tokens)
            .parse_statements()
            .or_else(|e| match e {
                sqlparser::parser::ParserError::RecursionLimitExceeded => over_limit(format!(
                    "SQL nests deeper than the service's max_recursion of {}",
                    self.max_recursion
                )),
                e => undecodable(format!("SQL does not parse: {e}")),
            })?;
        if statements.is_empty() {
            return undecodable("no SQL statement");
        }
        if statements.len() > self.max_statements {
            return over_limit(format!(
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
            return unmodelled(
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
                    return unmodelled(format!(
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
            return unmodelled(format!("identifier `{}` cannot be named safely", id.value));
        }
        Ok(v)
    }

    fn parts(&self, name: &ObjectName) -> Result<Vec<String>, DecodeError> {
        name.0
            .iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(id) => self.ident(id),
                ObjectNamePart::Function(_) => unmodelled("computed object names are not accepted"),
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
                    return unmodelled(format!(
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
