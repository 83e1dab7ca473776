//! Networks, volumes and containers against the real engine.

use super::build::build_app;
use super::*;

#[tokio::test]
async fn app_container_serves_http_keeps_its_volume_and_stops_fast() {
    let d = engine().await;
    let (run, _cleanup) = new_run();
    let labels = run_labels(&run);
    let tag = build_app(&d, &run, &mut Vec::new()).await;

    let net = format!("berth-test-{run}");
    let net_id = d.ensure_network(&net, &labels).await.unwrap();
    assert_eq!(d.ensure_network(&net, &labels).await.unwrap(), net_id, "ensure_network is idempotent");
    let vol = format!("berth-test-{run}-data");
    d.ensure_volume(&vol, &labels).await.unwrap();
    d.ensure_volume(&vol, &labels).await.unwrap();

    let mut spec = ContainerSpec::new(format!("berth-test-{run}-web"), &tag);
    spec.env = vec!["GREETING=hi there".into()];
    spec.cmd = Some(vec![
        "sh".into(),
        "-c".into(),
        "echo \"start $GREETING\"; echo oops >&2; echo persisted > /data/f; exec busybox httpd -f -p 8080 -h /www"
            .into(),
    ]);
    spec.labels = labels.clone();
    spec.network = Some(net.clone());
    spec.network_aliases = vec!["web".into()];
    spec.nano_cpus = Some(500_000_000);
    spec.memory_bytes = Some(64 * 1024 * 1024);
    spec.volumes = vec![(vol.clone(), "/data".into())];
    spec.restart_on_failure = true;
    let id = d.run_container(spec.clone()).await.unwrap();

    let state = d.inspect_container(&id).await.unwrap().unwrap();
    assert!(state.running && state.status == "running", "{state:?}");
    assert_eq!((state.name.as_str(), state.exit_code), (spec.name.as_str(), None));
    assert!(state.started_at.is_some());
    assert_eq!(state.labels.get(LABEL_RUN), Some(&run));
    assert_eq!(state.labels.get(LABEL_MANAGED).map(String::as_str), Some("true"));
    let ip = state.ip.expect("an address on the network");
    assert_eq!(state.networks.get(&net), Some(&ip));

    let body = eventually("HTTP on the container's address", Duration::from_secs(15), || async {
        http_get(ip, 8080, "/index.html").await.ok().filter(|r| r.lines().next().is_some_and(|l| l.contains(" 200 ")))
    })
    .await;
    assert!(body.contains("hello from berth"), "{body}");

    let hc = d.client().await.unwrap().inspect_container(&id, None).await.unwrap().host_config.unwrap();
    assert_eq!((hc.init, hc.nano_cpus, hc.memory), (Some(true), Some(500_000_000), Some(64 * 1024 * 1024)));
    assert_ne!(hc.privileged, Some(true));
    assert!(hc.port_bindings.unwrap_or_default().is_empty());

    let again = d.run_container(spec.clone()).await.unwrap_err();
    assert!(matches!(again, DockerError::Conflict { .. }), "{again:?}");

    let listed = d.list_containers(&[(LABEL_RUN, run.as_str())], false).await.unwrap();
    assert_eq!(listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), vec![id.as_str()]);

    let logs = d.container_logs(&id, None, None).await.unwrap();
    let start = logs.iter().find(|l| l.text == "start hi there").expect("the app's first line");
    assert_eq!(start.stream, LogStream::Stdout);
    assert!(start.time.is_some());
    assert!(logs.iter().any(|l| l.text == "oops" && l.stream == LogStream::Stderr), "{logs:?}");
    assert_eq!(d.container_logs(&id, Some(1), None).await.unwrap().len(), 1);

    let before = Instant::now();
    d.stop_container(&id, Duration::from_secs(10)).await.unwrap();
    assert!(before.elapsed() < Duration::from_secs(3), "stop took {:?}", before.elapsed());
    let stopped = d.inspect_container(&id).await.unwrap().unwrap();
    assert!(!stopped.running && stopped.exit_code.is_some(), "{stopped:?}");
    d.stop_container(&id, Duration::from_secs(1)).await.unwrap();
    assert!(d.list_containers(&[(LABEL_RUN, run.as_str())], false).await.unwrap().is_empty());
    assert_eq!(d.list_containers(&[(LABEL_RUN, run.as_str())], true).await.unwrap().len(), 1);

    let in_use = d.remove_volume(&vol).await.unwrap_err();
    assert!(matches!(in_use, DockerError::Conflict { .. }), "{in_use:?}");
    d.remove_container(&id).await.unwrap();
    d.remove_container(&id).await.unwrap();
    assert!(d.inspect_container(&id).await.unwrap().is_none());
    d.stop_container(&id, Duration::from_secs(1)).await.unwrap();

    let mut reader = ContainerSpec::new(format!("berth-test-{run}-reader"), &tag);
    reader.cmd = Some(vec!["cat".into(), "/data/f".into()]);
    reader.labels = labels.clone();
    reader.volumes = vec![(vol.clone(), "/data".into())];
    let reader_id = d.run_container(reader).await.unwrap();
    let done = wait_exited(&d, &reader_id).await;
    assert_eq!((done.exit_code, done.status.as_str()), (Some(0), "exited"));
    let read: Vec<String> =
        d.container_logs(&reader_id, None, None).await.unwrap().into_iter().map(|l| l.text).collect();
    assert_eq!(read, vec!["persisted".to_owned()]);
    d.remove_container(&reader_id).await.unwrap();

    d.remove_volume(&vol).await.unwrap();
    d.remove_volume(&vol).await.unwrap();
    d.remove_network(&net).await.unwrap();
}

#[tokio::test]
async fn run_container_reports_missing_image_and_volume() {
    let d = engine().await;
    let (run, _cleanup) = new_run();
    let mut spec = ContainerSpec::new(format!("berth-test-{run}-none"), format!("berth-test/absent-{run}:1"));
    spec.labels = run_labels(&run);
    assert!(matches!(d.run_container(spec.clone()).await, Err(DockerError::NotFound { .. })));
    spec.image = busybox_image(&d).await.to_owned();
    spec.volumes = vec![(format!("berth-test-{run}-absent"), "/data".into())];
    assert!(matches!(d.run_container(spec).await, Err(DockerError::NotFound { .. })));
    assert!(d.list_containers(&[(LABEL_RUN, run.as_str())], true).await.unwrap().is_empty());
}
