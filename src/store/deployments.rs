//! The `deployments`, `deployment_events`, `deployment_logs` and `releases` tables. Status changes go through
//! [`set_status`], which refuses transitions the state machine does not allow and records a timed event.

use super::{StoreError, ts, ts_opt};
use crate::domain::deployment::{Deployment, DeploymentEvent, DeploymentKind, DeploymentStatus, LogLine, Release};
use crate::domain::{PageRequest, Paged, Timestamp, deployment_ref};
use rusqlite::{Connection, OptionalExtension, Row, params};

const SELECT: &str = "SELECT d.*, e.name AS env_name FROM deployments d JOIN environments e ON e.id = d.environment_id";

fn corrupt(col: &str, v: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, format!("{col}: bad value {v}"), rusqlite::types::Type::Text)
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Deployment> {
    let status: String = row.get("status")?;
    let kind: String = row.get("kind")?;
    let number: i64 = row.get("number")?;
    Ok(Deployment {
        id: row.get("id")?,
        reference: deployment_ref(number),
        number,
        project_id: row.get("project_id")?,
        environment_id: row.get("environment_id")?,
        environment: row.get("env_name")?,
        kind: DeploymentKind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
        status: DeploymentStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        trigger: row.get("trigger")?,
        triggered_by: row.get("triggered_by")?,
        branch: row.get("branch")?,
        commit: row.get("commit_sha")?,
        image: row.get("image")?,
        release_id: row.get("release_id")?,
        retry_of: row.get("retry_of")?,
        no_cache: row.get("no_cache")?,
        requested_commit: row.get("requested_commit")?,
        reset: row.get("reset")?,
        note: row.get("note")?,
        error: row.get("error")?,
        created_at: ts(row, "created_at")?,
        started_at: ts_opt(row, "started_at")?,
        finished_at: ts_opt(row, "finished_at")?,
    })
}

/// The next per-project deployment number.
pub fn next_number(conn: &Connection, project_id: &str) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT COALESCE(MAX(number), 0) + 1 FROM deployments WHERE project_id = ?1")?
        .query_row([project_id], |r| r.get(0))?)
}

/// Inserts a deployment (its `number` from [`next_number`] in the same transaction) with a `queued` event.
pub fn insert(conn: &Connection, d: &Deployment) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO deployments (id, project_id, environment_id, number, kind, status, trigger, triggered_by, branch,
             commit_sha, image, release_id, retry_of, no_cache, note, error, created_at, started_at, finished_at,
             requested_commit, reset)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
        params![
            d.id,
            d.project_id,
            d.environment_id,
            d.number,
            d.kind.as_str(),
            d.status.as_str(),
            d.trigger,
            d.triggered_by,
            d.branch,
            d.commit,
            d.image,
            d.release_id,
            d.retry_of,
            d.no_cache,
            d.note,
            d.error,
            d.created_at.to_rfc3339(),
            d.started_at.map(Timestamp::to_rfc3339),
            d.finished_at.map(Timestamp::to_rfc3339),
            d.requested_commit,
            d.reset
        ],
    )?;
    add_event(conn, &d.id, d.status, "queued", d.created_at)?;
    Ok(())
}

fn add_event(
    conn: &Connection,
    id: &str,
    status: DeploymentStatus,
    message: &str,
    at: Timestamp,
) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO deployment_events (deployment_id, status, message, at) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![id, status.as_str(), message, at.to_rfc3339()])?;
    Ok(())
}

/// Moves a deployment to `next` with an event saying why. Refuses (`Ok(false)`) a transition the state machine
/// does not allow, so a late cancel cannot resurrect a finished deployment. Sets `started_at` on leaving
/// `queued`, `finished_at` on reaching a final state, and `error` when given.
pub fn set_status(
    conn: &Connection,
    id: &str,
    next: DeploymentStatus,
    message: &str,
    error: Option<&str>,
    at: Timestamp,
) -> Result<bool, StoreError> {
    let Some(current) = get(conn, id)? else { return Ok(false) };
    if !current.status.can_become(next) {
        return Ok(false);
    }
    let started = if current.status == DeploymentStatus::Queued { Some(at.to_rfc3339()) } else { None };
    let finished = next.is_final().then(|| at.to_rfc3339());
    conn.prepare_cached(
        "UPDATE deployments SET status = ?2, started_at = COALESCE(started_at, ?3), finished_at = COALESCE(?4, finished_at),
             error = COALESCE(?5, error) WHERE id = ?1",
    )?
    .execute(params![id, next.as_str(), started, finished, error])?;
    add_event(conn, id, next, message, at)?;
    Ok(true)
}

