//! Following what containers write, and noticing when managed containers start: the two engine streams the
//! runtime-log follower is built on. Both run until the engine ends the stream, it fails, or the caller cancels.

use super::container::split_timestamp;
use super::{DockerClient, DockerError, LogLine, LogStream, is_status, labels};
use bollard::query_parameters::{EventsOptionsBuilder, LogsOptionsBuilder};
use futures_util::StreamExt;
use std::collections::HashMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

impl DockerClient {
    /// Sends every line container `id` writes (stdout and stderr, with the engine's timestamps) from the Unix time
    /// `since` on (inclusive, whole seconds: the engine's log API takes no finer value) to `out`, following new
    /// output until the container stops, `cancel` fires or `out` is closed. A missing container is
    /// [`DockerError::NotFound`].
    pub async fn follow_logs(
        &self,
        id: &str,
        since: i64,
        out: mpsc::Sender<LogLine>,
        cancel: CancellationToken,
    ) -> Result<(), DockerError> {
        let docker = self.client().await?;
        let options = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .since(i32::try_from(since.max(0)).unwrap_or(i32::MAX))
            .build();
        let mut stream = docker.logs(id, Some(options));
        loop {
            let item = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                item = stream.next() => item,
            };
            let (stream_kind, bytes) = match item {
                None => return Ok(()),
                Some(Ok(bollard::container::LogOutput::StdOut { message })) => (LogStream::Stdout, message),
                Some(Ok(bollard::container::LogOutput::StdErr { message })) => (LogStream::Stderr, message),
                Some(Ok(bollard::container::LogOutput::Console { message })) => (LogStream::Stdout, message),
                Some(Ok(bollard::container::LogOutput::StdIn { .. })) => continue,
                Some(Err(e)) if is_status(&e, 404) => {
                    return Err(DockerError::NotFound { what: format!("container {id}") });
                }
                Some(Err(e)) => return Err(e.into()),
            };
            for raw in String::from_utf8_lossy(&bytes).split('\n') {
                let raw = raw.trim_end_matches('\r');
                if raw.is_empty() {
                    continue;
                }
                if out.send(split_timestamp(stream_kind, raw)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }

    /// Sends the id of every Berth-managed container that starts (or is restarted by the engine) to `out`, until
    /// the engine ends the event stream, `cancel` fires or `out` is closed.
    pub async fn watch_container_starts(
        &self,
        out: mpsc::Sender<String>,
        cancel: CancellationToken,
    ) -> Result<(), DockerError> {
        let docker = self.client().await?;
        let mut filters: HashMap<String, Vec<String>> = labels::label_filter(&[]);
        filters.insert("type".into(), vec!["container".into()]);
        filters.insert("event".into(), vec!["start".into()]);
        let mut events = docker.events(Some(EventsOptionsBuilder::default().filters(&filters).build()));
        loop {
            let item = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                item = events.next() => item,
            };
            match item {
                None => return Ok(()),
                Some(Ok(event)) => {
                    if let Some(id) = event.actor.and_then(|a| a.id)
                        && out.send(id).await.is_err()
                    {
                        return Ok(());
                    }
                }
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }
}
