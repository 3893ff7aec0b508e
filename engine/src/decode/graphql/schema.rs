//! A GraphQL service's schema (SDL or an introspection result): its root fields, and the
//! type of every field, so nested fields resolve to `Type.field`.

use super::*;

/// Root field names per operation type, from the service's schema, and the field types
/// of its object and interface types (to name nested fields `Type.field`).
#[derive(Debug, Clone, Default)]
pub struct RootFields {
    query: HashSet<String>,
    mutation: HashSet<String>,
    subscription: HashSet<String>,
    /// Root type names: query, mutation, subscription.
    root_types: [String; 3],
    /// Object or interface type -> field -> the named type it returns (lists and
    /// non-null unwrapped).
    types: HashMap<String, HashMap<String, String>>,
}

impl RootFields {
    /// Query, mutation and subscription field names, sorted.
    pub fn names(&self) -> [Vec<String>; 3] {
        let sorted = |s: &HashSet<String>| {
            let mut v: Vec<String> = s.iter().cloned().collect();
            v.sort();
            v
        };
        [
            sorted(&self.query),
            sorted(&self.mutation),
            sorted(&self.subscription),
        ]
    }

    pub(super) fn root_type(&self, kind: OpKind) -> &str {
        let [q, m, s] = &self.root_types;
        match kind {
            OpKind::Query => q,
            OpKind::Mutation => m,
            OpKind::Subscription => s,
        }
    }

    /// The named type `field` of type `ty` returns, when the schema defines it.
    pub fn field_type(&self, ty: &str, field: &str) -> Option<&str> {
        self.types.get(ty)?.get(field).map(String::as_str)
    }

    pub(super) fn of(&self, kind: OpKind) -> &HashSet<String> {
        match kind {
            OpKind::Query => &self.query,
            OpKind::Mutation => &self.mutation,
            OpKind::Subscription => &self.subscription,
        }
    }

    pub fn mutations(&self) -> impl Iterator<Item = &str> {
        self.mutation.iter().map(String::as_str)
    }

    pub fn queries(&self) -> impl Iterator<Item = &str> {
        self.query.iter().map(String::as_str)
    }

    /// Root fields of an SDL schema (`schema { … }` names the root types; default
    /// `Query`, `Mutation`, `Subscription`), extensions included.
    pub fn from_sdl(sdl: &str) -> Result<RootFields, String> {
        let tree = Parser::new(sdl).parse();
        if let Some(e) = tree.errors().next() {
            return Err(format!(
                "SDL does not parse: {} at {}",
                e.message(),
                e.index()
            ));
        }
        let doc = tree.document();
        let mut names = [
            ("Query".to_string(), OpKind::Query),
            ("Mutation".to_string(), OpKind::Mutation),
            ("Subscription".to_string(), OpKind::Subscription),
        ];
        for def in doc.definitions() {
            if let cst::Definition::SchemaDefinition(s) = def {
                for root in s.root_operation_type_definitions() {
                    let (Some(kind), Some(ty)) = (
                        root.operation_type().map(|t| op_kind(&t)),
                        root.named_type()
                            .and_then(|n| n.name())
                            .and_then(|n| text(&n)),
                    ) else {
                        continue;
                    };
                    for slot in names.iter_mut().filter(|(_, k)| *k == kind) {
                        slot.0 = ty.clone();
                    }
                }
            }
        }
        let mut out = RootFields::default();
        for (slot, (name, _)) in out.root_types.iter_mut().zip(&names) {
            slot.clone_from(name);
        }
        for def in doc.definitions() {
            let (name, fields) = match &def {
                cst::Definition::ObjectTypeDefinition(o) => (o.name(), o.fields_definition()),
                cst::Definition::ObjectTypeExtension(o) => (o.name(), o.fields_definition()),
                cst::Definition::InterfaceTypeDefinition(o) => (o.name(), o.fields_definition()),
                cst::Definition::InterfaceTypeExtension(o) => (o.name(), o.fields_definition()),
                _ => continue,
            };
            let Some(name) = name.and_then(|n| text(&n)) else {
                continue;
            };
            let types = out.types.entry(name.clone()).or_default();
            for f in fields.iter().flat_map(|f| f.field_definitions()) {
                if let (Some(field), Some(ty)) = (
                    f.name().and_then(|n| text(&n)),
                    f.ty().and_then(sdl_named_type),
                ) {
                    types.insert(field, ty);
                }
            }
            if matches!(
                def,
                cst::Definition::InterfaceTypeDefinition(_)
                    | cst::Definition::InterfaceTypeExtension(_)
            ) {
                continue;
            }
            for (_, kind) in names.iter().filter(|(n, _)| *n == name) {
                for f in fields.iter().flat_map(|f| f.field_definitions()) {
                    if let Some(field) = f.name().and_then(|n| text(&n)) {
                        out.insert(*kind, field);
                    }
                }
            }
        }
        if out.query.is_empty() && out.mutation.is_empty() {
            return Err("SDL defines no query or mutation root fields".into());
        }
        Ok(out)
    }

