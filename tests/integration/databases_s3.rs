//! Backups uploaded to an S3-compatible target, against a real S3 API (moto's server, signatures checked): the
//! object lands at `<prefix>/<database id>/<file name>` with the backup's size and SHA-256 (as boto3 sees it); with
//! the local file gone, restore and download fetch the copy back (and refuse one that does not match); deleting a
//! backup and retention delete the copy; a wrong secret or an unreachable endpoint leaves a good local backup
//! whose remote status is `failed` with the reason; a failed upload raises `backup.upload_failed` and is retried
//! until the copy lands (on its schedule once the endpoint answers, at once after a restart with a fixed secret),
//! but not for a backup deleted meanwhile; big files go up as multipart uploads.

use crate::databases::{backup_now, setup_with};
use crate::moto::Moto;
use crate::notifications::{Receiver, SECRET, assert_signed, audit_actions};
use crate::support::{Cred, TestEnv};
use berth::config::{Addressing, S3Settings, Secret, WebhookUrl};
use berth::domain::upload_retry::UploadRetry;
use serde_json::{Value, json};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PREFIX: &str = "ops/berth";
const WS: &str = "/api/workspaces/acme";

fn settings(moto: &Moto, endpoint: &str, secret: &str) -> S3Settings {
    S3Settings {
        endpoint: endpoint.to_owned(),
        region: "us-east-1".into(),
        bucket: moto.bucket.clone(),
        prefix: PREFIX.into(),
        addressing: Addressing::Path,
        access_key_id: moto.key_id.clone(),
        secret_access_key: Secret(secret.to_owned()),
        upload_retry: UploadRetry::default(),
    }
}

/// A Redis database `name` in `acme`; returns (id, container).
async fn redis(env: &TestEnv, owner: &Cred, name: &str) -> (String, String) {
    let r = env.post(&format!("{WS}/databases"), owner, json!({"name": name, "type": "redis"})).await.expect(201);
    let ns = env.get(WS, owner).await.expect(200).data()["namespace"].as_str().unwrap().to_owned();
    (r.data()["id"].as_str().unwrap().to_owned(), format!("berth-{ns}-db-{name}"))
}

