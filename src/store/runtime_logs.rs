//! The `runtime_logs` table (what apps write, secret values already masked) and `runtime_log_cursors` (how far
//! each container's engine log has been taken, so a restart of Berth neither loses nor repeats lines).

use super::StoreError;
use crate::domain::deployment_ref;
use crate::domain::runtime_logs::{Direction, LogQuery, RuntimeLogLine};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};

/// A line on its way into the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLine {
    pub project_id: String,
    pub environment_id: String,
    pub deployment_id: String,
    pub container: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// Normalised (nine fraction digits).
    pub ts: String,
    pub line: String,
}

/// Where a container's log was taken up to: the newest timestamp stored and how many lines had exactly it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub ts: String,
    pub at_ts: i64,
}

/// One project's share of the stored lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectUsage {
    pub project_id: String,
    pub slug: String,
    pub lines: i64,
    pub bytes: i64,
    pub oldest: Option<String>,
    pub newest: Option<String>,
}

/// Stores `lines` in order and moves each container's cursor past them, in the caller's transaction. Lines of a
/// deployment that no longer exists are dropped (the project was deleted while they were in flight). Returns
/// the largest `seq` now stored.
pub fn append(conn: &Connection, lines: &[NewLine], at: &str) -> Result<i64, StoreError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO runtime_logs (project_id, environment_id, deployment_id, container, stream, ts, line)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS (SELECT 1 FROM deployments WHERE id = ?3 AND project_id = ?1)",
    )?;
    let mut cursors: std::collections::BTreeMap<&str, Cursor> = std::collections::BTreeMap::new();
    for l in lines {
        insert.execute(params![
            l.project_id,
            l.environment_id,
            l.deployment_id,
            l.container,
            l.stream,
            l.ts,
            l.line
        ])?;
        let c = match cursors.get(l.container.as_str()) {
            Some(c) => c.clone(),
            None => cursor(conn, &l.container)?.unwrap_or(Cursor { ts: String::new(), at_ts: 0 }),
        };
        let next = match l.ts.cmp(&c.ts) {
            std::cmp::Ordering::Greater => Cursor { ts: l.ts.clone(), at_ts: 1 },
            std::cmp::Ordering::Equal => Cursor { ts: c.ts, at_ts: c.at_ts + 1 },
            std::cmp::Ordering::Less => c,
        };
        cursors.insert(&l.container, next);
    }
    let mut upsert = conn.prepare_cached(
        "INSERT INTO runtime_log_cursors (container, ts, at_ts, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (container) DO UPDATE SET ts = excluded.ts, at_ts = excluded.at_ts, updated_at = excluded.updated_at",
    )?;
    for (container, c) in cursors {
        upsert.execute(params![container, c.ts, c.at_ts, at])?;
    }
    last_seq(conn)
}

/// The largest `seq` ever stored (0 before the first line).
pub fn last_seq(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'runtime_logs'), 0)")?
        .query_row([], |r| r.get(0))?)
}

/// How far `container`'s log has been taken, if at all.
pub fn cursor(conn: &Connection, container: &str) -> Result<Option<Cursor>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT ts, at_ts FROM runtime_log_cursors WHERE container = ?1")?
        .query_row([container], |r| Ok(Cursor { ts: r.get(0)?, at_ts: r.get(1)? }))
        .optional()?)
}

