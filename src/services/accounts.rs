//! First-run setup, users, sign-in, and resolving credentials into an [`Actor`].

use super::access::{Actor, Via};
use super::workspaces::insert_workspace;
use super::{ServiceError, Services};
use crate::crypto;
use crate::domain::{Role, Timestamp, User, Workspace, new_id, now, validate_email, validate_name, validate_password};
use crate::store::{self, api_keys::KeyRecord};
use std::time::{Duration, Instant};

/// What setup created.
#[derive(Debug, Clone)]
pub struct SetupResult {
    pub user: User,
    pub workspace: Workspace,
    pub session_token: String,
    pub csrf_token: String,
}

/// A successful sign-in: the session token goes into a cookie, the CSRF token into forms and headers.
#[derive(Debug, Clone)]
pub struct LoginResult {
    pub user: User,
    pub session_token: String,
    pub csrf_token: String,
    pub expires_at: Timestamp,
}

/// How long a resolved key may be reused without a write in between; bounds how late a change made by another
/// process (`berth admin` on the same data dir) is seen.
const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// Most keys kept resolved at once.
const KEY_CACHE_MAX: usize = 10_000;

/// A resolved key and the store generation it was read at.
pub(crate) struct CachedKey {
    record: KeyRecord,
    generation: u64,
    at: Instant,
}

/// How often a key's `last_used_at` is written at most.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

impl Services {
    /// Whether first-run setup is still open: a setup token was made at start and still no user exists (one
    /// may have been made since with `berth admin create-user`).
    pub async fn setup_pending(&self) -> bool {
        let token = self.setup_token.lock().map(|s| s.is_some()).unwrap_or(false);
        token && self.store.read(store::users::count).await.is_ok_and(|n| n == 0)
    }

    /// At startup: when no user exists, makes a one-time setup token and returns it (for the log).
    pub async fn prepare_setup(&self) -> Result<Option<String>, ServiceError> {
        let users = self.store.read(store::users::count).await?;
        if users > 0 {
            return Ok(None);
        }
        let token = crypto::random_token()?;
        if let Ok(mut slot) = self.setup_token.lock() {
            *slot = Some(crypto::digest(&token));
        }
        Ok(Some(token))
    }

    /// `POST /setup`: creates the first user (an instance administrator), their workspace and a session.
    /// Works once: the token is consumed, and it fails once any user exists.
    pub async fn setup(
        &self,
        token: &str,
        email: &str,
        password: &str,
        workspace_name: &str,
        ip: Option<String>,
    ) -> Result<SetupResult, ServiceError> {
        let expected = self.setup_token.lock().ok().and_then(|s| s.clone());
        let valid = expected.as_deref().is_some_and(|d| crypto::digests_equal(d, &crypto::digest(token)));
        if !valid {
            return Err(ServiceError::unauthorized(
                "invalid_setup_token",
                "setup token is invalid or was already used; see the server log from the first start, or use `berth admin create-user`",
            ));
        }
        let email = validate_email("email", email)?;
        validate_password("password", password)?;
        let workspace_name = validate_name("workspace_name", workspace_name)?;
        let hash = hash_password_blocking(password.to_owned()).await?;
        let user = User {
            id: new_id(),
            email: email.clone(),
            name: String::new(),
            is_instance_admin: true,
            created_at: now(),
        };
        let (session_token, csrf_token) = (crypto::random_token()?, crypto::random_token()?);
        let ttl = i64::from(self.config.session_ttl_hours);
        let (u, st, ct) = (user.clone(), session_token.clone(), csrf_token.clone());
        let workspace = self
            .store
            .write(move |tx| {
                if store::users::count(tx)? > 0 {
                    return Err(ServiceError::conflict(
                        "setup_done",
                        "setup is already done: a user exists; sign in instead",
                    ));
                }
                store::users::insert(tx, &u, &hash)?;
                let actor = Actor { user: u.clone(), via: Via::Cli, ip };
                let ws = insert_workspace(tx, &actor, &workspace_name, None)?;
                let mut entry = actor.audit(Some(&ws.id), "setup.complete", u.email.clone(), serde_json::json!({}));
                entry.actor_kind = "setup";
                store::audit::insert(tx, &entry)?;
                let t = now();
                store::sessions::insert(tx, &crypto::digest(&st), &u.id, &ct, t, t.plus_hours(ttl))?;
                Ok(ws)
            })
            .await?;
        if let Ok(mut slot) = self.setup_token.lock() {
            *slot = None;
        }
        Ok(SetupResult { user, workspace, session_token, csrf_token })
    }

