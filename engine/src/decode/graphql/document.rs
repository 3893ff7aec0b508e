//! The document walked: every operation, every root field (fragments expanded), its
//! arguments and variables, and every field selected below it; depth and alias limits.

use super::*;
use crate::request::{ambiguous, over_limit, unmodelled};

impl GraphqlDecoder {
    /// Parses one document and turns every root field of every operation into an operation.
    /// The operations of one request. The same document with the same variables,
    /// operation name and transport, for the same service, is decoded once per VM.
    pub(super) fn operations(
        &self,
        service: &str,
        r: &GqlRequest,
    ) -> Result<Vec<Operation>, DecodeError> {
        if r.document.len() > memo::MAX_KEY_BYTES {
            return self.operations_uncached(service, r);
        }
        // Exact bytes of everything the decode reads; the lengths keep the parts apart.
        let variables = Json::Object(r.variables.clone()).to_string();
        let name = r.operation_name.as_deref();
        let key = format!(
            "{service}\0{}\0{}:{}\0{}:{}\0{variables}",
            r.over_get,
            r.document.len(),
            r.document,
            name.map_or(0, |n| n.len() + 1),
            name.unwrap_or_default(),
        );
        self.memo
            .get_or(&key, || self.operations_uncached(service, r))
    }

    pub(super) fn operations_uncached(
        &self,
        service: &str,
        r: &GqlRequest,
    ) -> Result<Vec<Operation>, DecodeError> {
        if r.document.len() > self.limits.document_bytes {
            return over_limit(format!(
                "GraphQL document is {} bytes, over the service's max_document_bytes of {}",
                r.document.len(),
                self.limits.document_bytes
            ));
        }
        let tree = Parser::new(&r.document)
            .recursion_limit(PARSER_RECURSION_LIMIT)
            .token_limit(self.limits.document_bytes)
            .parse();
        if let Some(e) = tree.errors().next() {
            return undecodable(format!(
                "GraphQL does not parse: {} at byte {}{}",
                e.message(),
                e.index(),
                excerpt(&r.document, e.index())
            ));
        }
        let doc = tree.document();
        let mut operations = Vec::new();
        let mut fragments: HashMap<String, cst::FragmentDefinition> = HashMap::new();
        // Document order: what is checked first (and so which error is reported) must
        // not depend on the hash map's order — the CLI and the filter give one answer.
        let mut in_order: Vec<String> = Vec::new();
        for def in doc.definitions() {
            match def {
                cst::Definition::OperationDefinition(op) => operations.push(op),
                cst::Definition::FragmentDefinition(f) => {
                    let name = required(f.fragment_name().and_then(|n| n.name()), "fragment name")?;
                    if fragments.insert(name.clone(), f).is_some() {
                        return ambiguous(format!("fragment `{name}` is defined twice"));
                    }
                    in_order.push(name);
                }
                other => {
                    return unmodelled(format!(
                        "{} in a request: only operations and fragments are executable",
                        other.kind()
                    ))
                }
            }
        }
        if fragments.len() > self.limits.fragments {
            return over_limit(format!(
                "{} fragments, over the service's max_fragments of {}",
                fragments.len(),
                self.limits.fragments
            ));
        }
        self.check_names(&operations, r.operation_name.as_deref())?;

        // Depth and aliases over every definition; fragment cycles refused.
        let mut walk = Walk {
            fragments: &fragments,
            depth_of: HashMap::new(),
            visiting: Vec::new(),
            aliases: 0,
        };
        // Walking below root fields (`nested`) measures depth and aliases on the way, on
        // every fragment an operation spreads (cycles refused there); otherwise the
        // fragments are measured here, each once.
        if !self.nested {
            for name in &in_order {
                walk.fragment_depth(name)?;
            }
        }
        let mut out = Vec::new();
        let mut nested = Nested {
            schema: self.schema.as_deref(),
            fragments: &fragments,
            visits: 0,
            spreading: Vec::new(),
            aliases: 0,
            used: HashSet::new(),
        };
        for op in &operations {
            let kind = op.operation_type().map_or(OpKind::Query, |t| op_kind(&t));
            if kind == OpKind::Mutation && r.over_get {
                return unmodelled("mutation over GET: GraphQL mutations are POST only");
            }
            let set = required_node(op.selection_set(), "selection set")?;
            if !self.nested {
                let depth = walk.depth(&set)?;
                self.check_depth(depth)?;
            }
            let op_name = match op.name() {
                Some(n) => required(Some(n), "operation name")?,
                None => "(anonymous)".to_string(),
            };
            let vars = Variables::of(op, &r.variables)?;
            let mut fields = Vec::new();
            let mut expanded = HashSet::new();
            root_fields(
                &set,
                &fragments,
                &mut expanded,
                &mut Vec::new(),
                &mut fields,
            )?;
            nested.used.extend(expanded);
            if fields.is_empty() {
                return undecodable(format!("operation `{op_name}` selects no field"));
            }
            // The operation's depth: 1 + the deepest root field's selection (spreads and
            // inline fragments add no level), when the walk below measures it.
            let mut deepest = 0;
            for field in fields {
                if out.len() >= self.limits.root_fields {
                    return over_limit(format!(
                        "more than the service's max_root_fields of {} root fields",
                        self.limits.root_fields
                    ));
                }
                let below = self.field_operations(
                    service,
                    kind,
                    &op_name,
                    &field,
                    &vars,
                    (&mut nested, &mut walk),
                    &mut out,
                )?;
                deepest = deepest.max(below);
            }
            if self.nested {
                self.check_depth(deepest + 1)?;
            }
        }
        // Fragments no operation spreads are measured as without the walk below (a
        // cycle among them refused, their aliases counted): one answer either way.
        if self.nested {
            for name in &in_order {
                if !nested.used.contains(name) && !walk.depth_of.contains_key(name) {
                    walk.fragment_depth(name)?;
                }
            }
        }
        let aliases = walk.aliases + nested.aliases;
        if aliases > self.limits.aliases {
            return over_limit(format!(
                "{aliases} aliases, over the service's max_aliases of {}",
                self.limits.aliases
            ));
        }
        Ok(out)
    }

