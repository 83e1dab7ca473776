//! Invitations by email: the token and accept URL are returned once; accepting creates the user or adds an
//! existing one.

use super::access::{Actor, Via, resolve};
use super::{ServiceError, Services};
use crate::crypto;
use crate::domain::{
    Invitation, PageRequest, Paged, Role, User, Workspace, new_id, now, validate_email, validate_password,
};
use crate::store::{self, invitations::NewInvitation};

/// A new invitation with its one-time token and link.
#[derive(Debug, Clone)]
pub struct CreatedInvitation {
    pub invitation: Invitation,
    pub token: String,
    pub accept_url: String,
}

/// The outcome of accepting: who joined which workspace, and whether the account is new.
#[derive(Debug, Clone)]
pub struct AcceptResult {
    pub user: User,
    pub workspace: Workspace,
    pub role: Role,
    pub created_user: bool,
}

impl Services {
    /// `GET /workspaces/:ws/invitations` (admin).
    pub async fn list_invitations(
        &self,
        actor: &Actor,
        slug: &str,
        page: PageRequest,
    ) -> Result<Paged<Invitation>, ServiceError> {
        let (actor, slug) = (actor.clone(), slug.to_owned());
        self.store
            .read(move |c| {
                let access = resolve(c, &actor, &slug)?;
                access.require(Role::Admin, "listing invitations")?;
                Ok(store::invitations::list(c, &access.workspace.id, page, now())?)
            })
            .await
    }

    /// `POST /workspaces/:ws/invitations` (admin): nobody invites above their own role; one pending invitation
    /// per email; members are not invited twice.
    pub async fn create_invitation(
        &self,
        actor: &Actor,
        slug: &str,
        email: &str,
        role: Role,
    ) -> Result<CreatedInvitation, ServiceError> {
        let email = validate_email("email", email)?;
        let token = crypto::random_token()?;
        let ttl = i64::from(self.config.invitation_ttl_days);
        let (actor, slug, t) = (actor.clone(), slug.to_owned(), token.clone());
        let invitation = self
            .store
            .write(move |tx| {
                let access = resolve(tx, &actor, &slug)?;
                access.require(Role::Admin, "inviting members")?;
                if role > access.role {
                    return Err(ServiceError::Forbidden(format!(
                        "you cannot invite with the {role} role: it is above your own ({})",
                        access.role
                    )));
                }
                let ws = &access.workspace;
                if let Some(user) = store::users::by_email(tx, &email)?
                    && store::members::get(tx, &ws.id, &user.id)?.is_some()
                {
                    return Err(ServiceError::conflict(
                        "already_member",
                        format!("{email} is already a member of this workspace"),
                    ));
                }
                let created = now();
                if store::invitations::pending_for_email(tx, &ws.id, &email, created)? {
                    return Err(ServiceError::conflict(
                        "already_invited",
                        format!("{email} already has a pending invitation; delete it to send a new one"),
                    ));
                }
                let id = new_id();
                let expires_at = created.plus_days(ttl);
                store::invitations::insert(
                    tx,
                    &NewInvitation {
                        id: &id,
                        workspace_id: &ws.id,
                        email: &email,
                        role,
                        token_hash: &crypto::digest(&t),
                        invited_by: &actor.user.id,
                        created_at: created,
                        expires_at,
                    },
                )?;
                store::audit::insert(
                    tx,
                    &actor.audit(
                        Some(&ws.id),
                        "invitation.create",
                        email.clone(),
                        serde_json::json!({"id": id, "role": role}),
                    ),
                )?;
                Ok(Invitation {
                    id,
                    email,
                    role,
                    status: "pending".into(),
                    invited_by: Some(actor.user.id.clone()),
                    created_at: created,
                    expires_at,
                    accepted_at: None,
                })
            })
            .await?;
        let accept_url = format!("{}/invitations/{token}", self.config.public_url);
        Ok(CreatedInvitation { invitation, token, accept_url })
    }

    /// `DELETE /workspaces/:ws/invitations/:id` (admin).
    pub async fn delete_invitation(&self, actor: &Actor, slug: &str, id: &str) -> Result<(), ServiceError> {
        let (actor, slug, id) = (actor.clone(), slug.to_owned(), id.to_owned());
        self.store
            .write(move |tx| {
                let access = resolve(tx, &actor, &slug)?;
                access.require(Role::Admin, "deleting invitations")?;
                if !store::invitations::delete(tx, &access.workspace.id, &id)? {
                    return Err(ServiceError::NotFound(format!("invitation '{id}' not found")));
                }
                store::audit::insert(
                    tx,
                    &actor.audit(Some(&access.workspace.id), "invitation.delete", id.clone(), serde_json::json!({})),
                )?;
                Ok(())
            })
            .await
    }

