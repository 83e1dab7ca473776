//! Environment variables at three scopes (workspace, project, environment), with secrets sealed at rest and
//! masked on every read unless an owner or admin reveals one value (which is audited).

use super::access::{Access, Actor, resolve};
use super::projects::{resolve_environment, resolve_project};
use super::secrets::variable_aad;
use super::{ServiceError, Services};
use crate::domain::env::{MASK, MAX_VARIABLES_PER_SCOPE, dotenv_line, validate_key, validate_value};
use crate::domain::{Role, Scope, Variable, new_id, now};
use crate::store::{self, variables::ScopeRef, variables::StoredVariable};
use rusqlite::Connection;

/// Which variables a call works on: the workspace's shared ones (`project: None`), a project's, or one
/// environment's overrides (`environment: Some`).
#[derive(Debug, Clone, Default)]
pub struct VarTarget {
    pub project: Option<String>,
    pub environment: Option<String>,
}

/// One variable in a bulk write. `is_secret: None` keeps an existing variable's secrecy (new ones are plain).
#[derive(Debug, Clone)]
pub struct BulkItem {
    pub key: String,
    pub value: String,
    pub is_secret: Option<bool>,
}

/// What a bulk write changed. `unchanged` counts keys sent with the value they already had.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, utoipa::ToSchema)]
pub struct BulkResult {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub unchanged: usize,
}

/// A variable of the effective set and the scope it comes from.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ResolvedVariable {
    pub key: String,
    pub value: String,
    pub is_secret: bool,
    pub masked: bool,
    /// Where the winning value is defined.
    pub source: Scope,
    /// Less specific scopes whose value this one hides.
    pub overrides: Vec<Scope>,
}

struct Resolved {
    access: Access,
    scope: ScopeRef,
    /// `workspace`, `<project>` or `<project>/<environment>`, for messages and the audit log.
    label: String,
}

fn resolve_target(conn: &Connection, actor: &Actor, ws: &str, t: &VarTarget) -> Result<Resolved, ServiceError> {
    match &t.project {
        None => {
            let access = resolve(conn, actor, ws)?;
            let scope = ScopeRef { workspace_id: access.workspace.id.clone(), project_id: None, environment_id: None };
            Ok(Resolved { label: format!("workspace {}", access.workspace.slug), access, scope })
        }
        Some(p) => {
            let (access, project) = resolve_project(conn, actor, ws, p)?;
            let (environment_id, label) = match &t.environment {
                None => (None, project.slug.clone()),
                Some(name) => {
                    let e = resolve_environment(conn, &project, Some(name))?;
                    (Some(e.id), format!("{}/{}", project.slug, e.name))
                }
            };
            let scope =
                ScopeRef { workspace_id: access.workspace.id.clone(), project_id: Some(project.id), environment_id };
            Ok(Resolved { access, scope, label })
        }
    }
}

/// Whether a new variable is secret, and whether builds receive it too.
#[derive(Debug, Clone, Copy, Default)]
pub struct Secrecy {
    pub is_secret: bool,
    pub build_secret: bool,
}

/// A change of secrecy (`None` keeps what is stored).
#[derive(Debug, Clone, Copy, Default)]
pub struct SecrecyChange {
    pub is_secret: Option<bool>,
    pub build_secret: Option<bool>,
}

fn build_secret_needs_secret(key: &str) -> ServiceError {
    ServiceError::invalid(
        "build_secret",
        format!("{key}: build_secret applies to secrets only (plain variables always reach builds); set is_secret too"),
    )
}

impl Services {
    fn view(&self, v: StoredVariable, reveal: bool) -> Result<Variable, ServiceError> {
        let masked = v.is_secret && !reveal;
        let value = if !v.is_secret {
            v.value
        } else if reveal {
            self.secrets.open(&v.value, &variable_aad(&v.id))?
        } else {
            MASK.to_owned()
        };
        Ok(Variable {
            key: v.key,
            value,
            is_secret: v.is_secret,
            build_secret: v.build_secret,
            masked,
            scope: v.scope,
            environment: v.environment,
            created_at: v.created_at,
            updated_at: v.updated_at,
        })
    }

