//! Running a command inside a container (`docker exec`), streaming its stdin and stdout: database backups and
//! restores pipe dumps through these without holding them in memory.

use super::{DockerClient, DockerError, is_status};
use bollard::exec::{CreateExecOptions, StartExecResults};
use bytes::Bytes;
use futures_util::StreamExt;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// How a command run in a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutcome {
    /// The command's exit code (`-1` when the engine did not report one).
    pub exit_code: i64,
    /// The last few KiB of its standard error, for error messages.
    pub stderr: String,
}

/// The most standard error kept for [`ExecOutcome::stderr`].
const STDERR_KEEP: usize = 4096;

impl DockerClient {
    /// Runs `sh -c script` in the running container `id` and waits for it, at most `limit`. Standard output goes
    /// chunk by chunk to `stdout` (dropped when `None`); `stdin`'s chunks are written to the command's standard
    /// input, which is closed when the channel ends. A container that is not running is
    /// [`DockerError::Conflict`]; a missing one [`DockerError::NotFound`].
    pub async fn exec_script(
        &self,
        id: &str,
        script: &str,
        stdout: Option<mpsc::Sender<Bytes>>,
        stdin: Option<mpsc::Receiver<Bytes>>,
        limit: Duration,
    ) -> Result<ExecOutcome, DockerError> {
        let docker = self.client().await?;
        let options = CreateExecOptions {
            cmd: Some(vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()]),
            attach_stdin: Some(stdin.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let created = match docker.create_exec(id, options).await {
            Ok(c) => c,
            Err(e) if is_status(&e, 404) => return Err(DockerError::NotFound { what: format!("container {id}") }),
            Err(e) if is_status(&e, 409) => {
                return Err(DockerError::Conflict { message: format!("container {id} is not running") });
            }
            Err(e) => return Err(e.into()),
        };
        let run = async {
            let StartExecResults::Attached { mut output, mut input } = docker.start_exec(&created.id, None).await?
            else {
                return Err(DockerError::Invalid { message: "the engine detached an attached exec".into() });
            };
            let feed = async move {
                if let Some(mut rx) = stdin {
                    while let Some(chunk) = rx.recv().await {
                        input.write_all(&chunk).await?;
                    }
                    input.flush().await?;
                }
                // Closing our side is what tells the engine the command's standard input has ended.
                input.shutdown().await
            };
            let drain = async move {
                let mut stderr = Vec::new();
                while let Some(item) = output.next().await {
                    match item? {
                        bollard::container::LogOutput::StdOut { message }
                        | bollard::container::LogOutput::Console { message } => {
                            if let Some(tx) = &stdout
                                && tx.send(message).await.is_err()
                            {
                                return Err(DockerError::Invalid { message: "the output's reader stopped".into() });
                            }
                        }
                        bollard::container::LogOutput::StdErr { message } => {
                            stderr.extend_from_slice(&message);
                            if stderr.len() > 2 * STDERR_KEEP {
                                stderr.drain(..stderr.len() - STDERR_KEEP);
                            }
                        }
                        bollard::container::LogOutput::StdIn { .. } => {}
                    }
                }
                Ok::<_, DockerError>(stderr)
            };
            let (fed, drained) = tokio::join!(feed, drain);
            let stderr = drained?;
            if let Err(e) = fed {
                // The command may exit before reading all of its input (a failing restore): its exit code and
                // error output say more than the broken pipe does.
                tracing::debug!(error = %e, "while writing an exec's standard input");
            }
            let inspected = docker.inspect_exec(&created.id).await?;
            let keep = stderr.len().saturating_sub(STDERR_KEEP);
            Ok(ExecOutcome {
                exit_code: inspected.exit_code.unwrap_or(-1),
                stderr: String::from_utf8_lossy(&stderr[keep..]).trim().to_owned(),
            })
        };
        tokio::time::timeout(limit, run)
            .await
            .unwrap_or_else(|_| Err(DockerError::TimedOut { what: "a command in a database container".into(), limit }))
    }
}
