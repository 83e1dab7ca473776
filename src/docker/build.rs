//! Image builds through the engine's classic builder (`POST /build` with a tar context; no BuildKit session, so
//! API 1.41 engines work), and image removal.

use super::{DockerClient, DockerError, context, is_status, labels};
use bollard::body_full;
use bollard::query_parameters::{BuildImageOptionsBuilder, RemoveImageOptionsBuilder};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What to build. Construct with [`ImageBuild::new`] and adjust the public fields.
#[derive(Debug, Clone)]
pub struct ImageBuild {
    /// The build context directory; packed in memory (honouring its `.dockerignore`, never following symlinks).
    pub context_dir: PathBuf,
    /// The Dockerfile's path inside the context (default `Dockerfile`); always sent, even when ignored.
    pub dockerfile: String,
    /// A generated Dockerfile used instead of `dockerfile`; it is never copied into the image by `COPY . .`.
    pub dockerfile_contents: Option<String>,
    /// The tag the image gets (`name:tag`).
    pub tag: String,
    /// `--build-arg` values.
    pub build_args: Vec<(String, String)>,
    /// Labels on the image, in addition to `berth.managed=true`. Empty means no labels at all: the classic builder
    /// applies labels as an extra step with its own container commit (about 250 ms here), so Berth identifies its
    /// images by their repository (`berth/<workspace id>/<project id>`) instead.
    pub labels: labels::Labels,
    /// Ignore the build cache.
    pub no_cache: bool,
    /// Memory limit of each build step's container; the engine takes at most `i32::MAX` bytes here, so larger
    /// values are capped there.
    pub memory_bytes: Option<i64>,
    /// The whole build (packing, upload and every step) must finish within this, or it is stopped.
    pub timeout: Duration,
}

impl ImageBuild {
    /// A build of `context_dir/Dockerfile` tagged `tag`, with the cache, no limits and a 30-minute timeout.
    pub fn new(context_dir: impl Into<PathBuf>, tag: impl Into<String>) -> ImageBuild {
        ImageBuild {
            context_dir: context_dir.into(),
            dockerfile: "Dockerfile".to_owned(),
            dockerfile_contents: None,
            tag: tag.into(),
            build_args: Vec::new(),
            labels: labels::Labels::new(),
            no_cache: false,
            memory_bytes: None,
            timeout: Duration::from_secs(30 * 60),
        }
    }
}

