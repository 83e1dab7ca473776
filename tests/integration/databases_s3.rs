//! Backups uploaded to an S3-compatible target, against a real S3 API (moto's server, signatures checked): the
//! object lands at `<prefix>/<database id>/<file name>` with the backup's size and SHA-256 (as boto3 sees it); with
//! the local file gone, restore and download fetch the copy back (and refuse one that does not match); deleting a
//! backup and retention delete the copy; a wrong secret or an unreachable endpoint leaves a good local backup
//! whose remote status is `failed` with the reason; big files go up as multipart uploads.

use crate::databases::{backup_now, setup_with};
use crate::moto::Moto;
use crate::support::{Cred, TestEnv};
use berth::config::{Addressing, S3Settings, Secret};
use serde_json::{Value, json};
use std::process::Command;
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
    let got = env
        .http
        .get(format!("{}{WS}/databases/{id}/backups/{bid}/download", env.base))
        .header("X-API-Key", api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    use sha2::Digest;
    assert_eq!(&hex::encode(sha2::Sha256::digest(got.bytes().await.unwrap())), sha);

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

    // Deleting a backup deletes its copy.
    env.delete(&format!("{WS}/databases/{id}/backups/{bid}"), &owner).await.expect(200);
    assert!(!moto.objects(PREFIX).contains_key(&key), "the deleted backup's object is gone");
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
        let Cred::Session { cookie, .. } = env.login("ops@acme.io", "password123").await else { unreachable!() };
        let html = env
            .http
            .get(format!("{}/w/acme/databases/{id}", env.base))
            .header("Cookie", format!("berth_session={cookie}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
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
