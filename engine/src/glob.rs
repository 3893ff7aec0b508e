//! Resource and host patterns: `*` matches any run of characters (including none),
//! `?` exactly one character; everything else matches itself, case-sensitively (grants:
//! a grant names exactly what it allows) or, for guards, whatever the case (`Glob::folded`).

/// A compiled glob. Patterns without metacharacters compare by equality; the common
/// shapes (`p*`, `*s`, `*x*`) by one prefix, suffix or substring test; the rest by
/// wildcard matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Glob {
    Any,
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Pattern(Vec<char>),
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        if pattern.chars().all(|c| c == '*') && !pattern.is_empty() {
            return Glob::Any;
        }
        if !pattern.contains(['*', '?']) {
            return Glob::Exact(pattern.to_string());
        }
        let literal = |s: &str| !s.is_empty() && !s.contains(['*', '?']);
        if let Some(inner) = pattern
            .strip_prefix('*')
            .and_then(|p| p.strip_suffix('*'))
            .filter(|i| literal(i))
        {
            return Glob::Contains(inner.to_string());
        }
        if let Some(suffix) = pattern.strip_prefix('*').filter(|s| literal(s)) {
            return Glob::Suffix(suffix.to_string());
        }
        if let Some(prefix) = pattern.strip_suffix('*').filter(|p| literal(p)) {
            return Glob::Prefix(prefix.to_string());
        }
        Glob::Pattern(pattern.chars().collect())
    }

    pub fn matches(&self, text: &str) -> bool {
        match self {
            Glob::Any => true,
            Glob::Exact(s) => s == text,
            Glob::Prefix(p) => text.starts_with(p.as_str()),
            Glob::Suffix(s) => text.ends_with(s.as_str()),
            Glob::Contains(x) => text.contains(x.as_str()),
            Glob::Pattern(p) => wildcard_match(p, text),
        }
    }

    /// A pattern that matches whatever the case (guards: the deny side of a bundle, where
    /// `*backup*` must catch `volumeInstanceBackupDelete`). Match with `matches_folded`.
    pub fn folded(pattern: &str) -> Self {
        Glob::new(&pattern.to_lowercase())
    }

    /// Matching for a `folded` pattern: the text is compared in lower case — an ASCII
    /// text byte by byte without a copy (the pattern is lower case already, so comparing
    /// ASCII case-insensitively is exact), any other text through `to_lowercase`.
    pub fn matches_folded(&self, text: &str) -> bool {
        if !text.is_ascii() {
            return self.matches(&text.to_lowercase());
        }
        let t = text.as_bytes();
        let eq = |a: &[u8], b: &[u8]| a.eq_ignore_ascii_case(b);
        match self {
            Glob::Any => true,
            Glob::Exact(s) => s.len() == t.len() && eq(s.as_bytes(), t),
            Glob::Prefix(p) => t.get(..p.len()).is_some_and(|h| eq(p.as_bytes(), h)),
            Glob::Suffix(s) => t
                .len()
                .checked_sub(s.len())
                .and_then(|at| t.get(at..))
                .is_some_and(|tail| eq(s.as_bytes(), tail)),
            Glob::Contains(x) => {
                let x = x.as_bytes();
                x.len() <= t.len() && t.windows(x.len()).any(|w| eq(x, w))
            }
            Glob::Pattern(_) if t.iter().any(u8::is_ascii_uppercase) => {
                self.matches(&text.to_ascii_lowercase())
            }
            Glob::Pattern(_) => self.matches(text),
        }
    }

    /// True when the pattern can match more than one string.
    pub fn is_wildcard(&self) -> bool {
        !matches!(self, Glob::Exact(_))
    }
}

/// Iterative wildcard matching with single-star backtracking: O(|p|·|t|) worst case,
/// no recursion, no allocation (the text is walked by byte offsets).
fn wildcard_match(p: &[char], text: &str) -> bool {
    let at = |ti: usize| text.get(ti..).and_then(|rest| rest.chars().next());
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while let Some(tc) = at(ti) {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some('?') => {
                pi += 1;
                ti += tc.len_utf8();
            }
            Some(pc) if *pc == tc => {
                pi += 1;
                ti += tc.len_utf8();
            }
            _ => match star {
                Some((sp, st)) => {
                    // The star takes one more character of the text.
                    let next = st + at(st).map_or(1, char::len_utf8);
                    pi = sp + 1;
                    ti = next;
                    star = Some((sp, next));
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
            ("*é", "café", true),
            ("c?fé", "café", true),
            ("c*é*", "crème brûlée", true),
            ("?", "é", true),
            ("??", "é", false),
            ("*a?", "bab", true),
            ("*.password", "me.password", true),
            ("*.password", "password", false),
            ("*Nuke", "orderNuke", true),
            ("", "", true),
            ("", "x", false),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(Glob::new(pattern).matches(text), want, "{pattern} ~ {text}");
            // The shapes agree with plain wildcard matching.
            let chars: Vec<char> = pattern.chars().collect();
            assert_eq!(
                wildcard_match(&chars, text),
                want,
                "wildcard {pattern} ~ {text}"
            );
        }
    }

    #[test]
    fn folded_matching_equals_lower_casing_the_text() {
        let patterns = [
            "*backup*",
            "backup*",
            "*backup",
            "volumeDelete",
            "*.password",
            "v?lume*x",
            "*",
            "a*b*c",
            "*ÉTÉ*",
            "straße*",
        ];
        let texts = [
            "volumeInstanceBackupDelete",
            "BACKUP",
            "backupNow",
            "dbBackup",
            "VolumeDelete",
            "me.PASSWORD",
            "user.password",
            "VOLUMExx",
            "vOlumeAx",
            "AxxBxxC",
            "été",
            "ÉTÉ",
            "STRASSE",
            "Straße",
            "",
            "x",
        ];
        for p in patterns {
            let g = Glob::folded(p);
            for t in texts {
                assert_eq!(
                    g.matches_folded(t),
                    g.matches(&t.to_lowercase()),
                    "{p} ~ {t}"
                );
            }
        }
    }
}
