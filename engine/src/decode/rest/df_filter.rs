//! DreamFactory's `filter=` grammar: a strict SQL-like expression parsed into `Expr`.

use super::*;
use crate::request::{ambiguous, over_limit, unmodelled};

/// DreamFactory's SQL-like `filter=` grammar, strictly:
/// `expr := and (OR and)*`, `and := unary (AND unary)*`, `unary := NOT unary | (expr) | cmp`,
/// `cmp := column op value | column [NOT] IN (values) | column IS [NOT] NULL |
///         column [NOT] LIKE value | column CONTAINS|STARTS WITH|ENDS WITH value |
///         column BETWEEN value AND value`; values are quoted strings, numbers,
/// `true`, `false` or `null`. A column compared with a column, or a literal on the left,
/// is rejected (that is how `1=1` tautologies are written).
pub fn parse_df_filter(s: &str) -> Result<Expr, DecodeError> {
    let tokens = tokenize(s)?;
    let mut p = Parser { tokens, pos: 0 };
    let e = p.or()?;
    if p.pos != p.tokens.len() {
        return undecodable("trailing text in `filter`");
    }
    Ok(e)
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Word(String),
    Str(String),
    Num(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

pub(super) fn tokenize(s: &str) -> Result<Vec<Tok>, DecodeError> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '\'' | '"' => {
                let quote = c;
                let mut v = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return undecodable("unterminated string in `filter`"),
                        Some(&q) if q == quote => {
                            if chars.get(i + 1) == Some(&quote) {
                                v.push(quote);
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        Some('\\') => {
                            return ambiguous("backslash escapes in `filter` are ambiguous")
                        }
                        Some(&ch) => {
                            v.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(v));
            }
            '=' | '!' | '<' | '>' | '&' | '|' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('!', Some('=')) => ("!=", 2),
                    ('<', Some('>')) => ("!=", 2),
                    ('<', Some('=')) => ("<=", 2),
                    ('>', Some('=')) => (">=", 2),
                    ('&', Some('&')) => ("AND", 2),
                    ('|', Some('|')) => ("OR", 2),
                    ('=', _) => ("=", 1),
                    ('<', _) => ("<", 1),
                    ('>', _) => (">", 1),
                    _ => return undecodable(format!("unexpected `{c}` in `filter`")),
                };
                out.push(if op == "AND" || op == "OR" {
                    Tok::Word(op.to_string())
                } else {
                    Tok::Op(op)
                });
                i += len;
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let start = i;
                i += 1;
                while chars
                    .get(i)
                    .is_some_and(|d| d.is_ascii_digit() || *d == '.')
                {
                    i += 1;
                }
                let n: String = chars.get(start..i).unwrap_or_default().iter().collect();
                if n.parse::<f64>().is_err() || n.starts_with('+') {
                    return undecodable(format!("bad number `{n}` in `filter`"));
                }
                out.push(Tok::Num(n));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_' || *d == '.')
                {
                    i += 1;
                }
                out.push(Tok::Word(
                    chars.get(start..i).unwrap_or_default().iter().collect(),
                ));
            }
            other => return undecodable(format!("unexpected `{other}` in `filter`")),
        }
    }
    Ok(out)
}

pub(super) struct Parser {
    pub(super) tokens: Vec<Tok>,
    pub(super) pos: usize,
}

pub(super) const MAX_FILTER_DEPTH: usize = 32;

