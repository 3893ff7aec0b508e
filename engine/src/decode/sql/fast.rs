//! Two shortcuts for PostgreSQL text the decoder has not seen before, each giving exactly
//! what sqlparser gives (checked against it: the tests below over a corpus and random
//! text, and the `sql` fuzz target on every input it tries).
//!
//! A statement's first decode is a tokenize and a parse (the memo serves repeats), and
//! both are slower than they need to be for the statements agents send:
//!
//! - [`tokenize`]: sqlparser's tokenizer walks a `Peekable<Chars>` and handles every
//!   dialect's literal forms on each character (about 20 ns a byte natively). Most
//!   statements use a small part of PostgreSQL's lexicon — ASCII words, quoted
//!   identifiers and strings, plain numbers, `$n` parameters, the common operators and
//!   punctuation, `--` comments — and this tokenizer emits the very same tokens and spans
//!   for that part in one pass over the bytes. At anything else (a character or form it
//!   does not cover, a `COPY`, an error) it answers `None` and the caller uses sqlparser's
//!   tokenizer for the whole text: it never guesses.
//! - [`Postgres`]: sqlparser's `parse_prefix` first tries every prefix expression as a
//!   data type (for `DATE '2020-01-01'`), and when that fails — for every literal and
//!   column name — formats an error message it throws away. For a number, a quoted string
//!   or a `$n` parameter the attempt always fails (`parse_data_type` accepts only a word
//!   for PostgreSQL) and the expression is `Expr::Value(parse_value())`; for a name that
//!   is not a keyword, followed by what cannot continue a type (see `plain_name`), it
//!   fails too and the expression is `Expr::Identifier`. This dialect answers those
//!   directly. It is `PostgreSqlDialect` in every other respect: it forwards
//!   every method `PostgreSqlDialect` overrides (`make lint` checks the list against the
//!   pinned sqlparser's source: `engine/tools/check-dialect.py`) and reports its type id.
//!   One difference, on purpose: the skipped attempt counted a level of nesting, so a
//!   literal or name at exactly the service's `max_recursion` now parses instead of being refused.

use hashbrown::HashMap;
use sqlparser::ast::Expr;
use sqlparser::dialect::{BindPlaceholderStyle, Dialect, PostgreSqlDialect, Precedence};
use sqlparser::keywords::{Keyword, ALL_KEYWORDS, ALL_KEYWORDS_INDEX};
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Whitespace, Word};
use std::any::TypeId;
use std::sync::OnceLock;

/// `PostgreSqlDialect` with the literal shortcut in `parse_prefix` (see the module).
#[derive(Debug, Default)]
pub struct Postgres(PostgreSqlDialect);

impl Postgres {
    pub const DIALECT: Postgres = Postgres(PostgreSqlDialect {});
}

/// Forwards each named method to the wrapped dialect. The list must be exactly the
/// methods `PostgreSqlDialect` overrides (engine/tools/check-dialect.py): a method left
/// out would silently take the trait's default instead of PostgreSQL's behaviour.
macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> $ret { self.0.$name($($arg),*) })*
    };
}

impl Dialect for Postgres {
    fn dialect(&self) -> TypeId {
        // `dialect_of!(self is PostgreSqlDialect)` inside sqlparser must hold for this one.
        self.0.dialect()
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        if let Some(own) = self.0.parse_prefix(parser) {
            return Some(own);
        }
        match &parser.peek_token_ref().token {
            Token::Number(..) | Token::SingleQuotedString(_) | Token::Placeholder(_) => {
                Some(parser.parse_value().map(Expr::Value))
            }
            Token::Word(w) if w.keyword == Keyword::NoKeyword && plain_name(parser) => {
                let TokenWithSpan {
                    token: Token::Word(w),
                    span,
                } = parser.next_token()
                else {
                    return None;
                };
                Some(Ok(Expr::Identifier(w.to_ident(span))))
            }
            _ => None,
        }
    }