    /// The plaintext of a stored value (opening a secret).
    fn plain(&self, v: &StoredVariable) -> Result<String, ServiceError> {
        if v.is_secret { self.secrets.open(&v.value, &variable_aad(&v.id)) } else { Ok(v.value.clone()) }
    }

    /// The stored form of a value: sealed for secrets.
    fn stored_value(&self, id: &str, value: &str, is_secret: bool) -> Result<String, ServiceError> {
        if is_secret { self.secrets.seal(value, &variable_aad(id)) } else { Ok(value.to_owned()) }
    }

    /// The variables of one scope, secrets masked. Any member.
    pub async fn list_variables(
        &self,
        actor: &Actor,
        ws: &str,
        target: VarTarget,
    ) -> Result<Vec<Variable>, ServiceError> {
        let (actor, ws) = (actor.clone(), ws.to_owned());
        let rows = self
            .store
            .read(move |c| {
                let r = resolve_target(c, &actor, &ws, &target)?;
                Ok::<_, ServiceError>(store::variables::list(c, &r.scope)?)
            })
            .await?;
        rows.into_iter().map(|v| self.view(v, false)).collect()
    }

    /// The effective set for a project's environment (default production): environment over project over
    /// workspace, each value with the scope it comes from. Secrets masked. Any member.
    pub async fn resolved_variables(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        environment: Option<&str>,
    ) -> Result<Vec<ResolvedVariable>, ServiceError> {
        let (actor, ws, project, env) =
            (actor.clone(), ws.to_owned(), project.to_owned(), environment.map(str::to_owned));
        let rows = self
            .store
            .read(move |c| {
                let (access, p) = resolve_project(c, &actor, &ws, &project)?;
                let e = resolve_environment(c, &p, env.as_deref())?;
                Ok::<_, ServiceError>(store::variables::applicable(c, &access.workspace.id, &p.id, &e.id)?)
            })
            .await?;
        Ok(effective(rows)
            .into_iter()
            .map(|(v, overrides)| ResolvedVariable {
                key: v.key,
                value: if v.is_secret { MASK.to_owned() } else { v.value },
                is_secret: v.is_secret,
                masked: v.is_secret,
                source: v.scope,
                overrides,
            })
            .collect())
    }

    /// One variable. `reveal` (owner or admin) shows a secret's value and writes an `env.reveal` audit row.
    pub async fn get_variable(
        &self,
        actor: &Actor,
        ws: &str,
        target: VarTarget,
        key: &str,
        reveal: bool,
    ) -> Result<Variable, ServiceError> {
        let (actor, ws, key) = (actor.clone(), ws.to_owned(), key.to_owned());
        let row = self
            .store
            .write(move |tx| {
                let r = resolve_target(tx, &actor, &ws, &target)?;
                let v = find(tx, &r, &key)?;
                if reveal && v.is_secret {
                    r.access.require(Role::Admin, "revealing a secret")?;
                    store::audit::insert(
                        tx,
                        &actor.audit(
                            Some(&r.access.workspace.id),
                            "env.reveal",
                            format!("{}:{}", r.label, v.key),
                            serde_json::json!({"key": v.key}),
                        ),
                    )?;
                }
                Ok::<_, ServiceError>(v)
            })
            .await?;
        self.view(row, reveal)
    }

