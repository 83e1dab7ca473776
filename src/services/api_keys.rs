//! API keys: made from the OS CSPRNG, shown once, stored as SHA-256, revoked at once.

use super::access::{Actor, resolve};
use super::{ServiceError, Services};
use crate::crypto;
use crate::domain::{ApiKey, PageRequest, Paged, Role, Timestamp, new_id, now, validate_name};
use crate::store::{self, api_keys::NewApiKey};

/// What a new key needs.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    /// Days until it expires; `None` never expires.
    pub expires_in_days: Option<u32>,
    /// Defaults to the creator's role; may not exceed it.
    pub role: Option<Role>,
}

/// A created key: the only moment the full key exists outside the caller's hands.
#[derive(Debug, Clone)]
pub struct CreatedApiKey {
    pub key: String,
    pub api_key: ApiKey,
}

/// Longest allowed lifetime, in days (ten years).
const MAX_DAYS: u32 = 3650;

impl Services {
    /// `GET /workspaces/:ws/api-keys` (admin): active keys, prefixes only.
    pub async fn list_api_keys(
        &self,
        actor: &Actor,
        slug: &str,
        page: PageRequest,
    ) -> Result<Paged<ApiKey>, ServiceError> {
        let (actor, slug) = (actor.clone(), slug.to_owned());
        self.store
            .read(move |c| {
                let access = resolve(c, &actor, &slug)?;
                access.require(Role::Admin, "listing API keys")?;
                Ok(store::api_keys::list(c, &access.workspace.id, page)?)
            })
            .await
    }

    /// `POST /workspaces/:ws/api-keys` (admin; the CLI acts as the named user): the key's role is at most the
    /// creator's.
    pub async fn create_api_key(&self, actor: &Actor, slug: &str, new: NewKey) -> Result<CreatedApiKey, ServiceError> {
        let name = validate_name("name", &new.name)?;
        if let Some(d) = new.expires_in_days
            && (d == 0 || d > MAX_DAYS)
        {
            return Err(ServiceError::invalid(
                "expires_in_days",
                format!("must be between 1 and {MAX_DAYS} (omit it for a key that never expires)"),
            ));
        }
        let key = crypto::new_api_key()?;
        let (actor, slug, k) = (actor.clone(), slug.to_owned(), key.clone());
        let api_key = self
            .store
            .write(move |tx| {
                let access = resolve(tx, &actor, &slug)?;
                access.require(Role::Admin, "creating API keys")?;
                let role = new.role.unwrap_or(access.role);
                if role > access.role {
                    return Err(ServiceError::Forbidden(format!(
                        "a key's role cannot be above its creator's: you have {}, asked for {role}",
                        access.role
                    )));
                }
                let t = now();
                let expires_at: Option<Timestamp> = new.expires_in_days.map(|d| t.plus_days(i64::from(d)));
                let id = new_id();
                let prefix = crypto::api_key_prefix(&k);
                let ws = &access.workspace;
                store::api_keys::insert(
                    tx,
                    &NewApiKey {
                        id: &id,
                        workspace_id: &ws.id,
                        user_id: &actor.user.id,
                        name: &name,
                        role,
                        key_hash: &crypto::digest(&k),
                        key_prefix: &prefix,
                        created_at: t,
                        expires_at,
                    },
                )?;
                store::audit::insert(
                    tx,
                    &actor.audit(
                        Some(&ws.id),
                        "api_key.create",
                        name.clone(),
                        serde_json::json!({"id": id, "role": role, "key_prefix": prefix}),
                    ),
                )?;
                Ok(ApiKey {
                    id,
                    name,
                    role,
                    key_prefix: prefix,
                    created_by: actor.user.id.clone(),
                    created_at: t,
                    expires_at,
                    last_used_at: None,
                })
            })
            .await?;
        Ok(CreatedApiKey { key, api_key })
    }

    /// `DELETE /workspaces/:ws/api-keys/:id` (admin): the key stops working with the next request.
    pub async fn revoke_api_key(&self, actor: &Actor, slug: &str, id: &str) -> Result<(), ServiceError> {
        let (actor, slug, id) = (actor.clone(), slug.to_owned(), id.to_owned());
        self.store
            .write(move |tx| {
                let access = resolve(tx, &actor, &slug)?;
                access.require(Role::Admin, "revoking API keys")?;
                let ws = &access.workspace;
                if !store::api_keys::revoke(tx, &ws.id, &id, now())? {
                    return Err(ServiceError::NotFound(format!("API key '{id}' not found")));
                }
                store::audit::insert(
                    tx,
                    &actor.audit(Some(&ws.id), "api_key.revoke", id.clone(), serde_json::json!({})),
                )?;
                Ok(())
            })
            .await
    }

    /// The CLI's actor for `email` (`berth admin create-key`).
    pub async fn cli_actor(&self, email: &str) -> Result<Actor, ServiceError> {
        let e = email.to_owned();
        let user = self.store.read(move |c| store::users::by_email(c, &e)).await?;
        let user = user.ok_or_else(|| ServiceError::NotFound(format!("no user with email '{email}'")))?;
        Ok(Actor { user, via: super::Via::Cli, ip: None })
    }
}
