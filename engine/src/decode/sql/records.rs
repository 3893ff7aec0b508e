//! Record proofs: how names bind to the table a proof is about (`TargetCtx`), the
//! records a `WHERE` or an `INSERT … VALUES` proves, the post-image a write assigns, and
//! which literals keep their value.

use super::*;
use crate::request::ambiguous;

/// How the columns of one query level bind to the table a proof is about (the target of
/// an UPDATE/DELETE, or the only table of a SELECT), as PostgreSQL binds names.
pub(super) struct TargetCtx {
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

impl Collector<'_> {
    /// Records an `INSERT … VALUES` proves: for each listed column, the literal values
    /// of every row (a column with any non-literal value proves nothing).
    pub(super) fn values_records(&self, ins: &Insert) -> Records {
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
    pub(super) fn dml_target<'a>(
        &self,
        t: &'a TableWithJoins,
        others: &[TableWithJoins],
    ) -> Result<(&'a ObjectName, TargetCtx), DecodeError> {
        if !t.joins.is_empty() {
            return ambiguous("UPDATE/DELETE over a join: which table changes is ambiguous");
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
    pub(super) fn post_image(
        &self,
        assignments: &[Assignment],
        excluded: Option<&Records>,
    ) -> Sets {
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
    pub(super) fn where_proof(
        &self,
        selection: Option<&Expr>,
        ctx: &TargetCtx,
    ) -> (Scope, Records) {
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
    pub(super) fn select_records(&mut self, s: &Select, outer: bool) {
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