/// Records what a deployment runs (the built or given image, the fetched commit, the release it made).
pub fn set_outputs(
    conn: &Connection,
    id: &str,
    image: Option<&str>,
    commit: Option<&str>,
    release_id: Option<&str>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE deployments SET image = COALESCE(?2, image), commit_sha = COALESCE(?3, commit_sha),
             release_id = COALESCE(?4, release_id) WHERE id = ?1",
    )?
    .execute(params![id, image, commit, release_id])?;
    Ok(())
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<Deployment>, StoreError> {
    Ok(conn.prepare_cached(&format!("{SELECT} WHERE d.id = ?1"))?.query_row([id], from_row).optional()?)
}

/// A project's deployments, newest first, optionally of one status and/or environment.
pub fn list(
    conn: &Connection,
    project_id: &str,
    status: Option<DeploymentStatus>,
    environment_id: Option<&str>,
    page: PageRequest,
) -> Result<Paged<Deployment>, StoreError> {
    let mut filter = String::from(" WHERE d.project_id = ?1");
    let mut args: Vec<String> = vec![project_id.to_owned()];
    if let Some(s) = status {
        args.push(s.as_str().to_owned());
        filter.push_str(&format!(" AND d.status = ?{}", args.len()));
    }
    if let Some(e) = environment_id {
        args.push(e.to_owned());
        filter.push_str(&format!(" AND d.environment_id = ?{}", args.len()));
    }
    let total = conn
        .prepare_cached(&format!("SELECT COUNT(*) FROM deployments d{filter}"))?
        .query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?;
    let n = args.len();
    let sql = format!("{SELECT}{filter} ORDER BY d.number DESC LIMIT ?{} OFFSET ?{}", n + 1, n + 2);
    let mut values: Vec<rusqlite::types::Value> = args.into_iter().map(rusqlite::types::Value::Text).collect();
    values.push(rusqlite::types::Value::Integer(i64::from(page.limit)));
    values.push(rusqlite::types::Value::Integer(page.offset()));
    let items = conn
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(values), from_row)?
        .collect::<Result<_, _>>()?;
    Ok(Paged { items, total })
}

/// Every deployment not yet finished rolling out (queued, building, deploying), oldest first: the worker's queue
/// and what recovery looks at after a crash.
pub fn in_progress(conn: &Connection) -> Result<Vec<Deployment>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "{SELECT} WHERE d.status IN ('queued', 'building', 'deploying') ORDER BY d.created_at, d.number"
        ))?
        .query_map([], from_row)?
        .collect::<Result<_, _>>()?)
}

/// The deployment serving a project environment, if any.
pub fn running(conn: &Connection, project_id: &str, environment_id: &str) -> Result<Option<Deployment>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "{SELECT} WHERE d.project_id = ?1 AND d.environment_id = ?2 AND d.status = 'running' ORDER BY d.number DESC LIMIT 1"
        ))?
        .query_row(params![project_id, environment_id], from_row)
        .optional()?)
}

/// Every deployment serving some environment of a project.
pub fn running_in_project(conn: &Connection, project_id: &str) -> Result<Vec<Deployment>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("{SELECT} WHERE d.project_id = ?1 AND d.status = 'running' ORDER BY d.number"))?
        .query_map([project_id], from_row)?
        .collect::<Result<_, _>>()?)
}

/// What the proxy routes: every running production deployment as (deployment id, project slug, workspace slug,
/// port).
pub fn production_routes(conn: &Connection) -> Result<Vec<(String, String, String, u16)>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT d.id, p.slug, w.slug, p.port FROM deployments d JOIN projects p ON p.id = d.project_id
             JOIN workspaces w ON w.id = p.workspace_id JOIN environments e ON e.id = d.environment_id
             WHERE d.status = 'running' AND e.name = 'production'",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?)
}

