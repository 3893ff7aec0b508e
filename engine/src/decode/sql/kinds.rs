//! Statement kinds: what each kind of statement does to the objects it names, INSERT
//! with its upserts; a kind not listed is refused.

use super::functions::explain_runs;
use super::*;
use crate::request::unmodelled;

impl Collector<'_> {
    pub(super) fn classify(&mut self, stmt: &Statement) -> Result<(), DecodeError> {
        use Action::*;
        match stmt {
            Statement::Query(_) => {}
            Statement::Insert(ins) => self.insert(ins)?,
            Statement::Update(u) => {
                let others = match &u.from {
                    None => &[][..],
                    Some(UpdateTableFromKind::BeforeSet(f) | UpdateTableFromKind::AfterSet(f)) => {
                        f.as_slice()
                    }
                };
                let (name, ctx) = self.dml_target(&u.table, others)?;
                let (scope, records) = self.where_proof(u.selection.as_ref(), &ctx);
                let sets = self.post_image(&u.assignments, None);
                self.on_write(Update, name, scope, records.clone(), sets)?;
                if u.returning.is_some() {
                    // RETURNING hands the changed rows back: a read of exactly those.
                    self.push(Read, self.dec.resource(name)?, Scope::Some, records);
                }
            }
            Statement::Delete(d) => {
                let from = match &d.from {
                    FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
                };
                if !d.tables.is_empty() {
                    // MySQL multi-table DELETE: every named table loses rows.
                    for name in &d.tables {
                        self.on_object(Delete, name, Scope::All, Records::new())?;
                    }
                } else {
                    let [only] = from.as_slice() else {
                        return unmodelled("DELETE from several tables");
                    };
                    let others = d.using.as_deref().unwrap_or_default();
                    let (name, ctx) = self.dml_target(only, others)?;
                    let (scope, records) = self.where_proof(d.selection.as_ref(), &ctx);
                    self.on_object(Delete, name, scope, records.clone())?;
                    if d.returning.is_some() {
                        self.push(Read, self.dec.resource(name)?, Scope::Some, records);
                    }
                }
            }
            Statement::Merge(m) => {
                let TableFactor::Table { name, .. } = &m.table else {
                    return unmodelled("MERGE into something other than a table");
                };
                for clause in &m.clauses {
                    let (action, sets) = match &clause.action {
                        MergeAction::Insert(_) => (Create, Sets::new()),
                        MergeAction::Update(u) => match &u.kind {
                            MergeUpdateKind::Set(assignments) => {
                                (Update, self.post_image(assignments, None))
                            }
                            _ => return undecodable("MERGE … UPDATE without a SET list"),
                        },
                        MergeAction::Delete { .. } => (Delete, Sets::new()),
                        MergeAction::DoNothing { .. } => continue,
                    };
                    // A MERGE join condition is not a row filter: matched rows are unbounded.
                    self.on_write(action, name, Scope::All, Records::new(), sets)?;
                }
            }
            Statement::Truncate(t) => {
                if t.cascade
                    .as_ref()
                    .is_some_and(|c| matches!(c, sqlparser::ast::CascadeOption::Cascade))
                {
                    return unmodelled(
                        "TRUNCATE … CASCADE empties tables the statement does not name",
                    );
                }
                for tt in &t.table_names {
                    self.on_object(Delete, &tt.name, Scope::All, Records::new())?;
                }
            }
            Statement::Drop {
                names,
                cascade,
                table,
                ..
            } => {
                if *cascade {
                    return unmodelled(
                        "DROP … CASCADE removes objects the statement does not name",
                    );
                }
                for n in names {
                    self.on_object(Drop, n, Scope::Some, Records::new())?;
                }
                if let Some(t) = table {
                    self.on_object(Alter, t, Scope::Some, Records::new())?;
                }
            }
            Statement::DropFunction(f) => {
                for d in &f.func_desc {
                    self.on_object(Drop, &d.name, Scope::Some, Records::new())?;
                }
            }
            Statement::DropProcedure { proc_desc, .. } => {
                for d in proc_desc {
                    self.on_object(Drop, &d.name, Scope::Some, Records::new())?;
                }
            }
            Statement::DropTrigger(t) => {
                self.on_object(Drop, &t.trigger_name, Scope::Some, Records::new())?;
                if let Some(table) = &t.table_name {
                    self.on_object(Alter, table, Scope::Some, Records::new())?;
                }
            }
            Statement::CreateTable(ct) => {
                self.on_object(Alter, &ct.name, Scope::Some, Records::new())?
            }
            Statement::CreateView(v) => {
                self.on_object(Alter, &v.name, Scope::Some, Records::new())?
            }
            Statement::CreateIndex(ci) => {
                self.on_object(Alter, &ci.table_name, Scope::Some, Records::new())?;
            }
            Statement::CreateSequence { name, .. } => {
                self.on_object(Alter, name, Scope::Some, Records::new())?
            }
            Statement::CreateFunction(f) => {
                self.on_object(Alter, &f.name, Scope::Some, Records::new())?
            }
            Statement::AlterTable(a) => {
                self.on_object(Alter, &a.name, Scope::Some, Records::new())?
            }
            Statement::AlterIndex { name, .. } => {
                self.on_object(Alter, name, Scope::Some, Records::new())?
            }
            Statement::AlterView(v) => {
                self.on_object(Alter, &v.name, Scope::Some, Records::new())?
            }
            Statement::Comment { object_name, .. } => {
                self.on_object(Alter, object_name, Scope::Some, Records::new())?;
            }
            Statement::CreateSchema { .. } => self.on_kind(Alter, "schema"),
            Statement::AlterSchema(_) => self.on_kind(Alter, "schema"),
            Statement::RenameTable(renames) => {
                for r in renames {
                    self.on_object(Alter, &r.old_name, Scope::Some, Records::new())?;
                    self.on_object(Alter, &r.new_name, Scope::Some, Records::new())?;
                }
            }
            Statement::RefreshMaterializedView(r) => {
                self.on_object(Update, &r.name, Scope::All, Records::new())?;
            }
            Statement::Explain {
                analyze,
                options,
                statement,
                ..
            } => {
                if !*analyze && !explain_runs(options.as_deref().unwrap_or_default())? {
                    // Planned, not run: what it would touch is still read (plans reveal data).
                    self.planned_only.push(&**statement as *const Statement);
                }
                // Run (`ANALYZE`): the statement's own operations, unchanged.
            }
            Statement::ExplainTable { table_name, .. } => {
                self.on_object(Read, table_name, Scope::Some, Records::new())?;
            }
            Statement::ShowColumns { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowViews { .. }
            | Statement::ShowSchemas { .. }
            | Statement::ShowDatabases { .. }
            | Statement::ShowCreate { .. }
            | Statement::ShowFunctions { .. }
            | Statement::ShowObjects(_)
            | Statement::ShowCatalogs { .. }
            | Statement::ShowCollation { .. }
            | Statement::ShowCharset(_) => self.on_kind(Read, "catalog"),
            Statement::ShowVariable { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowStatus { .. } => {
                self.on_kind(Read, "settings");
            }
            Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. } => {
                // Transaction control: no effect of its own on data.
            }
            Statement::Copy { source, .. } => match source {
                CopySource::Table { table_name, .. } => {
                    self.on_object(Admin, table_name, Scope::Some, Records::new())?;
                }
                CopySource::Query(_) => self.on_kind(Admin, "copy"),
            },
            Statement::Lock(l) => {
                for t in &l.tables {
                    self.on_object(Admin, &t.name, Scope::Some, Records::new())?;
                }
            }
            Statement::LockTables { .. } | Statement::UnlockTables => self.on_kind(Admin, "lock"),
            Statement::Grant(_)
            | Statement::Revoke(_)
            | Statement::GrantRole(_)
            | Statement::RevokeRole(_)
            | Statement::Deny(_)
            | Statement::AlterDefaultPrivileges(_)
            | Statement::CreateRole(_)
            | Statement::AlterRole { .. }
            | Statement::CreateUser(_)
            | Statement::AlterUser(_)
            | Statement::CreatePolicy(_)
            | Statement::AlterPolicy(_)
            | Statement::DropPolicy(_) => self.on_kind(Admin, "privileges"),
            Statement::Set(_)
            | Statement::Reset(_)
            | Statement::Discard { .. }
            | Statement::Use(_) => {
                self.on_kind(Admin, "session");
            }
            Statement::Vacuum(_) | Statement::Analyze(_) => self.on_kind(Admin, "maintenance"),
            Statement::CreateDatabase { .. }
            | Statement::CreateExtension(_)
            | Statement::DropExtension(_)
            | Statement::AttachDatabase { .. }
            | Statement::Kill { .. }
            | Statement::Pragma { .. }
            | Statement::LISTEN { .. }
            | Statement::UNLISTEN { .. }
            | Statement::NOTIFY { .. } => self.on_kind(Admin, "server"),
            Statement::Call(f) => self.on_object(Execute, &f.name, Scope::Some, Records::new())?,
            Statement::Execute { .. }
            | Statement::Prepare { .. }
            | Statement::Deallocate { .. } => {
                self.on_kind(Execute, "prepared");
            }
            Statement::Declare { .. } | Statement::Fetch { .. } | Statement::Close { .. } => {
                // Cursors: the declared query is walked as a read; fetching adds nothing.
            }
            other => {
                let kind: String = other
                    .to_string()
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                return unmodelled(format!("statement kind `{kind}` is not classified"));
            }
        }
        Ok(())
    }

    fn insert(&mut self, ins: &Insert) -> Result<(), DecodeError> {
        use Action::*;
        let TableObject::TableName(name) = &ins.table else {
            return unmodelled("INSERT into a table function");
        };
        let values = self.values_records(ins);
        let sqlite_replace = matches!(ins.or, Some(sqlparser::ast::SqliteOnConflict::Replace));
        if ins.replace_into || sqlite_replace {
            // REPLACE deletes the rows that collide on any unique key: not proven rows.
            self.on_object(Delete, name, Scope::All, Records::new())?;
        }
        if ins.overwrite {
            self.on_object(Delete, name, Scope::All, Records::new())?;
        }
        self.on_object(Create, name, Scope::Some, values.clone())?;
        match &ins.on {
            Some(OnInsert::OnConflict(oc)) => {
                if let OnConflictAction::DoUpdate(du) = &oc.action {
                    // `EXCLUDED.c` is the value the row would have been inserted with.
                    let sets = self.post_image(&du.assignments, Some(&values));
                    // The row updated is the one whose conflict key equals the new row's.
                    let keys: Vec<String> = match &oc.conflict_target {
                        Some(ConflictTarget::Columns { columns, .. }) => columns
                            .iter()
                            .filter_map(|c| self.dec.ident(c).ok())
                            .collect(),
                        _ => Vec::new(),
                    };
                    let records: Records = values
                        .into_iter()
                        .filter(|(k, _)| keys.contains(k))
                        .collect();
                    // Bounded only by the proposed rows' conflict keys: from `INSERT …
                    // SELECT`, or with keys the decoder could not read, any row may be hit.
                    let scope = upsert_scope(&keys, &records);
                    self.on_write(Update, name, scope, records, sets)?;
                }
            }
            Some(OnInsert::DuplicateKeyUpdate(assignments)) => {
                // Which unique key collides is not known: the rows hit are not proven.
                let sets = self.post_image(assignments, None);
                self.on_write(Update, name, Scope::All, Records::new(), sets)?
            }
            Some(_) => self.on_object(Update, name, Scope::All, Records::new())?,
            None => {}
        }
        if ins.returning.is_some() {
            self.push(Read, self.dec.resource(name)?, Scope::Some, Records::new());
        }
        Ok(())
    }
}