    /// What an invitation link offers, before it is accepted (the dashboard's accept page): the invitation and
    /// whether an account exists for its email (then no password is asked). Unknown tokens are 404.
    pub async fn invitation_for_token(&self, token: &str) -> Result<(Invitation, bool), ServiceError> {
        let (hash, t) = (crypto::digest(token), now());
        let record = self.store.read(move |c| store::invitations::by_token_hash(c, &hash, t)).await?;
        let record = record.ok_or_else(|| ServiceError::NotFound("invitation not found: check the link".into()))?;
        let email = record.invitation.email.clone();
        let existing = self.store.read(move |c| store::users::by_email(c, &email)).await?;
        Ok((record.invitation, existing.is_some()))
    }

    /// `POST /invitations/:token/accept`: a new email needs a password (8+ characters) and gets an account; an
    /// existing user is added. Used tokens and expired ones answer 410; unknown ones 404.
    pub async fn accept_invitation(
        &self,
        token: &str,
        password: Option<&str>,
        name: Option<&str>,
        ip: Option<String>,
    ) -> Result<AcceptResult, ServiceError> {
        let hash = crypto::digest(token);
        let t = now();
        let h = hash.clone();
        let record = self.store.read(move |c| store::invitations::by_token_hash(c, &h, t)).await?;
        let record = record.ok_or_else(|| ServiceError::NotFound("invitation not found: check the link".into()))?;
        let email = record.invitation.email.clone();
        let e = email.clone();
        let existing = self.store.read(move |c| store::users::by_email(c, &e)).await?;
        let new_password_hash = match (&existing, password) {
            (Some(_), _) => None,
            (None, Some(p)) => {
                validate_password("password", p)?;
                let p = p.to_owned();
                Some(tokio::task::spawn_blocking(move || crypto::hash_password(&p)).await??)
            }
            (None, None) => {
                return Err(ServiceError::invalid(
                    "password",
                    format!("required: no account exists for {email} yet, so choose a password (8+ characters)"),
                ));
            }
        };
        let name = name.map(str::trim).unwrap_or_default().to_owned();
        self.store
            .write(move |tx| {
                // Re-read inside the transaction: two accepts of one token must not both succeed.
                let record = store::invitations::by_token_hash(tx, &hash, now())?
                    .ok_or_else(|| ServiceError::NotFound("invitation not found: check the link".into()))?;
                let inv = record.invitation;
                match inv.status.as_str() {
                    "accepted" => {
                        return Err(ServiceError::Gone {
                            code: "invitation_used",
                            message: "this invitation was already accepted; sign in instead".into(),
                        });
                    }
                    "expired" => {
                        return Err(ServiceError::Gone {
                            code: "invitation_expired",
                            message: "this invitation has expired; ask for a new one".into(),
                        });
                    }
                    _ => {}
                }
                let (user, created_user) = match store::users::by_email(tx, &inv.email)? {
                    Some(u) => (u, false),
                    None => {
                        let Some(pw_hash) = &new_password_hash else {
                            return Err(ServiceError::invalid("password", "required for a new account"));
                        };
                        let u = User {
                            id: new_id(),
                            email: inv.email.clone(),
                            name: name.clone(),
                            is_instance_admin: false,
                            created_at: now(),
                        };
                        store::users::insert(tx, &u, pw_hash)?;
                        (u, true)
                    }
                };
                store::members::insert(tx, &record.workspace_id, &user.id, inv.role, now()).map_err(|e| match e {
                    store::StoreError::Unique(_) => ServiceError::conflict(
                        "already_member",
                        format!("{} is already a member of this workspace", user.email),
                    ),
                    other => other.into(),
                })?;
                store::invitations::mark_accepted(tx, &inv.id, &user.id, now())?;
                let actor = Actor { user: user.clone(), via: Via::Cli, ip };
                let mut entry = actor.audit(
                    Some(&record.workspace_id),
                    "invitation.accept",
                    user.email.clone(),
                    serde_json::json!({"id": inv.id, "role": inv.role, "created_user": created_user}),
                );
                entry.actor_kind = "invitation";
                store::audit::insert(tx, &entry)?;
                let ws = tx
                    .query_row("SELECT slug FROM workspaces WHERE id = ?1", [&record.workspace_id], |r| {
                        r.get::<_, String>(0)
                    })
                    .map_err(ServiceError::from)
                    .and_then(|slug| store::workspaces::by_slug(tx, &slug).map_err(ServiceError::from))?
                    .ok_or_else(|| {
                        ServiceError::NotFound("the workspace of this invitation no longer exists".into())
                    })?;
                Ok(AcceptResult { user, workspace: ws, role: inv.role, created_user })
            })
            .await
    }
}