pub fn events(conn: &Connection, id: &str) -> Result<Vec<DeploymentEvent>, StoreError> {
    let rows = conn
        .prepare_cached("SELECT status, message, at FROM deployment_events WHERE deployment_id = ?1 ORDER BY id")?
        .query_map([id], |r| {
            let s: String = r.get(0)?;
            Ok(DeploymentEvent {
                status: DeploymentStatus::parse(&s).ok_or_else(|| corrupt("status", &s))?,
                message: r.get(1)?,
                at: ts(r, "at")?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Appends log lines, numbering them after the last one; returns the last sequence number.
pub fn append_logs(
    conn: &Connection,
    id: &str,
    stream: &str,
    lines: &[String],
    at: Timestamp,
) -> Result<i64, StoreError> {
    let mut seq: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM deployment_logs WHERE deployment_id = ?1")?
        .query_row([id], |r| r.get(0))?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO deployment_logs (deployment_id, seq, stream, line, at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let at = at.to_rfc3339();
    for line in lines {
        seq += 1;
        insert.execute(params![id, seq, stream, line, at])?;
    }
    Ok(seq)
}

/// Log lines after `after`, at most `limit`.
pub fn logs_after(conn: &Connection, id: &str, after: i64, limit: u32) -> Result<Vec<LogLine>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT seq, stream, line, at FROM deployment_logs WHERE deployment_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?
        .query_map(params![id, after, limit], |r| {
            Ok(LogLine { seq: r.get(0)?, stream: r.get(1)?, line: r.get(2)?, at: ts(r, "at")? })
        })?
        .collect::<Result<_, _>>()?)
}

fn release_from_row(row: &Row<'_>) -> rusqlite::Result<Release> {
    let number: i64 = row.get("number")?;
    Ok(Release {
        id: row.get("id")?,
        version: format!("v{number}"),
        number,
        deployment_id: row.get("deployment_id")?,
        environment: row.get("env_name")?,
        image: row.get("image")?,
        created_at: ts(row, "created_at")?,
    })
}

/// Records a release with its sealed configuration; numbers count per project environment.
pub fn insert_release(
    conn: &Connection,
    id: &str,
    deployment: &Deployment,
    image: &str,
    sealed_config: &str,
    at: Timestamp,
) -> Result<Release, StoreError> {
    let number: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(MAX(number), 0) + 1 FROM releases WHERE project_id = ?1 AND environment_id = ?2",
        )?
        .query_row(params![deployment.project_id, deployment.environment_id], |r| r.get(0))?;
    conn.execute(
        "INSERT INTO releases (id, project_id, environment_id, deployment_id, number, image, config, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id,
            deployment.project_id,
            deployment.environment_id,
            deployment.id,
            number,
            image,
            sealed_config,
            at.to_rfc3339()
        ],
    )?;
    Ok(Release {
        id: id.to_owned(),
        version: format!("v{number}"),
        number,
        deployment_id: deployment.id.clone(),
        environment: deployment.environment.clone(),
        image: image.to_owned(),
        created_at: at,
    })
}

/// A project's releases, newest first.
pub fn releases(conn: &Connection, project_id: &str, page: PageRequest) -> Result<Paged<Release>, StoreError> {
    let total = conn
        .prepare_cached("SELECT COUNT(*) FROM releases WHERE project_id = ?1")?
        .query_row([project_id], |r| r.get(0))?;
    let items = conn
        .prepare_cached(
            "SELECT r.*, e.name AS env_name FROM releases r JOIN environments e ON e.id = r.environment_id
             WHERE r.project_id = ?1 ORDER BY r.created_at DESC, r.number DESC LIMIT ?2 OFFSET ?3",
        )?
        .query_map(params![project_id, page.limit, page.offset()], release_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(Paged { items, total })
}

/// A release with its sealed configuration.
pub fn release(conn: &Connection, id: &str) -> Result<Option<(Release, String)>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT r.*, e.name AS env_name FROM releases r JOIN environments e ON e.id = r.environment_id WHERE r.id = ?1")?
        .query_row([id], |r| Ok((release_from_row(r)?, r.get::<_, String>("config")?)))
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BuildConfig, Environment, Project, RuntimeConfig, now};
    use crate::store::Store;

    async fn fixture() -> (tempfile::TempDir, Store, Project, Environment) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let t = now();
        let p = Project {
            id: "p1".into(),
            workspace_id: "w1".into(),
            name: "app".into(),
            slug: "app".into(),
            status: "pending".into(),
            port: 8080,
            replicas: 1,
            cpu: "0.5".into(),
            ram: "0.5".into(),
            image: None,
            template_name: None,
            build: BuildConfig::default(),
            runtime: RuntimeConfig::default(),
            volumes: vec![],
            created_at: t,
            updated_at: t,
        };
        let e = Environment { id: "e1".into(), name: "production".into(), branch: None, created_at: t };
        let (p2, e2) = (p.clone(), e.clone());
        store
            .write(move |tx| {
                tx.execute(
                    "INSERT INTO workspaces (id, name, slug, namespace, created_at) VALUES ('w1', 'W', 'w', 'w-1', ?1)",
                    [t.to_rfc3339()],
                )?;
                crate::store::projects::insert(tx, &p2)?;
                crate::store::projects::insert_environment(tx, &p2.id, &e2)?;
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        (dir, store, p, e)
    }

    fn queued(p: &Project, e: &Environment, number: i64) -> Deployment {
        Deployment {
            id: format!("d{number}"),
            reference: deployment_ref(number),
            number,
            project_id: p.id.clone(),
            environment_id: e.id.clone(),
            environment: e.name.clone(),
            kind: DeploymentKind::Build,
            status: DeploymentStatus::Queued,
            trigger: "api".into(),
            triggered_by: None,
            branch: Some("main".into()),
            commit: None,
            image: None,
            release_id: None,
            retry_of: None,
            no_cache: false,
            requested_commit: None,
            reset: false,
            note: None,
            error: None,
            created_at: now(),
            started_at: None,
            finished_at: None,
        }
    }

    #[tokio::test]
    async fn deployments_follow_the_state_machine_and_keep_events_logs_and_releases() {
        let (_dir, store, p, e) = fixture().await;
        store
            .write(move |tx| {
                assert_eq!(next_number(tx, &p.id)?, 1);
                insert(tx, &queued(&p, &e, 1))?;
                assert_eq!(next_number(tx, &p.id)?, 2);
                let t = now();
                assert!(set_status(tx, "d1", DeploymentStatus::Building, "fetching", None, t)?);
                assert!(!set_status(tx, "d1", DeploymentStatus::Queued, "back", None, t)?, "no going back");
                assert_eq!(append_logs(tx, "d1", "build", &["a".into(), "b".into()], t)?, 2);
                assert_eq!(append_logs(tx, "d1", "build", &["c".into()], t)?, 3);
                let logs = logs_after(tx, "d1", 1, 10)?;
                assert_eq!(logs.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(), ["b", "c"]);
                assert!(set_status(tx, "d1", DeploymentStatus::Deploying, "starting replicas", None, t)?);
                assert!(set_status(tx, "d1", DeploymentStatus::Running, "serving", None, t)?);
                let d = get(tx, "d1")?.unwrap();
                assert!(d.started_at.is_some() && d.finished_at.is_none());
                assert_eq!(running(tx, &p.id, &e.id)?.map(|d| d.id).as_deref(), Some("d1"));
                let r = insert_release(tx, "r1", &d, "berth/app:d1", "sealed", t)?;
                assert_eq!(r.version, "v1");
                assert_eq!(release(tx, "r1")?.unwrap().1, "sealed");
                assert!(!set_status(tx, "d1", DeploymentStatus::Cancelled, "late cancel", None, t)?);
                assert!(set_status(tx, "d1", DeploymentStatus::Superseded, "DEP-0002 took over", None, t)?);
                let d = get(tx, "d1")?.unwrap();
                assert!(d.finished_at.is_some());
                let ev: Vec<DeploymentStatus> = events(tx, "d1")?.into_iter().map(|e| e.status).collect();
                use DeploymentStatus::*;
                assert_eq!(ev, [Queued, Building, Deploying, Running, Superseded]);
                insert(tx, &queued(&p, &e, 2))?;
                assert!(set_status(tx, "d2", DeploymentStatus::Failed, "failed", Some("health check"), t)?);
                assert_eq!(get(tx, "d2")?.unwrap().error.as_deref(), Some("health check"));
                let page = PageRequest { page: 1, limit: 10 };
                assert_eq!(list(tx, &p.id, None, None, page)?.items[0].reference, "DEP-0002");
                assert_eq!(list(tx, &p.id, Some(Failed), Some(&e.id), page)?.total, 1);
                assert_eq!(releases(tx, &p.id, page)?.total, 1);
                assert!(in_progress(tx)?.is_empty());
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
    }
}
