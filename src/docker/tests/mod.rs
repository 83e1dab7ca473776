//! Tests against the real Docker engine. Each test labels what it creates with its own `berth.run` id, and a
//! [`Cleanup`] guard removes everything with that label when the test ends, pass or fail.

mod build;
mod run;

use super::*;
use bollard::query_parameters::{ListImagesOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder};
use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// The shared busybox base image; built once per test process, reused across runs.
pub(super) const BUSYBOX_TAG: &str = "berth-test/busybox:1";

static BUSYBOX: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
static RUN_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A client for the engine the tests use; fails the test loudly when the engine cannot be reached.
pub(super) async fn engine() -> DockerClient {
    let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned());
    let d = DockerClient::new(&host);
    if let Err(e) = d.info(Duration::from_secs(10)).await {
        panic!("these tests need a Docker engine at {host} (start one with `dockerd &`): {e}");
    }
    d
}

/// A unique run id for this test's objects, and the guard that removes them.
pub(super) fn new_run() -> (String, Cleanup) {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let run = format!("t{}x{}x{}", std::process::id(), RUN_COUNTER.fetch_add(1, Ordering::Relaxed), nanos % 100_000);
    (run.clone(), Cleanup { run })
}

/// Labels for an object of run `run`.
pub(super) fn run_labels(run: &str) -> Labels {
    Labels::from([(LABEL_RUN.to_owned(), run.to_owned()), (LABEL_PROJECT.to_owned(), "p-test".to_owned())])
}

/// Removes every container, network, volume and image labelled with its run id when dropped.
pub(super) struct Cleanup {
    run: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let run = self.run.clone();
        // Drop cannot await, and may run while the test's runtime is unwinding: clean up on a fresh runtime.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(remove_run(&run));
        })
        .join();
        if done.is_err() {
            eprintln!("cleanup of run {} failed; check `docker ps -a --filter label=berth.run`", self.run);
        }
    }
}

async fn remove_run(run: &str) {
    let d = engine().await;
    for c in d.list_containers(&[(LABEL_RUN, run)], true).await.unwrap() {
        d.remove_container(&c.id).await.unwrap();
    }
    let docker = d.client().await.unwrap();
    let filters = labels::label_filter(&[(LABEL_RUN, run)]);
    let networks = docker.list_networks(Some(ListNetworksOptionsBuilder::default().filters(&filters).build()));
    for n in networks.await.unwrap() {
        d.remove_network(&n.id.unwrap()).await.unwrap();
    }
    let volumes = docker.list_volumes(Some(ListVolumesOptionsBuilder::default().filters(&filters).build()));
    for v in volumes.await.unwrap().volumes.unwrap_or_default() {
        d.remove_volume(&v.name).await.unwrap();
    }
    let images = docker.list_images(Some(ListImagesOptionsBuilder::default().all(false).filters(&filters).build()));
    for i in images.await.unwrap() {
        let force = bollard::query_parameters::RemoveImageOptionsBuilder::default().force(true).build();
        let _ = docker.remove_image(&i.id, Some(force), None).await;
    }
}

/// Makes [`BUSYBOX_TAG`] from the host's static busybox unless it exists; once per test process.
pub(super) async fn busybox_image(d: &DockerClient) -> &'static str {
    BUSYBOX
        .get_or_init(|| async {
            let docker = d.client().await.unwrap();
            if docker.inspect_image(BUSYBOX_TAG).await.is_ok() {
                return;
            }
            let dir = tempfile::tempdir().unwrap();
            std::fs::copy("/bin/busybox", dir.path().join("busybox")).expect("busybox-static at /bin/busybox");
            write(
                dir.path(),
                "Dockerfile",
                "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\",\"--install\",\"-s\",\"/bin\"]\n",
            );
            let mut req = ImageBuild::new(dir.path(), BUSYBOX_TAG);
            req.timeout = Duration::from_secs(120);
            d.build_image(req, &mut |_| {}, &CancellationToken::new()).await.unwrap();
        })
        .await;
    BUSYBOX_TAG
}

/// Writes `contents` to `dir/name`, creating parent directories.
pub(super) fn write(dir: &Path, name: &str, contents: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

/// Polls `check` until it gives a value, failing the test after `limit`.
pub(super) async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the container has exited and returns its final state.
pub(super) async fn wait_exited(d: &DockerClient, id: &str) -> ContainerState {
    eventually("the container to exit", Duration::from_secs(20), || async {
        d.inspect_container(id).await.unwrap().filter(|s| !s.running && s.exit_code.is_some())
    })
    .await
}

/// Runs `cmd` in `image` to completion and returns its output lines.
pub(super) async fn output_of(d: &DockerClient, run: &str, name: &str, image: &str, cmd: &[&str]) -> Vec<String> {
    let mut spec = ContainerSpec::new(format!("berth-test-{run}-{name}"), image);
    spec.cmd = Some(cmd.iter().map(|s| (*s).to_owned()).collect());
    spec.labels = run_labels(run);
    let id = d.run_container(spec).await.unwrap();
    let state = wait_exited(d, &id).await;
    assert_eq!(state.exit_code, Some(0), "{cmd:?} failed");
    let lines = d.container_logs(&id, None, None).await.unwrap();
    d.remove_container(&id).await.unwrap();
    lines.into_iter().map(|l| l.text).collect()
}

/// A plain HTTP/1.0 GET; the whole response as text.
pub(super) async fn http_get(ip: IpAddr, port: u16, path: &str) -> std::io::Result<String> {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect((ip, port)).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes()).await?;
        let mut response = String::new();
        s.read_to_string(&mut response).await?;
        Ok(response)
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}