    /// Adds a variable (admin); 409 when the key exists in that scope.
    pub async fn create_variable(
        &self,
        actor: &Actor,
        ws: &str,
        target: VarTarget,
        key: &str,
        value: &str,
        secrecy: Secrecy,
    ) -> Result<Variable, ServiceError> {
        let Secrecy { is_secret, build_secret } = secrecy;
        if build_secret && !is_secret {
            return Err(build_secret_needs_secret(key));
        }
        let key = validate_key("key", key)?;
        validate_value("value", &key, value)?;
        let id = new_id();
        let stored = self.stored_value(&id, value, is_secret)?;
        let (actor, ws) = (actor.clone(), ws.to_owned());
        let row = self
            .store
            .write(move |tx| {
                let r = resolve_target(tx, &actor, &ws, &target)?;
                r.access.require(Role::Admin, "changing environment variables")?;
                if store::variables::list(tx, &r.scope)?.len() >= MAX_VARIABLES_PER_SCOPE {
                    return Err(ServiceError::invalid(
                        "key",
                        format!("{} already has {MAX_VARIABLES_PER_SCOPE} variables", r.label),
                    ));
                }
                let t = now();
                let v = StoredVariable {
                    id,
                    key,
                    value: stored,
                    is_secret,
                    build_secret,
                    scope: scope_of(&r.scope),
                    environment: target.environment.clone(),
                    created_at: t,
                    updated_at: t,
                };
                store::variables::insert(tx, &r.scope, &v).map_err(|e| match e {
                    store::StoreError::Unique(_) => ServiceError::conflict(
                        "variable_exists",
                        format!("{} already has {}; use PATCH to change it", r.label, v.key),
                    ),
                    other => other.into(),
                })?;
                store::audit::insert(
                    tx,
                    &actor.audit(
                        Some(&r.access.workspace.id),
                        "env.create",
                        format!("{}:{}", r.label, v.key),
                        serde_json::json!({"key": v.key, "is_secret": is_secret}),
                    ),
                )?;
                Ok(v)
            })
            .await?;
        self.view(row, false)
    }

    /// Changes a variable's value and/or secrecy (admin). Turning a secret into a plain value needs a new value.
    pub async fn update_variable(
        &self,
        actor: &Actor,
        ws: &str,
        target: VarTarget,
        key: &str,
        value: Option<String>,
        change: SecrecyChange,
    ) -> Result<Variable, ServiceError> {
        let is_secret = change.is_secret;
        if let Some(v) = &value {
            validate_value("value", key, v)?;
        }
        let (actor, ws, key) = (actor.clone(), ws.to_owned(), key.to_owned());
        let (current, access_label) = self
            .store
            .read({
                let (actor, ws, key, target) = (actor.clone(), ws.clone(), key.clone(), target.clone());
                move |c| {
                    let r = resolve_target(c, &actor, &ws, &target)?;
                    r.access.require(Role::Admin, "changing environment variables")?;
                    Ok::<_, ServiceError>((find(c, &r, &key)?, r.label))
                }
            })
            .await?;
        let secret = is_secret.unwrap_or(current.is_secret);
        if current.is_secret && !secret && value.is_none() {
            return Err(ServiceError::invalid(
                "is_secret",
                format!("making {key} in {access_label} a plain variable needs its value sent again"),
            ));
        }
        let build_secret = secret && change.build_secret.unwrap_or(current.build_secret);
        if change.build_secret == Some(true) && !secret {
            return Err(build_secret_needs_secret(&key));
        }
        let plain = match value {
            Some(v) => v,
            None => self.plain(&current)?,
        };
        let stored = self.stored_value(&current.id, &plain, secret)?;
        let id = current.id.clone();
        let row = self
            .store
            .write(move |tx| {
                let r = resolve_target(tx, &actor, &ws, &target)?;
                r.access.require(Role::Admin, "changing environment variables")?;
                let mut v = find(tx, &r, &key)?;
                if v.id != id {
                    return Err(ServiceError::conflict("changed", format!("{key} changed meanwhile; try again")));
                }
                v.value = stored;
                v.is_secret = secret;
                v.build_secret = build_secret;
                v.updated_at = now();
                store::variables::update(tx, &v.id, &v.value, secret, build_secret, v.updated_at)?;
                store::audit::insert(
                    tx,
                    &actor.audit(
                        Some(&r.access.workspace.id),
                        "env.update",
                        format!("{}:{}", r.label, v.key),
                        serde_json::json!({"key": v.key, "is_secret": secret}),
                    ),
                )?;
                Ok::<_, ServiceError>(v)
            })
            .await?;
        self.view(row, false)
    }

