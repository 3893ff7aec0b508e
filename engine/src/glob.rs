//! Resource and host patterns: `*` matches any run of characters (including none),
//! `?` exactly one character; everything else matches itself, case-sensitively (grants:
//! a grant names exactly what it allows) or, for guards, whatever the case (`Glob::folded`).

/// A compiled glob. Patterns without metacharacters compare by equality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Glob {
    Any,
    Exact(String),
    Pattern(Vec<char>),
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        if pattern == "*" {
            Glob::Any
        } else if pattern.contains(['*', '?']) {
            Glob::Pattern(pattern.chars().collect())
        } else {
            Glob::Exact(pattern.to_string())
        }
    }

    pub fn matches(&self, text: &str) -> bool {
        match self {
            Glob::Any => true,
            Glob::Exact(s) => s == text,
            Glob::Pattern(p) => wildcard_match(p, text),
        }
    }

    /// A pattern that matches whatever the case (guards: the deny side of a bundle, where
    /// `*backup*` must catch `volumeInstanceBackupDelete`). Match with `matches_folded`.
    pub fn folded(pattern: &str) -> Self {
        Glob::new(&pattern.to_lowercase())
    }

    /// Matching for a `folded` pattern: the text is compared in lower case.
    pub fn matches_folded(&self, text: &str) -> bool {
        if text.chars().any(char::is_uppercase) {
            self.matches(&text.to_lowercase())
        } else {
            self.matches(text)
        }
    }

    /// True when the pattern can match more than one string.
    pub fn is_wildcard(&self) -> bool {
        !matches!(self, Glob::Exact(_))
    }
}

/// Iterative wildcard matching with single-star backtracking: O(|p|·|t|) worst case,
/// no recursion, no allocation beyond the text's chars.
fn wildcard_match(p: &[char], text: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match (p.get(pi), t.get(ti)) {
            (Some('*'), _) => {
                star = Some((pi, ti));
                pi += 1;
            }
            (Some('?'), Some(_)) => {
                pi += 1;
                ti += 1;
            }
            (Some(pc), Some(tc)) if pc == tc => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|c| *c == '*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        let cases = [
            ("*", "anything", true),
            ("*", "", true),
            ("customDomain*", "customDomainCreate", true),
            ("customDomain*", "customDomain", true),
            ("customDomain*", "CustomDomainCreate", false),
            ("customDomain*", "xcustomDomainCreate", false),
            ("*backup*", "volumeBackupDelete", false),
            ("*backup*", "db_backup_2024", true),
            ("*Backup*", "volumeBackupDelete", true),
            ("volume*", "volumeDelete", true),
            ("volume*", "volum", false),
            ("v?lume", "volume", true),
            ("v?lume", "vlume", false),
            ("public.reservations", "public.reservations", true),
            ("public.reservations", "public.reservationsx", false),
            ("public.*", "public.reservations", true),
            ("public.*", "private.reservations", false),
            ("*.example.com", "api.example.com", true),
            ("*.example.com", "example.com", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("**", "x", true),
            ("é*", "éclair", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(Glob::new(pattern).matches(text), want, "{pattern} ~ {text}");
        }
    }
}