/// Lines of one project environment matching `q`: ordered by `seq` in `q.direction`, at most `q.limit`.
pub fn query(
    conn: &Connection,
    project_id: &str,
    environment_id: &str,
    q: &LogQuery,
) -> Result<Vec<RuntimeLogLine>, StoreError> {
    let mut sql = String::from(
        "SELECT l.seq, l.ts, l.stream, l.line, l.container, l.deployment_id, d.number FROM runtime_logs l
         LEFT JOIN deployments d ON d.id = l.deployment_id WHERE l.project_id = ?1 AND l.environment_id = ?2",
    );
    let mut args: Vec<Value> = vec![Value::Text(project_id.to_owned()), Value::Text(environment_id.to_owned())];
    let mut push = |sql: &mut String, clause: &str, v: Value| {
        args.push(v);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(after) = q.after {
        push(&mut sql, " AND l.seq > ?", Value::Integer(after));
    }
    if let Some(start) = &q.start {
        push(&mut sql, " AND l.ts >= ?", Value::Text(start.clone()));
    }
    if let Some(end) = &q.end {
        push(&mut sql, " AND l.ts <= ?", Value::Text(end.clone()));
    }
    if let Some(stream) = &q.stream {
        push(&mut sql, " AND l.stream = ?", Value::Text(stream.clone()));
    }
    if let Some(needle) = &q.q {
        push(&mut sql, " AND instr(lower(l.line), ?) > 0", Value::Text(needle.clone()));
    }
    let order = match q.direction {
        Direction::Asc => "ASC",
        Direction::Desc => "DESC",
    };
    push(&mut sql, &format!(" ORDER BY l.seq {order} LIMIT ?"), Value::Integer(i64::from(q.limit)));
    Ok(conn
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(args), |r| {
            let container: String = r.get(4)?;
            Ok(RuntimeLogLine {
                seq: r.get(0)?,
                timestamp: r.get(1)?,
                stream: r.get(2)?,
                line: r.get(3)?,
                pod: container.clone(),
                container,
                deployment_id: r.get(5)?,
                deployment_ref: r.get::<_, Option<i64>>(6)?.map(deployment_ref),
            })
        })?
        .collect::<Result<_, _>>()?)
}