    // BEGIN forwarded (engine/tools/check-dialect.py reads this list)
    forward! {
        supports_cte_materialization() -> bool;
        identifier_quote_style(identifier: &str) -> Option<char>;
        ordered_bind_placeholder_style() -> Option<BindPlaceholderStyle>;
        is_delimited_identifier_start(ch: char) -> bool;
        is_identifier_start(ch: char) -> bool;
        is_identifier_part(ch: char) -> bool;
        supports_unicode_string_literal() -> bool;
        is_reserved_for_identifier(kw: Keyword) -> bool;
        is_table_alias(kw: &Keyword, parser: &mut Parser) -> bool;
        supports_string_literal_column_alias(explicit: bool) -> bool;
        supports_string_literal_table_alias(explicit: bool) -> bool;
        is_custom_operator_part(ch: char) -> bool;
        get_next_precedence(parser: &Parser) -> Option<Result<u8, ParserError>>;
        supports_filter_during_aggregation() -> bool;
        supports_group_by_expr() -> bool;
        supports_drop_group() -> bool;
        supports_alter_user_as_alter_role() -> bool;
        supports_create_group() -> bool;
        supports_create_role_if_not_exists() -> bool;
        prec_value(prec: Precedence) -> u8;
        allow_extract_custom() -> bool;
        allow_extract_single_quotes() -> bool;
        supports_create_index_with_clause() -> bool;
        supports_sql_option_without_value() -> bool;
        supports_explain_with_utility_options() -> bool;
        supports_listen_notify() -> bool;
        supports_exclude_constraint() -> bool;
        supports_factorial_operator() -> bool;
        supports_bitwise_shift_operators() -> bool;
        supports_tilde_like_match_operator() -> bool;
        supports_comparison_in_between_low_bound() -> bool;
        supports_comment_on() -> bool;
        supports_load_extension() -> bool;
        supports_named_fn_args_with_colon_operator() -> bool;
        supports_named_fn_args_with_expr_name() -> bool;
        supports_named_fn_args_with_assignment_operator() -> bool;
        supports_empty_projections() -> bool;
        supports_nested_comments() -> bool;
        supports_copy_from_stdin_data() -> bool;
        supports_string_escape_constant() -> bool;
        supports_numeric_literal_underscores() -> bool;
        supports_non_decimal_integer_literals() -> bool;
        supports_array_typedef_with_brackets() -> bool;
        supports_geometric_types() -> bool;
        supports_order_by_using_operator() -> bool;
        supports_set_names() -> bool;
        supports_alter_column_type_using() -> bool;
        supports_left_associative_joins_without_parens() -> bool;
        supports_notnull_operator() -> bool;
        supports_interval_options() -> bool;
        is_interval_qualifier(kw: Keyword) -> bool;
        supports_insert_table_alias() -> bool;
        supports_create_table_like_parenthesized() -> bool;
        supports_select_wildcard_with_alias() -> bool;
        supports_comma_separated_trim() -> bool;
        supports_xml_expressions() -> bool;
        is_custom_type_typed_string(first_keyword: Keyword, qualified: bool) -> bool;
        supports_aliased_function_args() -> bool;
        supports_comment_optimizer_hint() -> bool;
        supports_add_column_if_not_exists() -> bool;
        supports_attach_partition_of() -> bool;
        supports_detach_partition_of() -> bool;
        supports_table_inheritance_markers() -> bool;
        supports_column_generic_options() -> bool;
    }
    // END forwarded
}

/// Whether the word (not a keyword) at the parser's position is a plain column or table
/// name: what follows it (or its one qualifier, `r.id`) cannot continue a data type — no
/// `(`, `[`, further `.`, `ARRAY`, `ZEROFILL` or string — so sqlparser's attempt to read a
/// typed string (`mytype 'x'`) fails, and it is not a function call or lambda either:
/// sqlparser's own answer is then `Expr::Identifier` of the word (the qualifier is read
/// by `parse_compound_expr` after this, as before).
fn plain_name(parser: &Parser) -> bool {
    let after = |n: usize| &parser.peek_nth_token_ref(n).token;
    let ends = |t: &Token| match t {
        Token::Word(w) => !matches!(w.keyword, Keyword::ARRAY | Keyword::ZEROFILL),
        Token::Comma
        | Token::RParen
        | Token::RBracket
        | Token::SemiColon
        | Token::EOF
        | Token::Eq
        | Token::Neq
        | Token::Lt
        | Token::Gt
        | Token::LtEq
        | Token::GtEq
        | Token::Plus
        | Token::Minus
        | Token::Mul
        | Token::Div
        | Token::Mod
        | Token::DoubleColon => true,
        _ => false,
    };
    ends(after(1))
        || (*after(1) == Token::Period && matches!(after(2), Token::Word(_)) && ends(after(3)))
}

