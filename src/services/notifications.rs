//! The notification hook: backups and certificates raise typed events (`domain::notification`); raising never
//! waits and never fails the caller (a bounded queue; when it is full the event is dropped with a warning). One
//! background task records each notification in its workspace's audit log and POSTs it to every configured
//! webhook (`notify_webhook`), signed when `notify_webhook_secret` is set, retrying a few times with backoff.
//! The uptime issue adds its own events and channels (e-mail, Slack…) here.

use super::Services;
use crate::config::WebhookUrl;
use crate::domain::notification::{
    DELIVERY_ATTEMPTS, DELIVERY_TIMEOUT, Event, Notification, Streaks, WorkspaceRef, payload, retry_delay, retryable,
    signature, signing_key,
};
use crate::domain::{new_id, now};
use crate::store::{self, audit::NewAuditEntry};
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How many raised notifications may wait for the delivery task.
const QUEUE: usize = 256;
/// How many webhook deliveries (with their retries) may be under way at once; more are dropped with a warning.
const IN_FLIGHT: usize = 64;

/// The dashboard page a notification links to, resolved when it is delivered.
#[derive(Debug, Clone)]
pub(crate) enum Link {
    None,
    /// `/w/<ws>/databases/<id>`.
    Database(String),
    /// `/w/<ws>/p/<project>/domains`, by project id.
    ProjectDomains(String),
}

/// A raised notification on its way to the delivery task.
#[derive(Debug)]
struct Raised {
    notification: Notification,
    workspace_id: Option<String>,
    link: Link,
}

/// The queue between the services that raise notifications and the task that delivers them, and the streaks
/// that keep a lasting failure from being announced at every attempt.
pub(crate) struct Notifier {
    tx: mpsc::Sender<Raised>,
    rx: Mutex<Option<mpsc::Receiver<Raised>>>,
    streaks: Mutex<Streaks>,
}

impl Notifier {
    pub(crate) fn new() -> Notifier {
        Notifier::with_capacity(QUEUE)
    }

    fn with_capacity(capacity: usize) -> Notifier {
        let (tx, rx) = mpsc::channel(capacity);
        Notifier { tx, rx: Mutex::new(Some(rx)), streaks: Mutex::new(Streaks::default()) }
    }

    /// Queues `event` unless its streak was announced recently; returns whether it was queued. Never waits: when
    /// the queue is full the event is dropped with a warning (and its streak forgotten, so the next failure is
    /// not suppressed in favour of one nobody heard about).
    fn raise(&self, workspace_id: Option<&str>, link: Link, event: Event) -> bool {
        let (key, every) = event.streak();
        let time = chrono::Utc::now();
        let admitted = self.streaks.lock().map(|mut s| s.admit(&key, every, time)).unwrap_or(true);
        if !admitted {
            tracing::debug!(event = event.kind(), streak = %key, "notification skipped: announced recently");
            return false;
        }
        let kind = event.kind();
        let raised = Raised {
            notification: Notification { id: new_id(), time, event },
            workspace_id: workspace_id.map(str::to_owned),
            link,
        };
        match self.tx.try_send(raised) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(event = kind, "notification dropped: the notification queue is full");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!(event = kind, "notification dropped: Berth is shutting down");
            }
        }
        self.end(&key);
        false
    }

    fn end(&self, streak: &str) {
        if let Ok(mut s) = self.streaks.lock() {
            s.end(streak);
        }
    }
}

impl Services {
    /// Raises `event` (of workspace `workspace_id`, when it has one): queued for the audit log and the webhooks
    /// unless its streak was announced recently (see [`Event::streak`]). Returns at once; never fails.
    pub(crate) fn notify(&self, workspace_id: Option<&str>, link: Link, event: Event) {
        self.notifier.raise(workspace_id, link, event);
    }

    /// Ends a streak (a backup or certificate succeeded): its next failure is announced at once.
    pub(crate) fn notification_resolved(&self, streak: &str) {
        self.notifier.end(streak);
    }