/// Lines, bytes and time span per project of a workspace (projects without lines included, with zeros).
pub fn usage(conn: &Connection, workspace_id: &str) -> Result<Vec<ProjectUsage>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT p.id, p.slug, COUNT(l.seq), COALESCE(SUM(length(CAST(l.line AS BLOB))), 0), MIN(l.ts), MAX(l.ts)
             FROM projects p LEFT JOIN runtime_logs l ON l.project_id = p.id
             WHERE p.workspace_id = ?1 GROUP BY p.id ORDER BY p.slug",
        )?
        .query_map([workspace_id], |r| {
            Ok(ProjectUsage {
                project_id: r.get(0)?,
                slug: r.get(1)?,
                lines: r.get(2)?,
                bytes: r.get(3)?,
                oldest: r.get(4)?,
                newest: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?)
}

/// Deletes lines older than `cutoff` (a normalised timestamp) and, per project, all but the newest
/// `keep_per_project`; forgets cursors of containers not heard from since `cutoff`. Returns the lines deleted.
pub fn prune(conn: &Connection, cutoff: &str, keep_per_project: u32) -> Result<usize, StoreError> {
    let mut deleted = conn.prepare_cached("DELETE FROM runtime_logs WHERE ts < ?1")?.execute([cutoff])?;
    let over: Vec<String> = conn
        .prepare_cached("SELECT project_id FROM runtime_logs GROUP BY project_id HAVING COUNT(*) > ?1")?
        .query_map([keep_per_project], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for project in over {
        deleted += conn
            .prepare_cached(
                "DELETE FROM runtime_logs WHERE project_id = ?1 AND seq <= (SELECT seq FROM runtime_logs
                 WHERE project_id = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
            )?
            .execute(params![project, keep_per_project])?;
    }
    conn.prepare_cached("DELETE FROM runtime_log_cursors WHERE updated_at < ?1")?.execute([cutoff])?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::runtime_logs::LogQuery;
    use crate::store::Store;

    async fn fixture() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .write(|tx| {
                tx.execute_batch(
                    "INSERT INTO workspaces (id, name, slug, namespace, created_at) VALUES ('w1', 'W', 'w', 'w-1', '2026-01-01T00:00:00Z');",
                )?;
                let t = crate::domain::now();
                let p = crate::domain::Project {
                    id: "p1".into(),
                    workspace_id: "w1".into(),
                    name: "app".into(),
                    slug: "app".into(),
                    status: "running".into(),
                    port: 8080,
                    replicas: 1,
                    cpu: "0.5".into(),
                    ram: "0.5".into(),
                    image: None,
                    template_name: None,
                    build: Default::default(),
                    runtime: Default::default(),
                    volumes: vec![],
                    created_at: t,
                    updated_at: t,
                };
                crate::store::projects::insert(tx, &p)?;
                let e = crate::domain::Environment { id: "e1".into(), name: "production".into(), branch: None, created_at: t };
                crate::store::projects::insert_environment(tx, "p1", &e)?;
                tx.execute(
                    "INSERT INTO deployments (id, project_id, environment_id, number, kind, status, trigger, created_at)
                     VALUES ('d1', 'p1', 'e1', 3, 'build', 'running', 'api', ?1)",
                    [t.to_rfc3339()],
                )?;
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        (dir, store)
    }

    fn line(container: &str, stream: &str, ts: &str, text: &str) -> NewLine {
        NewLine {
            project_id: "p1".into(),
            environment_id: "e1".into(),
            deployment_id: "d1".into(),
            container: container.into(),
            stream: stream.into(),
            ts: ts.into(),
            line: text.into(),
        }
    }

    #[tokio::test]
    async fn runtime_logs_are_appended_queried_and_pruned() {
        let (_dir, store) = fixture().await;
        let batch = vec![
            line("c1", "stdout", "2026-01-01T00:00:01.000000000Z", "Hello one"),
            line("c1", "stderr", "2026-01-01T00:00:02.000000000Z", "oops two"),
            line("c1", "stdout", "2026-01-01T00:00:02.000000000Z", "hello three"),
            line("c2", "stdout", "2026-01-01T00:00:03.000000000Z", "other"),
            NewLine { deployment_id: "gone".into(), ..line("c3", "stdout", "2026-01-01T00:00:04.000000000Z", "x") },
        ];
        let last = store.write(move |tx| append(tx, &batch, "2026-01-01T00:00:05.000000000Z")).await.unwrap();
        assert_eq!(last, 4, "the line of a missing deployment is dropped");
        let (c1, all) = store
            .read(|c| {
                let q = LogQuery { limit: 10, ..LogQuery::default() };
                Ok::<_, StoreError>((cursor(c, "c1")?, query(c, "p1", "e1", &q)?))
            })
            .await
            .unwrap();
        assert_eq!(c1, Some(Cursor { ts: "2026-01-01T00:00:02.000000000Z".into(), at_ts: 2 }));
        assert_eq!(all.iter().map(|l| l.seq).collect::<Vec<_>>(), [4, 3, 2, 1], "newest first by default");
        assert_eq!(all[0].deployment_ref.as_deref(), Some("DEP-0003"));

        let hits = store
            .read(|c| {
                let q = LogQuery {
                    direction: Direction::Asc,
                    q: Some("hello".into()),
                    stream: Some("stdout".into()),
                    start: Some("2026-01-01T00:00:01.500000000Z".into()),
                    ..LogQuery::default()
                };
                query(c, "p1", "e1", &q)
            })
            .await
            .unwrap();
        assert_eq!(hits.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(), ["hello three"]);

        let usage = store.read(|c| usage(c, "w1")).await.unwrap();
        assert_eq!((usage[0].lines, usage[0].bytes), (4, 9 + 8 + 11 + 5));
        let deleted = store.write(|tx| prune(tx, "2026-01-01T00:00:01.500000000Z", 2)).await.unwrap();
        assert_eq!(deleted, 2, "one by age, one by count");
        let left = store.read(|c| query(c, "p1", "e1", &LogQuery::default())).await.unwrap();
        assert_eq!(left.iter().map(|l| l.seq).collect::<Vec<_>>(), [4, 3]);
        let more = vec![line("c1", "stdout", "2026-01-01T00:00:09.000000000Z", "after")];
        let last = store.write(move |tx| append(tx, &more, "2026-01-01T00:00:10.000000000Z")).await.unwrap();
        assert_eq!(last, 5, "sequence numbers never go back");
    }
}
