//! Row filters, whatever the syntax they arrived in: what they prove about the rows a
//! request can touch. Shared by every decoder that reads a filter (DreamFactory
//! `filter=`, PostgREST query filters and logic trees; SQL `WHERE` later).

use crate::operation::Records;

/// Comparison kinds that matter for proofs. Everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `col = v` / `col IN (…)`: proves the values of `col`.
    Eq,
    /// `<>`, `IS DISTINCT FROM`: true for nearly every row, so bounds nothing.
    NotEq,
    /// Ranges, `IS NULL`, full-text, containment: bounds the rows without proving keys.
    Bounding,
    /// A pattern made only of wildcards (`LIKE '%'`): matches every non-null row.
    Wildcard,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Term {
        column: String,
        cmp: Cmp,
        values: Vec<String>,
    },
}

impl Expr {
    pub fn term(column: impl Into<String>, cmp: Cmp, values: Vec<String>) -> Expr {
        Expr::Term {
            column: column.into(),
            cmp,
            values,
        }
    }

    /// Whether the filter bounds the rows it selects to proven record keys: some
    /// conjunct is an equality or `IN` on a column (`Expr::records` is not empty). Ranges,
    /// `<>`, patterns, tautologies (`id > 0`, `x = x`) and disjunctions whose branches do
    /// not all prove the same column select an unknown share of the rows, possibly all of
    /// them: `scope: all`, never `some`.
    pub fn bounded(&self) -> bool {
        crate::operation::proves_rows(&self.records())
    }

    /// Record keys the filter proves: `col = v` and `col IN (…)` in a conjunction
    /// (intersected when a column repeats), unioned across a disjunction only for
    /// columns every branch proves.
    pub fn records(&self) -> Records {
        match self {
            Expr::Term {
                column,
                cmp: Cmp::Eq,
                values,
            } => {
                let mut r = Records::new();
                r.insert(column.clone(), normalise(values.clone()));
                r
            }
            Expr::Term { .. } | Expr::Not(_) => Records::new(),
            Expr::And(parts) => {
                let mut acc = Records::new();
                for part in parts {
                    for (col, vals) in part.records() {
                        match acc.get_mut(&col) {
                            Some(existing) => existing.retain(|v| vals.contains(v)),
                            None => {
                                acc.insert(col, vals);
                            }
                        }
                    }
                }
                // Disjoint texts are not disjoint values (`id = 1 AND id = 1.0`, `'01'`
                // and `1`): a column whose proofs share no text proves nothing.
                acc.retain(|_, vals| !vals.is_empty());
                acc
            }
            Expr::Or(parts) => {
                let mut it = parts.iter().map(Expr::records);
                let Some(mut acc) = it.next() else {
                    return Records::new();
                };
                for r in it {
                    acc.retain(|col, _| r.contains_key(col));
                    for (col, vals) in r {
                        if let Some(existing) = acc.get_mut(&col) {
                            existing.extend(vals);
                            *existing = normalise(std::mem::take(existing));
                        }
                    }
                }
                acc
            }
        }
    }
}

fn normalise(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eq(c: &str, v: &[&str]) -> Expr {
        Expr::term(c, Cmp::Eq, v.iter().map(|s| s.to_string()).collect())
    }
    fn other(c: &str, cmp: Cmp) -> Expr {
        Expr::term(c, cmp, vec![])
    }

    #[test]
    fn proofs() {
        let r = |pairs: &[(&str, &[&str])]| -> Records {
            pairs
                .iter()
                .map(|(c, v)| (c.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect()
        };
        let cases: Vec<(Expr, bool, Records)> = vec![
            (eq("id", &["2", "1", "1"]), true, r(&[("id", &["1", "2"])])),
            (other("id", Cmp::NotEq), false, r(&[])),
            (other("name", Cmp::Wildcard), false, r(&[])),
            (other("ts", Cmp::Bounding), false, r(&[])),
            (
                Expr::And(vec![eq("tenant", &["acme"]), other("ts", Cmp::Bounding)]),
                true,
                r(&[("tenant", &["acme"])]),
            ),
            (
                Expr::And(vec![eq("id", &["1", "2"]), eq("id", &["2", "3"])]),
                true,
                r(&[("id", &["2"])]),
            ),
            (
                Expr::And(vec![eq("id", &["1"]), eq("id", &["1.0"])]),
                false,
                r(&[]),
            ),
            (
                Expr::Or(vec![eq("id", &["1"]), eq("id", &["2"])]),
                true,
                r(&[("id", &["1", "2"])]),
            ),
            (
                Expr::Or(vec![eq("id", &["1"]), eq("tenant", &["acme"])]),
                false,
                r(&[]),
            ),
            (
                Expr::Or(vec![eq("id", &["1"]), other("x", Cmp::NotEq)]),
                false,
                r(&[]),
            ),
            (Expr::Not(Box::new(eq("id", &["1"]))), false, r(&[])),
            (Expr::And(vec![]), false, r(&[])),
            (Expr::Or(vec![]), false, r(&[])),
        ];
        for (expr, bounded, records) in cases {
            assert_eq!(expr.bounded(), bounded, "{expr:?}");
            assert_eq!(expr.records(), records, "{expr:?}");
        }
    }
}