/// Characters PostgreSQL lets extend an operator (`PostgreSqlDialect::is_custom_operator_part`):
/// after one of the operators below, such a character makes a longer (custom) operator,
/// which this tokenizer leaves to sqlparser's.
fn extends_operator(b: u8) -> bool {
    matches!(
        b,
        b'+' | b'-'
            | b'*'
            | b'/'
            | b'<'
            | b'>'
            | b'='
            | b'~'
            | b'!'
            | b'@'
            | b'#'
            | b'%'
            | b'^'
            | b'&'
            | b'|'
            | b'`'
            | b'?'
    )
}

/// A byte that would continue a word or number (PostgreSQL identifiers: letters, digits,
/// `_`, `$`, and any non-ASCII character).
fn continues_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || !b.is_ascii()
}

/// The keyword an unquoted ASCII word is — `Token::make_word`'s answer (a binary search
/// of `ALL_KEYWORDS`, case-insensitive), from a table built once per VM.
fn keyword(word: &str) -> Keyword {
    static TABLE: OnceLock<HashMap<&'static str, Keyword>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        ALL_KEYWORDS
            .iter()
            .copied()
            .zip(ALL_KEYWORDS_INDEX.iter().copied())
            .collect()
    });
    let mut upper = [0u8; 64];
    match upper.get_mut(..word.len()) {
        Some(buf) => {
            buf.copy_from_slice(word.as_bytes());
            buf.make_ascii_uppercase();
            std::str::from_utf8(buf)
                .ok()
                .and_then(|w| table.get(w))
                .copied()
                .unwrap_or(Keyword::NoKeyword)
        }
        // Longer than any keyword.
        None => Keyword::NoKeyword,
    }
}

