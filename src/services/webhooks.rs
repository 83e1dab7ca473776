//! Push webhooks: `POST /api/hooks/:hook_id` from GitHub, Gitea, GitLab or anything that can send a token.
//! The signature (or token) is checked against the project's webhook secret in constant time; a push to the
//! tracked branch of a project with `auto_deploy` queues one deployment per commit, so a redelivered event does
//! not deploy twice.

use super::deployments::queue;
use super::{ServiceError, Services};
use crate::domain::deployment::{Deployment, DeploymentKind, DeploymentStatus};
use crate::domain::{new_id, now};
use crate::store;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::collections::HashMap;
use utoipa::ToSchema;

/// Which sender a request claims to be, from its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// `X-Hub-Signature-256: sha256=<hex>` (HMAC-SHA256 of the body), `X-GitHub-Event`, `X-GitHub-Delivery`.
    GitHub,
    /// `X-Gitea-Signature: <hex>` (HMAC-SHA256 of the body), `X-Gitea-Event`, `X-Gitea-Delivery`.
    Gitea,
    /// `X-Gitlab-Token: <secret>`, `X-Gitlab-Event: Push Hook`.
    GitLab,
    /// `Authorization: Bearer <secret>` (or `X-Berth-Token`) and a body `{ref | branch, after | commit}`.
    Generic,
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::Gitea => "gitea",
            Provider::GitLab => "gitlab",
            Provider::Generic => "generic",
        }
    }
}

/// What Berth did with a webhook.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HookOutcome {
    /// `deployed`, `duplicate` or `ignored`.
    pub action: String,
    pub reason: Option<String>,
    pub deployment: Option<Deployment>,
}

fn ignored(reason: impl Into<String>) -> HookOutcome {
    HookOutcome { action: "ignored".into(), reason: Some(reason.into()), deployment: None }
}

/// Lower-cased header map of the request.
pub type Headers = HashMap<String, String>;

fn detect(h: &Headers) -> Provider {
    if h.contains_key("x-hub-signature-256") || h.contains_key("x-github-event") {
        Provider::GitHub
    } else if h.contains_key("x-gitea-signature") || h.contains_key("x-gitea-event") {
        Provider::Gitea
    } else if h.contains_key("x-gitlab-token") || h.contains_key("x-gitlab-event") {
        Provider::GitLab
    } else {
        Provider::Generic
    }
}

