//! Actions that hinge on arguments (issue 18, class 2).
//!
//! A mutation's or tool's effect can depend on an argument: Railway's
//! `variableCollectionUpsert` with `input.replace: true` removes every existing variable
//! before it writes. A bundle maps a name to an action, or to an action with cases:
//!
//! ```json
//! "variableCollectionUpsert": {"action": "update", "when": [
//!     {"arguments": {"input.replace": [true]}, "action": "delete"}]}
//! "volumeInstanceBackupRestore": {"action": "execute", "when": [
//!     {"present": ["wipeServiceIds"], "action": "delete"}]}
//! "update_reservation": {"action": "update", "when": [
//!     {"unless": {"remove": [false]}, "action": "delete"}]}
//! ```
//!
//! A case *holds* when each argument in `arguments` has one of the listed values, each
//! argument in `present` has any value, and each argument in `unless` has a value
//! outside its list. It *may hold* when one of those arguments has a value the decoder
//! cannot know (a GraphQL variable neither given nor defaulted). An object where a value
//! is expected is given and is no listed value: `present` and `unless` hold, `arguments`
//! may (both actions).
//!
//! Values are compared as JSON scalars written as text (`true`, `1`, `"s"` → `s`).
//! GraphQL types its arguments, so `[true]` is every way to say true there; an MCP
//! server may coerce (Python's pydantic reads `1`, `"yes"`, `"on"` as true), so for a
//! tool the sound form names the harmless values: `unless: {"remove": [false]}`.
//! The request gets the action of every case that holds or may hold, and the name's own
//! action unless some case surely holds: so an unknown argument makes both apply and
//! the grant must cover both (fail closed, in either direction).
//!
//! Argument conditions are read exactly as a guard's `arguments` are
//! ([`argument_values`], [`holds`]): one syntax, one meaning.

use crate::bundle::Problems;
use crate::operation::{Action, Records};
use serde_json::{Map, Value as Json};

/// A name's action and the cases that change it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRule {
    pub action: Action,
    pub when: Vec<Case>,
}

/// One case: conditions on arguments, and the action when they hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Argument name (`input.field` for a field of an input object) -> values.
    pub arguments: Records,
    /// Arguments that make the case hold with any value.
    pub present: Vec<String>,
    /// Argument name -> the values that do not make the case hold (any other does).
    pub unless: Records,
    pub action: Action,
}

/// What one condition asks of an argument's values.
#[derive(Clone, Copy)]
enum Test<'a> {
    /// One of these.
    In(&'a [String]),
    /// Any value.
    Any,
    /// A value outside these.
    NotIn(&'a [String]),
}

/// Whether conditions on arguments hold for an operation's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    Yes,
    /// An argument they name has a value the decoder cannot know.
    Maybe,
    No,
}

