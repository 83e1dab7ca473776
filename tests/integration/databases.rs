//! Managed databases end to end on the real Docker engine, with PostgreSQL, MariaDB (as `mysql`) and Redis
//! images made from Debian's packages by `tests/fixtures/make-db-images.sh` (no registry here). For each engine:
//! create, attach to a project, deploy an app whose container reaches the database through the attached env var,
//! write rows, back up, delete the rows, restore, read them back; the same after a Berth restart and a database
//! restart; deletion needs the name and keeps the volume. MongoDB is covered by the domain's unit tests only.

use crate::deploy::{Cleanup, wait_for};
use crate::support::{Cred, TestEnv};
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::HashMap;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The images `make-db-images.sh` made (built once per machine, cached by recipe hash), by engine.
fn db_images() -> &'static HashMap<String, String> {
    static IMAGES: OnceLock<HashMap<String, String>> = OnceLock::new();
    IMAGES.get_or_init(|| {
        crate::support::fixture_script("make-db-images.sh")
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(k, v)| (k.to_owned(), v.trim().to_owned())))
            .collect()
    })
}

/// A Berth whose database images are the local ones, with an owner key in `acme` (whose Docker objects are
/// removed at the end, volumes included).
pub(crate) async fn setup() -> (TestEnv, Cred, Cleanup) {
    setup_with(|_| {}).await
}

/// [`setup`], with the config also changed by `tweak`.
pub(crate) async fn setup_with(tweak: impl FnOnce(&mut berth::config::Config)) -> (TestEnv, Cred, Cleanup) {
    let images = db_images().clone();
    let env = TestEnv::start_with(|c| {
        c.database_image_postgresql = images["postgresql"].clone();
        c.database_image_mysql = images["mysql"].clone();
        c.database_image_redis = images["redis"].clone();
        // No MongoDB image can be made here: this name never exists, so creating one tests the missing-image path.
        c.database_image_mongo = "berth-test/no-such-mongo:{version}".into();
        c.database_memory_mb = 512;
        c.health_timeout_secs = 20;
        c.drain_secs = 0;
        tweak(c);
    })
    .await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    let ws_id = env.get("/api/workspaces/acme", &owner).await.expect(200).data()["id"].as_str().unwrap().to_owned();
    (env, owner, Cleanup(ws_id))
}

fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker").args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// How a test app talks to one engine with its client tool, through the env var `attach` set.
struct Client {
    kind: &'static str,
    env_key: &'static str,
    /// A shell function `q` running its argument as one statement/command against the database.
    prelude: &'static str,
    write: &'static str,
    delete: &'static str,
    read: &'static str,
}

const POSTGRES: Client = Client {
    kind: "postgresql",
    env_key: "DATABASE_URL",
    prelude: r#"q() { psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -Atqc "$1"; }"#,
    write: "q \"CREATE TABLE IF NOT EXISTS items(name text); INSERT INTO items VALUES ('apple'), ('pear')\"",
    delete: "q 'DELETE FROM items'",
    read: "q \"SELECT string_agg(name, ',' ORDER BY name) FROM items\"",
};

