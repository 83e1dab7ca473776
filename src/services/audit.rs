//! Reading the audit trail.

use super::access::{Actor, resolve};
use super::{ServiceError, Services};
use crate::domain::{AuditEntry, PageRequest, Paged, Role};
use crate::store;

impl Services {
    /// `GET /workspaces/:ws/audit` (admin): newest first.
    pub async fn list_audit(
        &self,
        actor: &Actor,
        slug: &str,
        page: PageRequest,
    ) -> Result<Paged<AuditEntry>, ServiceError> {
        let (actor, slug) = (actor.clone(), slug.to_owned());
        self.store
            .read(move |c| {
                let access = resolve(c, &actor, &slug)?;
                access.require(Role::Admin, "reading the audit log")?;
                Ok(store::audit::list(c, &access.workspace.id, page)?)
            })
            .await
    }
}