impl Parser {
    pub(super) fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }
    pub(super) fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    pub(super) fn keyword(&mut self, kw: &str) -> bool {
        match self.peek() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }
    pub(super) fn depth_check(&self, depth: usize) -> Result<(), DecodeError> {
        if depth > MAX_FILTER_DEPTH {
            return over_limit("`filter` nests too deeply");
        }
        Ok(())
    }
    pub(super) fn or(&mut self) -> Result<Expr, DecodeError> {
        self.or_at(0)
    }
    pub(super) fn or_at(&mut self, depth: usize) -> Result<Expr, DecodeError> {
        self.depth_check(depth)?;
        let mut parts = vec![self.and_at(depth)?];
        while self.keyword("OR") {
            parts.push(self.and_at(depth)?);
        }
        Ok(one_or(parts, Expr::Or))
    }
    pub(super) fn and_at(&mut self, depth: usize) -> Result<Expr, DecodeError> {
        let mut parts = vec![self.unary(depth)?];
        while self.keyword("AND") {
            parts.push(self.unary(depth)?);
        }
        Ok(one_or(parts, Expr::And))
    }
    pub(super) fn unary(&mut self, depth: usize) -> Result<Expr, DecodeError> {
        self.depth_check(depth)?;
        if self.keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.unary(depth + 1)?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.or_at(depth + 1)?;
            if self.next() != Some(Tok::RParen) {
                return undecodable("unbalanced parentheses in `filter`");
            }
            return Ok(e);
        }
        self.comparison()
    }
    pub(super) fn value(&mut self) -> Result<String, DecodeError> {
        match self.next() {
            Some(Tok::Str(s)) | Some(Tok::Num(s)) => Ok(s),
            Some(Tok::Word(w))
                if ["true", "false", "null"].contains(&w.to_ascii_lowercase().as_str()) =>
            {
                Ok(w.to_ascii_lowercase())
            }
            Some(Tok::Word(w)) => undecodable(format!(
                "`{w}` is not a literal: `filter` compares columns with literal values only"
            )),
            _ => undecodable("`filter` expects a literal value"),
        }
    }
    pub(super) fn values_list(&mut self) -> Result<Vec<String>, DecodeError> {
        if self.next() != Some(Tok::LParen) {
            return undecodable("IN expects a parenthesised list");
        }
        let mut v = vec![self.value()?];
        loop {
            match self.next() {
                Some(Tok::Comma) => v.push(self.value()?),
                Some(Tok::RParen) => return Ok(v),
                _ => return undecodable("bad IN list in `filter`"),
            }
        }
    }
    pub(super) fn comparison(&mut self) -> Result<Expr, DecodeError> {
        let column = match self.next() {
            Some(Tok::Word(w)) if !is_keyword(&w) => w,
            _ => return undecodable("`filter` terms start with a column name"),
        };
        if let Some(Tok::Op(op)) = self.peek().cloned() {
            self.pos += 1;
            let v = self.value()?;
            let cmp = match op {
                "=" if v == "null" => Cmp::Bounding,
                "=" => Cmp::Eq,
                "!=" => Cmp::NotEq,
                _ => Cmp::Bounding,
            };
            return Ok(Expr::term(column, cmp, vec![v]));
        }
        let word_op = |p: &mut Parser, w: &str| p.keyword(w);
        if word_op(self, "eq") {
            let v = self.value()?;
            return Ok(Expr::term(column, Cmp::Eq, vec![v]));
        }
        if word_op(self, "ne") {
            self.value()?;
            return Ok(Expr::term(column, Cmp::NotEq, vec![]));
        }
        for w in ["gt", "ge", "lt", "le", "gte", "lte"] {
            if word_op(self, w) {
                self.value()?;
                return Ok(Expr::term(column, Cmp::Bounding, vec![]));
            }
        }
        if self.keyword("IS") {
            let negated = self.keyword("NOT");
            if !self.keyword("NULL") {
                return undecodable("IS expects NULL");
            }
            let t = Expr::term(column, Cmp::Bounding, vec![]);
            return Ok(if negated { Expr::Not(Box::new(t)) } else { t });
        }
        if self.keyword("BETWEEN") {
            self.value()?;
            if !self.keyword("AND") {
                return undecodable("BETWEEN expects AND");
            }
            self.value()?;
            return Ok(Expr::term(column, Cmp::Bounding, vec![]));
        }
        let negated = self.keyword("NOT");
        let t = if self.keyword("IN") {
            Expr::term(column, Cmp::Eq, self.values_list()?)
        } else if self.keyword("LIKE") {
            let pattern = self.value()?;
            Expr::term(column, like_cmp(&pattern, &['%', '_']), vec![])
        } else if !negated && self.keyword("CONTAINS") {
            let v = self.value()?;
            let cmp = if v.is_empty() {
                Cmp::Wildcard
            } else {
                Cmp::Bounding
            };
            Expr::term(column, cmp, vec![])
        } else if !negated && (self.keyword("STARTS") || self.keyword("ENDS")) {
            if !self.keyword("WITH") {
                return undecodable("STARTS/ENDS expects WITH");
            }
            let v = self.value()?;
            let cmp = if v.is_empty() {
                Cmp::Wildcard
            } else {
                Cmp::Bounding
            };
            Expr::term(column, cmp, vec![])
        } else {
            return unmodelled(format!("unknown comparison after `{column}` in `filter`"));
        };
        Ok(if negated { Expr::Not(Box::new(t)) } else { t })
    }
}

/// A single operand as itself, several joined by `wrap`.
pub(super) fn one_or(mut parts: Vec<Expr>, wrap: fn(Vec<Expr>) -> Expr) -> Expr {
    match parts.len() {
        1 => parts.pop().unwrap_or_else(|| wrap(Vec::new())),
        _ => wrap(parts),
    }
}

pub(super) fn is_keyword(w: &str) -> bool {
    [
        "and", "or", "not", "in", "is", "null", "like", "true", "false",
    ]
    .contains(&w.to_ascii_lowercase().as_str())
}

/// `like`-style patterns made only of wildcards match every row.
pub(super) fn like_cmp(pattern: &str, wildcards: &[char]) -> Cmp {
    if pattern.chars().all(|c| wildcards.contains(&c)) {
        Cmp::Wildcard
    } else {
        Cmp::Bounding
    }
}
