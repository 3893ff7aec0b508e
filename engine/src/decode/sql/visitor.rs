//! The statement walk: a `Collector` gathers the operations of one statement through
//! sqlparser's `Visitor` (see the module documentation of `sql`).

use super::*;

pub(super) struct Collector<'d> {
    pub(super) dec: &'d SqlDecoder,
    service: &'d str,
    pub(super) params: &'d [Json],
    pub(super) ops: Vec<Operation>,
    /// Object names already accounted for (write targets, table functions), by address.
    skip: HashSet<*const ObjectName>,
    /// Records proven for a read relation (single-table SELECTs), by address.
    pub(super) read_records: Vec<(*const ObjectName, Records)>,
    /// CTE names visible at each query nesting level, innermost last.
    cte_frames: Vec<CteFrame>,
    /// CTE bodies: (query address, owning frame index, CTE position).
    cte_bodies: Vec<(*const Query, usize, usize)>,
    /// Depth of queries with row locks (`FOR UPDATE`/`FOR SHARE`).
    locking: usize,
    /// Statements under a plain `EXPLAIN` (planned, never run): writes count as reads.
    pub(super) planned_only: Vec<*const Statement>,
    /// Whether a column at the current point may bind to an enclosing query's FROM item
    /// (one entry per statement, query and select being visited; innermost last).
    outer: Vec<bool>,
    /// Queries that do not see what the point they are visited from sees: CTE bodies and
    /// plain (not LATERAL) derived tables see only what their enclosing query sees from
    /// outside, an INSERT's source does not see its target.
    scoped: Vec<(*const Query, bool)>,
}

struct CteFrame {
    query: *const Query,
    names: Vec<String>,
    visible: usize,
}

impl<'d> Collector<'d> {
    pub(super) fn new(dec: &'d SqlDecoder, service: &'d str, params: &'d [Json]) -> Self {
        Collector {
            dec,
            service,
            params,
            ops: Vec::new(),
            skip: HashSet::new(),
            read_records: Vec::new(),
            cte_frames: Vec::new(),
            cte_bodies: Vec::new(),
            locking: 0,
            planned_only: Vec::new(),
            outer: Vec::new(),
            scoped: Vec::new(),
        }
    }

    pub(super) fn sees_outer(&self) -> bool {
        self.outer.last().copied().unwrap_or(false)
    }

    fn planned(&self) -> bool {
        !self.planned_only.is_empty()
    }

    pub(super) fn push(
        &mut self,
        action: Action,
        resource: String,
        scope: Scope,
        records: Records,
    ) {
        self.push_write(action, resource, scope, records, Sets::new());
    }

    /// An operation, with the post-image of what it assigns. Under a plan-only `EXPLAIN`
    /// the statement's own writes are reads (planned, never run); function calls stay what
    /// they are (the planner folds immutable calls with constant arguments: it runs them).
    fn push_write(
        &mut self,
        action: Action,
        resource: String,
        scope: Scope,
        records: Records,
        sets: Sets,
    ) {
        use Action::*;
        let planned = self.planned() && matches!(action, Create | Update | Delete | Alter);
        let action = if planned { Read } else { action };
        let scope = if action.writes_rows() {
            scope
        } else {
            Scope::Some
        };
        let sets = if planned { Sets::new() } else { sets };
        self.ops.push(
            Operation::new(self.service, action, resource)
                .with_scope(scope)
                .with_records(records)
                .with_sets(sets),
        );
    }

    /// A write (or other) operation on a named object, which is then not also a read.
    pub(super) fn on_object(
        &mut self,
        action: Action,
        name: &ObjectName,
        scope: Scope,
        records: Records,
    ) -> Result<(), DecodeError> {
        self.on_write(action, name, scope, records, Sets::new())
    }

    /// `on_object` with the post-image of the write.
    pub(super) fn on_write(
        &mut self,
        action: Action,
        name: &ObjectName,
        scope: Scope,
        records: Records,
        sets: Sets,
    ) -> Result<(), DecodeError> {
        let resource = self.dec.resource(name)?;
        self.skip.insert(name as *const ObjectName);
        self.push_write(action, resource, scope, records, sets);
        Ok(())
    }

