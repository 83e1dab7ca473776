//! Sealing and opening secret values, and rotating the key they are sealed under.

use super::ServiceError;
use crate::crypto::keyring::{self, Keyring, KeyringError};
use crate::store::{self, Store};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The keyring loaded from the key file, re-read when a value names a key it does not hold (for example after
/// `berth admin rotate-secret-key` ran while this server was up).
pub struct Secrets {
    path: PathBuf,
    ring: RwLock<Arc<Keyring>>,
}

impl From<KeyringError> for ServiceError {
    fn from(e: KeyringError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

impl Secrets {
    /// Loads the key file, creating it (mode 0600) on first run.
    pub fn load(path: &Path) -> Result<Secrets, KeyringError> {
        Ok(Secrets { path: path.to_path_buf(), ring: RwLock::new(Arc::new(Keyring::load_or_create(path)?)) })
    }

    fn ring(&self) -> Result<Arc<Keyring>, ServiceError> {
        self.ring.read().map(|r| r.clone()).map_err(|_| ServiceError::Internal("keyring lock poisoned".into()))
    }

    /// Seals a value for the row `aad` names.
    pub fn seal(&self, plaintext: &str, aad: &str) -> Result<String, ServiceError> {
        Ok(self.ring()?.seal(plaintext.as_bytes(), aad)?)
    }

    /// Opens a sealed value.
    pub fn open(&self, sealed: &str, aad: &str) -> Result<String, ServiceError> {
        match self.ring()?.open_string(sealed, aad) {
            Err(KeyringError::UnknownKey(id)) => {
                let fresh = Arc::new(Keyring::load_or_create(&self.path)?);
                tracing::info!(key = %id, "re-read the secret key file after meeting a value sealed under a newer key");
                let value = fresh.open_string(sealed, aad)?;
                if let Ok(mut ring) = self.ring.write() {
                    *ring = fresh;
                }
                Ok(value)
            }
            other => Ok(other?),
        }
    }
}

/// What a rotation re-encrypted.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub old_key_id: String,
    pub new_key_id: String,
    pub variables: usize,
    pub git_connections: usize,
    pub databases: usize,
}

/// The associated data binding a sealed variable value to its row.
pub fn variable_aad(id: &str) -> String {
    format!("var:{id}")
}

/// The associated data binding a managed database's sealed password (`which`: `password` or `admin`) to it.
pub fn database_aad(id: &str, which: &str) -> String {
    format!("database:{id}:{which}")
}

/// Re-encrypts every sealed value under a new key, without loss even if interrupted:
/// 1. the new key is written to `<key>.new` (0600, synced) — or an existing `<key>.new` from an interrupted
///    run is reused;
/// 2. one database transaction opens every value with the current keyring and seals it under the new key;
/// 3. `<key>` becomes `<key>.old` and `<key>.new` becomes `<key>`.
///
/// Because the keyring also loads `<key>.new` and `<key>.old`, every value stays readable after a crash between
/// any two steps, and running the command again completes the rotation.
pub async fn rotate(store: &Store, key_path: &Path) -> Result<Rotation, ServiceError> {
    let path = key_path.to_path_buf();
    let ring = Arc::new(Keyring::load_or_create(&path)?);
    let new_path = keyring::sibling(&path, "new");
    if !new_path.exists() {
        keyring::write_key_file(&new_path, &keyring::new_key_bytes()?)?;
    }
    let new_ring = Arc::new(Keyring::load_or_create(&new_path)?);
    let (old_key_id, new_key_id) = (ring.current_id().to_owned(), new_ring.current_id().to_owned());
    let (variables, git_connections, databases) = store
        .write(move |tx| -> Result<(usize, usize, usize), ServiceError> {
            let reseal = |sealed: &str, aad: &str| -> Result<String, ServiceError> {
                Ok(new_ring.seal(&ring.open(sealed, aad)?, aad)?)
            };
            let vars = store::variables::all_secrets(tx)?;
            for (id, sealed) in &vars {
                store::variables::reseal(tx, id, &reseal(sealed, &variable_aad(id))?)?;
            }
            let gits = store::git::all(tx)?;
            for mut g in gits.clone() {
                let p = g.project_id.clone();
                g.deploy_key_private = reseal(&g.deploy_key_private, &format!("deploy-key:{p}"))?;
                g.webhook_secret = reseal(&g.webhook_secret, &format!("webhook:{p}"))?;
                g.access_token = match &g.access_token {
                    Some(t) => Some(reseal(t, &format!("git-token:{p}"))?),
                    None => None,
                };
                store::git::upsert(tx, &g)?;
            }
            let dbs = store::databases::all(tx)?;
            for d in &dbs {
                let password = reseal(&d.password, &database_aad(&d.id, "password"))?;
                let admin = reseal(&d.admin_password, &database_aad(&d.id, "admin"))?;
                store::databases::reseal(tx, &d.id, &password, &admin)?;
            }
            Ok((vars.len(), gits.len(), dbs.len()))
        })
        .await?;
    let io = |e: std::io::Error| ServiceError::Internal(format!("while replacing {}: {e}", path.display()));
    std::fs::rename(&path, keyring::sibling(&path, "old")).map_err(io)?;
    std::fs::rename(&new_path, &path).map_err(io)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(Rotation { old_key_id, new_key_id, variables, git_connections, databases })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::database::DatabaseKind;
    use crate::store::databases::DatabaseRow;

    #[tokio::test]
    async fn rotation_re_seals_database_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let (db, key) = (dir.path().join("t.db"), dir.path().join("secret.key"));
        let store = Store::open(&db).unwrap();
        let secrets = Secrets::load(&key).unwrap();
        let row = DatabaseRow {
            id: "d1".into(),
            workspace_id: "w1".into(),
            name: "shop".into(),
            kind: DatabaseKind::Mysql,
            version: "8.4".into(),
            image: "mysql:8.4".into(),
            username: "berth".into(),
            password: secrets.seal("app-pw", &database_aad("d1", "password")).unwrap(),
            admin_password: secrets.seal("root-pw", &database_aad("d1", "admin")).unwrap(),
            database_name: "shop".into(),
            public: false,
            host_port: None,
            running: true,
            container: "c".into(),
            volume: "v".into(),
            backup_cron: None,
            backup_retain: None,
            next_backup_at: None,
            created_at: crate::domain::now(),
        };
        store
            .write(move |tx| {
                tx.execute(
                    "INSERT INTO workspaces (id, name, slug, namespace, created_at)
                     VALUES ('w1', 'W', 'w', 'w-1', '2026-01-01T00:00:00Z')",
                    [],
                )?;
                store::databases::insert(tx, &row)
            })
            .await
            .unwrap();
        let r = rotate(&store, &key).await.unwrap();
        assert_eq!(r.databases, 1);
        // Only the new key is left: the values must open under it alone.
        std::fs::remove_file(keyring::sibling(&key, "old")).unwrap();
        let fresh = Secrets::load(&key).unwrap();
        let row = store.read(|c| store::databases::get(c, "d1")).await.unwrap().unwrap();
        assert_eq!(fresh.open(&row.password, &database_aad("d1", "password")).unwrap(), "app-pw");
        assert_eq!(fresh.open(&row.admin_password, &database_aad("d1", "admin")).unwrap(), "root-pw");
    }
}