/// Runs a redis-cli command in the database's own container; returns its output.
fn redis_cli(container: &str, command: &str) -> String {
    let script = format!(r#"REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h 127.0.0.1 --raw {command}"#);
    let out = Command::new("docker").args(["exec", container, "sh", "-c", &script]).output().unwrap();
    assert!(out.status.success(), "redis-cli {command}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().replace('\n', ",")
}

async fn backups(env: &TestEnv, cred: &Cred, db: &str) -> Vec<Value> {
    let r = env.get(&format!("{WS}/databases/{db}/backups"), cred).await.expect(200);
    r.data()["backups"].as_array().unwrap().clone()
}

/// Polls until backup `id`'s remote copy is no longer `uploading`; returns the backup.
async fn wait_remote(env: &TestEnv, cred: &Cred, db: &str, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let list = backups(env, cred, db).await;
        let b = list.iter().find(|b| b["id"] == json!(id)).cloned().unwrap();
        if b["remote"]["status"] != json!("uploading") {
            return b;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the upload of {id} did not finish: {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn key_of(b: &Value) -> String {
    let loc = b["remote"]["location"].as_str().unwrap();
    loc.strip_prefix("s3://berth-test/").unwrap_or_else(|| panic!("{loc} is not in the bucket")).to_owned()
}

#[tokio::test]
async fn databases_s3_backups_upload_restore_from_the_copy_and_deletes_reach_the_bucket() {
    let started = Instant::now();
    let moto = Moto::start().await;
    let target = settings(&moto, &moto.endpoint, &moto.secret);
    let (env, owner, _cleanup) = setup_with(|c| c.s3 = Some(target)).await;
    let (id, container) = redis(&env, &owner, "cache").await;
    redis_cli(&container, "RPUSH items apple pear");

    // The backup is uploaded to <prefix>/<database id>/<file name>, and the bucket holds exactly its bytes.
    let bid = backup_now(&env, &owner, &id).await;
    let b = wait_remote(&env, &owner, &id, &bid).await;
    assert_eq!(b["remote"]["status"], json!("uploaded"), "{b}\n{}", moto.log());
    assert_eq!(b["remote"]["endpoint"], json!(moto.endpoint));
    assert_eq!((b["local_copy"].clone(), b["remote"]["error"].clone()), (json!(true), json!(null)), "{b}");
    assert!(b["remote"]["uploaded_at"].is_string(), "{b}");
    let key = key_of(&b);
    assert_eq!(key, format!("{PREFIX}/{id}/{}", b["file_name"].as_str().unwrap()));
    let objects = moto.objects(PREFIX);
    let (size, sha, _) = objects.get(&key).unwrap_or_else(|| panic!("{key} not in {objects:?}"));
    assert_eq!((json!(size), json!(sha)), (b["size_bytes"].clone(), b["sha256"].clone()));
    eprintln!("databases_s3: uploaded at {} ms", started.elapsed().as_millis());

    // With the local file gone, a restore fetches the copy back (and keeps it), then restores from it.
    let local = env.config.data_dir.join("backups").join(&id).join(b["file_name"].as_str().unwrap());
    std::fs::remove_file(&local).unwrap();
    let listed = backups(&env, &owner, &id).await;
    assert_eq!(listed.iter().find(|x| x["id"] == json!(bid)).unwrap()["local_copy"], json!(false));
    redis_cli(&container, "DEL items");
    let restore = format!("{WS}/databases/{id}/backups/{bid}/restore");
    let r = env.post(&restore, &owner, json!({"confirm": "cache"})).await.expect(200);
    assert_eq!(redis_cli(&container, "LRANGE items 0 -1"), "apple,pear");
    assert!(local.is_file(), "the fetched file is back in place");
    let safety = r.data()["safety_backup"]["id"].as_str().unwrap().to_owned();
    assert_eq!(wait_remote(&env, &owner, &id, &safety).await["remote"]["status"], json!("uploaded"));

    // Download does the same, and gets the same bytes.
    std::fs::remove_file(&local).unwrap();
    let Cred::Key(api_key) = &owner else { unreachable!() };
    let download = format!("{}{WS}/databases/{id}/backups/{bid}/download", env.base);
    let got = env.http.get(&download).header("X-API-Key", api_key).send().await.unwrap();
    assert_eq!(got.status(), 200);
    use sha2::Digest;
    assert_eq!(&hex::encode(sha2::Sha256::digest(got.bytes().await.unwrap())), sha);

    // A local file that no longer matches its checksum is moved aside (kept) and replaced by the copy.
    std::fs::write(&local, "bit rot").unwrap();
    redis_cli(&container, "DEL items");
    env.post(&restore, &owner, json!({"confirm": "cache"})).await.expect(200);
    assert_eq!(redis_cli(&container, "LRANGE items 0 -1"), "apple,pear", "restored from the copy");
    assert_eq!(&hex::encode(sha2::Sha256::digest(std::fs::read(&local).unwrap())), sha);
    let aside = local.with_file_name(format!("{}.corrupt", b["file_name"].as_str().unwrap()));
    assert_eq!(std::fs::read_to_string(&aside).unwrap(), "bit rot", "the bad file is kept aside");
    // Download checks the file the same way: a corrupt one is replaced by the copy before anything is sent.
    std::fs::write(&local, "bit rot too").unwrap();
    let got = env.http.get(&download).header("X-API-Key", api_key).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(&hex::encode(sha2::Sha256::digest(got.bytes().await.unwrap())), sha, "the copy's bytes");
    assert_eq!(std::fs::read_to_string(&aside).unwrap(), "bit rot too");

    // A copy that does not match the recorded checksum is refused, and nothing is left behind.
    std::fs::remove_file(&local).unwrap();
    moto.overwrite(&key, "not a backup");
    let r = env.post(&restore, &owner, json!({"confirm": "cache"})).await.expect(409);
    assert_eq!(r.code(), "backup_corrupt", "{}", r.body);
    assert_eq!(redis_cli(&container, "LRANGE items 0 -1"), "apple,pear", "nothing was restored");
    let dir = env.config.data_dir.join("backups").join(&id);
    let stray: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    assert!(!stray.iter().any(|n| n.to_string_lossy().ends_with(".fetch")), "{stray:?}");
    assert!(!local.exists());
    // A corrupt local file with a corrupt copy is refused too, and the local file stays as it was.
    std::fs::write(&local, "bit rot").unwrap();
    let r = env.post(&restore, &owner, json!({"confirm": "cache"})).await.expect(409);
    assert_eq!(r.code(), "backup_corrupt", "{}", r.body);
    assert!(r.body.to_string().contains("could not be used"), "{}", r.body);
    assert_eq!(std::fs::read_to_string(&local).unwrap(), "bit rot");
    assert_eq!(redis_cli(&container, "LRANGE items 0 -1"), "apple,pear", "nothing was restored");

    // Deleting a backup deletes its copy, its file and the bad file kept aside.
    env.delete(&format!("{WS}/databases/{id}/backups/{bid}"), &owner).await.expect(200);
    assert!(!moto.objects(PREFIX).contains_key(&key), "the deleted backup's object is gone");
    assert!(!local.exists() && !aside.exists(), "{:?}", std::fs::read_dir(&dir).unwrap().collect::<Vec<_>>());
    eprintln!("databases_s3: restores and deletes at {} ms", started.elapsed().as_millis());

    // Retention: pruned scheduled backups lose their copies too; the bucket ends up holding exactly the copies
    // of the backups that remain.
    let schedule = format!("{WS}/databases/{id}/backup-schedule");
    env.put(&schedule, &owner, json!({"cron": "* * * * * *", "retain": 1})).await.expect(200);
    let mut seen: Vec<String> = Vec::new();
    loop {
        let list = backups(&env, &owner, &id).await;
        for b in list.iter().filter(|b| b["trigger"] == json!("schedule") && b["remote"]["status"] == json!("uploaded"))
        {
            let bid = b["id"].as_str().unwrap().to_owned();
            if !seen.contains(&bid) {
                seen.push(bid);
            }
        }
        if seen.len() >= 3 && !list.iter().any(|b| b["id"] == json!(seen[0])) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(150), "no pruning seen: {list:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    env.put(&schedule, &owner, json!({"cron": null})).await.expect(200);
    let settled = Instant::now();
    let list = loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let list = backups(&env, &owner, &id).await;
        let busy = list.iter().any(|b| b["status"] == json!("running") || b["remote"]["status"] == json!("uploading"));
        if !busy {
            break list;
        }
        assert!(settled.elapsed() < Duration::from_secs(60), "backups kept running or uploading: {list:?}");
    };
    let mut expected: Vec<String> =
        list.iter().filter(|b| b["remote"]["status"] == json!("uploaded")).map(key_of).collect();
    expected.sort();
    let in_bucket: Vec<String> = moto.objects(&format!("{PREFIX}/{id}/")).into_keys().collect();
    assert_eq!(in_bucket, expected, "the bucket holds exactly the remaining backups' copies");
    assert!(
        list.iter().filter(|b| b["trigger"] == json!("schedule")).count() <= 2,
        "retain 1 (+1 in flight): {list:?}"
    );
    eprintln!("databases_s3: round trip in {} ms", started.elapsed().as_millis());
}

#[tokio::test]
async fn databases_s3_a_wrong_secret_or_an_unreachable_endpoint_fails_the_upload_not_the_backup() {
    let moto = Moto::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    for (target, says) in [
        (settings(&moto, &moto.endpoint, "not-the-secret"), "SignatureDoesNotMatch"),
        (settings(&moto, &format!("http://127.0.0.1:{closed}"), &moto.secret), "error sending request"),
    ] {
        let endpoint = target.endpoint.clone();
        let (env, owner, _cleanup) = setup_with(|c| c.s3 = Some(target)).await;
        let (id, container) = redis(&env, &owner, "cache").await;
        redis_cli(&container, "SET k v");
        // backup_now checks that the download (of the local file) matches the recorded size and checksum.
        let bid = backup_now(&env, &owner, &id).await;
        let b = wait_remote(&env, &owner, &id, &bid).await;
        assert_eq!((b["status"].clone(), b["local_copy"].clone()), (json!("succeeded"), json!(true)), "{b}");
        assert_eq!(b["remote"]["status"], json!("failed"), "{b}");
        let error = b["remote"]["error"].as_str().unwrap();
        eprintln!("databases_s3: the upload's error: {error}");
        assert!(error.contains(says) && error.contains(&endpoint), "{says}: {error}");
        assert!(!error.contains(&moto.secret) && !error.contains("not-the-secret"), "{error}");
        // The dashboard's backups table shows it too.
        let session = env.login("ops@acme.io", "password123").await;
        let page = env.get(&format!("/w/acme/databases/{id}"), &session).await;
        let html = page.body["raw"].as_str().unwrap_or_default().to_owned();
        assert!(
            html.contains("<span class=\"badge s-failed\">failed</span><br><span class=\"error\">while uploading"),
            "{html}"
        );
        assert!(html.contains(says) && html.contains("this disk"), "{html}");
        // It is still a usable backup: restore works from the local file, and it can be deleted.
        env.post(&format!("{WS}/databases/{id}/backups/{bid}/restore"), &owner, json!({"confirm": "cache"}))
            .await
            .expect(200);
        env.delete(&format!("{WS}/databases/{id}/backups/{bid}"), &owner).await.expect(200);
        assert!(backups(&env, &owner, &id).await.iter().all(|b| b["id"] != json!(bid)));
    }
    assert!(moto.objects(PREFIX).is_empty(), "nothing reached the bucket");
}

#[tokio::test]
async fn databases_s3_big_files_go_up_as_multipart_uploads_and_come_back_intact() {
    let moto = Moto::start().await;
    let target = berth::s3::BackupTarget::new(&settings(&moto, &moto.endpoint, &moto.secret)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.gz");
    // Two full parts and a short last one, of bytes that are not all alike.
    let len = 2 * berth::s3::PART_SIZE + 12_345;
    let data: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(&data));
    let key = format!("{PREFIX}/big/big.gz");
    assert_eq!(target.upload_file(&file, &key).await.unwrap(), len as u64);
    let objects = moto.objects(PREFIX);
    let (size, remote_sha, etag) = &objects[&key];
    assert_eq!((*size, remote_sha), (len as u64, &sha));
    assert!(etag.ends_with("-3"), "a three-part multipart upload's ETag: {etag}");
    let back = dir.path().join("back.gz");
    assert_eq!(target.download_file(&key, &back).await.unwrap(), (len as u64, sha));
    target.delete(&key).await.unwrap();
    target.delete(&key).await.unwrap();
    assert!(moto.objects(PREFIX).is_empty());
    let e = target.download_file(&key, &dir.path().join("none")).await.unwrap_err();
    assert!(matches!(e, berth::s3::S3Error::NotFound { .. }), "{e}");
}

/// A loopback port that refuses connections until [`Gate::open`] forwards it to another address.
struct Gate {
    port: u16,
    forwarder: Option<tokio::task::JoinHandle<()>>,
}

impl Gate {
    fn closed() -> Gate {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Gate { port, forwarder: None }
    }

    /// From now on every connection to the port is forwarded to `to` (`host:port`), byte for byte.
    async fn open(&mut self, to: &str) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        let to = to.to_owned();
        self.forwarder = Some(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = to.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(f) = self.forwarder.take() {
            f.abort();
        }
    }
}

/// Polls until `check` accepts backup `id`; returns it.
async fn wait_for(env: &TestEnv, cred: &Cred, db: &str, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let list = backups(env, cred, db).await;
        let b = list.iter().find(|b| b["id"] == json!(id)).cloned().unwrap_or(Value::Null);
        if check(&b) {
            return b;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "backup {id} never got {what}: {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn waiting_for_retry(b: &Value) -> bool {
    b["remote"]["status"] == json!("failed") && b["remote"]["next_attempt_at"].is_string()
}

#[tokio::test]
async fn databases_s3_a_failed_upload_is_notified_and_retried_until_the_copy_lands() {
    let moto = Moto::start().await;
    let receiver = Receiver::start(0).await;
    let mut gate = Gate::closed();
    let endpoint = format!("http://127.0.0.1:{}", gate.port);
    let mut target = settings(&moto, &endpoint, &moto.secret);
    // The production schedule in seconds instead of minutes: 1 s, 5 s, 30 s… (30 s first for refusals).
    target.upload_retry = UploadRetry { unit: Duration::from_secs(1) };
    let url = WebhookUrl(receiver.url.clone());
    let (env, owner, _cleanup) = setup_with(move |c| {
        c.s3 = Some(target);
        c.notify_webhooks = vec![url];
        c.notify_webhook_secret = Secret(SECRET.into());
        c.public_url = "https://berth.example.com".into();
    })
    .await;
    let (id, container) = redis(&env, &owner, "cache").await;
    redis_cli(&container, "SET k v");

    // Nothing listens at the endpoint: the first attempt fails, and the hook hears of it at once.
    let first = backup_now(&env, &owner, &id).await;
    let hit = receiver.delivered(1, Duration::from_secs(30)).await.remove(0);
    assert_signed(&hit);
    let p = hit.json();
    assert_eq!(p["event"], json!("backup.upload_failed"), "{p}");
    assert_eq!((p["subject"].clone(), p["workspace"]["slug"].clone()), (json!("database cache"), json!("acme")));
    assert_eq!(p["url"], json!(format!("https://berth.example.com/w/acme/databases/{id}")));
    let d = &p["details"];
    assert_eq!(
        [&d["database_id"], &d["database_name"], &d["backup_id"], &d["endpoint"], &d["attempt"]],
        [&json!(id), &json!("cache"), &json!(first), &json!(endpoint), &json!(1)],
        "{p}"
    );
    assert!(d["location"].as_str().unwrap().starts_with(&format!("s3://berth-test/{PREFIX}/{id}/")), "{p}");
    assert!(d["error"].as_str().unwrap().contains("error sending request"), "{p}");
    let next = chrono::DateTime::parse_from_rfc3339(d["next_attempt"].as_str().unwrap()).unwrap();
    assert!(next > chrono::Utc::now() - chrono::TimeDelta::seconds(10), "{p}");
    let body = String::from_utf8_lossy(&hit.body);
    assert!(!body.contains(&moto.secret) && !body.contains(&moto.key_id), "no credentials: {body}");
    let audit = audit_actions(&env, &owner, "backup.upload_failed").await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!((audit[0]["actor"].clone(), audit[0]["details"]["backup_id"].clone()), (json!("Berth"), json!(first)));
    let b = wait_for(&env, &owner, &id, &first, "a planned retry", waiting_for_retry).await;
    assert!(b["remote"]["error"].as_str().unwrap().contains("error sending request"), "{b}");

    // The endpoint comes up: a retry uploads the copy, as boto3 sees it in the bucket.
    gate.open(moto.endpoint.strip_prefix("http://").unwrap()).await;
    let b = wait_for(&env, &owner, &id, &first, "uploaded", |b| b["remote"]["status"] == json!("uploaded")).await;
    assert_eq!((b["remote"]["error"].clone(), b["remote"]["next_attempt_at"].clone()), (json!(null), json!(null)));
    assert!(b["remote"]["attempts"].as_u64().unwrap() >= 2, "{b}");
    let objects = moto.objects(PREFIX);
    let (size, sha, _) = objects.get(&key_of(&b)).unwrap_or_else(|| panic!("{} not in {objects:?}", key_of(&b)));
    assert_eq!((json!(size), json!(sha)), (b["size_bytes"].clone(), b["sha256"].clone()));
    assert_eq!(receiver.hits().len(), 1, "the retries that failed too were the same streak");

    // Restarted with a wrong secret: refused (403), announced again, retried no sooner than 30 s later.
    let mut env = env;
    env.stop().await;
    let mut config = (*env.config).clone();
    let fixed = config.s3.clone().unwrap();
    config.s3.as_mut().unwrap().secret_access_key = Secret("not-the-secret".into());
    env.config = Arc::new(config);
    let env = env.boot_again().await;
    let (second, doomed) = (backup_now(&env, &owner, &id).await, backup_now(&env, &owner, &id).await);
    let p = receiver.delivered(2, Duration::from_secs(30)).await.remove(1).json();
    assert_eq!((p["event"].clone(), p["details"]["backup_id"].clone()), (json!("backup.upload_failed"), json!(second)));
    assert!(p["details"]["error"].as_str().unwrap().contains("SignatureDoesNotMatch"), "{p}");
    let b = wait_for(&env, &owner, &id, &second, "a planned retry", waiting_for_retry).await;
    let planned = chrono::DateTime::parse_from_rfc3339(b["remote"]["next_attempt_at"].as_str().unwrap()).unwrap();
    assert!(planned > chrono::Utc::now() + chrono::TimeDelta::seconds(15), "a refusal waits 30 units: {b}");
    wait_for(&env, &owner, &id, &doomed, "a planned retry", waiting_for_retry).await;
    let session = env.login("ops@acme.io", "password123").await;
    let page = env.get(&format!("/w/acme/databases/{id}"), &session).await;
    let html = page.body["raw"].as_str().unwrap_or_default().to_owned();
    assert!(html.contains("SignatureDoesNotMatch") && html.contains("retried at "), "{html}");
    // A backup deleted while its upload waits is never uploaded.
    env.delete(&format!("{WS}/databases/{id}/backups/{doomed}"), &owner).await.expect(200);

    // Restarted with the right secret: the waiting retry runs at once, not at its planned time.
    let mut env = env;
    env.stop().await;
    let mut config = (*env.config).clone();
    config.s3 = Some(fixed);
    env.config = Arc::new(config);
    let env = env.boot_again().await;
    let b = wait_for(&env, &owner, &id, &second, "uploaded", |b| b["remote"]["status"] == json!("uploaded")).await;
    let uploaded = chrono::DateTime::parse_from_rfc3339(b["remote"]["uploaded_at"].as_str().unwrap()).unwrap();
    assert!(uploaded < planned, "retried at the restart ({uploaded}), not at {planned}");
    assert_eq!(b["remote"]["attempts"], json!(2), "{b}");
    let mut expected = vec![key_of(&b)];
    let list = backups(&env, &owner, &id).await;
    assert!(list.iter().all(|b| b["id"] != json!(doomed)), "{list:?}");
    expected.extend(list.iter().filter(|x| x["id"] == json!(first)).map(key_of));
    expected.sort();
    let in_bucket: Vec<String> = moto.objects(&format!("{PREFIX}/{id}/")).into_keys().collect();
    assert_eq!(in_bucket, expected, "the deleted backup's copy was never made");
}