    /// `berth admin create-user`: creates a user, optionally adding them as owner of a workspace (created when
    /// missing). The first user of an instance becomes its administrator.
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        workspace_slug: Option<&str>,
    ) -> Result<(User, Option<Workspace>), ServiceError> {
        let email = validate_email("email", email)?;
        validate_password("password", password)?;
        let hash = hash_password_blocking(password.to_owned()).await?;
        let slug = workspace_slug.map(str::to_owned);
        self.store
            .write(move |tx| {
                if store::users::by_email(tx, &email)?.is_some() {
                    return Err(ServiceError::conflict(
                        "email_taken",
                        format!("a user with email '{email}' already exists"),
                    ));
                }
                let first = store::users::count(tx)? == 0;
                let user = User {
                    id: new_id(),
                    email: email.clone(),
                    name: String::new(),
                    is_instance_admin: first,
                    created_at: now(),
                };
                store::users::insert(tx, &user, &hash)?;
                let actor = Actor { user: user.clone(), via: Via::Cli, ip: None };
                store::audit::insert(
                    tx,
                    &actor.audit(None, "user.create", email.clone(), serde_json::json!({"instance_admin": first})),
                )?;
                let ws = match slug {
                    None => None,
                    Some(slug) => Some(match store::workspaces::by_slug(tx, &slug)? {
                        Some(ws) => {
                            store::members::insert(tx, &ws.id, &user.id, Role::Owner, now())?;
                            store::audit::insert(
                                tx,
                                &actor.audit(
                                    Some(&ws.id),
                                    "member.add",
                                    email.clone(),
                                    serde_json::json!({"role": "owner"}),
                                ),
                            )?;
                            ws
                        }
                        None => insert_workspace(tx, &actor, &slug, Some(&slug))?,
                    }),
                };
                Ok((user, ws))
            })
            .await
    }

    /// `POST /auth/login`: checks the password (argon2id) and opens a session. Failed attempts per email are
    /// rate limited; an unknown email takes as long as a wrong password.
    pub async fn login(&self, email: &str, password: &str, ip: Option<String>) -> Result<LoginResult, ServiceError> {
        let email = email.trim().to_lowercase();
        if let Err(retry_after) = self.login_limiter.check_only(&email) {
            return Err(ServiceError::RateLimited {
                retry_after,
                message: "too many failed sign-ins for this email; wait and try again".into(),
            });
        }
        let e = email.clone();
        let found = self.store.read(move |c| store::users::credentials(c, &e)).await?;
        let (stored, password) = (found.as_ref().map(|(_, h)| h.clone()), password.to_owned());
        let ok = tokio::task::spawn_blocking(move || {
            crypto::verify_password(&password, stored.as_deref().unwrap_or(crypto::DUMMY_PASSWORD_HASH))
        })
        .await?;
        let user = match (ok, found) {
            (true, Some((user, _))) => user,
            _ => {
                let _ = self.login_limiter.hit(&email);
                return Err(ServiceError::unauthorized("invalid_credentials", "email or password is wrong"));
            }
        };
        self.login_limiter.reset(&email);
        let (session_token, csrf_token) = (crypto::random_token()?, crypto::random_token()?);
        let t = now();
        let expires_at = t.plus_hours(i64::from(self.config.session_ttl_hours));
        let (st, ct, u) = (session_token.clone(), csrf_token.clone(), user.clone());
        self.store
            .write(move |tx| {
                store::sessions::insert(tx, &crypto::digest(&st), &u.id, &ct, t, expires_at)?;
                let actor = Actor { user: u.clone(), via: Via::Session { csrf_token: ct.clone() }, ip };
                store::audit::insert(tx, &actor.audit(None, "auth.login", u.email.clone(), serde_json::json!({})))?;
                Ok::<_, ServiceError>(())
            })
            .await?;
        Ok(LoginResult { user, session_token, csrf_token, expires_at })
    }

    /// `POST /auth/logout`: ends the session the cookie names.
    pub async fn logout(&self, actor: &Actor, session_token: &str) -> Result<(), ServiceError> {
        let hash = crypto::digest(session_token);
        let actor = actor.clone();
        self.store
            .write(move |tx| {
                store::sessions::delete(tx, &hash)?;
                store::audit::insert(
                    tx,
                    &actor.audit(None, "auth.logout", actor.user.email.clone(), serde_json::json!({})),
                )?;
                Ok(())
            })
            .await
    }

    /// Resolves a session cookie into an actor; `None` for unknown or expired sessions.
    pub async fn authenticate_session(
        &self,
        session_token: &str,
        ip: Option<String>,
    ) -> Result<Option<Actor>, ServiceError> {
        let hash = crypto::digest(session_token);
        let found = self.store.read(move |c| store::sessions::by_hash(c, &hash, now())).await?;
        Ok(found.map(|(user, csrf_token)| Actor { user, via: Via::Session { csrf_token }, ip }))
    }

    /// Resolves an API key into an actor. Unknown, malformed, expired or revoked keys and keys whose creator left
    /// the workspace are refused at once with a message saying which. Applies the per-key rate limit.
    pub async fn authenticate_key(&self, key: &str, ip: Option<String>) -> Result<Actor, ServiceError> {
        if !crypto::looks_like_api_key(key) {
            return Err(ServiceError::unauthorized(
                "invalid_api_key",
                "API key is malformed: expected berth_sk_ followed by 40 lowercase hex digits",
            ));
        }
        let hash = crypto::digest(key);
        let record = self.key_record(&hash).await?;
        let record = record
            .filter(|r| crypto::digests_equal(&r.key_hash, &hash))
            .ok_or_else(|| ServiceError::unauthorized("invalid_api_key", "API key is not valid"))?;
        if record.revoked {
            return Err(ServiceError::unauthorized("api_key_revoked", "API key was revoked"));
        }
        let t = now();
        if record.expires_at.is_some_and(|e| e <= t) {
            return Err(ServiceError::unauthorized("api_key_expired", "API key has expired; create a new one"));
        }
        let member_role = record.member_role.ok_or_else(|| {
            ServiceError::unauthorized("api_key_revoked", "API key's creator is no longer a member of its workspace")
        })?;
        if let Err(retry_after) = self.api_limiter.hit(&record.key_id) {
            return Err(ServiceError::RateLimited {
                retry_after,
                message: format!(
                    "rate limit of {} requests per minute for this key exceeded",
                    self.config.api_requests_per_minute
                ),
            });
        }
        self.touch_key(&record.key_id, t);
        Ok(Actor {
            user: record.user,
            via: Via::ApiKey {
                key_id: record.key_id,
                key_prefix: record.key_prefix,
                role: record.key_role.min(member_role),
                workspace: record.workspace,
            },
            ip,
        })
    }

    /// The key with this digest, from the cache when nothing was written since it was read (and it is younger
    /// than [`KEY_CACHE_TTL`]), else from the database. Any committed write (revocation, role change, member
    /// removal…) invalidates every entry, so revocation stays immediate.
    async fn key_record(&self, hash: &[u8]) -> Result<Option<KeyRecord>, ServiceError> {
        let generation = self.store.generation();
        if let Ok(cache) = self.key_cache.lock()
            && let Some(hit) = cache.get(hash)
            && hit.generation == generation
            && hit.at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(Some(hit.record.clone()));
        }
        let h = hash.to_vec();
        let record: Option<KeyRecord> = self.store.read(move |c| store::api_keys::by_hash(c, &h)).await?;
        if let (Some(record), Ok(mut cache)) = (&record, self.key_cache.lock()) {
            if cache.len() >= KEY_CACHE_MAX {
                cache.clear();
            }
            cache.insert(hash.to_vec(), CachedKey { record: record.clone(), generation, at: Instant::now() });
        }
        Ok(record)
    }

    /// Writes `last_used_at` in the background, at most once a minute per key.
    fn touch_key(&self, key_id: &str, t: Timestamp) {
        let due = match self.key_touches.lock() {
            Ok(mut m) => {
                let now = Instant::now();
                let due = m.get(key_id).is_none_or(|last| now.duration_since(*last) >= TOUCH_EVERY);
                if due {
                    m.insert(key_id.to_owned(), now);
                }
                due
            }
            Err(_) => false,
        };
        if due {
            let (store, id) = (self.store.clone(), key_id.to_owned());
            tokio::spawn(async move {
                if let Err(e) = store.write(move |tx| store::api_keys::touch(tx, &id, t)).await {
                    tracing::warn!(error = %e, "could not record API key use");
                }
            });
        }
    }

    /// `GET /auth/me`: the caller and their memberships (for a key: only its workspace).
    pub async fn me(&self, actor: &Actor) -> Result<Vec<(Workspace, Role)>, ServiceError> {
        let page = crate::domain::PageRequest { page: 1, limit: u32::MAX };
        self.list_workspaces(actor, page).await.map(|p| p.items)
    }
}

async fn hash_password_blocking(password: String) -> Result<String, ServiceError> {
    Ok(tokio::task::spawn_blocking(move || crypto::hash_password(&password)).await??)
}

impl Services {
    /// Removes expired sessions; returns how many.
    pub async fn delete_expired_sessions(&self) -> Result<usize, ServiceError> {
        self.store.write(|tx| store::sessions::delete_expired(tx, now()).map_err(ServiceError::from)).await
    }
}
