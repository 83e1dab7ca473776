//! The served OpenAPI document lists every route of this version, and every route it lists exists.

use crate::support::{Cred, TestEnv};
use serde_json::Value;

/// The routes API.md asks of the foundation, as (method, path).
const EXPECTED: &[(&str, &str)] = &[
    ("get", "/api/health"),
    ("post", "/api/setup"),
    ("post", "/api/auth/login"),
    ("post", "/api/auth/logout"),
    ("get", "/api/auth/me"),
    ("get", "/api/workspaces"),
    ("post", "/api/workspaces"),
    ("get", "/api/workspaces/{ws}"),
    ("patch", "/api/workspaces/{ws}"),
    ("delete", "/api/workspaces/{ws}"),
    ("get", "/api/workspaces/{ws}/members"),
    ("post", "/api/workspaces/{ws}/members"),
    ("patch", "/api/workspaces/{ws}/members/{user_id}"),
    ("delete", "/api/workspaces/{ws}/members/{user_id}"),
    ("get", "/api/workspaces/{ws}/invitations"),
    ("post", "/api/workspaces/{ws}/invitations"),
    ("delete", "/api/workspaces/{ws}/invitations/{id}"),
    ("post", "/api/invitations/{token}/accept"),
    ("get", "/api/workspaces/{ws}/api-keys"),
    ("post", "/api/workspaces/{ws}/api-keys"),
    ("delete", "/api/workspaces/{ws}/api-keys/{id}"),
    ("get", "/api/workspaces/{ws}/audit"),
    ("get", "/api/workspaces/{ws}/projects"),
    ("post", "/api/workspaces/{ws}/projects"),
    ("get", "/api/workspaces/{ws}/projects/{p}"),
    ("patch", "/api/workspaces/{ws}/projects/{p}"),
    ("delete", "/api/workspaces/{ws}/projects/{p}"),
    ("get", "/api/workspaces/{ws}/projects/{p}/environments"),
    ("post", "/api/workspaces/{ws}/projects/{p}/environments"),
    ("patch", "/api/workspaces/{ws}/projects/{p}/environments/{env}"),
    ("delete", "/api/workspaces/{ws}/projects/{p}/environments/{env}"),
    ("get", "/api/workspaces/{ws}/projects/{p}/env"),
    ("post", "/api/workspaces/{ws}/projects/{p}/env"),
    ("get", "/api/workspaces/{ws}/projects/{p}/env/{key}"),
    ("patch", "/api/workspaces/{ws}/projects/{p}/env/{key}"),
    ("delete", "/api/workspaces/{ws}/projects/{p}/env/{key}"),
    ("put", "/api/workspaces/{ws}/projects/{p}/env/bulk"),
    ("get", "/api/workspaces/{ws}/variables"),
    ("post", "/api/workspaces/{ws}/variables"),
    ("get", "/api/workspaces/{ws}/variables/{key}"),
    ("patch", "/api/workspaces/{ws}/variables/{key}"),
    ("delete", "/api/workspaces/{ws}/variables/{key}"),
    ("put", "/api/workspaces/{ws}/variables/bulk"),
    ("get", "/api/workspaces/{ws}/projects/{p}/git"),
    ("put", "/api/workspaces/{ws}/projects/{p}/git"),
    ("delete", "/api/workspaces/{ws}/projects/{p}/git"),
    ("post", "/api/workspaces/{ws}/projects/{p}/git/test"),
    ("post", "/api/workspaces/{ws}/projects/{p}/detect"),
    ("post", "/api/workspaces/{ws}/projects/detect"),
    ("get", "/api/workspaces/{ws}/projects/{p}/deployments"),
    ("post", "/api/workspaces/{ws}/projects/{p}/deployments"),
    ("get", "/api/workspaces/{ws}/deployments/{id}"),
    ("get", "/api/workspaces/{ws}/deployments/{id}/logs"),
    ("post", "/api/workspaces/{ws}/deployments/{id}/cancel"),
    ("post", "/api/workspaces/{ws}/deployments/{id}/retry"),
    ("get", "/api/workspaces/{ws}/projects/{p}/releases"),
    ("post", "/api/workspaces/{ws}/projects/{p}/redeploy"),
    ("post", "/api/workspaces/{ws}/projects/{p}/restart"),
    ("post", "/api/workspaces/{ws}/projects/{p}/start"),
    ("post", "/api/workspaces/{ws}/projects/{p}/stop"),
    ("post", "/api/workspaces/{ws}/deployments/{id}/stop"),
    ("post", "/api/workspaces/{ws}/deployments/{id}/rollback"),
    ("post", "/api/hooks/{hook_id}"),
    ("get", "/api/workspaces/{ws}/projects/{p}/status"),
    ("get", "/api/workspaces/{ws}/deployments/{id}/stream"),
    ("get", "/api/workspaces/{ws}/projects/{p}/build-logs"),
    ("get", "/api/workspaces/{ws}/projects/{p}/logs"),
    ("get", "/api/workspaces/{ws}/projects/{p}/logs/download"),
    ("get", "/api/workspaces/{ws}/logs/usage"),
    ("post", "/api/workspaces/{ws}/projects/{p}/logs/analyze"),
    ("get", "/api/workspaces/{ws}/projects/{p}/logs/stream"),
    ("get", "/api/workspaces/{ws}/projects/{p}/live-logs"),
    ("get", "/api/workspaces/{ws}/projects/{p}/domains"),
    ("post", "/api/workspaces/{ws}/projects/{p}/domains"),
    ("get", "/api/workspaces/{ws}/projects/{p}/domains/{id}"),
    ("patch", "/api/workspaces/{ws}/projects/{p}/domains/{id}"),
    ("delete", "/api/workspaces/{ws}/projects/{p}/domains/{id}"),
    ("post", "/api/workspaces/{ws}/projects/{p}/domains/{id}/verify"),
    ("get", "/api/workspaces/{ws}/projects/{p}/access-logs"),
    ("get", "/api/tls/internal-ca.pem"),
    ("get", "/api/workspaces/{ws}/databases"),
    ("post", "/api/workspaces/{ws}/databases"),
    ("get", "/api/workspaces/{ws}/databases/{id}"),
    ("delete", "/api/workspaces/{ws}/databases/{id}"),
    ("post", "/api/workspaces/{ws}/databases/{id}/start"),
    ("post", "/api/workspaces/{ws}/databases/{id}/stop"),
    ("post", "/api/workspaces/{ws}/databases/{id}/restart"),
    ("post", "/api/workspaces/{ws}/databases/{id}/attach"),
    ("get", "/api/workspaces/{ws}/databases/{id}/backups"),
    ("post", "/api/workspaces/{ws}/databases/{id}/backups"),
    ("delete", "/api/workspaces/{ws}/databases/{id}/backups/{b}"),
    ("post", "/api/workspaces/{ws}/databases/{id}/backups/{b}/restore"),
    ("get", "/api/workspaces/{ws}/databases/{id}/backups/{b}/download"),
    ("put", "/api/workspaces/{ws}/databases/{id}/backup-schedule"),
];