const MYSQL: Client = Client {
    kind: "mysql",
    env_key: "DATABASE_URL",
    prelude: r#"q() {
    u=${DATABASE_URL#mysql://}; cred=${u%%@*}; hp=${u#*@}; host=${hp%%:*}; rest=${hp#*:}
    MYSQL_PWD=${cred#*:} mariadb -h "$host" -P "${rest%%/*}" -u "${cred%%:*}" -N -B -e "$1" "${rest#*/}"
}"#,
    write: "q \"CREATE TABLE IF NOT EXISTS items(name varchar(20)); INSERT INTO items VALUES ('apple'), ('pear')\"",
    delete: "q 'DELETE FROM items'",
    read: "q \"SELECT COALESCE(GROUP_CONCAT(name ORDER BY name), '') FROM items\"",
};

const REDIS: Client = Client {
    kind: "redis",
    env_key: "REDIS_URL",
    prelude: r#"q() { redis-cli -u "$REDIS_URL" --no-auth-warning $1; }"#,
    write: "q 'RPUSH items apple pear' >/dev/null",
    delete: "q 'DEL items' >/dev/null",
    read: "q 'SORT items ALPHA' | tr '\\n' ',' | sed 's/,$//'",
};

/// Runs `script` (after the client's prelude) in the app's container, which has the attached env var.
fn in_app(container: &str, c: &Client, script: &str) -> String {
    let full = format!("{}\n{script}", c.prelude);
    let out = Command::new("docker").args(["exec", container, "sh", "-c", &full]).output().unwrap();
    assert!(
        out.status.success(),
        "{} in the app failed: {}{}",
        script,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Polls the database's backups until `backup` has finished; returns it.
pub(crate) async fn wait_backup(env: &TestEnv, cred: &Cred, db: &str, backup: &str) -> Value {
    let started = Instant::now();
    loop {
        let r = env.get(&format!("/api/workspaces/acme/databases/{db}/backups"), cred).await.expect(200);
        let b = r.data()["backups"].as_array().unwrap().iter().find(|b| b["id"] == json!(backup)).cloned();
        if let Some(b) = b.filter(|b| b["status"] != json!("running")) {
            return b;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "backup {backup} did not finish: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Backs up now and waits for success; checks the recorded size and checksum against the download.
pub(crate) async fn backup_now(env: &TestEnv, owner: &Cred, db: &str) -> String {
    let r = env.post(&format!("/api/workspaces/acme/databases/{db}/backups"), owner, json!({})).await.expect(202);
    assert_eq!(r.data()["status"], json!("running"));
    let id = r.data()["id"].as_str().unwrap().to_owned();
    let b = wait_backup(env, owner, db, &id).await;
    assert_eq!(b["status"], json!("succeeded"), "{b}");
    let resp = env
        .http
        .get(format!("{}/api/workspaces/acme/databases/{db}/backups/{id}/download", env.base))
        .header(
            "X-API-Key",
            match owner {
                Cred::Key(k) => k.as_str(),
                _ => unreachable!(),
            },
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/gzip");
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "a gzip file");
    assert_eq!(b["size_bytes"], json!(bytes.len()));
    assert_eq!(b["sha256"], json!(hex::encode(sha2::Sha256::digest(&bytes))));
    id
}

/// The whole round trip for one engine.
async fn round_trip(c: &Client) {
    let started = Instant::now();
    let (env, owner, _cleanup) = setup().await;
    let images = db_images();
    let ws = "/api/workspaces/acme";

    // Create: credentials shown to the owner, in the engine's URL form, on a stable host.
    let r = env.post(&format!("{ws}/databases"), &owner, json!({"name": "shop", "type": c.kind})).await.expect(201);
    let db = r.data().clone();
    let id = db["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (db["status"].clone(), db["host"].clone(), db["masked"].clone()),
        (json!("running"), json!("shop.db"), json!(false)),
        "{db}"
    );
    let password = db["password"].as_str().unwrap().to_owned();
    assert!(password.len() >= 32, "{db}");
    let scheme = c.kind.replace("mongo", "mongodb");
    assert!(db["connection_string"].as_str().unwrap().starts_with(&format!("{scheme}://")), "{db}");
    assert!(db["connection_string"].as_str().unwrap().contains(&password));
    let r = env.post(&format!("{ws}/databases"), &owner, json!({"name": "shop", "type": c.kind})).await.expect(409);
    assert_eq!(r.code(), "database_exists");
    let audit = env.get(&format!("{ws}/audit"), &owner).await.expect(200);
    assert!(!audit.body.to_string().contains(&password), "audit rows never hold credentials");
    for file in ["berth.db", "berth.db-wal"] {
        let raw = std::fs::read(env.config.data_dir.join(file)).unwrap_or_default();
        assert!(
            !raw.windows(password.len()).any(|w| w == password.as_bytes()),
            "{file} holds the password in the clear"
        );
    }

    eprintln!("databases: {} created at {} ms", c.kind, started.elapsed().as_millis());
    // Members see it masked; other workspaces do not see it at all.
    let member = env.key_with_role(&owner, "acme", "member").await;
    let r = env.get(&format!("{ws}/databases/{id}"), &member).await.expect(200);
    assert_eq!((r.data()["password"].clone(), r.data()["masked"].clone()), (json!("********"), json!(true)));
    assert!(!r.body.to_string().contains(&password));
    env.post(&format!("{ws}/databases/{id}/stop"), &member, json!({})).await.expect(403);
    let (_, other) = env.user_with_key("eve@other.io", "other").await;
    env.get(&format!("/api/workspaces/other/databases/{id}"), &other).await.expect(404);
    env.get(&format!("{ws}/databases/{id}"), &other).await.expect(404);

    // An app from the same image (it has the client tool) with the connection string attached.
    let image = images[if c.kind == "mysql" { "mysql" } else { c.kind }].clone();
    let p = env
        .post(
            &format!("{ws}/projects"),
            &owner,
            json!({"name": "app", "port": 8080, "image": image,
                   "runtime": {"start_command": "mkdir -p /tmp/www && exec busybox httpd -f -p 8080 -h /tmp/www"}}),
        )
        .await
        .expect(201);
    let project_id = p.data()["id"].as_str().unwrap().to_owned();
    let r = env.post(&format!("{ws}/databases/{id}/attach"), &owner, json!({"project": "app"})).await.expect(200);
    assert_eq!(
        (r.data()["env_key"].clone(), r.data()["change"].clone(), r.data()["restart_required"].clone()),
        (json!(c.env_key), json!("created"), json!(false))
    );
    let var = env.get(&format!("{ws}/projects/app/env/{}", c.env_key), &owner).await.expect(200);
    assert_eq!((var.data()["is_secret"].clone(), var.data()["value"].clone()), (json!(true), json!("********")));
    let d = env.post(&format!("{ws}/projects/app/deployments"), &owner, json!({})).await.expect(202);
    let d = wait_for(&env, &owner, d.data()["id"].as_str().unwrap(), &["running", "failed"], Duration::from_secs(120))
        .await;
    assert_eq!(d["status"], json!("running"), "{d}");
    let (_, app) = docker(&["ps", "-q", "--filter", &format!("label=berth.project={project_id}")]);
    let app = app.lines().next().unwrap().to_owned();

    eprintln!("databases: {} app deployed at {} ms", c.kind, started.elapsed().as_millis());
    // Write, back up, delete, restore, read back.
    in_app(&app, c, c.write);
    assert_eq!(in_app(&app, c, c.read), "apple,pear");
    let backup = backup_now(&env, &owner, &id).await;
    eprintln!("databases: {} backed up at {} ms", c.kind, started.elapsed().as_millis());
    in_app(&app, c, c.delete);
    assert_eq!(in_app(&app, c, c.read), "");
    let path = format!("{ws}/databases/{id}/backups/{backup}/restore");
    let r = env.post(&path, &owner, json!({})).await.expect(400);
    assert!(r.error().starts_with("confirm:"), "{}", r.body);
    env.post(&path, &owner, json!({"confirm": "nope"})).await.expect(400);
    env.post(&path, &member, json!({"confirm": "shop"})).await.expect(403);
    let r = env.post(&path, &owner, json!({"confirm": "shop"})).await.expect(200);
    assert_eq!(r.data()["safety_backup"]["trigger"], json!("pre_restore"), "{}", r.body);
    assert_eq!(in_app(&app, c, c.read), "apple,pear");

    eprintln!("databases: {} restored at {} ms", c.kind, started.elapsed().as_millis());
    // The same after a Berth restart and a database restart: the restored data stays, backups still work.
    // Its container removed behind Berth's back: the restart runs it again on the same volume.
    let container =
        format!("berth-{}-db-shop", env.get(ws, &owner).await.expect(200).data()["namespace"].as_str().unwrap());
    assert!(docker(&["rm", "-f", &container]).0);
    let env = env.restart().await;
    let r = env.get(&format!("{ws}/databases/{id}"), &owner).await.expect(200);
    assert_eq!(r.data()["status"], json!("running"), "{}", r.body);
    let r = env.post(&format!("{ws}/databases/{id}/restart"), &owner, json!({})).await.expect(200);
    assert_eq!(r.data()["status"], json!("running"), "{}", r.body);
    assert_eq!(in_app(&app, c, c.read), "apple,pear", "restored data survives a database restart");
    let backup2 = backup_now(&env, &owner, &id).await;
    in_app(&app, c, c.delete);
    env.post(&format!("{ws}/databases/{id}/backups/{backup2}/restore"), &owner, json!({"confirm": "shop"}))
        .await
        .expect(200);
    assert_eq!(in_app(&app, c, c.read), "apple,pear");
    // A backup file that no longer matches its checksum (and has no S3 copy) is refused; nothing changes.
    let list = env.get(&format!("{ws}/databases/{id}/backups"), &owner).await.expect(200);
    let b2 = list.data()["backups"].as_array().unwrap().iter().find(|b| b["id"] == json!(backup2)).unwrap().clone();
    let file = env.config.data_dir.join("backups").join(&id).join(b2["file_name"].as_str().unwrap());
    let mut bytes = std::fs::read(&file).unwrap();
    *bytes.last_mut().unwrap() ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let before = list.data()["backups"].as_array().unwrap().len();
    in_app(&app, c, c.delete);
    let r = env
        .post(&format!("{ws}/databases/{id}/backups/{backup2}/restore"), &owner, json!({"confirm": "shop"}))
        .await
        .expect(409);
    assert_eq!(r.code(), "backup_corrupt", "{}", r.body);
    assert!(r.error().contains("no copy in an S3 target"), "{}", r.body);
    assert_eq!(in_app(&app, c, c.read), "", "nothing was restored");
    assert_eq!(std::fs::read(&file).unwrap(), bytes, "the file is left as it was");
    let after = env.get(&format!("{ws}/databases/{id}/backups"), &owner).await.expect(200);
    assert_eq!(after.data()["backups"].as_array().unwrap().len(), before, "no safety backup was taken");
    // Nor is it downloaded.
    let r = env.get(&format!("{ws}/databases/{id}/backups/{backup2}/download"), &owner).await.expect(409);
    assert_eq!(r.code(), "backup_corrupt", "{}", r.body);
    in_app(&app, c, c.write);

    eprintln!("databases: {} after restarts at {} ms", c.kind, started.elapsed().as_millis());
    // Restore into a new database leaves the original alone.
    in_app(&app, c, c.delete);
    let r = env
        .post(&format!("{ws}/databases/{id}/backups/{backup}/restore"), &owner, json!({"into": "shop-copy"}))
        .await
        .expect(200);
    let copy = r.data()["database"].clone();
    assert_eq!((copy["name"].clone(), copy["host"].clone()), (json!("shop-copy"), json!("shop-copy.db")), "{copy}");
    assert_eq!(in_app(&app, c, c.read), "", "the original is untouched");
    let copy_id = copy["id"].as_str().unwrap();
    let (ok, _) = docker(&["volume", "inspect", copy["volume"].as_str().unwrap()]);
    assert!(ok);

    eprintln!("databases: {} restored into a copy at {} ms", c.kind, started.elapsed().as_millis());
    // Deleting needs the name; the volume survives unless purged.
    let volume = db["volume"].as_str().unwrap().to_owned();
    let r = env.delete(&format!("{ws}/databases/{id}"), &owner).await.expect(400);
    assert!(r.error().starts_with("confirm:"), "{}", r.body);
    let r = env
        .call(reqwest::Method::DELETE, &format!("{ws}/databases/{id}"), &owner, Some(json!({"confirm": "shopp"})))
        .await
        .expect(400);
    assert!(r.error().contains("shop"), "{}", r.body);
    assert_eq!(env.get(&format!("{ws}/databases/{id}"), &owner).await.expect(200).data()["status"], json!("running"));
    let r = env
        .call(reqwest::Method::DELETE, &format!("{ws}/databases/{id}"), &owner, Some(json!({"confirm": "shop"})))
        .await
        .expect(200);
    assert_eq!(
        (r.data()["volume_kept"].clone(), r.data()["backups_kept"].clone()),
        (json!(true), json!(true)),
        "{}",
        r.body
    );
    assert!(docker(&["volume", "inspect", &volume]).0, "the volume survives a delete without purge");
    env.get(&format!("{ws}/databases/{id}"), &owner).await.expect(404);
    let copy_volume = copy["volume"].as_str().unwrap().to_owned();
    let r = env
        .call(
            reqwest::Method::DELETE,
            &format!("{ws}/databases/{copy_id}"),
            &owner,
            Some(json!({"confirm": "shop-copy", "purge": true})),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["volume_kept"], json!(false));
    assert!(!docker(&["volume", "inspect", &copy_volume]).0, "purge removes the volume");
    eprintln!("databases: {} round trip in {} ms", c.kind, started.elapsed().as_millis());
}

#[tokio::test]
async fn postgresql_round_trip_through_an_attached_app() {
    round_trip(&POSTGRES).await;
}

#[tokio::test]
async fn mysql_round_trip_through_an_attached_app() {
    round_trip(&MYSQL).await;
}

#[tokio::test]
async fn redis_round_trip_through_an_attached_app() {
    round_trip(&REDIS).await;
}

#[tokio::test]
async fn scheduled_backups_run_and_retention_prunes_the_oldest_and_failures_show() {
    let started = Instant::now();
    let (env, owner, _cleanup) = setup().await;
    let ws = "/api/workspaces/acme";
    let r = env.post(&format!("{ws}/databases"), &owner, json!({"name": "cache", "type": "redis"})).await.expect(201);
    let id = r.data()["id"].as_str().unwrap().to_owned();
    let path = format!("{ws}/databases/{id}/backup-schedule");

    let r = env.put(&path, &owner, json!({"cron": "every day", "retain": 2})).await.expect(400);
    assert!(r.error().starts_with("cron:"), "{}", r.body);
    let r = env.put(&path, &owner, json!({"cron": "0 3 * * *", "retain": 0})).await.expect(400);
    assert!(r.error().starts_with("retain:"), "{}", r.body);
    let member = env.key_with_role(&owner, "acme", "member").await;
    env.put(&path, &member, json!({"cron": "* * * * * *", "retain": 2})).await.expect(403);

    // Every second, keep two: the oldest scheduled backups (and their files) go; manual ones stay.
    let manual = backup_now(&env, &owner, &id).await;
    let r = env.put(&path, &owner, json!({"cron": "* * * * * *", "retain": 2})).await.expect(200);
    assert_eq!(r.data()["backup_schedule"]["retain"], json!(2), "{}", r.body);
    let mut seen: Vec<String> = Vec::new();
    let dir = env.config.data_dir.join("backups").join(&id);
    loop {
        let r = env.get(&format!("{ws}/databases/{id}/backups"), &owner).await.expect(200);
        let list = r.data()["backups"].as_array().unwrap().clone();
        for b in list.iter().filter(|b| b["trigger"] == json!("schedule") && b["status"] == json!("succeeded")) {
            let bid = b["id"].as_str().unwrap().to_owned();
            if !seen.contains(&bid) {
                seen.push(bid);
            }
        }
        let scheduled: Vec<&Value> = list.iter().filter(|b| b["trigger"] == json!("schedule")).collect();
        let pruned = seen.len() >= 3 && !list.iter().any(|b| b["id"] == json!(seen[0]));
        if pruned {
            assert!(scheduled.len() <= 3, "retain 2 (+1 in flight): {list:?}");
            assert!(list.iter().any(|b| b["id"] == json!(manual)), "manual backups are never pruned");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "no pruning seen: {list:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = env.put(&path, &owner, json!({"cron": null})).await.expect(200);
    assert_eq!(r.data()["backup_schedule"], json!(null));
    // Let a scheduled backup that was already in flight finish, then files and rows must agree.
    let settled = Instant::now();
    let r = loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = env.get(&format!("{ws}/databases/{id}/backups"), &owner).await.expect(200);
        if !r.data()["backups"].as_array().unwrap().iter().any(|b| b["status"] == json!("running")) {
            break r;
        }
        assert!(settled.elapsed() < Duration::from_secs(30), "a backup kept running: {}", r.body);
    };
    let files: Vec<String> = r.data()["backups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["status"] == json!("succeeded"))
        .map(|b| b["file_name"].as_str().unwrap().to_owned())
        .collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    on_disk.sort();
    let mut listed = files.clone();
    listed.sort();
    assert_eq!(on_disk, listed, "exactly the listed backups have files");

    // Deleting a backup (admin) removes its file too.
    let manual_file = files.iter().find(|f| f.contains(manual.rsplit('-').next().unwrap())).unwrap().clone();
    env.delete(&format!("{ws}/databases/{id}/backups/{manual}"), &member).await.expect(403);
    env.delete(&format!("{ws}/databases/{id}/backups/{manual}"), &owner).await.expect(200);
    assert!(!dir.join(&manual_file).exists());
    env.delete(&format!("{ws}/databases/{id}/backups/{manual}"), &owner).await.expect(404);

    // A failed backup is visible on the backup and on the database.
    env.post(&format!("{ws}/databases/{id}/stop"), &owner, json!({})).await.expect(200);
    let r = env.post(&format!("{ws}/databases/{id}/backups"), &member, json!({})).await.expect(202);
    let b = wait_backup(&env, &owner, &id, r.data()["id"].as_str().unwrap()).await;
    assert_eq!(b["status"], json!("failed"));
    assert!(b["error"].as_str().unwrap().contains("not running"), "{b}");
    let r = env.get(&format!("{ws}/databases/{id}"), &owner).await.expect(200);
    assert_eq!(
        (r.data()["status"].clone(), r.data()["last_backup"]["status"].clone()),
        (json!("stopped"), json!("failed"))
    );

    // A public database is published on a host port, with a warning; deletion also takes ?confirm= in the query.
    let r = env
        .post(&format!("{ws}/databases"), &owner, json!({"name": "pub", "type": "redis", "public": true}))
        .await
        .expect(201);
    let (pub_id, port) = (r.data()["id"].as_str().unwrap().to_owned(), r.data()["public_port"].as_u64().unwrap());
    assert!(r.data()["warning"].as_str().unwrap().contains(&port.to_string()), "{}", r.body);
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port as u16)).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(b"PING\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).contains("NOAUTH"),
        "redis answers on the public port, asking for the password"
    );
    env.delete(&format!("{ws}/databases/{pub_id}?confirm=pub&purge=true"), &owner).await.expect(200);

    // A workspace with databases cannot be deleted (that would orphan their data).
    let r = env.delete(ws, &owner).await.expect(409);
    assert_eq!(r.code(), "workspace_has_databases");
    eprintln!("databases: schedule test in {} ms", started.elapsed().as_millis());
}

#[tokio::test]
async fn bad_input_names_the_field_and_roles_are_enforced() {
    let (env, owner, _cleanup) = setup().await;
    let ws = "/api/workspaces/acme/databases";
    for (body, field) in [
        (json!({"name": "db", "type": "sqlite"}), "type"),
        (json!({"name": "Bad Name", "type": "redis"}), "name"),
        (json!({"name": "db", "type": "redis", "version": "7;rm -rf"}), "version"),
        (json!({"name": "db", "type": "redis", "extra": 1}), "extra"),
        (json!({"type": "redis"}), "name"),
    ] {
        let r = env.post(ws, &owner, body.clone()).await.expect(400);
        assert!(r.error().contains(field), "{body}: {}", r.body);
    }
    let member = env.key_with_role(&owner, "acme", "member").await;
    env.post(ws, &member, json!({"name": "db", "type": "redis"})).await.expect(403);
    let r = env.get(ws, &member).await.expect(200);
    assert_eq!(r.data()["databases"], json!([]));
    env.get(&format!("{ws}/nope"), &owner).await.expect(404);
    // An image the engine does not have is a 400 naming the version, and leaves nothing behind.
    let r = env.post(ws, &owner, json!({"name": "db", "type": "mongo"})).await.expect(400);
    assert!(r.error().starts_with("version:"), "{}", r.body);
    assert_eq!(env.get(ws, &owner).await.expect(200).data()["databases"], json!([]));
}