    /// An operation on something that is not a named table (`sql:<kind>`).
    pub(super) fn on_kind(&mut self, action: Action, kind: &str) {
        self.push(action, format!("sql:{kind}"), Scope::Some, Records::new());
    }

    fn is_cte(&self, name: &ObjectName) -> bool {
        let [ObjectNamePart::Identifier(id)] = name.0.as_slice() else {
            return false;
        };
        let Ok(n) = self.dec.ident(id) else {
            return false;
        };
        self.cte_frames
            .iter()
            .any(|f| f.names.iter().take(f.visible).any(|c| *c == n))
    }
}

fn brk<T>(r: Result<T, DecodeError>) -> ControlFlow<DecodeError> {
    match r {
        Ok(_) => ControlFlow::Continue(()),
        Err(e) => ControlFlow::Break(e),
    }
}

impl Visitor for Collector<'_> {
    type Break = DecodeError;

    fn pre_visit_statement(&mut self, stmt: &Statement) -> ControlFlow<DecodeError> {
        let outer = self.sees_outer();
        let classified = self.classify(stmt);
        // What a statement with a target holds (its WHERE, SET, ON CONFLICT, RETURNING
        // subqueries) sees the target; an INSERT's source query does not.
        let sees = match stmt {
            Statement::Insert(ins) => {
                if let Some(src) = &ins.source {
                    self.scoped.push((&**src as *const Query, outer));
                }
                true
            }
            Statement::Update(_) | Statement::Delete(_) | Statement::Merge(_) => true,
            _ => outer,
        };
        self.outer.push(sees);
        brk(classified)
    }

    fn post_visit_statement(&mut self, stmt: &Statement) -> ControlFlow<DecodeError> {
        if self.planned_only.last() == Some(&(stmt as *const Statement)) {
            self.planned_only.pop();
        }
        self.outer.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<DecodeError> {
        // `TABLE t` names its table outside the relation positions the visitor reports.
        if contains_table_expr(&q.body) {
            return ControlFlow::Break(DecodeError::malformed(
                "`TABLE name` queries are not accepted; use SELECT",
            ));
        }
        // CTE scoping: a non-recursive WITH makes CTE `i` a name only after its body
        // (for later bodies and the main query), so inside body `i` a later CTE's name
        // still means the real table; under RECURSIVE every CTE is a name throughout.
        // Bodies are visited in order, so `post_visit_query` of body `i` widens the frame.
        let addr = q as *const Query;
        let sees = self
            .scoped
            .iter()
            .rev()
            .find(|(a, _)| *a == addr)
            .map_or_else(|| self.sees_outer(), |(_, v)| *v);
        self.outer.push(sees);
        if let Some(with) = &q.with {
            let mut names = Vec::new();
            for cte in &with.cte_tables {
                match self.dec.ident(&cte.alias.name) {
                    Ok(n) => names.push(n),
                    Err(e) => return ControlFlow::Break(e),
                }
            }
            let frame = self.cte_frames.len();
            for (i, cte) in with.cte_tables.iter().enumerate() {
                self.cte_bodies
                    .push((&*cte.query as *const Query, frame, i));
                // A CTE body sees what its query sees from outside, not its FROM items.
                self.scoped.push((&*cte.query as *const Query, sees));
            }
            let visible = if with.recursive { names.len() } else { 0 };
            self.cte_frames.push(CteFrame {
                query: addr,
                names,
                visible,
            });
        }
        if !q.locks.is_empty() {
            self.locking += 1;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, q: &Query) -> ControlFlow<DecodeError> {
        let addr = q as *const Query;
        // Leaving CTE body `pos`: it becomes visible to the bodies after it and the main query.
        if let Some(&(_, frame, pos)) = self.cte_bodies.iter().find(|(b, _, _)| *b == addr) {
            if let Some(f) = self.cte_frames.get_mut(frame) {
                f.visible = f.visible.max(pos + 1);
            }
        }
        if self.cte_frames.last().is_some_and(|f| f.query == addr) {
            self.cte_frames.pop();
        }
        if !q.locks.is_empty() {
            self.locking = self.locking.saturating_sub(1);
        }
        self.outer.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &Select) -> ControlFlow<DecodeError> {
        if let Some(into) = &s.into {
            // SELECT … INTO new_table creates a table.
            let target = match into.targets.as_slice() {
                [Expr::Identifier(id)] => self
                    .dec
                    .ident(id)
                    .map(|t| format!("{}.{t}", self.dec.default_schema)),
                [Expr::CompoundIdentifier(parts)] if parts.len() <= 3 => parts
                    .iter()
                    .map(|p| self.dec.ident(p))
                    .collect::<Result<Vec<_>, _>>()
                    .map(|v| v.join(".")),
                _ => undecodable("SELECT … INTO names no table"),
            };
            match target {
                Ok(t) => self.push(Action::Alter, t, Scope::Some, Records::new()),
                Err(e) => return ControlFlow::Break(e),
            }
        }
        let outer = self.sees_outer();
        for item in &s.from {
            for tf in std::iter::once(&item.relation).chain(item.joins.iter().map(|j| &j.relation))
            {
                if let TableFactor::Derived {
                    lateral: false,
                    subquery,
                    ..
                } = tf
                {
                    // A plain derived table does not see its siblings.
                    self.scoped.push((&**subquery as *const Query, outer));
                }
            }
        }
        self.select_records(s, outer);
        // Subqueries in this SELECT's expressions (and LATERAL items) see its FROM items.
        self.outer.push(outer || !s.from.is_empty());
        ControlFlow::Continue(())
    }

    fn post_visit_select(&mut self, _: &Select) -> ControlFlow<DecodeError> {
        self.outer.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, tf: &TableFactor) -> ControlFlow<DecodeError> {
        match tf {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => {
                // `FROM f(…)`: a function call, not a table.
                self.skip.insert(name as *const ObjectName);
                brk(self.function(name))
            }
            TableFactor::Function { name, .. } => brk(self.function(name)),
            _ => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_relation(&mut self, name: &ObjectName) -> ControlFlow<DecodeError> {
        if self.skip.contains(&(name as *const ObjectName)) || self.is_cte(name) {
            return ControlFlow::Continue(());
        }
        let resource = match self.dec.resource(name) {
            Ok(r) => r,
            Err(e) => return ControlFlow::Break(e),
        };
        let addr = name as *const ObjectName;
        let records = self
            .read_records
            .iter()
            .find(|(a, _)| *a == addr)
            .map(|(_, r)| r.clone())
            .unwrap_or_default();
        if self.locking > 0 {
            // SELECT … FOR UPDATE/SHARE locks the rows it reads: every row unless a proof
            // bounds them.
            let scope = if proves_rows(&records) {
                Scope::Some
            } else {
                Scope::All
            };
            self.push(Action::Update, resource.clone(), scope, records.clone());
        }
        self.push(Action::Read, resource, Scope::Some, records);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<DecodeError> {
        match e {
            Expr::Cast { data_type, .. } => brk(self.type_use(data_type)),
            Expr::TypedString(ts) => brk(self.type_use(&ts.data_type)),
            // Arguments, including `f(SELECT …)` subqueries, are walked like any other.
            Expr::Function(f) => brk(self.function(&f.name)),
            Expr::In {
                target:
                    InTarget::Table {
                        name,
                        args: Some(_),
                    },
                ..
            } => {
                self.skip.insert(name as *const ObjectName);
                brk(self.function(name))
            }
            _ => ControlFlow::Continue(()),
        }
    }
}

fn contains_table_expr(body: &SetExpr) -> bool {
    match body {
        SetExpr::Table(_) => true,
        SetExpr::SetOperation { left, right, .. } => {
            contains_table_expr(left) || contains_table_expr(right)
        }
        _ => false,
    }
}
