//! Forward-only schema migrations, compiled in. `PRAGMA user_version` holds how many have run.

use super::StoreError;
use rusqlite::Connection;
use std::path::Path;

/// Every migration, in order. The file name's number is its position.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_foundation", include_str!("../../migrations/0001_foundation.sql")),
    ("0002_projects", include_str!("../../migrations/0002_projects.sql")),
    ("0003_deployments", include_str!("../../migrations/0003_deployments.sql")),
    ("0004_webhooks", include_str!("../../migrations/0004_webhooks.sql")),
    ("0005_runtime_logs", include_str!("../../migrations/0005_runtime_logs.sql")),
    ("0006_build_options", include_str!("../../migrations/0006_build_options.sql")),
    ("0007_domains", include_str!("../../migrations/0007_domains.sql")),
    ("0008_access_logs", include_str!("../../migrations/0008_access_logs.sql")),
    ("0009_databases", include_str!("../../migrations/0009_databases.sql")),
    ("0010_backup_remote", include_str!("../../migrations/0010_backup_remote.sql")),
    ("0011_upload_retries", include_str!("../../migrations/0011_upload_retries.sql")),
];

/// The schema version a database is at (the number of migrations applied).
pub fn schema_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    let found = schema_version(conn)?;
    if found > known {
        return Err(StoreError::TooNew { path: path.to_path_buf(), found, known });
    }
    for (index, (name, sql)) in MIGRATIONS.iter().enumerate().skip(usize::try_from(found).unwrap_or(0)) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i64::try_from(index + 1).unwrap_or(i64::MAX))?;
        tx.commit()?;
        tracing::info!(migration = name, "applied database migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_database_migrates_to_the_number_of_migration_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::Store::open(&dir.path().join("t.db")).unwrap();
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "sql"))
            .count();
        assert_eq!(files, MIGRATIONS.len(), "every file in migrations/ must be listed in MIGRATIONS");
        let conn = store.inner.writer.lock().unwrap();
        assert_eq!(schema_version(&conn).unwrap(), files as i64);
        for (i, (name, _)) in MIGRATIONS.iter().enumerate() {
            assert!(name.starts_with(&format!("{:04}_", i + 1)), "{name} is out of order");
        }
    }

    #[test]
    fn reopening_is_idempotent_and_newer_databases_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(super::super::Store::open(&path).unwrap());
        drop(super::super::Store::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
        drop(conn);
        assert!(matches!(super::super::Store::open(&path), Err(StoreError::TooNew { found: 999, .. })));
    }
}