    /// The delivery task: until `cancel`, records each raised notification in its workspace's audit log and
    /// delivers it to every webhook. Deliveries still retrying at shutdown are abandoned.
    pub async fn deliver_notifications(self: Arc<Self>, cancel: CancellationToken) {
        let Some(mut rx) = self.notifier.rx.lock().ok().and_then(|mut rx| rx.take()) else {
            tracing::error!("the notification task was started twice");
            return;
        };
        // Only built when there is somewhere to deliver: the client (with its parsed root certificates) costs idle
        // memory on every instance that only uses the audit log.
        let client = if self.config.notify_webhooks.is_empty() {
            Ok(None)
        } else {
            reqwest::Client::builder()
                .timeout(DELIVERY_TIMEOUT)
                .connect_timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("Berth/", env!("CARGO_PKG_VERSION")))
                .build()
                .map(Some)
        };
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "while building the webhook client; notifications go to the audit log only");
                None
            }
        };
        let secret = &self.config.notify_webhook_secret.0;
        let key = (!secret.is_empty()).then(|| signing_key(secret).ok()).flatten().map(Arc::new);
        let mut deliveries = JoinSet::new();
        loop {
            let raised = tokio::select! {
                _ = cancel.cancelled() => break,
                Some(_) = deliveries.join_next(), if !deliveries.is_empty() => continue,
                r = rx.recv() => match r {
                    Some(r) => r,
                    None => break,
                },
            };
            let (workspace, url) = self.resolve(&raised).await;
            let n = &raised.notification;
            tracing::info!(event = n.event.kind(), subject = %n.event.subject(), id = %n.id, "notification raised");
            self.record_notification(&raised, workspace.as_ref()).await;
            let Some(client) = client.as_ref().filter(|_| !self.config.notify_webhooks.is_empty()) else {
                continue;
            };
            let body = Bytes::from(payload(n, workspace.as_ref(), url.as_deref()).to_string());
            for hook in &self.config.notify_webhooks {
                if deliveries.len() >= IN_FLIGHT {
                    tracing::warn!(
                        event = n.event.kind(),
                        webhook = hook.origin(),
                        "notification dropped: too many deliveries under way"
                    );
                    continue;
                }
                let job = Delivery {
                    client: client.clone(),
                    url: hook.clone(),
                    key: key.clone(),
                    id: n.id.clone(),
                    kind: n.event.kind(),
                    body: body.clone(),
                };
                deliveries.spawn(job.run());
            }
        }
        deliveries.shutdown().await;
    }

    /// The notification's workspace and dashboard link.
    async fn resolve(&self, raised: &Raised) -> (Option<WorkspaceRef>, Option<String>) {
        let (ws, link) = (raised.workspace_id.clone(), raised.link.clone());
        let found = self
            .store
            .read(move |c| {
                let Some(ws) = ws else { return Ok((None, None)) };
                let workspace = store::workspaces::by_id(c, &ws)?;
                let project = match &link {
                    Link::ProjectDomains(p) => store::projects::by_id(c, p)?,
                    _ => None,
                };
                Ok::<_, store::StoreError>((workspace, project))
            })
            .await;
        let (workspace, project) = match found {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "while looking up a notification's workspace");
                (None, None)
            }
        };
        let Some(w) = workspace else { return (None, None) };
        let base = &self.config.public_url;
        let url = match (&raised.link, project) {
            (Link::Database(id), _) => Some(format!("{base}/w/{}/databases/{id}", w.slug)),
            (Link::ProjectDomains(_), Some(p)) => Some(format!("{base}/w/{}/p/{}/domains", w.slug, p.slug)),
            _ => None,
        };
        (Some(WorkspaceRef { id: w.id, slug: w.slug, name: w.name }), url)
    }

    /// Appends the notification to its workspace's audit log (actor `system`), where the dashboard and
    /// `GET …/audit` show it. Instance-wide notifications (the console domain's certificate) have no workspace.
    async fn record_notification(&self, raised: &Raised, workspace: Option<&WorkspaceRef>) {
        let Some(w) = workspace else { return };
        let n = &raised.notification;
        let mut details = n.event.details();
        details["notification"] = serde_json::json!(n.id);
        let entry = NewAuditEntry {
            workspace_id: Some(w.id.clone()),
            actor_kind: "system",
            actor_id: None,
            actor_label: "Berth".into(),
            key_id: None,
            action: n.event.kind(),
            target: n.event.subject(),
            details,
            ip: None,
            created_at: now(),
        };
        if let Err(e) = self.store.write(move |tx| store::audit::insert(tx, &entry)).await {
            tracing::warn!(error = %e, "while recording a notification in the audit log");
        }
    }
}