#[tokio::test]
async fn the_document_lists_every_route_and_every_listed_route_exists() {
    let env = TestEnv::start().await;
    let spec: Value =
        env.http.get(format!("{}/api/openapi.json", env.base)).send().await.unwrap().json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."), "{}", spec["openapi"]);
    let paths = spec["paths"].as_object().unwrap();
    for (method, path) in EXPECTED {
        let op = &paths.get(*path).unwrap_or_else(|| panic!("{path} missing from the document"))[*method];
        assert!(op.is_object(), "{method} {path} missing from the document");
        assert!(
            op["responses"].as_object().is_some_and(|r| r.keys().any(|s| s.starts_with('2') || s == "101")),
            "{method} {path} documents no success"
        );
        let params: Vec<&str> = op["parameters"]
            .as_array()
            .map(|a| a.iter().filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap()).collect())
            .unwrap_or_default();
        for segment in path.split('/').filter(|s| s.starts_with('{')) {
            assert!(params.contains(&segment.trim_matches(['{', '}'])), "{method} {path} does not describe {segment}");
        }
    }
    // Every documented operation is routed: it never falls through to "no route" or "method not allowed".
    for (path, item) in paths {
        for method in
            item.as_object().unwrap().keys().filter(|m| ["get", "post", "patch", "put", "delete"].contains(&m.as_str()))
        {
            let concrete = path
                .replace("{ws}", "acme")
                .replace("{user_id}", "u")
                .replace("{id}", "i")
                .replace("{token}", "t")
                .replace("{p}", "app")
                .replace("{env}", "staging")
                .replace("{key}", "K")
                .replace("{hook_id}", "h");
            let r = env.call(method.to_uppercase().parse().unwrap(), &concrete, &Cred::None, None).await;
            assert!(
                r.status != 405 && r.code() != "route_not_found",
                "{method} {path} is documented but not routed: {}",
                r.body
            );
        }
    }
    // Schemas the bodies reference are present.
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    for name in [
        "ErrorBody",
        "Workspace",
        "Member",
        "Invitation",
        "ApiKey",
        "AuditEntry",
        "Role",
        "CreateApiKeyRequest",
        "Project",
        "ProjectRequest",
        "Variable",
        "BulkRequest",
        "BulkResult",
        "GitConnection",
        "DetectResult",
        "Detection",
        "Environment",
        "Volume",
        "BackupView",
        "RemoteCopyView",
        "RemoteStatus",
    ] {
        assert!(schemas.contains_key(name) || spec.to_string().contains(name), "schema {name} missing");
    }
}