    pub(super) fn check_depth(&self, depth: usize) -> Result<(), DecodeError> {
        if depth > self.limits.depth {
            return over_limit(format!(
                "GraphQL selection depth {depth}, over the service's max_depth of {}",
                self.limits.depth
            ));
        }
        Ok(())
    }

    /// Operation names: unique, a lone anonymous operation, and an `operationName` that
    /// names one when there are several (an upstream must not be left to pick).
    pub(super) fn check_names(
        &self,
        operations: &[cst::OperationDefinition],
        selected: Option<&str>,
    ) -> Result<(), DecodeError> {
        let mut names = HashSet::new();
        for op in operations {
            match op.name() {
                None if operations.len() > 1 => {
                    return ambiguous("an anonymous operation beside others")
                }
                None => {}
                Some(n) => {
                    let n = required(Some(n), "operation name")?;
                    if !names.insert(n.clone()) {
                        return ambiguous(format!("operation `{n}` is defined twice"));
                    }
                }
            }
        }
        match (operations.len(), selected) {
            (0, _) => undecodable("no operation in the GraphQL document"),
            (1, None) => Ok(()),
            (_, None) => ambiguous(format!(
                "{} operations and no operationName: which one runs is up to the upstream",
                operations.len()
            )),
            (_, Some(s)) if names.contains(s) => Ok(()),
            (_, Some(s)) => undecodable(format!(
                "operationName `{s}` names no operation in the document"
            )),
        }
    }

