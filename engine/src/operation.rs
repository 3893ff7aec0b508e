//! The common language of every decoder: what a request does, to what.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// What an operation does. `destructive` (in bundles) is shorthand for
/// `delete drop alter admin execute` plus any operation with `scope: all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Read,
    Create,
    Update,
    Delete,
    Drop,
    Alter,
    Admin,
    Execute,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Action::Read,
        Action::Create,
        Action::Update,
        Action::Delete,
        Action::Drop,
        Action::Alter,
        Action::Admin,
        Action::Execute,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Drop => "drop",
            Action::Alter => "alter",
            Action::Admin => "admin",
            Action::Execute => "execute",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Destructive by kind (an operation with `scope: all` is destructive whatever its kind).
    pub fn is_destructive(self) -> bool {
        matches!(
            self,
            Action::Delete | Action::Drop | Action::Alter | Action::Admin | Action::Execute
        )
    }

    /// Actions that change rows, for which an unbounded scope matters.
    pub fn writes_rows(self) -> bool {
        matches!(self, Action::Update | Action::Delete)
    }

    pub(crate) fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Some,
    All,
}

/// Record keys a decoder proved: column/argument name -> the only values it can touch.
pub type Records = BTreeMap<String, Vec<String>>;

/// Whether proven records bound the rows an operation touches: some key has values
/// (`scope: some` needs it; a range or pattern proves none).
pub fn proves_rows(records: &Records) -> bool {
    records.values().any(|v| !v.is_empty())
}

/// The scope of an upsert's update: the rows hit are those whose conflict keys equal a
/// proposed row's, so it is bounded only when every conflict key's values were read.
pub fn upsert_scope(keys: &[String], records: &Records) -> Scope {
    if !keys.is_empty() && keys.iter().all(|k| records.contains_key(k)) {
        Scope::Some
    } else {
        Scope::All
    }
}

/// The post-image of a write: each column (or field) it assigns -> the values it can
/// assign (`Some`: literals the decoder read) or `None` (a value the decoder cannot know:
/// another column, a subquery, a function, `DEFAULT`). A grant with `records` on a
/// column is satisfied only when every value assigned to it is one it allows.
pub type Sets = BTreeMap<String, Option<Vec<String>>>;

/// The resource of a statement that reads no relation (`SELECT 1`, `SELECT now()`, a
/// query over VALUES or CTEs only): a `read` of it is covered by any grant of the
/// service that names `read`, whatever its resources and records.
pub const NO_RELATION: &str = "sql:constant";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Operation {
    pub service: String,
    pub action: Action,
    pub resource: String,
    pub scope: Scope,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub records: Records,
    /// What a write assigns (its post-image), for grants with `records`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sets: Sets,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The environments the operation touches, resolved from its records (or the filter
    /// instance's), set by the pipeline before evaluation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    /// Arguments whose value the decoder cannot know (a variable neither given nor
    /// defaulted; `*`: every argument, of a body not read): a guard's `arguments`
    /// condition on them matches, fail closed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
    /// GraphQL: every field selected below the root field (through fragments), each
    /// once, in the order selected (a field before the fields below it). Guards match them as reads; grants name root fields only.
    /// Shared: decoded once, cloned with the operation (memo hits, verdicts) for free.
    #[serde(skip_serializing_if = "no_fields", serialize_with = "fields_seq")]
    pub fields: Arc<[Field]>,
}

fn no_fields(f: &Arc<[Field]>) -> bool {
    f.is_empty()
}

fn fields_seq<S: serde::Serializer>(f: &Arc<[Field]>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(f.iter())
}

/// A field selected below a GraphQL root field: its resource (`Type.field` with a
/// schema, else the dotted path of field names from the root, aliases ignored) and its
/// arguments as records.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Field {
    pub resource: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub records: Records,
    /// Arguments whose value the decoder cannot know.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
}

impl Operation {
    pub fn new(service: &str, action: Action, resource: impl Into<String>) -> Self {
        Operation {
            service: service.to_string(),
            action,
            resource: resource.into(),
            scope: Scope::Some,
            records: Records::new(),
            sets: Sets::new(),
            detail: String::new(),
            environments: Vec::new(),
            unknown: Vec::new(),
            fields: Arc::from(Vec::new()),
        }
    }

    pub fn with_unknown(mut self, unknown: Vec<String>) -> Self {
        self.unknown = unknown;
        self
    }

    pub fn with_fields(mut self, fields: Vec<Field>) -> Self {
        self.fields = Arc::from(fields);
        self
    }

    pub fn with_scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    pub fn with_records(mut self, records: Records) -> Self {
        self.records = records;
        self
    }

    pub fn with_sets(mut self, sets: Sets) -> Self {
        self.sets = sets;
        self
    }

    /// A read of nothing: a statement that touches no relation.
    pub fn reads_nothing(&self) -> bool {
        self.action == Action::Read && self.resource == NO_RELATION
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    pub fn is_destructive(&self) -> bool {
        self.action.is_destructive() || self.scope == Scope::All
    }
}

/// A set of actions, as grants and guards name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ActionSet {
    bits: u8,
    /// `destructive` also matches any operation with `scope: all`, whatever its action.
    destructive: bool,
}

impl ActionSet {
    /// Parses one bundle action word: an action, `destructive` or `*`.
    pub fn add_word(&mut self, word: &str) -> bool {
        match word {
            "*" => {
                self.bits = u8::MAX;
                true
            }
            "destructive" => {
                self.destructive = true;
                for a in Action::ALL.into_iter().filter(|a| a.is_destructive()) {
                    self.bits |= a.bit();
                }
                true
            }
            other => match Action::parse(other) {
                Some(a) => {
                    self.bits |= a.bit();
                    true
                }
                None => false,
            },
        }
    }

    /// The set bundle words name, for words already validated (`policy::compile`);
    /// unknown words add nothing.
    pub fn from_words(words: &[String]) -> ActionSet {
        let mut set = ActionSet::default();
        for w in words {
            set.add_word(w);
        }
        set
    }

    pub fn contains(&self, action: Action) -> bool {
        self.bits & action.bit() != 0
    }

    /// Whether this set names the operation (the `destructive` word covers `scope: all`).
    pub fn matches(&self, op: &Operation) -> bool {
        self.contains(op.action) || (self.destructive && op.scope == Scope::All)
    }

    pub fn actions(&self) -> impl Iterator<Item = Action> + '_ {
        Action::ALL.into_iter().filter(|a| self.contains(*a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_words() {
        let mut set = ActionSet::default();
        assert!(set.add_word("destructive"));
        assert!(!set.add_word("remove"));
        assert!(set.contains(Action::Execute) && !set.contains(Action::Read));
        let bulk_update = Operation::new("s", Action::Update, "t").with_scope(Scope::All);
        assert!(set.matches(&bulk_update));
        assert!(bulk_update.is_destructive());
        assert!(!set.matches(&Operation::new("s", Action::Update, "t")));
        let mut all = ActionSet::default();
        all.add_word("*");
        assert_eq!(all.actions().count(), 8);
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
    }
}