/// Whether `name` (or an input object holding it, or a field of it) is among `unknown`;
/// `*` stands for every argument (a body that was not read).
fn unknown_touches(unknown: &[String], name: &str) -> bool {
    unknown.iter().any(|u| {
        u == "*"
            || u == name
            || name
                .strip_prefix(u.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
            || u.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// Whether each argument in `values` has one of its values (what a guard's `arguments`
/// asks), in `records` (what the decoder proved) — or may, because the decoder cannot
/// know it (`unknown`).
pub fn holds(values: &Records, records: &Records, unknown: &[String]) -> Holds {
    all_hold(
        values.iter().map(|(n, vs)| (n.as_str(), Test::In(vs))),
        records,
        unknown,
    )
}

fn all_hold<'a>(
    tests: impl Iterator<Item = (&'a str, Test<'a>)>,
    records: &Records,
    unknown: &[String],
) -> Holds {
    let mut maybe = false;
    for (name, test) in tests {
        let known = records.get(name).is_some_and(|have| match test {
            Test::In(vs) => have.iter().any(|v| vs.contains(v)),
            Test::Any => !have.is_empty(),
            Test::NotIn(vs) => have.iter().any(|v| !vs.contains(v)),
        });
        if known {
            continue;
        }
        // An object where a value was expected (`"remove": {"$ne": false}`): it is given,
        // and it is no listed value — what the server makes of it no list can say.
        let nested = records
            .keys()
            .any(|k| k.strip_prefix(name).is_some_and(|r| r.starts_with('.')));
        match (nested, test) {
            (true, Test::Any | Test::NotIn(_)) => continue,
            (true, Test::In(_)) => {
                maybe = true;
                continue;
            }
            (false, _) => {}
        }
        if unknown_touches(unknown, name) {
            maybe = true;
            continue;
        }
        return Holds::No;
    }
    if maybe {
        Holds::Maybe
    } else {
        Holds::Yes
    }
}

impl Case {
    fn holds(&self, records: &Records, unknown: &[String]) -> Holds {
        let tests = self
            .arguments
            .iter()
            .map(|(n, vs)| (n.as_str(), Test::In(vs)))
            .chain(self.present.iter().map(|n| (n.as_str(), Test::Any)))
            .chain(
                self.unless
                    .iter()
                    .map(|(n, vs)| (n.as_str(), Test::NotIn(vs))),
            );
        all_hold(tests, records, unknown)
    }
}

impl ActionRule {
    pub fn plain(action: Action) -> ActionRule {
        ActionRule {
            action,
            when: Vec::new(),
        }
    }

    /// Every action a call can have: the name's own and each case's.
    pub fn possible(&self) -> impl Iterator<Item = Action> + '_ {
        std::iter::once(self.action).chain(self.when.iter().map(|c| c.action))
    }

    /// The actions of one call: the action of every case that holds or may hold, and the
    /// name's own action unless a case surely holds. Sorted, each once.
    pub fn resolve(&self, records: &Records, unknown: &[String]) -> Vec<Action> {
        let mut out = Vec::with_capacity(1);
        let mut surely = false;
        for case in &self.when {
            match case.holds(records, unknown) {
                Holds::Yes => {
                    surely = true;
                    out.push(case.action);
                }
                Holds::Maybe => out.push(case.action),
                Holds::No => {}
            }
        }
        if !surely {
            out.push(self.action);
        }
        out.sort();
        out.dedup();
        out
    }

    /// `update` or `update (delete when input.replace = true)`, for `explain`.
    pub fn describe(&self) -> String {
        let mut s = self.action.as_str().to_string();
        if self.when.is_empty() {
            return s;
        }
        let cases: Vec<String> = self
            .when
            .iter()
            .map(|c| {
                let mut conds: Vec<String> = c
                    .arguments
                    .iter()
                    .map(|(n, vs)| format!("{n} = {}", vs.join(" | ")))
                    .collect();
                conds.extend(c.present.iter().map(|n| format!("{n} given")));
                conds.extend(
                    c.unless
                        .iter()
                        .map(|(n, vs)| format!("{n} given and not {}", vs.join(" | "))),
                );
                format!("{} when {}", c.action, conds.join(" and "))
            })
            .collect();
        s.push_str(&format!(" ({})", cases.join("; ")));
        s
    }
}

/// Argument conditions as the decoders' records hold values: `{"name": [true, 1, "s"]}`
/// → `name` → `["true", "1", "s"]`. Shared by guards' `arguments` and action cases.
pub fn argument_values<'a>(
    at: &str,
    args: impl IntoIterator<Item = (&'a String, &'a Vec<Json>)>,
    errs: &mut Problems,
) -> Records {
    let mut err = |path: String, message: &str| errs.push(path, message);
    let mut out = Records::new();
    let mut any = false;
    for (name, values) in args {
        any = true;
        let here = format!("{at}.{name}");
        if name.is_empty() {
            err(here.clone(), "empty argument name");
        }
        if values.is_empty() {
            err(here.clone(), "must not be empty");
        }
        let mut strings = Vec::new();
        for (j, v) in values.iter().enumerate() {
            match v {
                Json::String(s) => strings.push(s.clone()),
                Json::Bool(b) => strings.push(b.to_string()),
                Json::Number(n) => strings.push(n.to_string()),
                _ => err(format!("{here}[{j}]"), "a string, number or boolean"),
            }
        }
        out.insert(name.clone(), strings);
    }
    if !any {
        err(at.to_string(), "must not be empty");
    }
    out
}

const RULE_SHAPE: &str = "an action (read create update delete drop alter admin execute), or \
     {\"action\": …, \"when\": [{\"arguments\"|\"unless\": {…}, \"present\": […], \"action\": …}]}";

/// A name's rule from the bundle: an action word, or `{"action", "when"}`; `None`, with
/// the errors pushed, when it is neither.
pub fn parse_rule(value: &Json, at: &str, errs: &mut Problems) -> Option<ActionRule> {
    let mut err = |path: String, message: String| errs.push(path, message);
    match value {
        Json::String(a) => match Action::parse(a) {
            Some(a) => Some(ActionRule::plain(a)),
            None => {
                err(
                    at.to_string(),
                    format!("unknown action `{a}`: {RULE_SHAPE}"),
                );
                None
            }
        },
        Json::Object(o) => parse_object(o, at, errs),
        _ => {
            err(at.to_string(), RULE_SHAPE.into());
            None
        }
    }
}

fn action_member(o: &Map<String, Json>, at: &str, errs: &mut Problems) -> Option<Action> {
    match o.get("action") {
        Some(Json::String(a)) => match Action::parse(a) {
            Some(a) => Some(a),
            None => {
                errs.push(format!("{at}.action"), format!("unknown action `{a}`"));
                None
            }
        },
        _ => {
            errs.push(
                format!("{at}.action"),
                "an action: read create update delete drop alter admin execute",
            );
            None
        }
    }
}

fn parse_object(o: &Map<String, Json>, at: &str, errs: &mut Problems) -> Option<ActionRule> {
    if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "action" | "when")) {
        errs.push(format!("{at}.{k}"), format!("unknown member: {RULE_SHAPE}"));
        return None;
    }
    let action = action_member(o, at, errs);
    let before = errs.0.len();
    let mut when = Vec::new();
    match o.get("when") {
        None => {}
        Some(Json::Array(cases)) if !cases.is_empty() => {
            for (i, c) in cases.iter().enumerate() {
                let here = format!("{at}.when[{i}]");
                if let Some(case) = parse_case(c, &here, errs) {
                    when.push(case);
                }
            }
        }
        Some(_) => errs.push(format!("{at}.when"), "a non-empty list of cases"),
    }
    match action {
        Some(action) if errs.0.len() == before => Some(ActionRule { action, when }),
        _ => None,
    }
}