/// sqlparser's tokens and spans for PostgreSQL text, when the text stays within the
/// covered lexicon; `None` when sqlparser's tokenizer must do it (see the module).
pub fn tokenize(sql: &str) -> Option<Vec<TokenWithSpan>> {
    let b = sql.as_bytes();
    let at = |i: usize| b.get(i).copied();
    let mut out = Vec::with_capacity(sql.len() / 2 + 8);
    let (mut i, mut at_loc) = (0usize, Location { line: 1, column: 1 });
    while let Some(c) = at(i) {
        // `(token, the byte after it)`.
        let (token, end) = match c {
            b' ' => (Token::Whitespace(Whitespace::Space), i + 1),
            b'\t' => (Token::Whitespace(Whitespace::Tab), i + 1),
            b'\n' => (Token::Whitespace(Whitespace::Newline), i + 1),
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let end = (i..=b.len())
                    .find(|&j| !at(j).is_some_and(continues_word))
                    .unwrap_or(b.len());
                let value = sql.get(i..end)?;
                // A quote or `&` right after a word may make it a prefixed literal
                // (`E'..'`, `B'..'`, `X'..'`, `N'..'`, `U&'..'`); non-ASCII continues it.
                if matches!(at(end), Some(b'\'' | b'"' | b'&')) || !value.is_ascii() {
                    return None;
                }
                let keyword = keyword(value);
                // COPY ... FROM STDIN carries data after its `;` that sqlparser reads raw.
                if keyword == Keyword::COPY {
                    return None;
                }
                let word = Word {
                    value: value.to_string(),
                    quote_style: None,
                    keyword,
                };
                (Token::Word(word), end)
            }
            b'0'..=b'9' => {
                let digits = |from: usize| {
                    (from..=b.len())
                        .find(|&j| !at(j).is_some_and(|d| d.is_ascii_digit()))
                        .unwrap_or(b.len())
                };
                let mut end = digits(i);
                if at(end) == Some(b'.') && at(end + 1).is_some_and(|d| d.is_ascii_digit()) {
                    end = digits(end + 1);
                }
                // Exponents, `_` separators, `0x..`, a trailing `.` or `L`: sqlparser's.
                if at(end).is_some_and(|n| continues_word(n) || matches!(n, b'.' | b'\'' | b'"')) {
                    return None;
                }
                (Token::Number(sql.get(i..end)?.to_string(), false), end)
            }
            b'$' => {
                let end = (i + 1..=b.len())
                    .find(|&j| !at(j).is_some_and(|d| d.is_ascii_digit()))
                    .unwrap_or(b.len());
                // `$1`; not `$$..$$`, `$tag$..$tag$` or `$name`.
                if end == i + 1 || at(end).is_some_and(continues_word) {
                    return None;
                }
                (Token::Placeholder(sql.get(i..end)?.to_string()), end)
            }
            b'.' => match at(i + 1) {
                Some(d) if d.is_ascii_digit() || d == b'_' => return None,
                _ => (Token::Period, i + 1),
            },
            b'(' => (Token::LParen, i + 1),
            b')' => (Token::RParen, i + 1),
            b',' => (Token::Comma, i + 1),
            b';' => (Token::SemiColon, i + 1),
            b'[' => (Token::LBracket, i + 1),
            b']' => (Token::RBracket, i + 1),
            b':' if at(i + 1) == Some(b':') => (Token::DoubleColon, i + 2),
            b'-' if at(i + 1) == Some(b'-') => {
                // A comment runs to the end of the line (PostgreSQL: `\n` or `\r`).
                let end = (i + 2..=b.len())
                    .find(|&j| matches!(at(j), None | Some(b'\n' | b'\r')))
                    .unwrap_or(b.len());
                let comment = Whitespace::SingleLineComment {
                    comment: sql.get(i + 2..end)?.to_string(),
                    prefix: "--".to_string(),
                };
                (Token::Whitespace(comment), end)
            }
            b'\'' | b'"' => {
                // A string or a quoted identifier; a doubled quote stands for one.
                let mut value = String::new();
                let mut j = i + 1;
                loop {
                    let ch = sql.get(j..)?.chars().next()?; // unterminated: sqlparser's error
                    j += ch.len_utf8();
                    if u32::from(ch) == u32::from(c) {
                        if at(j) != Some(c) {
                            break;
                        }
                        j += 1;
                    }
                    value.push(ch);
                }
                let token = if c == b'\'' {
                    Token::SingleQuotedString(value)
                } else {
                    Token::make_word(&value, Some('"'))
                };
                (token, j)
            }
            _ => {
                let (token, len) = match (c, at(i + 1)) {
                    (b'<', Some(b'=')) => (Token::LtEq, 2),
                    (b'<', Some(b'>')) => (Token::Neq, 2),
                    (b'>', Some(b'=')) => (Token::GtEq, 2),
                    (b'!', Some(b'=')) => (Token::Neq, 2),
                    (b'<', _) => (Token::Lt, 1),
                    (b'>', _) => (Token::Gt, 1),
                    (b'=', _) => (Token::Eq, 1),
                    (b'+', _) => (Token::Plus, 1),
                    (b'-', _) => (Token::Minus, 1),
                    (b'*', _) => (Token::Mul, 1),
                    (b'/', _) => (Token::Div, 1),
                    (b'%', _) => (Token::Mod, 1),
                    _ => return None,
                };
                // `<=>`, `->`, `/*`, `||`, `@>`, custom operators …: sqlparser's.
                if at(i + len).is_some_and(extends_operator) {
                    return None;
                }
                (token, i + len)
            }
        };
        // sqlparser's location rule: one column per character, `\n` starts a line.
        let start = at_loc;
        for ch in sql.get(i..end)?.chars() {
            if ch == '\n' {
                at_loc.line += 1;
                at_loc.column = 1;
            } else {
                at_loc.column += 1;
            }
        }
        out.push(TokenWithSpan::new(token, start.span_to(at_loc)));
        i = end;
    }
    Some(out)
}

