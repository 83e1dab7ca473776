//! `build_image` against the real engine.

use super::*;

/// A context serving `www/index.html` with busybox httpd, plus a `.dockerignore`d secret.
pub(super) fn app_context(base: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "Dockerfile",
        &format!(
            "FROM {base}\nCOPY . /ctx\nCOPY www /www\nCMD [\"busybox\",\"httpd\",\"-f\",\"-p\",\"8080\",\"-h\",\"/www\"]\n"
        ),
    );
    write(d, "www/index.html", "hello from berth\n");
    write(d, "keep.txt", "kept\n");
    write(d, "secret.txt", "do not ship\n");
    write(d, "logs/debug.log", "noise\n");
    write(d, ".dockerignore", "# local files\nsecret.txt\n**/*.log\n");
    dir
}

/// Builds the app image of run `run`; returns its tag.
pub(super) async fn build_app(d: &DockerClient, run: &str, lines: &mut Vec<String>) -> String {
    let base = busybox_image(d).await;
    let ctx = app_context(base);
    let tag = format!("berth-test/app-{run}:1");
    let mut req = ImageBuild::new(ctx.path(), &tag);
    req.labels = run_labels(run);
    req.build_args = vec![("UNUSED".into(), "1".into())];
    req.memory_bytes = Some(256 * 1024 * 1024);
    req.timeout = Duration::from_secs(120);
    let id = d.build_image(req, &mut |l| lines.push(l), &CancellationToken::new()).await.unwrap();
    assert!(id.starts_with("sha256:"), "image id {id}");
    tag
}

#[tokio::test]
async fn build_streams_lines_and_honours_dockerignore() {
    let d = engine().await;
    let (run, _cleanup) = new_run();
    let mut lines = Vec::new();
    let tag = build_app(&d, &run, &mut lines).await;
    assert!(lines.iter().any(|l| l.starts_with("Step 1/")), "no step lines in {lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("Successfully tagged")), "{lines:?}");
    assert!(lines.iter().all(|l| !l.contains('\n') && !l.trim().is_empty()));

    let files = output_of(&d, &run, "ls", &tag, &["find", "/ctx"]).await;
    assert!(files.contains(&"/ctx/keep.txt".to_owned()), "{files:?}");
    assert!(files.contains(&"/ctx/www/index.html".to_owned()), "{files:?}");
    assert!(!files.iter().any(|f| f.contains("secret.txt") || f.ends_with(".log")), "ignored files shipped: {files:?}");

    let docker = d.client().await.unwrap();
    let labels = docker.inspect_image(&tag).await.unwrap().config.unwrap().labels.unwrap();
    assert_eq!(labels.get(LABEL_MANAGED).map(String::as_str), Some("true"));
    assert_eq!(labels.get(LABEL_RUN), Some(&run));
    d.remove_image(&tag).await.unwrap();
    d.remove_image(&tag).await.unwrap();
}

#[tokio::test]
async fn generated_dockerfile_is_used_and_not_shipped() {
    let d = engine().await;
    let (run, _cleanup) = new_run();
    let base = busybox_image(&d).await;
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "app.txt", "app\n");
    write(ctx.path(), "Dockerfile", "FROM scratch\nthis one must not be used\n");
    let tag = format!("berth-test/gen-{run}:1");
    let mut req = ImageBuild::new(ctx.path(), &tag);
    req.dockerfile_contents = Some(format!("FROM {base}\nCOPY . /ctx\nRUN echo generated > /marker\n"));
    req.labels = run_labels(&run);
    d.build_image(req, &mut |_| {}, &CancellationToken::new()).await.unwrap();
    let files = output_of(&d, &run, "gen", &tag, &["sh", "-c", "find /ctx; cat /marker"]).await;
    assert!(files.contains(&"/ctx/app.txt".to_owned()) && files.contains(&"generated".to_owned()), "{files:?}");
    assert!(!files.iter().any(|f| f.starts_with("/ctx/.berth/")), "generated Dockerfile shipped: {files:?}");
}

#[tokio::test]
async fn failing_step_is_build_failed_with_the_message() {
    let d = engine().await;
    let (run, _cleanup) = new_run();
    let base = busybox_image(&d).await;
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "Dockerfile", &format!("FROM {base}\nRUN echo about to fail && false\n"));
    let mut req = ImageBuild::new(ctx.path(), format!("berth-test/fail-{run}:1"));
    req.labels = run_labels(&run);
    let mut lines = Vec::new();
    let err = d.build_image(req, &mut |l| lines.push(l), &CancellationToken::new()).await.unwrap_err();
    match err {
        DockerError::BuildFailed { message } => assert!(message.contains("non-zero code"), "{message}"),
        other => panic!("expected BuildFailed, got {other:?}"),
    }
    assert!(lines.iter().any(|l| l == "about to fail"), "{lines:?}");
}

/// Waits (bounded) until the engine has removed the build container running `marker`.
async fn build_container_gone(d: &DockerClient, marker: &str) {
    let docker = d.client().await.unwrap();
    eventually("the engine to remove the stopped build's container", Duration::from_secs(20), || async {
        let all = bollard::query_parameters::ListContainersOptionsBuilder::default().all(true).build();
        let list = docker.list_containers(Some(all)).await.unwrap();
        (!list.iter().any(|c| c.command.as_deref().unwrap_or_default().contains(marker))).then_some(())
    })
    .await;
}

#[tokio::test]
async fn cancel_stops_a_running_build_quickly() {
    let d = engine().await;
    let (run, _cleanup) = new_run();
    let base = busybox_image(&d).await;
    let ctx = tempfile::tempdir().unwrap();
    let marker = format!("sleep 30 # {run}");
    write(ctx.path(), "Dockerfile", &format!("FROM {base}\nRUN {marker}\n"));
    let mut req = ImageBuild::new(ctx.path(), format!("berth-test/cancel-{run}:1"));
    req.labels = run_labels(&run);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let mut cancelled_at = None;
    let mut on_line = |l: String| {
        // The step's container runs once the builder says so.
        if l.contains("Running in") && cancelled_at.is_none() {
            cancelled_at = Some(Instant::now());
            trigger.cancel();
        }
    };
    let started = Instant::now();
    let err = d.build_image(req, &mut on_line, &cancel).await.unwrap_err();
    assert!(matches!(err, DockerError::Cancelled), "{err:?}");
    let cancelled_at = cancelled_at.expect("the build reached its RUN step");
    assert!(cancelled_at.elapsed() < Duration::from_secs(2), "returned {:?} after cancel", cancelled_at.elapsed());
    assert!(started.elapsed() < Duration::from_secs(20));
    build_container_gone(&d, &marker).await;
}

#[tokio::test]
async fn timeout_stops_a_build_and_names_the_limit() {
    let d = engine().await;
    let (run, _cleanup) = new_run();
    let base = busybox_image(&d).await;
    let ctx = tempfile::tempdir().unwrap();
    let marker = format!("sleep 30 # timeout {run}");
    write(ctx.path(), "Dockerfile", &format!("FROM {base}\nRUN {marker}\n"));
    let mut req = ImageBuild::new(ctx.path(), format!("berth-test/timeout-{run}:1"));
    req.labels = run_labels(&run);
    req.timeout = Duration::from_millis(1500);
    let started = Instant::now();
    let err = d.build_image(req, &mut |_| {}, &CancellationToken::new()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    assert!(matches!(err, DockerError::TimedOut { .. }), "{err:?}");
    assert!(err.to_string().contains("1.5 s"), "{err}");
    build_container_gone(&d, &marker).await;
}
