//! Managed databases: create, list, read, delete, start, stop, restart and attach to a project.
//!
//! Each database is one container of its engine's image on the workspace's network (reachable as `<name>.db`),
//! with a named volume that only `DELETE …?purge` removes, generated credentials sealed under the keyring, and
//! CPU/memory limits. Losing data is the worst thing Berth could do, so nothing here removes a volume or a
//! backup unless the user asked for exactly that, by name.

use super::access::{Access, Actor, resolve};
use super::database_views::{Attached, DatabaseView, DeletedDatabase};
use super::{BulkItem, ServiceError, Services, VarTarget};
use crate::docker::{ContainerSpec, DockerError, LABEL_DATABASE, LABEL_MANAGED, LABEL_WORKSPACE, Labels};
use crate::domain::database::{
    Credentials, DatabaseKind, DatabaseStatus, engine_database_name, image_for, validate_database_name,
    validate_version,
};
use crate::domain::env::validate_key;
use crate::domain::{Role, Workspace, new_id, now};
use crate::store::{self, databases::DatabaseRow};
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a database container gets to shut down cleanly before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// How long create, start and restart wait for the engine to accept connections before answering `starting`.
const READY_WAIT: Duration = Duration::from_secs(90);
/// How long one readiness check may take.
const READY_CHECK_LIMIT: Duration = Duration::from_secs(10);

/// What `POST …/databases` asks for.
#[derive(Debug, Clone)]
pub struct DatabaseInput {
    pub name: String,
    pub kind: String,
    pub version: Option<String>,
    pub public: bool,
}

/// One lock per key: per database, so a backup, a restore, a stop and a delete of the same database never overlap;
/// per backup, so its file is checked by one restore or download at a time (`Services::ensure_verified`).
#[derive(Default)]
pub(crate) struct Locks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl Locks {
    /// The lock of `id`. Locks nobody holds or waits for any more (the map has the only reference) are dropped on
    /// the way, so the map holds only the keys in use instead of one entry for every database and backup ever locked;
    /// dropping such a lock cannot let two holders overlap, as there is no holder to overlap with.
    pub(crate) fn of(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.map();
        map.retain(|key, lock| key == id || Arc::strong_count(lock) > 1);
        map.entry(id.to_owned()).or_default().clone()
    }

    /// The map, even after a panic while it was locked: no step above can leave it half changed, and a fresh,
    /// unshared lock instead would let two holders overlap.
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map().len()
    }
}

fn database_not_found(id: &str) -> ServiceError {
    ServiceError::NotFound(format!("database '{id}' not found"))
}

/// A database of the caller's workspace; any other is 404.
pub(crate) fn resolve_database(
    conn: &Connection,
    actor: &Actor,
    ws: &str,
    id: &str,
) -> Result<(Access, DatabaseRow), ServiceError> {
    let access = resolve(conn, actor, ws)?;
    let row = store::databases::get(conn, id)?
        .filter(|d| d.workspace_id == access.workspace.id)
        .ok_or_else(|| database_not_found(id))?;
    Ok((access, row))
}

/// The host name a database answers to on its workspace's network.
pub(crate) fn host_name(row: &DatabaseRow) -> String {
    format!("{}.db", row.name)
}

fn container_name(ws: &Workspace, name: &str) -> String {
    format!("berth-{}-db-{name}", ws.namespace)
}

fn password_aad(id: &str) -> String {
    super::secrets::database_aad(id, "password")
}

fn admin_aad(id: &str) -> String {
    super::secrets::database_aad(id, "admin")
}

/// A free TCP port on the host, for a public database (the engine binds it right after).
fn free_host_port() -> Result<u16, ServiceError> {
    let listener = std::net::TcpListener::bind(("0.0.0.0", 0))
        .map_err(|e| ServiceError::Internal(format!("while finding a free port: {e}")))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| ServiceError::Internal(e.to_string()))
}

fn new_password() -> Result<String, ServiceError> {
    Ok(hex::encode(crate::crypto::random_bytes::<24>()?))
}

impl Services {
    /// The plaintext credentials of a stored database.
    pub(crate) fn database_credentials(&self, row: &DatabaseRow) -> Result<Credentials, ServiceError> {
        Ok(Credentials {
            username: row.username.clone(),
            password: self.secrets.open(&row.password, &password_aad(&row.id))?,
            admin_password: self.secrets.open(&row.admin_password, &admin_aad(&row.id))?,
            database_name: row.database_name.clone(),
        })
    }