fn hmac_hex_ok(secret: &str, body: &[u8], hex_sig: &str) -> bool {
    let Ok(sig) = hex::decode(hex_sig.trim()) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Whether the request proves knowledge of `secret` the way its provider does.
pub fn verify(provider: Provider, h: &Headers, body: &[u8], secret: &str) -> bool {
    let eq = |a: &str| crate::crypto::digests_equal(a.trim().as_bytes(), secret.as_bytes());
    match provider {
        Provider::GitHub => h
            .get("x-hub-signature-256")
            .and_then(|s| s.strip_prefix("sha256="))
            .is_some_and(|s| hmac_hex_ok(secret, body, s)),
        Provider::Gitea => h.get("x-gitea-signature").is_some_and(|s| hmac_hex_ok(secret, body, s)),
        Provider::GitLab => h.get("x-gitlab-token").is_some_and(|t| eq(t)),
        Provider::Generic => {
            h.get("authorization").and_then(|a| a.strip_prefix("Bearer ")).is_some_and(&eq)
                || h.get("x-berth-token").is_some_and(|t| eq(t))
        }
    }
}

/// The pushed branch and commit, when the event is a push.
fn push_of(provider: Provider, h: &Headers, body: &serde_json::Value) -> Result<Option<(String, String)>, String> {
    let event = match provider {
        Provider::GitHub => h.get("x-github-event").cloned(),
        Provider::Gitea => h.get("x-gitea-event").cloned(),
        Provider::GitLab => h.get("x-gitlab-event").cloned(),
        Provider::Generic => None,
    };
    if let Some(e) = &event
        && e != "push"
        && e != "Push Hook"
    {
        return Ok(None);
    }
    let branch = body["ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("refs/heads/"))
        .or_else(|| body["branch"].as_str())
        .ok_or("the push names no branch (expected \"ref\": \"refs/heads/<branch>\")")?;
    let commit = body["after"]
        .as_str()
        .or_else(|| body["checkout_sha"].as_str())
        .or_else(|| body["commit"].as_str())
        .ok_or("the push names no commit (expected \"after\": \"<sha>\")")?;
    if commit.chars().all(|c| c == '0') {
        return Ok(None); // a deleted branch
    }
    Ok(Some((branch.to_owned(), commit.to_owned())))
}

impl Services {
    /// Handles `POST /api/hooks/:hook_id`. Unknown hook: 404. Bad signature or token: 401 (and a warning in the
    /// log). Not a push, another branch, or `auto_deploy` off: 200 `ignored` with the reason. A commit already
    /// deployed by a webhook: 200 `duplicate`. Otherwise one queued deployment (202).
    pub async fn receive_webhook(
        &self,
        hook_id: &str,
        headers: Headers,
        body: &[u8],
    ) -> Result<HookOutcome, ServiceError> {
        let id = hook_id.to_owned();
        let row = self
            .store
            .read(move |c| store::git::by_webhook(c, &id))
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("webhook '{hook_id}' not found")))?;
        let provider = detect(&headers);
        let secret = self.secrets.open(&row.webhook_secret, &format!("webhook:{}", row.project_id))?;
        if !verify(provider, &headers, body, &secret) {
            tracing::warn!(hook = hook_id, provider = provider.name(), "webhook refused: bad signature or token");
            return Err(ServiceError::unauthorized(
                "bad_signature",
                "the webhook signature or token does not match this project's webhook secret",
            ));
        }
        let json: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| ServiceError::invalid("body", format!("is not JSON: {e}")))?;
        let Some((branch, commit)) =
            push_of(provider, &headers, &json).map_err(|m| ServiceError::invalid("body", m))?
        else {
            return Ok(ignored("not a push event"));
        };
        if !row.auto_deploy {
            return Ok(ignored("auto_deploy is off for this project"));
        }
        let default =
            json["repository"]["default_branch"].as_str().or_else(|| json["project"]["default_branch"].as_str());
        let tracked = row.branch.clone().or_else(|| default.map(str::to_owned));
        if tracked.as_deref() != Some(branch.as_str()) {
            return Ok(ignored(format!(
                "push to {branch}; the project tracks {}",
                tracked.as_deref().unwrap_or("the default branch")
            )));
        }
        let delivery = headers
            .get("x-github-delivery")
            .or_else(|| headers.get("x-gitea-delivery"))
            .or_else(|| headers.get("x-gitlab-event-uuid"))
            .cloned();
        let project_id = row.project_id.clone();
        let outcome = self
            .store
            .write(move |tx| {
                if !store::git::record_delivery(tx, &project_id, &commit, provider.name(), delivery.as_deref(), now())?
                {
                    return Ok::<_, ServiceError>(HookOutcome {
                        action: "duplicate".into(),
                        reason: Some(format!("commit {commit} was already deployed from a webhook")),
                        deployment: None,
                    });
                }
                let env = store::projects::environment(tx, &project_id, crate::domain::PRODUCTION)?
                    .ok_or_else(|| ServiceError::Internal("project without a production environment".into()))?
                    .id;
                let d = Deployment {
                    id: new_id(),
                    reference: String::new(),
                    number: 0,
                    project_id: project_id.clone(),
                    environment_id: env,
                    environment: "production".into(),
                    kind: DeploymentKind::Build,
                    status: DeploymentStatus::Queued,
                    trigger: "webhook".into(),
                    triggered_by: Some(format!("{} push", provider.name())),
                    branch: Some(branch),
                    commit: Some(commit),
                    image: None,
                    release_id: None,
                    retry_of: None,
                    no_cache: false,
                    requested_commit: None,
                    reset: false,
                    note: delivery.map(|d| format!("delivery {d}")),
                    error: None,
                    created_at: now(),
                    started_at: None,
                    finished_at: None,
                };
                let d = queue(tx, d)?;
                Ok(HookOutcome { action: "deployed".into(), reason: None, deployment: Some(d) })
            })
            .await?;
        if outcome.deployment.is_some() {
            self.deploy_wake.notify_one();
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn signatures_are_checked_per_provider() {
        let body = br#"{"ref":"refs/heads/main","after":"abc"}"#;
        let good = sign("s3cret", body);
        let gh = headers(&[("x-hub-signature-256", &format!("sha256={good}")), ("x-github-event", "push")]);
        assert_eq!(detect(&gh), Provider::GitHub);
        assert!(verify(Provider::GitHub, &gh, body, "s3cret"));
        assert!(!verify(Provider::GitHub, &gh, body, "other"));
        assert!(!verify(Provider::GitHub, &gh, b"tampered", "s3cret"));
        let gitea = headers(&[("x-gitea-signature", &good)]);
        assert!(verify(detect(&gitea), &gitea, body, "s3cret"));
        let gl = headers(&[("x-gitlab-token", "s3cret"), ("x-gitlab-event", "Push Hook")]);
        assert!(verify(detect(&gl), &gl, body, "s3cret"));
        assert!(!verify(Provider::GitLab, &headers(&[("x-gitlab-token", "nope")]), body, "s3cret"));
        let generic = headers(&[("authorization", "Bearer s3cret")]);
        assert!(verify(detect(&generic), &generic, body, "s3cret"));
        assert!(!verify(Provider::Generic, &headers(&[]), body, "s3cret"));
    }

    #[test]
    fn pushes_are_read_from_each_payload() {
        let gh = headers(&[("x-github-event", "push")]);
        let body = serde_json::json!({"ref": "refs/heads/main", "after": "abc"});
        assert_eq!(push_of(Provider::GitHub, &gh, &body).unwrap(), Some(("main".into(), "abc".into())));
        assert_eq!(push_of(Provider::GitHub, &headers(&[("x-github-event", "ping")]), &body).unwrap(), None);
        let gl = headers(&[("x-gitlab-event", "Push Hook")]);
        let body = serde_json::json!({"ref": "refs/heads/dev", "checkout_sha": "def"});
        assert_eq!(push_of(Provider::GitLab, &gl, &body).unwrap(), Some(("dev".into(), "def".into())));
        let body = serde_json::json!({"branch": "main", "commit": "123"});
        assert_eq!(push_of(Provider::Generic, &headers(&[]), &body).unwrap(), Some(("main".into(), "123".into())));
        let deleted = serde_json::json!({"ref": "refs/heads/x", "after": "0000000000"});
        assert_eq!(push_of(Provider::GitHub, &gh, &deleted).unwrap(), None);
        assert!(push_of(Provider::Generic, &headers(&[]), &serde_json::json!({})).is_err());
    }
}