/// One notification on its way to one webhook.
struct Delivery {
    client: reqwest::Client,
    url: WebhookUrl,
    key: Option<Arc<Vec<u8>>>,
    id: String,
    kind: &'static str,
    body: Bytes,
}

impl Delivery {
    /// Up to [`DELIVERY_ATTEMPTS`] POSTs with [`retry_delay`] between them; stops at a 2xx or at a refusal that
    /// waiting will not change. Logs only the webhook's origin, never its path (chat webhooks' token) or the key.
    async fn run(self) {
        let webhook = self.url.origin();
        let mut attempt = 1;
        loop {
            match self.post().await {
                Ok(status) if (200..300).contains(&status) => {
                    tracing::info!(event = self.kind, id = %self.id, webhook, attempt, "notification delivered");
                    return;
                }
                Ok(status) if !retryable(status) => {
                    tracing::warn!(event = self.kind, id = %self.id, webhook, status, "notification refused by the webhook; not retried");
                    return;
                }
                outcome => {
                    let reason = match outcome {
                        Ok(status) => format!("answered {status}"),
                        Err(e) => e,
                    };
                    if attempt >= DELIVERY_ATTEMPTS {
                        tracing::warn!(event = self.kind, id = %self.id, webhook, attempts = attempt, reason, "notification not delivered; giving up");
                        return;
                    }
                    tracing::debug!(
                        event = self.kind,
                        webhook,
                        attempt,
                        reason,
                        "notification delivery failed; retrying"
                    );
                    tokio::time::sleep(retry_delay(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// One attempt: the status, or why there was none (with the URL taken out of the error).
    async fn post(&self) -> Result<u16, String> {
        let timestamp = chrono::Utc::now().timestamp();
        let mut request = self
            .client
            .post(&self.url.0)
            .header("content-type", "application/json")
            .header("webhook-id", &self.id)
            .header("webhook-timestamp", timestamp.to_string());
        if let Some(key) = &self.key {
            request = request.header("webhook-signature", signature(key, &self.id, timestamp, &self.body));
        }
        match request.body(self.body.clone()).send().await {
            Ok(response) => Ok(response.status().as_u16()),
            Err(e) => {
                let e = e.without_url();
                let mut reason = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    reason = format!("{reason}: {s}");
                    source = s.source();
                }
                Err(reason)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn failed(database: &str) -> Event {
        Event::BackupFailed {
            database_id: database.into(),
            database_name: database.into(),
            backup_id: "b".into(),
            trigger: "manual",
            error: "broken".into(),
        }
    }

    #[test]
    fn raising_never_waits_drops_when_full_and_skips_a_repeat() {
        let n = Notifier::with_capacity(1);
        assert!(n.raise(Some("w"), Link::None, failed("db1")));
        assert!(!n.raise(Some("w"), Link::None, failed("db1")), "the same streak within the hour");
        assert!(!n.raise(Some("w"), Link::None, failed("db2")), "the queue is full: dropped, not waited for");
        let mut rx = n.rx.lock().unwrap().take().unwrap();
        let first = rx.try_recv().unwrap();
        assert_eq!((first.notification.event, first.workspace_id.as_deref()), (failed("db1"), Some("w")));
        assert!(n.raise(None, Link::None, failed("db2")), "a dropped event does not start a streak");
        n.end(&crate::domain::notification::backup_streak("db1"));
        drop(rx.try_recv().unwrap());
        assert!(n.raise(None, Link::None, failed("db1")), "a success ended db1's streak");
    }
}