    /// Runs the database's container from its row (network, volume, limits, labels). The volume is created when
    /// missing and reused with its data otherwise.
    async fn run_database_container(&self, ws: &Workspace, row: &DatabaseRow) -> Result<(), ServiceError> {
        let creds = self.database_credentials(row)?;
        let mut labels = Labels::new();
        labels.insert(LABEL_MANAGED.to_owned(), "true".to_owned());
        labels.insert(LABEL_WORKSPACE.to_owned(), ws.id.clone());
        let network = super::deployer::network_name(ws);
        self.docker.ensure_network(&network, &labels).await?;
        labels.insert(LABEL_DATABASE.to_owned(), row.id.clone());
        self.docker.ensure_volume(&row.volume, &labels).await?;
        let spec = ContainerSpec {
            env: row.kind.container_env(&creds),
            cmd: row.kind.container_cmd(&creds),
            labels,
            network: Some(network),
            network_aliases: vec![host_name(row)],
            nano_cpus: Some(i64::from(self.config.database_cpus) * 1_000_000_000),
            memory_bytes: Some(i64::from(self.config.database_memory_mb) * 1024 * 1024),
            volumes: vec![(row.volume.clone(), row.kind.data_dir().to_owned())],
            restart_unless_stopped: true,
            publish: row.host_port.map(|p| (row.kind.port(), p)),
            ..ContainerSpec::new(row.container.clone(), row.image.clone())
        };
        match self.docker.run_container(spec).await {
            Ok(_) => Ok(()),
            Err(DockerError::NotFound { what }) => Err(ServiceError::invalid(
                "version",
                format!(
                    "{what} is not available on this Docker engine (pull or build it, or set database_image_{})",
                    row.kind.as_str()
                ),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until the engine accepts connections, up to `within`. Returns whether it did (false at once when the
    /// container has stopped).
    pub(crate) async fn wait_database_ready(&self, row: &DatabaseRow, within: Duration) -> bool {
        let started = Instant::now();
        loop {
            let check = self.docker.exec_script(&row.container, row.kind.ready_script(), None, None, READY_CHECK_LIMIT);
            match check.await {
                Ok(outcome) if outcome.exit_code == 0 => return true,
                Ok(_) => {}
                // Not running: give up at once when it has exited for good (a crash loop keeps restarting).
                Err(DockerError::Conflict { .. } | DockerError::NotFound { .. }) => {
                    match self.docker.inspect_container(&row.container).await {
                        Ok(Some(c)) if c.running || c.status == "restarting" => {}
                        _ => return false,
                    }
                }
                Err(_) => {}
            }
            if started.elapsed() >= within {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits for the engine, then says where it stands: `running` once it answers, `starting` while the
    /// container runs but the engine does not answer yet, else what the container's state says.
    async fn status_after_wait(&self, row: &DatabaseRow) -> Result<DatabaseStatus, ServiceError> {
        if self.wait_database_ready(row, READY_WAIT).await {
            return Ok(DatabaseStatus::Running);
        }
        Ok(match self.database_status(row).await? {
            DatabaseStatus::Running => DatabaseStatus::Starting,
            other => other,
        })
    }

    /// `POST /workspaces/:ws/databases` (admin): creates the database and waits (up to 90 s) until it accepts
    /// connections. 409 when the workspace has a database of that name.
    pub async fn create_database(
        &self,
        actor: &Actor,
        ws: &str,
        input: DatabaseInput,
    ) -> Result<DatabaseView, ServiceError> {
        let name = validate_database_name("name", &input.name)?;
        let kind = DatabaseKind::parse("type", &input.kind)?;
        let version = match input.version.as_deref() {
            Some(v) => validate_version("version", v)?,
            None => kind.default_version().to_owned(),
        };
        let (row, workspace) = self.insert_database(actor, ws, &name, kind, &version, input.public).await?;
        self.start_new_database(actor, &workspace, row).await
    }

    /// Writes a new database's row (credentials generated and sealed) and its audit line.
    pub(crate) async fn insert_database(
        &self,
        actor: &Actor,
        ws: &str,
        name: &str,
        kind: DatabaseKind,
        version: &str,
        public: bool,
    ) -> Result<(DatabaseRow, Workspace), ServiceError> {
        let id = new_id();
        let password = new_password()?;
        let admin = if kind == DatabaseKind::Mysql { new_password()? } else { password.clone() };
        let row = DatabaseRow {
            workspace_id: String::new(),
            name: name.to_owned(),
            kind,
            version: version.to_owned(),
            image: image_for(self.config.database_image(kind), version),
            username: kind.username().to_owned(),
            password: self.secrets.seal(&password, &password_aad(&id))?,
            admin_password: self.secrets.seal(&admin, &admin_aad(&id))?,
            database_name: if kind.has_database_name() { engine_database_name(name) } else { "0".to_owned() },
            public,
            host_port: if public { Some(free_host_port()?) } else { None },
            running: true,
            container: String::new(),
            volume: format!("berth-db-{id}"),
            backup_cron: None,
            backup_retain: None,
            next_backup_at: None,
            created_at: now(),
            id,
        };
        let (a, w) = (actor.clone(), ws.to_owned());
        self.store
            .write(move |tx| {
                let access = resolve(tx, &a, &w)?;
                access.require(Role::Admin, "creating databases")?;
                let row = DatabaseRow {
                    workspace_id: access.workspace.id.clone(),
                    container: container_name(&access.workspace, &row.name),
                    ..row
                };
                store::databases::insert(tx, &row).map_err(|e| match e {
                    store::StoreError::Unique(_) => ServiceError::conflict(
                        "database_exists",
                        format!("workspace '{}' already has a database named {}", access.workspace.slug, row.name),
                    ),
                    other => other.into(),
                })?;
                store::audit::insert(
                    tx,
                    &a.audit(
                        Some(&access.workspace.id),
                        "database.create",
                        row.name.clone(),
                        serde_json::json!({"id": row.id, "type": row.kind.as_str(), "version": row.version, "public": row.public}),
                    ),
                )?;
                Ok((row, access.workspace))
            })
            .await
    }

    /// Runs a just-inserted database and waits for it; a container that cannot run takes its row (and its
    /// brand-new, empty volume) away again, so a failed create leaves nothing behind.
    pub(crate) async fn start_new_database(
        &self,
        actor: &Actor,
        ws: &Workspace,
        row: DatabaseRow,
    ) -> Result<DatabaseView, ServiceError> {
        if let Err(e) = self.run_database_container(ws, &row).await {
            let _ = self.docker.remove_container(&row.container).await;
            let _ = self.docker.remove_volume(&row.volume).await;
            let id = row.id.clone();
            if let Err(e) = self.store.write(move |tx| store::databases::delete(tx, &id)).await {
                tracing::warn!(error = %e, "while removing the row of a database that did not start");
            }
            return Err(e);
        }
        let status = self.status_after_wait(&row).await?;
        let reveal = self.access(actor, &ws.slug).await?.role >= Role::Admin;
        self.database_view(row, reveal, Some(status)).await
    }

    /// `GET /workspaces/:ws/databases` (member; credentials masked below admin).
    pub async fn list_databases(&self, actor: &Actor, ws: &str) -> Result<Vec<DatabaseView>, ServiceError> {
        let (a, w) = (actor.clone(), ws.to_owned());
        let (access, rows) = self
            .store
            .read(move |c| {
                let access = resolve(c, &a, &w)?;
                let rows = store::databases::for_workspace(c, &access.workspace.id)?;
                Ok::<_, ServiceError>((access, rows))
            })
            .await?;
        let reveal = access.role >= Role::Admin;
        let mut views = Vec::with_capacity(rows.len());
        for row in rows {
            views.push(self.database_view(row, reveal, None).await?);
        }
        Ok(views)
    }

    /// A database and the caller's access, read outside any transaction.
    pub(crate) async fn find_database(
        &self,
        actor: &Actor,
        ws: &str,
        id: &str,
        need: Role,
        doing: &'static str,
    ) -> Result<(Access, DatabaseRow), ServiceError> {
        let (a, w, i) = (actor.clone(), ws.to_owned(), id.to_owned());
        self.store
            .read(move |c| {
                let (access, row) = resolve_database(c, &a, &w, &i)?;
                access.require(need, doing)?;
                Ok((access, row))
            })
            .await
    }

    /// `GET …/databases/:id` (member; credentials masked below admin).
    pub async fn get_database(&self, actor: &Actor, ws: &str, id: &str) -> Result<DatabaseView, ServiceError> {
        let (access, row) = self.find_database(actor, ws, id, Role::Member, "reading databases").await?;
        self.database_view(row, access.role >= Role::Admin, None).await
    }

    /// Records an audit line for a database action (its own short write: never around Docker work).
    pub(crate) async fn audit_database(
        &self,
        actor: &Actor,
        access: &Access,
        action: &'static str,
        row: &DatabaseRow,
        details: serde_json::Value,
    ) -> Result<(), ServiceError> {
        let entry = actor.audit(Some(&access.workspace.id), action, row.name.clone(), details);
        self.store.write(move |tx| Ok::<_, ServiceError>(store::audit::insert(tx, &entry)?)).await
    }

    /// `POST …/databases/:id/start|stop|restart` (admin). Start runs the container again (re-created from the
    /// stored settings if it is gone, on the same volume) and waits until the engine accepts connections.
    pub async fn control_database(
        &self,
        actor: &Actor,
        ws: &str,
        id: &str,
        action: &str,
    ) -> Result<DatabaseView, ServiceError> {
        let (access, row) = self.find_database(actor, ws, id, Role::Admin, "starting and stopping databases").await?;
        let lock = self.db_locks.of(&row.id);
        let _held = lock.lock().await;
        let (stop, start, audit) = match action {
            "start" => (false, true, "database.start"),
            "stop" => (true, false, "database.stop"),
            "restart" => (true, true, "database.restart"),
            other => return Err(ServiceError::invalid("action", format!("'{other}' is not start, stop or restart"))),
        };
        let rid = row.id.clone();
        self.store.write(move |tx| Ok::<_, ServiceError>(store::databases::set_running(tx, &rid, start)?)).await?;
        if stop {
            self.docker.stop_container(&row.container, STOP_GRACE).await?;
        }
        let mut status = None;
        if start {
            match self.docker.start_container(&row.container).await {
                Ok(()) => {}
                Err(DockerError::NotFound { .. }) => self.run_database_container(&access.workspace, &row).await?,
                Err(e) => return Err(e.into()),
            }
            status = Some(self.status_after_wait(&row).await?);
        }
        self.audit_database(actor, &access, audit, &row, serde_json::json!({"id": row.id})).await?;
        let row = DatabaseRow { running: start, ..row };
        self.database_view(row, true, status).await
    }

    /// `DELETE …/databases/:id {confirm, purge}` (admin). `confirm` must be the database's name. The container is
    /// removed; the volume and the backup files are kept unless `purge` is true.
    pub async fn delete_database(
        &self,
        actor: &Actor,
        ws: &str,
        id: &str,
        confirm: Option<&str>,
        purge: bool,
    ) -> Result<DeletedDatabase, ServiceError> {
        let (access, row) = self.find_database(actor, ws, id, Role::Admin, "deleting databases").await?;
        if confirm != Some(row.name.as_str()) {
            return Err(ServiceError::invalid(
                "confirm",
                format!("deleting database {} needs \"confirm\": \"{}\" (its name)", row.name, row.name),
            ));
        }
        let lock = self.db_locks.of(&row.id);
        let _held = lock.lock().await;
        self.docker.stop_container(&row.container, STOP_GRACE).await?;
        self.docker.remove_container(&row.container).await?;
        let backups_dir = self.config.backups_dir().join(&row.id);
        if purge {
            self.purge_remote_copies(&row.id).await;
            self.docker.remove_volume(&row.volume).await?;
            match tokio::fs::remove_dir_all(&backups_dir).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ServiceError::Internal(format!("while removing {}: {e}", backups_dir.display()))),
            }
        }
        let (rid, entry) = (
            row.id.clone(),
            actor.audit(
                Some(&access.workspace.id),
                "database.delete",
                row.name.clone(),
                serde_json::json!({"id": row.id, "purge": purge, "volume": row.volume}),
            ),
        );
        self.store
            .write(move |tx| {
                store::databases::delete(tx, &rid)?;
                store::audit::insert(tx, &entry)?;
                Ok::<_, ServiceError>(())
            })
            .await?;
        let volume_kept = self.docker.volume_exists(&row.volume).await?;
        Ok(DeletedDatabase {
            id: row.id,
            deleted: true,
            volume: row.volume,
            volume_kept,
            backups_kept: !purge && backups_dir.exists(),
            backups_dir: backups_dir.display().to_string(),
        })
    }

    /// `POST …/databases/:id/attach {project, env_key?}` (admin): sets the connection string as a secret env var
    /// of the project (`DATABASE_URL`, `REDIS_URL` or `MONGO_URL` by default).
    pub async fn attach_database(
        &self,
        actor: &Actor,
        ws: &str,
        id: &str,
        project: &str,
        env_key: Option<&str>,
    ) -> Result<Attached, ServiceError> {
        let (access, row) = self.find_database(actor, ws, id, Role::Admin, "attaching databases").await?;
        let key = validate_key("env_key", env_key.unwrap_or(row.kind.default_env_key()))?;
        let creds = self.database_credentials(&row)?;
        let url = row.kind.connection_string(&creds, &host_name(&row), row.kind.port());
        let target = VarTarget { project: Some(project.to_owned()), environment: None };
        let item = BulkItem { key: key.clone(), value: url, is_secret: Some(true) };
        let result = self.bulk_variables(actor, ws, target, vec![item], true).await?;
        let change = if result.created > 0 {
            "created"
        } else if result.updated > 0 {
            "updated"
        } else {
            "unchanged"
        };
        let (a, w, p) = (actor.clone(), ws.to_owned(), project.to_owned());
        let (slug, running) = self
            .store
            .read(move |c| {
                let (_, project) = super::projects::resolve_project(c, &a, &w, &p)?;
                let running = !store::deployments::running_in_project(c, &project.id)?.is_empty();
                Ok::<_, ServiceError>((project.slug, running))
            })
            .await?;
        self.audit_database(
            actor,
            &access,
            "database.attach",
            &row,
            serde_json::json!({"id": row.id, "project": slug, "env_key": key}),
        )
        .await?;
        Ok(Attached {
            project: slug,
            env_key: key,
            restart_required: running && change != "unchanged",
            change: change.to_owned(),
        })
    }

    /// At start: every database that should run but whose container is gone (removed by hand, a pruned engine, a
    /// moved host) runs again from its row, on its existing volume. Docker being down is logged, not fatal.
    pub async fn reconcile_databases(&self) {
        let rows = match self.store.read(store::databases::all).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "while listing databases to reconcile");
                return;
            }
        };
        for row in rows.into_iter().filter(|r| r.running) {
            match self.docker.inspect_container(&row.container).await {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "Docker is unreachable; databases are not reconciled now");
                    return;
                }
            }
            let wid = row.workspace_id.clone();
            let ws = match self.store.read(move |c| store::workspaces::by_id(c, &wid)).await {
                Ok(Some(ws)) => ws,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, database = %row.name, "while reading a database's workspace");
                    continue;
                }
            };
            match self.run_database_container(&ws, &row).await {
                Ok(()) => {
                    tracing::info!(database = %row.name, volume = %row.volume, "database container was missing; ran it again on its volume")
                }
                Err(e) => {
                    tracing::warn!(error = %e, database = %row.name, "database container is missing and could not run again")
                }
            }
        }
    }

    /// 409 when the workspace still has databases (deleting it would orphan their containers and volumes).
    pub(crate) fn refuse_if_databases(conn: &Connection, workspace: &Workspace) -> Result<(), ServiceError> {
        let n = store::databases::count_for_workspace(conn, &workspace.id)?;
        if n > 0 {
            return Err(ServiceError::conflict(
                "workspace_has_databases",
                format!(
                    "workspace '{}' has {n} database(s); delete them first (their data is never removed implicitly)",
                    workspace.slug
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_shared_and_released_locks_are_dropped() {
        let locks = Locks::default();
        let held = locks.of("db1");
        let guard = held.try_lock().unwrap();
        // The same key while held: the same lock, so a second holder waits.
        assert!(locks.of("db1").try_lock().is_err());
        for n in 0..100 {
            drop(locks.of(&format!("backup{n}")));
        }
        // Only the lock in use is left, and the one just asked for (dropped by the next call).
        assert_eq!(locks.len(), 2);
        assert!(locks.of("db1").try_lock().is_err());
        drop(guard);
        drop(held);
        drop(locks.of("other"));
        assert_eq!(locks.len(), 1);
        assert!(locks.of("db1").try_lock().is_ok());
    }

    #[test]
    fn a_lock_stays_shared_after_a_panic_with_the_map_locked() {
        let locks = Locks::default();
        std::thread::scope(|s| {
            let panicked = s.spawn(|| {
                let _map = locks.map();
                panic!("while the map is locked");
            });
            assert!(panicked.join().is_err());
        });
        assert!(locks.0.is_poisoned());
        let held = locks.of("db1");
        let _guard = held.try_lock().unwrap();
        assert!(locks.of("db1").try_lock().is_err(), "a second holder of db1 must wait");
    }
}