    /// The operation of one root field — one per action, when the mutation's action
    /// hinges on its arguments (`actions.rs`). With the walk below root fields on, the
    /// depth of the field's selection (0 without one), its alias counted.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn field_operations(
        &self,
        service: &str,
        kind: OpKind,
        op_name: &str,
        field: &cst::Field,
        vars: &Variables,
        (nested, walk): (&mut Nested, &mut Walk),
        out: &mut Vec<Operation>,
    ) -> Result<usize, DecodeError> {
        let name = required(field.name(), "field name")?;
        let meta = name.starts_with("__");
        if let Some(schema) = &self.schema {
            if !meta && !schema.of(kind).contains(&name) {
                return unmodelled(format!(
                    "`{name}` is not a {} root field of the service's schema",
                    kind.as_str()
                ));
            }
        }
        let (records, unknown) = arguments(field.arguments(), &name, vars)?;
        let actions = match kind {
            OpKind::Mutation if !meta => self.mutation_rule(&name).resolve(&records, &unknown),
            _ => vec![Action::Read],
        };
        // Everything selected below the root field, as `Type.field` (with a schema) or
        // its path of names.
        let mut fields = Vec::new();
        let mut below = 0;
        if self.nested && field.alias().is_some() {
            nested.aliases += 1;
        }
        if let Some(set) = field.selection_set().filter(|_| self.nested) {
            let ty = match &self.schema {
                Some(schema) if !meta => {
                    let root = schema.root_type(kind);
                    match schema.field_type(root, &name) {
                        Some(t) => Some(t.to_string()),
                        None => {
                            return unmodelled(format!(
                                "the type of root field `{name}` is not in the service's schema"
                            ))
                        }
                    }
                }
                _ => None,
            };
            below = if meta {
                walk.depth(&set)?
            } else {
                nested.collect(&set, ty.as_deref(), &name, vars, true, &mut fields)?
            };
            dedup_in_order(&mut fields);
        }
        let mut detail = format!("{} {op_name}", kind.as_str());
        if let Some(alias) = field.alias().and_then(|a| a.name()) {
            detail.push_str(&format!(" (alias `{}`)", required(Some(alias), "alias")?));
        }
        // A subscription is a standing stream, which schemas give another meaning than the
        // query field of the same name: its own resource (`subscription/<field>`), which a
        // grant on the query field does not cover (issue 18, class 5).
        let resource = match kind {
            OpKind::Subscription if !meta => format!("subscription/{name}"),
            _ => name,
        };
        let mut op = Operation::new(service, Action::Read, resource)
            .with_records(records)
            .with_unknown(unknown)
            .with_fields(fields)
            .with_detail(detail);
        if let Some((last, others)) = actions.split_last() {
            for action in others {
                let mut other = op.clone();
                other.action = *action;
                out.push(other);
            }
            op.action = *last;
            out.push(op);
        }
        Ok(below)
    }
}

/// Selections the nested-field walk visits in one document at most (fragments spread
/// in many places multiply them); a document over it is refused.
pub(super) const MAX_SELECTION_VISITS: usize = 16 * 1024;

/// Depth of selection sets (fragments expanded, memoised), alias count, cycle refusal.
pub(super) struct Walk<'a> {
    pub(super) fragments: &'a HashMap<String, cst::FragmentDefinition>,
    pub(super) depth_of: HashMap<String, usize>,
    pub(super) visiting: Vec<String>,
    pub(super) aliases: usize,
}

impl Walk<'_> {
    pub(super) fn fragment_depth(&mut self, name: &str) -> Result<usize, DecodeError> {
        if let Some(d) = self.depth_of.get(name) {
            return Ok(*d);
        }
        if self.visiting.iter().any(|v| v == name) {
            return undecodable(format!("fragment `{name}` spreads itself (cycle)"));
        }
        let Some(def) = self.fragments.get(name) else {
            return undecodable(format!("fragment `{name}` is not defined"));
        };
        let set = required_node(def.selection_set(), "fragment selection set")?;
        self.visiting.push(name.to_string());
        let d = self.depth(&set);
        self.visiting.pop();
        let d = d?;
        self.depth_of.insert(name.to_string(), d);
        Ok(d)
    }

    /// 1 + the deepest selection (a spread or inline fragment adds no level).
    pub(super) fn depth(&mut self, set: &cst::SelectionSet) -> Result<usize, DecodeError> {
        let mut deepest = 0;
        for sel in set.selections() {
            let d = match sel {
                cst::Selection::Field(f) => {
                    if f.alias().is_some() {
                        self.aliases += 1;
                    }
                    match f.selection_set() {
                        Some(s) => self.depth(&s)?,
                        None => 0,
                    }
                }
                cst::Selection::InlineFragment(i) => {
                    let s = required_node(i.selection_set(), "inline fragment selection set")?;
                    self.depth(&s)?.saturating_sub(1)
                }
                cst::Selection::FragmentSpread(s) => {
                    let name = required(s.fragment_name().and_then(|n| n.name()), "spread name")?;
                    self.fragment_depth(&name)?.saturating_sub(1)
                }
            };
            deepest = deepest.max(d);
        }
        Ok(deepest + 1)
    }
}