fn parse_case(c: &Json, at: &str, errs: &mut Problems) -> Option<Case> {
    let Json::Object(o) = c else {
        errs.push(
            at.to_string(),
            "{\"arguments\"|\"unless\": {…}, \"present\": […], \"action\": …}",
        );
        return None;
    };
    if let Some(k) = o
        .keys()
        .find(|k| !matches!(k.as_str(), "arguments" | "present" | "unless" | "action"))
    {
        errs.push(
            format!("{at}.{k}"),
            "unknown member (arguments, present, unless, action)",
        );
        return None;
    }
    let action = action_member(o, at, errs)?;
    let arguments = value_lists(o, "arguments", at, errs)?;
    let unless = value_lists(o, "unless", at, errs)?;
    let present = match o.get("present") {
        None => Vec::new(),
        Some(Json::Array(names)) if !names.is_empty() => {
            let mut out = Vec::new();
            for (j, n) in names.iter().enumerate() {
                match n {
                    Json::String(s) if !s.is_empty() => out.push(s.clone()),
                    _ => errs.push(format!("{at}.present[{j}]"), "an argument name"),
                }
            }
            out
        }
        Some(_) => {
            errs.push(
                format!("{at}.present"),
                "a non-empty list of argument names",
            );
            return None;
        }
    };
    if arguments.is_empty() && present.is_empty() && unless.is_empty() {
        errs.push(
            at.to_string(),
            "a case needs `arguments`, `present` or `unless`",
        );
        return None;
    }
    Some(Case {
        arguments,
        present,
        unless,
        action,
    })
}

