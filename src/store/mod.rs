//! SQLite storage. Every connection runs in WAL mode with foreign keys and a busy timeout; all access goes
//! through [`Store`], which runs closures on blocking threads. Writes are serialised through one connection and
//! run in a transaction that commits on success and rolls back on error.

pub mod access_logs;
pub mod api_keys;
pub mod audit;
pub mod databases;
pub mod deployments;
pub mod domains;
pub mod git;
pub mod invitations;
pub mod members;
mod migrations;
pub mod projects;
pub mod runtime_logs;
pub mod sessions;
pub mod users;
pub mod variables;
pub mod workspaces;

use crate::domain::Timestamp;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use migrations::{MIGRATIONS, schema_version};

/// A storage failure. Unique-constraint violations are told apart so callers can answer 409.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unique constraint failed: {0}")]
    Unique(String),
    #[error("sqlite: {0}")]
    Sqlite(#[source] rusqlite::Error),
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
    #[error("database at {path} is at schema version {found}, newer than this Berth knows ({known}); upgrade Berth")]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("storage worker stopped: {0}")]
    Worker(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(f, Some(msg)) = &e
            && (f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
        {
            return StoreError::Unique(msg.trim_start_matches("UNIQUE constraint failed: ").to_owned());
        }
        StoreError::Sqlite(e)
    }
}

/// A cheap, cloneable handle to the database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Bumped after every committed write, so callers can cache reads until anything changes.
    generation: AtomicU64,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Bounds concurrent reads to the pool's size, so connections are reused rather than opened and dropped
    /// under load (opening one re-reads the schema) and blocking threads do not pile up.
    read_permits: tokio::sync::Semaphore,
}

/// Read connections kept open, and the most reads that run at once.
const READERS: usize = 8;

impl Store {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir { path: dir.to_path_buf(), source })?;
        }
        let mut writer = open_connection(path)?;
        migrations::migrate(&mut writer, path)?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                generation: AtomicU64::new(0),
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
                read_permits: tokio::sync::Semaphore::new(READERS),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A number that changes whenever a write through this handle commits. A value read from the database
    /// after observing generation `g` is still current while `generation()` returns `g` (writes made by another
    /// process, such as `berth admin`, are not seen: caches keyed on this must also expire by time).
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// Runs `f` on a read connection, on a blocking thread.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let inner = self.inner.clone();
        let permit = self.inner.read_permits.acquire().await.map_err(|e| E::from(StoreError::Worker(e.to_string())))?;
        let result = tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().map_err(|_| StoreError::Worker("reader pool poisoned".into()))?.pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_connection(&inner.path)?,
            };
            let result = f(&conn);
            if let Ok(mut idle) = inner.readers.lock()
                && idle.len() < READERS
            {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| E::from(StoreError::Worker(e.to_string())))?;
        drop(permit);
        result
    }

    /// Runs `f` inside an immediate write transaction, on a blocking thread. Commits when `f` returns `Ok`,
    /// rolls back otherwise. Only one write runs at a time.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock().map_err(|_| StoreError::Worker("writer poisoned".into()))?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(StoreError::from)?;
            let value = f(&tx)?;
            tx.commit().map_err(StoreError::from)?;
            inner.generation.fetch_add(1, Ordering::Release);
            Ok(value)
        })
        .await
        .map_err(|e| E::from(StoreError::Worker(e.to_string())))?
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        self.read(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).map_err(StoreError::from)).await.is_ok()
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(128);
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;")?;
    Ok(conn)
}

/// Reads an RFC 3339 column.
pub(crate) fn ts(row: &rusqlite::Row<'_>, idx: &str) -> rusqlite::Result<Timestamp> {
    let s: String = row.get(idx)?;
    Timestamp::parse(&s).ok_or_else(|| {
        rusqlite::Error::InvalidColumnType(0, format!("{idx}: bad timestamp {s}"), rusqlite::types::Type::Text)
    })
}

/// Reads a nullable RFC 3339 column.
pub(crate) fn ts_opt(row: &rusqlite::Row<'_>, idx: &str) -> rusqlite::Result<Option<Timestamp>> {
    let s: Option<String> = row.get(idx)?;
    Ok(s.and_then(|s| Timestamp::parse(&s)))
}

/// Reads a role column.
pub(crate) fn role(row: &rusqlite::Row<'_>, idx: &str) -> rusqlite::Result<crate::domain::Role> {
    let s: String = row.get(idx)?;
    crate::domain::Role::parse(&s).ok_or_else(|| {
        rusqlite::Error::InvalidColumnType(0, format!("{idx}: bad role {s}"), rusqlite::types::Type::Text)
    })
}
