//! Problems found while compiling a bundle, each with its JSON path; every section adds
//! to one list, so a bundle's problems are all reported at once.

use super::*;

/// The bundle's problems (`bundle::Problems`), with the checks every section shares.
pub(super) type Errs = crate::bundle::Problems;

impl Errs {
    pub(super) fn globs(&mut self, at: &str, patterns: &[String]) -> Vec<Glob> {
        if patterns.is_empty() {
            self.push(at, "must not be empty");
        }
        for (i, p) in patterns.iter().enumerate() {
            if p.is_empty() {
                self.push(format!("{at}[{i}]"), "empty pattern");
            }
        }
        patterns.iter().map(|p| Glob::new(p)).collect()
    }

    pub(super) fn actions(&mut self, at: &str, words: &[String]) -> ActionSet {
        let mut set = ActionSet::default();
        if words.is_empty() {
            self.push(at, "must not be empty");
        }
        for (i, w) in words.iter().enumerate() {
            if !set.add_word(w) {
                self.push(
                    format!("{at}[{i}]"),
                    format!("unknown action `{w}` (read create update delete drop alter admin execute destructive *)"),
                );
            }
        }
        set
    }

    pub(super) fn methods(&mut self, at: &str, methods: &[String]) {
        if methods.is_empty() {
            self.push(at, "must not be empty");
        }
        for (i, m) in methods.iter().enumerate() {
            if !is_method(m) {
                self.push(
                    format!("{at}[{i}]"),
                    format!("`{m}` is not an upper-case HTTP method"),
                );
            }
        }
    }
}