impl DockerClient {
    /// Builds `req` and returns the new image's id (`sha256:…`). Every output line (build steps, statuses) is
    /// passed to `on_line` as it arrives. A failing step gives [`DockerError::BuildFailed`] with the builder's
    /// message. When `cancel` fires, or `req.timeout` passes, the request is dropped at once — closing the
    /// connection makes the engine stop the build and remove its intermediate containers — and
    /// [`DockerError::Cancelled`] or [`DockerError::TimedOut`] is returned.
    pub async fn build_image(
        &self,
        req: ImageBuild,
        on_line: &mut (dyn FnMut(String) + Send),
        cancel: &CancellationToken,
    ) -> Result<String, DockerError> {
        let limit = req.timeout;
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(DockerError::Cancelled),
            r = tokio::time::timeout(limit, self.build_until_done(req, on_line)) => {
                r.unwrap_or_else(|_| Err(DockerError::TimedOut { what: "image build".to_owned(), limit }))
            }
        }
    }

    async fn build_until_done(
        &self,
        req: ImageBuild,
        on_line: &mut (dyn FnMut(String) + Send),
    ) -> Result<String, DockerError> {
        let docker = self.client().await?;
        let (dir, dockerfile, generated) =
            (req.context_dir.clone(), req.dockerfile.clone(), req.dockerfile_contents.clone());
        let packing = tokio::task::spawn_blocking(move || context::pack(&dir, &dockerfile, generated.as_deref()));
        let archive = packing
            .await
            .map_err(|e| DockerError::Context { path: req.context_dir.clone(), source: std::io::Error::other(e) })??;
        let dockerfile = match req.dockerfile_contents {
            Some(_) => context::GENERATED_DOCKERFILE,
            None => req.dockerfile.as_str(),
        };
        let mut options = BuildImageOptionsBuilder::default()
            .dockerfile(dockerfile)
            .t(&req.tag)
            .rm(true)
            .forcerm(true)
            .nocache(req.no_cache);
        if !req.labels.is_empty() {
            options = options.labels(&labels::to_engine(&req.labels));
        }
        if !req.build_args.is_empty() {
            let args: HashMap<String, String> = req.build_args.iter().cloned().collect();
            options = options.buildargs(&args);
        }
        if let Some(bytes) = req.memory_bytes {
            options = options.memory(i32::try_from(bytes).unwrap_or(i32::MAX));
        }
        let mut stream = docker.build_image(options.build(), None, Some(body_full(archive.into())));
        let mut lines = LineSplitter::default();
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(info) => info,
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    lines.flush(on_line);
                    return Err(DockerError::BuildFailed { message: error });
                }
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 400, message }) => {
                    return Err(DockerError::BuildFailed { message });
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(text) = info.stream {
                lines.push(&text, on_line);
            }
            if let Some(status) = info.status {
                lines.flush(on_line);
                let progress = info.progress_detail.and_then(|p| Some(format!(" {}/{}", p.current?, p.total?)));
                on_line(format!("{status}{}", progress.unwrap_or_default()));
            }
        }
        lines.flush(on_line);
        let image = docker.inspect_image(&req.tag).await.map_err(|e| {
            if is_status(&e, 404) {
                DockerError::BuildFailed { message: format!("the build ended without producing {}", req.tag) }
            } else {
                e.into()
            }
        })?;
        image.id.ok_or_else(|| DockerError::BuildFailed { message: format!("the engine gave no id for {}", req.tag) })
    }

    /// Removes the image `tag` (untags it; layers go when nothing else uses them). Removing an image that does
    /// not exist succeeds. An image still used by a container is not removed: [`DockerError::Conflict`].
    pub async fn remove_image(&self, tag: &str) -> Result<(), DockerError> {
        let docker = self.client().await?;
        let options = RemoveImageOptionsBuilder::default().force(false).noprune(false).build();
        match docker.remove_image(tag, Some(options), None).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) if is_status(&e, 409) => Err(DockerError::Conflict { message: e.to_string() }),
            Err(e) => Err(e.into()),
        }
    }
}

/// Turns the builder's `stream` chunks (which may split or join lines) into whole lines; empty lines are dropped.
#[derive(Default)]
struct LineSplitter {
    pending: String,
}

impl LineSplitter {
    fn push(&mut self, chunk: &str, out: &mut (dyn FnMut(String) + Send)) {
        self.pending.push_str(chunk);
        while let Some(pos) = self.pending.find('\n') {
            let line: String = self.pending.drain(..=pos).collect();
            emit(line, out);
        }
    }

    fn flush(&mut self, out: &mut (dyn FnMut(String) + Send)) {
        emit(std::mem::take(&mut self.pending), out);
    }
}

fn emit(line: String, out: &mut (dyn FnMut(String) + Send)) {
    let line = line.trim_end_matches(['\n', '\r']);
    if !line.trim().is_empty() {
        out(line.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter_joins_and_splits_chunks_into_lines() {
        let mut got = Vec::new();
        let mut sink = |l: String| got.push(l);
        let mut s = LineSplitter::default();
        s.push("Step 1/2 : FROM x\n ---> ab", &mut sink);
        s.push("c\n\nStep 2/2", &mut sink);
        s.flush(&mut sink);
        assert_eq!(got, vec!["Step 1/2 : FROM x", " ---> abc", "Step 2/2"]);
    }
}
