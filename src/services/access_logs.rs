//! The proxy's access log: entries from the proxy's channel stored in batches, pruned like runtime logs, and read
//! per project.

use super::projects::resolve_project;
use super::{Actor, ServiceError, Services};
use crate::proxy::AccessEntry;
pub use crate::store::access_logs::AccessLogEntry;
use crate::store::{self, access_logs::NewAccessEntry, access_logs::StatusFilter};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Most entries written in one transaction.
const BATCH: usize = 1000;
/// How often old entries are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// `?status=` of the access-log route: `404`, `4xx`, `5xx` or `error` (any 4xx/5xx).
pub fn parse_status_filter(raw: &str) -> Result<StatusFilter, ServiceError> {
    let bad = || {
        ServiceError::invalid(
            "status",
            format!("'{raw}' is not a status filter: use a code (404), a class (4xx, 5xx) or error"),
        )
    };
    match raw.to_ascii_lowercase().as_str() {
        "error" | "errors" => Ok(StatusFilter::Errors),
        s if s.len() == 3 && s.ends_with("xx") => match s.as_bytes()[0] {
            c @ b'1'..=b'5' => Ok(StatusFilter::Class(u16::from(c - b'0'))),
            _ => Err(bad()),
        },
        s => match s.parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) => Ok(StatusFilter::Exact(code)),
            _ => Err(bad()),
        },
    }
}

fn to_stored(e: AccessEntry) -> Option<NewAccessEntry> {
    let at = chrono::DateTime::<chrono::Utc>::from(e.at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Some(NewAccessEntry {
        deployment_id: e.tag?.to_string(),
        at,
        host: e.host,
        method: e.method,
        path: e.path,
        status: e.status,
        duration_ms: e.duration_ms,
        client_ip: e.client.to_string(),
        request_id: e.request_id,
        https: e.https,
    })
}

impl Services {
    /// Stores what the proxy hands over until `shutdown` (then what is already queued), and prunes entries beyond
    /// `log_retention_days` / `log_retention_lines` every ten minutes.
    pub async fn write_access_logs(self: Arc<Self>, mut rx: mpsc::Receiver<AccessEntry>, shutdown: CancellationToken) {
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        loop {
            let first = tokio::select! {
                e = rx.recv() => e,
                _ = prune.tick() => {
                    self.prune_access_logs().await;
                    continue;
                }
                _ = shutdown.cancelled() => {
                    rx.close();
                    rx.recv().await
                }
            };
            let Some(first) = first else { return };
            let mut batch: Vec<NewAccessEntry> = to_stored(first).into_iter().collect();
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(e) => batch.extend(to_stored(e)),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                continue;
            }
            if let Err(e) = self.store.write(move |tx| store::access_logs::append(tx, &batch)).await {
                tracing::warn!(error = %e, "while writing access logs");
            }
        }
    }

    async fn prune_access_logs(&self) {
        let days = i64::from(self.config.log_retention_days);
        let cutoff =
            (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let keep = self.config.log_retention_lines;
        if let Err(e) = self.store.write(move |tx| store::access_logs::prune(tx, &cutoff, keep)).await {
            tracing::warn!(error = %e, "while pruning access logs");
        }
    }

    /// `GET …/projects/:p/access-logs?after&status&limit` (member): entries after `after`, oldest first.
    pub async fn access_logs(
        &self,
        actor: &Actor,
        ws: &str,
        project: &str,
        after: i64,
        status: Option<StatusFilter>,
        limit: u32,
    ) -> Result<Vec<AccessLogEntry>, ServiceError> {
        let (a, w, p) = (actor.clone(), ws.to_owned(), project.to_owned());
        self.store
            .read(move |c| {
                let (_, project) = resolve_project(c, &a, &w, &p)?;
                Ok(store::access_logs::after(c, &project.id, after, status, limit)?)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_filters_parse_or_say_what_to_use() {
        assert_eq!(parse_status_filter("404").unwrap(), StatusFilter::Exact(404));
        assert_eq!(parse_status_filter("5xx").unwrap(), StatusFilter::Class(5));
        assert_eq!(parse_status_filter("4XX").unwrap(), StatusFilter::Class(4));
        assert_eq!(parse_status_filter("error").unwrap(), StatusFilter::Errors);
        for bad in ["6xx", "99", "abc", "1000", ""] {
            assert!(parse_status_filter(bad).unwrap_err().to_string().contains("status filter"), "{bad}");
        }
    }
}