/// Root fields of an operation, through inline fragments and spreads (each named
/// fragment expanded once: spreading it again adds the same fields; a fragment that
/// spreads itself is refused).
pub(super) fn root_fields(
    set: &cst::SelectionSet,
    fragments: &HashMap<String, cst::FragmentDefinition>,
    expanded: &mut HashSet<String>,
    visiting: &mut Vec<String>,
    out: &mut Vec<cst::Field>,
) -> Result<(), DecodeError> {
    for sel in set.selections() {
        match sel {
            cst::Selection::Field(f) => out.push(f),
            cst::Selection::InlineFragment(i) => {
                let s = required_node(i.selection_set(), "inline fragment selection set")?;
                root_fields(&s, fragments, expanded, visiting, out)?;
            }
            cst::Selection::FragmentSpread(s) => {
                let name = required(s.fragment_name().and_then(|n| n.name()), "spread name")?;
                if visiting.contains(&name) {
                    return undecodable(format!("fragment `{name}` spreads itself (cycle)"));
                }
                if expanded.insert(name.clone()) {
                    let Some(def) = fragments.get(&name) else {
                        return undecodable(format!("fragment `{name}` is not defined"));
                    };
                    let s = required_node(def.selection_set(), "fragment selection set")?;
                    visiting.push(name);
                    let r = root_fields(&s, fragments, expanded, visiting, out);
                    visiting.pop();
                    r?;
                }
            }
        }
    }
    Ok(())
}

/// A field's arguments as records (values sorted, deduplicated), and the names of the
/// arguments whose value cannot be known (a variable neither given nor defaulted).
pub(super) fn arguments(
    args: Option<cst::Arguments>,
    name: &str,
    vars: &Variables,
) -> Result<(Records, Vec<String>), DecodeError> {
    let mut records = Records::new();
    let mut unknown = Vec::new();
    let Some(args) = args else {
        return Ok((records, unknown));
    };
    let mut seen = HashSet::new();
    for arg in args.arguments() {
        let arg_name = required(arg.name(), "argument name")?;
        if !seen.insert(arg_name.clone()) {
            return ambiguous(format!("argument `{arg_name}` of `{name}` is given twice"));
        }
        let value = required_node(arg.value(), "argument value")?;
        vars.record(&arg_name, &value, &mut records, &mut unknown)?;
    }
    records.retain(|_, values| {
        values.sort();
        values.dedup();
        !values.is_empty()
    });
    unknown.sort();
    unknown.dedup();
    Ok((records, unknown))
}

/// The walk below root fields: every selected field, through named and inline
/// fragments, typed by the schema when there is one.
pub(super) struct Nested<'a> {
    pub(super) schema: Option<&'a RootFields>,
    pub(super) fragments: &'a HashMap<String, cst::FragmentDefinition>,
    pub(super) visits: usize,
    /// Fragments being expanded (a cycle is refused).
    pub(super) spreading: Vec<String>,
    /// Aliases met, each time a fragment is expanded.
    pub(super) aliases: usize,
    /// Fragments spread (below root fields, and at the root).
    pub(super) used: HashSet<String>,
}