    /// Removes a variable (admin).
    pub async fn delete_variable(
        &self,
        actor: &Actor,
        ws: &str,
        target: VarTarget,
        key: &str,
    ) -> Result<(), ServiceError> {
        let (actor, ws, key) = (actor.clone(), ws.to_owned(), key.to_owned());
        self.store
            .write(move |tx| {
                let r = resolve_target(tx, &actor, &ws, &target)?;
                r.access.require(Role::Admin, "changing environment variables")?;
                let v = find(tx, &r, &key)?;
                store::variables::delete(tx, &v.id)?;
                store::audit::insert(
                    tx,
                    &actor.audit(
                        Some(&r.access.workspace.id),
                        "env.delete",
                        format!("{}:{}", r.label, v.key),
                        serde_json::json!({"key": v.key}),
                    ),
                )?;
                Ok(())
            })
            .await
    }

    /// Writes many variables at once (admin), in one transaction. `merge: true` upserts the given keys;
    /// `merge: false` also deletes every other key of the scope. Answers exact counts.
    pub async fn bulk_variables(
        &self,
        actor: &Actor,
        ws: &str,
        target: VarTarget,
        items: Vec<BulkItem>,
        merge: bool,
    ) -> Result<BulkResult, ServiceError> {
        let mut seen = std::collections::HashSet::new();
        for (i, item) in items.iter().enumerate() {
            validate_key("variables", &item.key)
                .map_err(|e| ServiceError::invalid(format!("variables[{i}].key"), e.message))?;
            validate_value("variables", &item.key, &item.value)
                .map_err(|e| ServiceError::invalid(format!("variables[{i}].value"), e.message))?;
            if !seen.insert(item.key.clone()) {
                return Err(ServiceError::invalid("variables", format!("{} is given twice", item.key)));
            }
        }
        if items.len() > MAX_VARIABLES_PER_SCOPE {
            return Err(ServiceError::invalid(
                "variables",
                format!("at most {MAX_VARIABLES_PER_SCOPE} variables per scope"),
            ));
        }
        // Existing rows are read first so secrets can be compared and sealed outside the write transaction.
        let existing = self
            .store
            .read({
                let (actor, ws, target) = (actor.clone(), ws.to_owned(), target.clone());
                move |c| {
                    let r = resolve_target(c, &actor, &ws, &target)?;
                    r.access.require(Role::Admin, "changing environment variables")?;
                    Ok::<_, ServiceError>(store::variables::list(c, &r.scope)?)
                }
            })
            .await?;
        enum Op {
            Insert(StoredVariable),
            Update { id: String, value: String, is_secret: bool, build_secret: bool },
        }
        let mut ops = Vec::new();
        let mut result = BulkResult::default();
        let t = now();
        for item in &items {
            match existing.iter().find(|v| v.key == item.key) {
                Some(old) => {
                    let secret = item.is_secret.unwrap_or(old.is_secret);
                    if secret == old.is_secret && self.plain(old)? == item.value {
                        result.unchanged += 1;
                        continue;
                    }
                    result.updated += 1;
                    let value = self.stored_value(&old.id, &item.value, secret)?;
                    ops.push(Op::Update {
                        id: old.id.clone(),
                        value,
                        is_secret: secret,
                        build_secret: old.build_secret && secret,
                    });
                }
                None => {
                    result.created += 1;
                    let id = new_id();
                    let secret = item.is_secret.unwrap_or(false);
                    ops.push(Op::Insert(StoredVariable {
                        value: self.stored_value(&id, &item.value, secret)?,
                        id,
                        key: item.key.clone(),
                        is_secret: secret,
                        build_secret: false,
                        scope: Scope::Project,
                        environment: None,
                        created_at: t,
                        updated_at: t,
                    }));
                }
            }
        }
        let doomed: Vec<(String, String)> = if merge {
            Vec::new()
        } else {
            existing.iter().filter(|v| !seen.contains(&v.key)).map(|v| (v.id.clone(), v.key.clone())).collect()
        };
        result.deleted = doomed.len();
        let expected: Vec<(String, String)> =
            existing.iter().map(|v| (v.id.clone(), v.updated_at.to_rfc3339())).collect();
        let (actor, ws) = (actor.clone(), ws.to_owned());
        self.store
            .write(move |tx| {
                let r = resolve_target(tx, &actor, &ws, &target)?;
                r.access.require(Role::Admin, "changing environment variables")?;
                let now_rows: Vec<(String, String)> = store::variables::list(tx, &r.scope)?
                    .iter()
                    .map(|v| (v.id.clone(), v.updated_at.to_rfc3339()))
                    .collect();
                if now_rows != expected {
                    return Err(ServiceError::conflict(
                        "changed",
                        format!("the variables of {} changed while this request ran; send it again", r.label),
                    ));
                }
                for op in ops {
                    match op {
                        Op::Insert(v) => store::variables::insert(tx, &r.scope, &v)?,
                        Op::Update { id, value, is_secret, build_secret } => {
                            store::variables::update(tx, &id, &value, is_secret, build_secret, t)?
                        }
                    }
                }
                for (id, _) in &doomed {
                    store::variables::delete(tx, id)?;
                }
                let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
                let deleted: Vec<&str> = doomed.iter().map(|(_, k)| k.as_str()).collect();
                store::audit::insert(
                    tx,
                    &actor.audit(
                        Some(&r.access.workspace.id),
                        "env.bulk",
                        r.label.clone(),
                        serde_json::json!({"merge": merge, "keys": keys, "deleted": deleted,
                            "created": result.created, "updated": result.updated}),
                    ),
                )?;
                Ok(result)
            })
            .await
    }

