//! Request bodies and response shapes of the API.

use crate::domain::{ApiKey, AuditEntry, Invitation, Member, Role, Timestamp, User, Workspace};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `?page=&limit=` on every list route.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// Page number, from 1 (default 1).
    #[param(minimum = 1)]
    pub page: Option<u32>,
    /// Items per page, 1–50 (default 20).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<u32>,
}

macro_rules! list_of {
    ($name:ident, $field:ident, $item:ty) => {
        #[doc = concat!("A page of ", stringify!($field), ".")]
        #[derive(Serialize, ToSchema)]
        pub struct $name {
            pub $field: Vec<$item>,
            pub total: i64,
            pub page: u32,
            pub limit: u32,
        }
    };
}

list_of!(WorkspaceList, workspaces, WorkspaceView);
list_of!(MemberList, members, Member);
list_of!(InvitationList, invitations, Invitation);
list_of!(ApiKeyList, api_keys, ApiKey);
list_of!(AuditList, entries, AuditEntry);

/// A workspace with the caller's role in it.
#[derive(Serialize, ToSchema)]
pub struct WorkspaceView {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub namespace: String,
    pub created_at: Timestamp,
    /// The caller's effective role (for an API key: capped by the key's role).
    pub role: Role,
}

impl WorkspaceView {
    pub fn new(w: Workspace, role: Role) -> Self {
        WorkspaceView { id: w.id, name: w.name, slug: w.slug, namespace: w.namespace, created_at: w.created_at, role }
    }
}

#[derive(Serialize, ToSchema)]
pub struct HealthView {
    /// `ok`, or `degraded` when the Docker engine is unreachable.
    pub status: String,
    pub version: String,
    pub database: DatabaseHealthView,
    pub docker: DockerHealthView,
}

#[derive(Serialize, ToSchema)]
pub struct DatabaseHealthView {
    pub reachable: bool,
}

#[derive(Serialize, ToSchema)]
pub struct DockerHealthView {
    pub reachable: bool,
    pub version: Option<String>,
    pub api_version: Option<String>,
    pub error: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    /// The one-time token printed in the server log at first start.
    pub token: String,
    pub email: String,
    /// 8 to 1024 characters.
    pub password: String,
    pub workspace_name: String,
}

#[derive(Serialize, ToSchema)]
pub struct SetupView {
    pub user: User,
    pub workspace: WorkspaceView,
    /// Send this as X-CSRF-Token with cookie-authenticated mutating requests.
    pub csrf_token: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct LoginView {
    pub user: User,
    /// Send this as X-CSRF-Token with cookie-authenticated mutating requests.
    pub csrf_token: String,
    pub expires_at: Timestamp,
}

#[derive(Serialize, ToSchema)]
pub struct MembershipView {
    pub workspace: WorkspaceView,
    pub role: Role,
}

#[derive(Serialize, ToSchema)]
pub struct AuthInfo {
    /// `api_key` or `session`.
    pub method: String,
    pub key_prefix: Option<String>,
    /// The workspace an API key is scoped to.
    pub workspace: Option<String>,
    /// For sessions: the CSRF token to send with mutating requests.
    pub csrf_token: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MeView {
    pub user: User,
    pub memberships: Vec<MembershipView>,
    pub auth: AuthInfo,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspaceRequest {
    pub name: String,
    /// Derived from the name when omitted.
    pub slug: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWorkspaceRequest {
    pub name: Option<String>,
    pub slug: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Deleted {
    pub id: String,
    pub deleted: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    pub user_id: String,
    pub role: Role,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMemberRequest {
    pub role: Role,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitationRequest {
    pub email: String,
    /// Defaults to `member`.
    pub role: Option<Role>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedInvitationView {
    #[serde(flatten)]
    pub invitation: Invitation,
    /// Shown only in this response.
    pub token: String,
    /// Shown only in this response.
    pub accept_url: String,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitationRequest {
    /// Required when no account exists for the invited email.
    pub password: Option<String>,
    pub name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AcceptedView {
    pub user: User,
    pub workspace: WorkspaceView,
    pub role: Role,
    /// Whether a new account was created.
    pub created_user: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    pub name: String,
    /// 1–3650; omit for a key that never expires.
    pub expires_in_days: Option<u32>,
    /// At most the creator's role; defaults to it.
    pub role: Option<Role>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedApiKeyView {
    pub id: String,
    pub name: String,
    /// The full key. Shown only in this response: store it now.
    pub key: String,
    pub key_prefix: String,
    pub role: Role,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}