impl Nested<'_> {
    /// Adds the fields of `set`, selected on type `ty` (with a schema) at `path`; the
    /// depth of `set` as `Walk::depth` counts it (1 + the deepest selection; a spread or
    /// inline fragment adds no level).
    ///
    /// Aliases are counted as `Walk` counts them, once per text: a fragment's the first
    /// time it is spread (`count` says whether this text is being counted).
    pub(super) fn collect(
        &mut self,
        set: &cst::SelectionSet,
        ty: Option<&str>,
        path: &str,
        vars: &Variables,
        count: bool,
        out: &mut Vec<Field>,
    ) -> Result<usize, DecodeError> {
        let mut deepest = 0;
        for sel in set.selections() {
            self.visits += 1;
            if self.visits > MAX_SELECTION_VISITS {
                return over_limit(format!(
                    "more than {MAX_SELECTION_VISITS} selections once fragments are expanded"
                ));
            }
            match sel {
                cst::Selection::Field(f) => {
                    // One pass over the field's children (each accessor would walk them
                    // again); the name's token borrowed, not copied.
                    let (mut token, mut args, mut sub) = (None, None, None);
                    for child in f.syntax().children() {
                        match child.kind() {
                            SyntaxKind::NAME => token = child.first_token(),
                            SyntaxKind::ARGUMENTS => args = cst::Arguments::cast(child),
                            SyntaxKind::SELECTION_SET => sub = cst::SelectionSet::cast(child),
                            SyntaxKind::ALIAS if count => self.aliases += 1,
                            _ => {}
                        }
                    }
                    let Some(token) = token else {
                        return undecodable("GraphQL field name missing");
                    };
                    let name = token.text();
                    if name == "__typename" {
                        continue;
                    }
                    if name.starts_with("__") {
                        return unmodelled(format!("`{name}` below the root (at `{path}`)"));
                    }
                    let child_path = dotted(path, name);
                    let (resource, child_ty) = match (self.schema, ty) {
                        (None, _) => (None, None),
                        (Some(schema), Some(t)) => match schema.field_type(t, name) {
                            Some(ct) => (Some(dotted(t, name)), Some(ct)),
                            None => {
                                return unmodelled(format!(
                                    "`{name}` is not a field of `{t}` in the service's schema (at `{path}`)"
                                ))
                            }
                        },
                        (Some(_), None) => {
                            return unmodelled(format!(
                                "the type of `{path}` is not in the service's schema"
                            ))
                        }
                    };
                    let (records, unknown) = arguments(args, name, vars)?;
                    // The field before the fields below it; its path, which the walk
                    // below still needs, moved in afterwards (no copy).
                    let at = out.len();
                    out.push(Field {
                        resource: resource.unwrap_or_default(),
                        records,
                        unknown,
                    });
                    if let Some(s) = sub {
                        let d = self.collect(&s, child_ty, &child_path, vars, count, out)?;
                        deepest = deepest.max(d);
                    }
                    if let Some(f) = out.get_mut(at).filter(|f| f.resource.is_empty()) {
                        f.resource = child_path;
                    }
                }
                cst::Selection::InlineFragment(i) => {
                    let s = required_node(i.selection_set(), "inline fragment selection set")?;
                    let cond = type_condition(i.type_condition())?;
                    let ty = if self.schema.is_some() {
                        cond.as_deref().or(ty)
                    } else {
                        ty
                    };
                    let d = self.collect(&s, ty, path, vars, count, out)?;
                    deepest = deepest.max(d.saturating_sub(1));
                }
                cst::Selection::FragmentSpread(s) => {
                    let name = required(s.fragment_name().and_then(|n| n.name()), "spread name")?;
                    let Some(def) = self.fragments.get(&name) else {
                        return undecodable(format!("fragment `{name}` is not defined"));
                    };
                    if self.spreading.contains(&name) {
                        return undecodable(format!("fragment `{name}` spreads itself (cycle)"));
                    }
                    let set = required_node(def.selection_set(), "fragment selection set")?;
                    let cond = type_condition(def.type_condition())?;
                    let ty = if self.schema.is_some() {
                        cond.as_deref().or(ty)
                    } else {
                        ty
                    };
                    let first = !self.used.contains(&name);
                    if first {
                        self.used.insert(name.clone());
                    }
                    self.spreading.push(name);
                    let r = self.collect(&set, ty, path, vars, first, out);
                    self.spreading.pop();
                    deepest = deepest.max(r?.saturating_sub(1));
                }
            }
        }
        Ok(deepest + 1)
    }
}