    /// The scope as a dotenv file. Secrets appear as comments unless `reveal` (owner or admin; audited), so an
    /// export can be re-imported without overwriting them.
    pub async fn export_dotenv(
        &self,
        actor: &Actor,
        ws: &str,
        target: VarTarget,
        reveal: bool,
    ) -> Result<String, ServiceError> {
        let (actor, ws) = (actor.clone(), ws.to_owned());
        let rows = self
            .store
            .write(move |tx| {
                let r = resolve_target(tx, &actor, &ws, &target)?;
                let rows = store::variables::list(tx, &r.scope)?;
                if reveal && rows.iter().any(|v| v.is_secret) {
                    r.access.require(Role::Admin, "revealing secrets")?;
                    let keys: Vec<&str> = rows.iter().filter(|v| v.is_secret).map(|v| v.key.as_str()).collect();
                    store::audit::insert(
                        tx,
                        &actor.audit(
                            Some(&r.access.workspace.id),
                            "env.reveal",
                            r.label.clone(),
                            serde_json::json!({"keys": keys}),
                        ),
                    )?;
                }
                Ok::<_, ServiceError>(rows)
            })
            .await?;
        let mut out = String::new();
        for v in rows {
            if v.is_secret && !reveal {
                out.push_str(&format!(
                    "# {} is a secret; export with ?reveal=true (owner or admin) to include it\n",
                    v.key
                ));
            } else {
                out.push_str(&dotenv_line(&v.key, &self.plain(&v)?));
            }
        }
        Ok(out)
    }
}

fn scope_of(s: &ScopeRef) -> Scope {
    match (&s.project_id, &s.environment_id) {
        (None, _) => Scope::Workspace,
        (Some(_), None) => Scope::Project,
        (Some(_), Some(_)) => Scope::Environment,
    }
}

fn find(conn: &Connection, r: &Resolved, key: &str) -> Result<StoredVariable, ServiceError> {
    store::variables::list(conn, &r.scope)?
        .into_iter()
        .find(|v| v.key == key)
        .ok_or_else(|| ServiceError::NotFound(format!("variable {key} not found in {}", r.label)))
}

/// Picks the most specific row per key; also says which less specific scopes it hides.
fn effective(rows: Vec<StoredVariable>) -> Vec<(StoredVariable, Vec<Scope>)> {
    let mut by_key: std::collections::BTreeMap<String, Vec<StoredVariable>> = std::collections::BTreeMap::new();
    for r in rows {
        by_key.entry(r.key.clone()).or_default().push(r);
    }
    by_key
        .into_values()
        .filter_map(|mut vs| {
            vs.sort_by_key(|v| std::cmp::Reverse(v.scope));
            let overrides = vs.iter().skip(1).map(|v| v.scope).collect();
            vs.into_iter().next().map(|w| (w, overrides))
        })
        .collect()
}
