//! Workspace members and their roles.

use super::access::{Actor, resolve};
use super::{ServiceError, Services};
use crate::domain::{Member, PageRequest, Paged, Role, now};
use crate::store;
use rusqlite::Connection;

fn member_not_found(user_id: &str) -> ServiceError {
    ServiceError::NotFound(format!("user '{user_id}' is not a member of this workspace"))
}

/// Refuses a change that would leave the workspace without an owner.
fn keep_an_owner(
    conn: &Connection,
    workspace_id: &str,
    target: &Member,
    new_role: Option<Role>,
) -> Result<(), ServiceError> {
    if target.role == Role::Owner
        && new_role != Some(Role::Owner)
        && store::members::count_owners(conn, workspace_id)? <= 1
    {
        return Err(ServiceError::conflict(
            "last_owner",
            "this is the workspace's last owner; make another member owner first",
        ));
    }
    Ok(())
}

impl Services {
    /// `GET /workspaces/:ws/members` (any member).
    pub async fn list_members(
        &self,
        actor: &Actor,
        slug: &str,
        page: PageRequest,
    ) -> Result<Paged<Member>, ServiceError> {
        let (actor, slug) = (actor.clone(), slug.to_owned());
        self.store
            .read(move |c| {
                let access = resolve(c, &actor, &slug)?;
                Ok(store::members::list(c, &access.workspace.id, page)?)
            })
            .await
    }

    /// `POST /workspaces/:ws/members` (admin): adds an existing user. Nobody grants a role above their own.
    pub async fn add_member(
        &self,
        actor: &Actor,
        slug: &str,
        user_id: &str,
        role: Role,
    ) -> Result<Member, ServiceError> {
        let (actor, slug, user_id) = (actor.clone(), slug.to_owned(), user_id.to_owned());
        self.store
            .write(move |tx| {
                let access = resolve(tx, &actor, &slug)?;
                access.require(Role::Admin, "adding members")?;
                if role > access.role {
                    return Err(ServiceError::Forbidden(format!(
                        "you cannot grant the {role} role: it is above your own ({})",
                        access.role
                    )));
                }
                let user = store::users::by_id(tx, &user_id)?.ok_or_else(|| {
                    ServiceError::invalid(
                        "user_id",
                        format!("no user with id '{user_id}' exists; invite them by email instead"),
                    )
                })?;
                let ws = &access.workspace;
                store::members::insert(tx, &ws.id, &user.id, role, now()).map_err(|e| match e {
                    store::StoreError::Unique(_) => ServiceError::conflict(
                        "already_member",
                        format!("{} is already a member of this workspace", user.email),
                    ),
                    other => other.into(),
                })?;
                store::audit::insert(
                    tx,
                    &actor.audit(
                        Some(&ws.id),
                        "member.add",
                        user.email.clone(),
                        serde_json::json!({"user_id": user.id, "role": role}),
                    ),
                )?;
                store::members::get(tx, &ws.id, &user.id)?.ok_or_else(|| member_not_found(&user.id))
            })
            .await
    }

    /// `PATCH /workspaces/:ws/members/:user_id` (admin): changes a role. Only owners touch owners; the last owner
    /// cannot be demoted.
    pub async fn update_member(
        &self,
        actor: &Actor,
        slug: &str,
        user_id: &str,
        role: Role,
    ) -> Result<Member, ServiceError> {
        let (actor, slug, user_id) = (actor.clone(), slug.to_owned(), user_id.to_owned());
        self.store
            .write(move |tx| {
                let access = resolve(tx, &actor, &slug)?;
                access.require(Role::Admin, "changing member roles")?;
                let ws = &access.workspace;
                let target = store::members::get(tx, &ws.id, &user_id)?.ok_or_else(|| member_not_found(&user_id))?;
                if (target.role == Role::Owner || role == Role::Owner) && access.role < Role::Owner {
                    return Err(ServiceError::Forbidden("only an owner can make or unmake owners".into()));
                }
                keep_an_owner(tx, &ws.id, &target, Some(role))?;
                store::members::set_role(tx, &ws.id, &user_id, role)?;
                store::audit::insert(
                    tx,
                    &actor.audit(
                        Some(&ws.id),
                        "member.update",
                        target.email.clone(),
                        serde_json::json!({"user_id": user_id, "from": target.role, "to": role}),
                    ),
                )?;
                store::members::get(tx, &ws.id, &user_id)?.ok_or_else(|| member_not_found(&user_id))
            })
            .await
    }

    /// `DELETE /workspaces/:ws/members/:user_id`: admins remove others (owners only by owners); anyone may leave.
    /// Their API keys for this workspace are revoked with them. The last owner cannot be removed.
    pub async fn remove_member(&self, actor: &Actor, slug: &str, user_id: &str) -> Result<(), ServiceError> {
        let (actor, slug, user_id) = (actor.clone(), slug.to_owned(), user_id.to_owned());
        self.store
            .write(move |tx| {
                let access = resolve(tx, &actor, &slug)?;
                let leaving = user_id == actor.user.id;
                if !leaving {
                    access.require(Role::Admin, "removing members")?;
                }
                let ws = &access.workspace;
                let target = store::members::get(tx, &ws.id, &user_id)?.ok_or_else(|| member_not_found(&user_id))?;
                if target.role == Role::Owner && access.role < Role::Owner {
                    return Err(ServiceError::Forbidden("only an owner can remove an owner".into()));
                }
                keep_an_owner(tx, &ws.id, &target, None)?;
                store::members::delete(tx, &ws.id, &user_id, now())?;
                store::audit::insert(
                    tx,
                    &actor.audit(
                        Some(&ws.id),
                        "member.remove",
                        target.email.clone(),
                        serde_json::json!({"user_id": user_id, "role": target.role}),
                    ),
                )?;
                Ok(())
            })
            .await
    }
}