/// A case's `arguments` or `unless`: argument name -> list of values (empty when absent).
fn value_lists(
    o: &Map<String, Json>,
    member: &str,
    at: &str,
    errs: &mut Problems,
) -> Option<Records> {
    match o.get(member) {
        None => Some(Records::new()),
        Some(Json::Object(args)) => {
            let mut lists = Vec::new();
            for (name, v) in args {
                match v {
                    Json::Array(values) => lists.push((name, values)),
                    _ => errs.push(format!("{at}.{member}.{name}"), "a list of values"),
                }
            }
            Some(argument_values(&format!("{at}.{member}"), lists, errs))
        }
        Some(_) => {
            errs.push(format!("{at}.{member}"), "argument name -> list of values");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: Json) -> ActionRule {
        let mut errs = crate::bundle::Problems::default();
        let r = parse_rule(&v, "x", &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        r.unwrap()
    }

    fn recs(pairs: &[(&str, &str)]) -> Records {
        let mut r = Records::new();
        for (k, v) in pairs {
            r.entry(k.to_string()).or_default().push(v.to_string());
        }
        r
    }

    #[test]
    fn cases_replace_the_action_when_they_hold_and_add_to_it_when_they_may() {
        let r = rule(json!({"action": "update", "when": [
            {"arguments": {"input.replace": [true]}, "action": "delete"}]}));
        let upd = vec![Action::Update];
        assert_eq!(r.resolve(&Records::new(), &[]), upd);
        assert_eq!(r.resolve(&recs(&[("input.replace", "false")]), &[]), upd);
        assert_eq!(
            r.resolve(&recs(&[("input.replace", "true")]), &[]),
            vec![Action::Delete]
        );
        // The variable holding the whole input, or the flag, has no value: both.
        for unknown in ["input", "input.replace"] {
            assert_eq!(
                r.resolve(&Records::new(), &[unknown.to_string()]),
                vec![Action::Update, Action::Delete]
            );
        }
        // An unrelated unknown argument changes nothing.
        assert_eq!(r.resolve(&Records::new(), &["inputs".to_string()]), upd);
        assert_eq!(r.describe(), "update (delete when input.replace = true)");
    }

    #[test]
    fn present_holds_with_any_value() {
        let r = rule(json!({"action": "execute", "when": [
            {"present": ["wipeServiceIds"], "action": "delete"}]}));
        assert_eq!(r.resolve(&Records::new(), &[]), vec![Action::Execute]);
        assert_eq!(
            r.resolve(&recs(&[("wipeServiceIds", "s1")]), &[]),
            vec![Action::Delete]
        );
    }

    #[test]
    fn unless_holds_for_any_other_value() {
        let r = rule(json!({"action": "update", "when": [
            {"unless": {"remove": [false]}, "action": "delete"}]}));
        assert_eq!(r.resolve(&Records::new(), &[]), vec![Action::Update]);
        assert_eq!(
            r.resolve(&recs(&[("remove", "false")]), &[]),
            vec![Action::Update]
        );
        // What a lax server reads as true.
        for v in ["true", "1", "yes", "on", "t"] {
            assert_eq!(
                r.resolve(&recs(&[("remove", v)]), &[]),
                vec![Action::Delete],
                "{v}"
            );
        }
        assert_eq!(
            r.describe(),
            "update (delete when remove given and not false)"
        );
    }

    #[test]
    fn an_object_where_a_value_was_expected_holds_or_may() {
        let unless = rule(json!({"action": "update", "when": [
            {"unless": {"remove": [false]}, "action": "delete"}]}));
        assert_eq!(
            unless.resolve(&recs(&[("remove.$ne", "false")]), &[]),
            vec![Action::Delete]
        );
        let present = rule(json!({"action": "execute", "when": [
            {"present": ["wipe"], "action": "delete"}]}));
        assert_eq!(
            present.resolve(&recs(&[("wipe.ids", "s1")]), &[]),
            vec![Action::Delete]
        );
        // A listed value cannot be an object: both actions apply.
        let listed = rule(json!({"action": "update", "when": [
            {"arguments": {"replace": [true]}, "action": "delete"}]}));
        assert_eq!(
            listed.resolve(&recs(&[("replace.x", "1")]), &[]),
            vec![Action::Update, Action::Delete]
        );
        // A longer name that merely starts alike is another argument.
        assert_eq!(
            unless.resolve(&recs(&[("removed", "true")]), &[]),
            vec![Action::Update]
        );
    }

    #[test]
    fn bad_rules_are_refused_with_their_path() {
        for (v, path) in [
            (json!("remove"), "x"),
            (json!(3), "x"),
            (json!({"action": "update", "cases": []}), "x.cases"),
            (json!({"when": []}), "x.action"),
            (json!({"action": "update", "when": []}), "x.when"),
            (
                json!({"action": "update", "when": [{"action": "delete"}]}),
                "x.when[0]",
            ),
            (
                json!({"action": "update", "when": [{"arguments": {"a": []}, "action": "delete"}]}),
                "x.when[0].arguments.a",
            ),
            (
                json!({"action": "update", "when": [{"arguments": {"a": [{}]}, "action": "delete"}]}),
                "x.when[0].arguments.a[0]",
            ),
            (
                json!({"action": "update", "when": [{"present": [""], "action": "delete"}]}),
                "x.when[0].present[0]",
            ),
            (
                json!({"action": "update", "when": [{"present": ["a"], "action": "nuke"}]}),
                "x.when[0].action",
            ),
        ] {
            let mut errs = crate::bundle::Problems::default();
            assert!(parse_rule(&v, "x", &mut errs).is_none(), "{v}");
            assert!(errs.0.iter().any(|e| e.path == path), "{v}: {errs:?}");
        }
    }
}