/// Drops repeated fields (a fragment spread twice, a field selected again), keeping the
/// first of each in the order selected: hashing, not sorting (the paths share long
/// prefixes, which sorting compares again and again).
pub(super) fn dedup_in_order(fields: &mut Vec<Field>) {
    if fields.len() < 2 {
        return;
    }
    let keep: Vec<bool> = {
        let mut seen: HashSet<&Field> = HashSet::with_capacity(fields.len());
        fields.iter().map(|f| seen.insert(f)).collect()
    };
    let mut keep = keep.into_iter();
    fields.retain(|_| keep.next().unwrap_or(true));
}

/// `a.b`, in one allocation of the right size.
pub(super) fn dotted(a: &str, b: &str) -> String {
    let mut s = String::with_capacity(a.len() + 1 + b.len());
    s.push_str(a);
    s.push('.');
    s.push_str(b);
    s
}

pub(super) fn type_condition(c: Option<cst::TypeCondition>) -> Result<Option<String>, DecodeError> {
    match c {
        None => Ok(None),
        Some(c) => Ok(Some(required(
            c.named_type().and_then(|n| n.name()),
            "type condition",
        )?)),
    }
}

/// An operation's variables: the request's values, else the definitions' defaults.
pub(super) struct Variables<'a> {
    pub(super) given: &'a Map<String, Json>,
    pub(super) defaults: HashMap<String, Option<cst::Value>>,
}

impl<'a> Variables<'a> {
    pub(super) fn of(
        op: &cst::OperationDefinition,
        given: &'a Map<String, Json>,
    ) -> Result<Self, DecodeError> {
        let mut defaults = HashMap::new();
        for def in op
            .variable_definitions()
            .iter()
            .flat_map(|d| d.variable_definitions())
        {
            let name = required(def.variable().and_then(|v| v.name()), "variable name")?;
            let default = def.default_value().and_then(|d| d.value());
            if defaults.insert(name.clone(), default).is_some() {
                return ambiguous(format!("variable `${name}` is defined twice"));
            }
        }
        Ok(Variables { given, defaults })
    }

    /// Adds the scalar values of an argument (nested input fields as `arg.field`) to
    /// `out`, and to `unknown` the keys whose value is a variable neither given nor
    /// defaulted.
    pub(super) fn record(
        &self,
        key: &str,
        v: &cst::Value,
        out: &mut Records,
        unknown: &mut Vec<String>,
    ) -> Result<(), DecodeError> {
        let mut push = |s: String| out.entry(key.to_string()).or_default().push(s);
        match v {
            cst::Value::Variable(var) => {
                let name = required(var.name(), "variable name")?;
                let Some(default) = self.defaults.get(&name) else {
                    return undecodable(format!(
                        "variable `${name}` is not defined by its operation"
                    ));
                };
                match (self.given.get(&name), default) {
                    (Some(json), _) => record_json(key, json, out),
                    (None, Some(d)) => self.record(key, d, out, unknown)?,
                    // Not given, no default: proves nothing (a records grant will not match),
                    // and its value is unknown (an argument guard matches it).
                    (None, None) => unknown.push(key.to_string()),
                }
            }
            cst::Value::StringValue(s) => push(String::from(s)),
            cst::Value::IntValue(i) => push(token_text(i.syntax())),
            cst::Value::FloatValue(f) => push(token_text(f.syntax())),
            cst::Value::BooleanValue(b) => push(b.true_token().is_some().to_string()),
            cst::Value::EnumValue(e) => push(token_text(e.syntax())),
            cst::Value::NullValue(_) => {}
            cst::Value::ListValue(l) => {
                for item in l.values() {
                    self.record(key, &item, out, unknown)?;
                }
            }
            cst::Value::ObjectValue(o) => {
                let mut seen = HashSet::new();
                for field in o.object_fields() {
                    let name = required(field.name(), "input field name")?;
                    if !seen.insert(name.clone()) {
                        return ambiguous(format!("input field `{key}.{name}` is given twice"));
                    }
                    let value = required_node(field.value(), "input field value")?;
                    self.record(&format!("{key}.{name}"), &value, out, unknown)?;
                }
            }
        }
        Ok(())
    }
}