/// Where a shortcut and sqlparser disagree on `sql`, a description of it (tests and the
/// `sql` fuzz target call this on everything they try).
#[cfg(any(test, fuzzing))]
pub fn disagreement(sql: &str) -> Option<String> {
    use sqlparser::tokenizer::Tokenizer;
    let reference = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location();
    if let Some(fast) = tokenize(sql) {
        match &reference {
            Ok(tokens) if *tokens == fast => {}
            other => return Some(format!("tokens differ: {fast:?} vs {other:?}")),
        }
    }
    let ours = Parser::new(&Postgres::default())
        .with_recursion_limit(64)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements());
    let theirs = Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(64)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements());
    match (ours, theirs) {
        (Ok(a), Ok(b)) if a == b => None,
        (Err(_), Err(_)) => None,
        // One more level is allowed to a literal at the limit (see the module).
        (Ok(_), Err(ParserError::RecursionLimitExceeded)) => None,
        (a, b) => Some(format!("statements differ: {a:?} vs {b:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Statements of the shapes agents send, and the edges of the covered lexicon.
    const CORPUS: &[&str] = &[
        "SELECT 1",
        "select id, customer from reservations where tenant_id = 'acme' order by id limit 50",
        "SELECT r.id, r.customer, v.model FROM reservations r JOIN vehicles v ON v.id = r.vehicle_id WHERE r.tenant_id = $1 AND r.starts_at > now() - interval '30 days' ORDER BY r.id LIMIT 50",
        "INSERT INTO reservations (id, customer, tenant_id, price, paid) VALUES (1, 'O''Brien', 'acme', 42.5, true), (2, 'x', 'acme', 0.25, false) RETURNING id",
        "UPDATE reservations SET status = 'cancelled', updated_at = now() WHERE id = 'r-1001' AND tenant_id = 'acme'",
        "DELETE FROM reservations WHERE id IN (SELECT id FROM reservations WHERE tenant_id <> 'acme')",
        "SELECT \"Weird Name\", \"a\"\"b\" FROM \"Public\".\"T\" WHERE x >= 1 AND y <= 2 AND z != 3",
        "SELECT a::text, b::int[] FROM t WHERE c[1] = 2 -- trailing comment",
        "SELECT 1; SELECT 2;\n-- a comment\nSELECT 'multi\nline', \"id\nent\" FROM t",
        "SELECT 'é ünïcode ☃', \"ñ\" FROM t WHERE a = '' AND b = ''''",
        "SELECT count(*) * 2 + 1 - 3 / 4 % 5 FROM t",
        "select pg_sleep(10)",
        "DROP TABLE reservations",
        "SELECT a FROM t WHERE b = $12 AND c = $1",
        "SELECT -1, - 1, 1.5, .5, 1., 1e5, 1_000, 0x1F, 1L",
        "SELECT E'a\\nb', B'101', X'1F', N'n', U&'d\\0061t', e'x', b'y'",
        "SELECT $$dollar$$, $tag$x$tag$, $name FROM t",
        "SELECT a || b, a -> 'k', a ->> 'k', a @> b, a <=> b, a <-> b, a =- 1, a <+ 1",
        "SELECT /* block */ 1 /* nested /* comment */ */",
        "COPY t FROM STDIN; 1\t2\n\\.\n",
        "copy t to stdout",
        "SELECT a FROM t WHERE b = :name AND c := 1",
        "SELECT 'unterminated",
        "SELECT \"unterminated",
        "SELECT a\r\nFROM t",
        "SELECT t._x, t.1, x._",
        "SELECT a$b, _x, x1y2 FROM t",
        "SELECT ?, ?1 FROM t",
        "SELECT a FROM t WHERE a ~ 'x' AND b !~ 'y' AND c ~~ 'z'",
        "SELECT 1 # 2, 3 ^ 4, 5 & 6, 7 | 8, ~9",
        "SELECT a FROM t WHERE b IS NOT NULL AND c NOTNULL",
        "SELECT DATE '2020-01-01', TIMESTAMP WITH TIME ZONE '2020-05-20 7:43:54', INTERVAL '7' DAY",
        "SELECT 'a' 'b', 'c'\n'd'",
        "SELECT 'a' COLLATE \"C\", 1::numeric(10, 2)",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "",
        "   \t\n ",
        "-- only a comment",
        "SELECT\u{a0}1",
        "SELECT 1 FROM t WHERE a = -- comment\n 2",
    ];

    #[test]
    fn agrees_with_sqlparser_on_the_corpus_and_covers_its_common_part() {
        let mut fast = 0;
        for sql in CORPUS {
            if let Some(d) = disagreement(sql) {
                panic!("{sql:?}: {d}");
            }
            fast += usize::from(tokenize(sql).is_some());
        }
        // The first fourteen are statements agents send: each takes the fast tokenizer.
        for sql in CORPUS.iter().take(14) {
            assert!(tokenize(sql).is_some(), "not covered: {sql:?}");
        }
        assert!(fast >= 20, "{fast} of {} covered", CORPUS.len());
    }

    #[test]
    fn keywords_are_make_words_keywords() {
        let longest = ALL_KEYWORDS.iter().map(|k| k.len()).max().unwrap_or(0);
        assert!(
            longest <= 64,
            "a keyword of {longest} bytes: grow `keyword`'s buffer"
        );
        let lower: Vec<String> = ALL_KEYWORDS
            .iter()
            .map(|k| k.to_ascii_lowercase())
            .collect();
        let mixed: Vec<String> = ALL_KEYWORDS
            .iter()
            .map(|k| {
                k.chars()
                    .enumerate()
                    .map(|(i, c)| {
                        if i % 2 == 0 {
                            c.to_ascii_lowercase()
                        } else {
                            c
                        }
                    })
                    .collect()
            })
            .collect();
        let others = [
            "id",
            "customer",
            "tenant_id",
            "x1",
            "_",
            "selectx",
            "a$b",
            &"k".repeat(40),
        ];
        let words = ALL_KEYWORDS
            .iter()
            .copied()
            .chain(lower.iter().map(String::as_str))
            .chain(mixed.iter().map(String::as_str))
            .chain(others);
        for w in words {
            let Token::Word(reference) = Token::make_word(w, None) else {
                panic!("{w}")
            };
            assert_eq!(keyword(w), reference.keyword, "{w}");
        }
        assert_eq!(keyword("select"), Keyword::SELECT);
    }

    #[test]
    fn leaves_what_it_does_not_cover_to_sqlparser() {
        for sql in [
            "SELECT E'a'",
            "SELECT $$x$$",
            "SELECT 1e5",
            "SELECT 0x1F",
            "SELECT a || b",
            "SELECT /* c */ 1",
            "COPY t FROM STDIN",
            "SELECT 'unterminated",
            "SELECT a\r\nFROM t",
            "SELECT :name",
            "SELECT é",
            "SELECT a =- 1",
        ] {
            assert_eq!(tokenize(sql), None, "{sql:?}");
        }
    }

    #[test]
    fn spans_follow_lines_and_characters() {
        let tokens = tokenize("SELECT 'ü\nx', \"é\" -- c\n1").unwrap_or_default();
        let spans: Vec<_> = tokens
            .iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(Whitespace::Space)))
            .map(|t| {
                (
                    t.span.start.line,
                    t.span.start.column,
                    t.span.end.line,
                    t.span.end.column,
                )
            })
            .collect();
        assert_eq!(
            spans,
            [
                (1, 1, 1, 7),
                (1, 8, 2, 3),
                (2, 3, 2, 4),
                (2, 5, 2, 8),
                (2, 9, 2, 13),
                (2, 13, 3, 1),
                (3, 1, 3, 2)
            ]
        );
    }

    /// Random text over an alphabet rich in the lexicon's edges: wherever the fast
    /// tokenizer answers, it must answer what sqlparser does (and the parse must agree).
    #[test]
    fn agrees_with_sqlparser_on_random_text() {
        const PIECES: &[&str] = &[
            " ", "\n", "\t", "\r", "a", "B", "e", "x", "u", "n", "_", "$", "1", "0", ".", "'",
            "\"", "-", "--", "/", "*", "<", ">", "=", "!", ":", ";", "(", ")", ",", "[", "]", "é",
            "&", "|", "%", "@", "#", "?", "~", "^", "select ", " from ", "where ", "copy ", "L",
            "in ", "$1", "''", "\"\"", "5.5", "::", "ü",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut covered = 0;
        for _ in 0..20_000 {
            let len = next() % 24;
            let text: String = (0..len)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect();
            if let Some(d) = disagreement(&text) {
                panic!("{text:?}: {d}");
            }
            covered += usize::from(tokenize(&text).is_some());
        }
        assert!(
            covered > 1_000,
            "only {covered} random texts took the fast path"
        );
    }

    /// Random statements that parse, built from the pieces agents use: the fast paths
    /// must give sqlparser's statements for each.
    #[test]
    fn agrees_with_sqlparser_on_random_statements() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        fn expr(next: &mut impl FnMut(usize) -> usize, depth: usize) -> String {
            const LEAVES: &[&str] = &[
                "1",
                "42",
                "3.25",
                "0",
                "'acme'",
                "'O''Brien'",
                "'ü ☃'",
                "''",
                "'a\nb'",
                "$1",
                "$12",
                "id",
                "r.id",
                "\"Tenant\"",
                "\"a\"\"b\"",
                "now()",
                "count(*)",
                "true",
                "null",
                "DATE '2020-01-01'",
                "interval '7 days'",
                "-5",
                "'x'::text",
                "a.b.c",
                "mytype 'x'",
                "s.mytype 'x'",
                "r.id 'x'",
                "\"Q\" 'x'",
                "arr[1]",
                "t.arr[2]",
                "f(id)",
                "s.f(id)",
                "name",
                "status",
                "t.name",
                "x.*",
                "int4 '1'",
                "x ARRAY",
                "b.c::int[]",
                "_x 'y'",
                "id IS NULL",
                "id NOT IN (1, 2)",
                "x BETWEEN 1 AND 2",
            ];
            const OPS: &[&str] = &[
                "=", "<>", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "AND", "OR",
            ];
            match (depth, next(5)) {
                (0, _) | (_, 0 | 1) => LEAVES[next(LEAVES.len())].to_string(),
                (_, 2) => format!(
                    "({} {} {})",
                    expr(next, depth - 1),
                    OPS[next(OPS.len())],
                    expr(next, depth - 1)
                ),
                (_, 3) => format!(
                    "{} IN ({}, {})",
                    expr(next, 0),
                    expr(next, depth - 1),
                    expr(next, 0)
                ),
                _ => format!("coalesce({}, {})", expr(next, depth - 1), expr(next, 0)),
            }
        }
        let mut parsed = 0;
        for _ in 0..3_000 {
            let (a, b, c) = (expr(&mut next, 3), expr(&mut next, 3), expr(&mut next, 2));
            let sql = match next(4) {
                0 => format!("SELECT {a}, {b} FROM t WHERE {c} ORDER BY 1 LIMIT 5"),
                1 => format!("INSERT INTO s.t (x, y) VALUES ({a}, {b}), ({c}, 1) RETURNING id"),
                2 => format!("UPDATE t SET x = {a}, y = {b} WHERE {c}"),
                _ => format!("DELETE FROM t WHERE {a} = {b} -- {c}\n;SELECT {c}"),
            };
            if let Some(d) = disagreement(&sql) {
                panic!("{sql:?}: {d}");
            }
            parsed += usize::from(Parser::parse_sql(&Postgres::default(), &sql).is_ok());
        }
        assert!(parsed > 1_500, "only {parsed} of 3000 parsed");
    }

    #[test]
    fn literals_parse_as_sqlparser_parses_them() {
        for sql in [
            "SELECT 1, 'a', $1, -2, 'x'::text, 'c' COLLATE \"C\"",
            "SELECT * FROM t WHERE id IN ('r-1', 'r-2', 3, $2) AND d = DATE '2020-01-01'",
            "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
            "SELECT INTERVAL '1' DAY, 1 + 2 * 3",
        ] {
            assert_eq!(disagreement(sql), None, "{sql}");
            let ours = Parser::parse_sql(&Postgres::default(), sql);
            assert!(ours.is_ok(), "{sql}: {ours:?}");
        }
    }
}
