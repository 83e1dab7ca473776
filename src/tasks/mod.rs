//! Supervised background loops. Each task is named and gets a child cancellation token; shutdown cancels them
//! all, waits with a deadline, and reports any that did not stop.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

/// The set of running background tasks.
pub struct Tasks {
    cancel: CancellationToken,
    set: JoinSet<()>,
    names: HashMap<Id, &'static str>,
}

impl Tasks {
    pub fn new(parent: &CancellationToken) -> Tasks {
        Tasks { cancel: parent.child_token(), set: JoinSet::new(), names: HashMap::new() }
    }

    /// Starts `make(token)` as the task `name`. The future must return soon after the token is cancelled.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, make: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handle = self.set.spawn(make(self.cancel.child_token()));
        self.names.insert(handle.id(), name);
    }

    /// Cancels every task and waits up to `deadline`; aborts and returns the names of those still running.
    pub async fn shutdown(mut self, deadline: Duration) -> Vec<&'static str> {
        self.cancel.cancel();
        let _ = tokio::time::timeout(deadline, async {
            while let Some(done) = self.set.join_next_with_id().await {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => e.id(),
                };
                self.names.remove(&id);
            }
        })
        .await;
        self.set.abort_all();
        self.names.into_values().collect()
    }
}

/// Deletes expired sessions every hour.
pub async fn session_gc(services: crate::services::SharedServices, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => match services.delete_expired_sessions().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "expired sessions removed"),
                Err(e) => tracing::warn!(error = %e, "while removing expired sessions"),
            },
        }
    }
}