    /// Root fields of an introspection result.
    pub fn from_introspection(json: &Json) -> Result<RootFields, String> {
        let schema = json
            .pointer("/data/__schema")
            .or_else(|| json.get("__schema"))
            .ok_or("introspection JSON has no `__schema` (nor `data.__schema`)")?;
        let types = schema
            .get("types")
            .and_then(Json::as_array)
            .ok_or("`__schema.types` is not an array")?;
        let mut out = RootFields::default();
        for t in types {
            let (Some(name), Some(fields)) = (
                t.get("name").and_then(Json::as_str),
                t.get("fields").and_then(Json::as_array),
            ) else {
                continue;
            };
            let map = out.types.entry(name.to_string()).or_default();
            for f in fields {
                if let (Some(field), Some(ty)) = (
                    f.get("name").and_then(Json::as_str),
                    f.get("type").and_then(introspection_named_type),
                ) {
                    map.insert(field.to_string(), ty.to_string());
                }
            }
        }
        for (i, (slot, kind)) in [
            ("queryType", OpKind::Query),
            ("mutationType", OpKind::Mutation),
            ("subscriptionType", OpKind::Subscription),
        ]
        .into_iter()
        .enumerate()
        {
            let Some(root) = schema
                .pointer(&format!("/{slot}/name"))
                .and_then(Json::as_str)
            else {
                continue;
            };
            if let Some(r) = out.root_types.get_mut(i) {
                *r = root.to_string();
            }
            let ty = types
                .iter()
                .find(|t| t.get("name").and_then(Json::as_str) == Some(root))
                .ok_or_else(|| format!("root type `{root}` is not among `__schema.types`"))?;
            for f in ty
                .get("fields")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(name) = f.get("name").and_then(Json::as_str) {
                    out.insert(kind, name.to_string());
                }
            }
        }
        if out.query.is_empty() && out.mutation.is_empty() {
            return Err("introspection defines no query or mutation root fields".into());
        }
        Ok(out)
    }

    pub(super) fn insert(&mut self, kind: OpKind, field: String) {
        match kind {
            OpKind::Query => self.query.insert(field),
            OpKind::Mutation => self.mutation.insert(field),
            OpKind::Subscription => self.subscription.insert(field),
        };
    }
}

/// The named type of an SDL type reference (`[Foo!]!` -> `Foo`).
pub(super) fn sdl_named_type(t: cst::Type) -> Option<String> {
    match t {
        cst::Type::NamedType(n) => n.name().and_then(|n| text(&n)),
        cst::Type::ListType(l) => l.ty().and_then(sdl_named_type),
        cst::Type::NonNullType(n) => match n.named_type() {
            Some(named) => named.name().and_then(|n| text(&n)),
            None => n.list_type().and_then(|l| l.ty()).and_then(sdl_named_type),
        },
    }
}

/// The named type of an introspection type reference (`ofType` unwrapped), bounded.
pub(super) fn introspection_named_type(t: &Json) -> Option<&str> {
    let mut t = t;
    for _ in 0..16 {
        match t.get("ofType") {
            Some(inner) if !inner.is_null() => t = inner,
            _ => return t.get("name").and_then(Json::as_str),
        }
    }
    None
}
