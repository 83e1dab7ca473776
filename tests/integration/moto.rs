//! A real S3 API: moto's server (from PyPI, in the venv `.ci/run` makes at /opt/berth-ci/moto, or
//! `$BERTH_TEST_MOTO_VENV`), one per test on a free port, killed on drop. Signatures are checked (an IAM user's
//! key, with moto's auth switched on), and the bucket is inspected with boto3, independently of Berth's client.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    venv: PathBuf,
    pub endpoint: String,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The venv holding moto and boto3; fails the test (never skips it) when it is missing.
fn venv() -> PathBuf {
    let venv = PathBuf::from(std::env::var("BERTH_TEST_MOTO_VENV").unwrap_or_else(|_| "/opt/berth-ci/moto".into()));
    assert!(
        venv.join("bin/moto_server").is_file() && venv.join("bin/python").is_file(),
        "moto is missing from {}: the S3 backup tests need it. Install it with \
         `python3 -m venv {0} && {0}/bin/pip install 'moto[server]' boto3` (what .ci/run does), \
         or point BERTH_TEST_MOTO_VENV at a venv that has both",
        venv.display()
    );
    venv
}

impl Moto {
    /// Starts moto, makes the bucket and an IAM user with full access, then turns signature checking on.
    pub async fn start() -> Moto {
        let venv = venv();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("while starting moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        while http.get(format!("{endpoint}/moto-api/data.json")).send().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(60), "moto did not start: {}", read(&log));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut moto = Moto {
            child,
            venv,
            endpoint,
            bucket: "berth-test".into(),
            key_id: "unused".into(),
            secret: "unused".into(),
            log,
            _dir: dir,
        };
        let made = moto.python(
            r#"
import json
iam = boto3.client("iam", **kw)
s3.create_bucket(Bucket=bucket)
iam.create_user(UserName="berth")
policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
iam.put_user_policy(UserName="berth", PolicyName="all", PolicyDocument=json.dumps(policy))
k = iam.create_access_key(UserName="berth")["AccessKey"]
print(json.dumps({"id": k["AccessKeyId"], "secret": k["SecretAccessKey"]}))
"#,
        );
        let made: Value = serde_json::from_str(&made).unwrap();
        moto.key_id = made["id"].as_str().unwrap().to_owned();
        moto.secret = made["secret"].as_str().unwrap().to_owned();
        // From here on every request must be signed with a key moto knows.
        let r = http
            .post(format!("{}/moto-api/reset-auth", moto.endpoint))
            .header("content-type", "text/plain")
            .body("0")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "moto's reset-auth: {}", r.status());
        moto
    }

    /// Runs a Python snippet with `boto3`, `s3` (a client signed with the IAM user's key once it exists), `kw`
    /// (client arguments) and `bucket` defined; returns its stdout.
    pub fn python(&self, body: &str) -> String {
        let script = format!(
            "import boto3, hashlib, json, sys\nkw = dict(endpoint_url={:?}, region_name='us-east-1', \
             aws_access_key_id={:?}, aws_secret_access_key={:?})\ns3 = boto3.client('s3', **kw)\nbucket = {:?}\n{body}",
            self.endpoint, self.key_id, self.secret, self.bucket
        );
        let out = Command::new(self.venv.join("bin/python"))
            .arg("-c")
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .expect("while running the venv's python");
        assert!(
            out.status.success(),
            "boto3 failed: {}\n--- moto's log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            read(&self.log)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Every object under `prefix`: key → (size, SHA-256 of its bytes, ETag), as boto3 sees them.
    pub fn objects(&self, prefix: &str) -> std::collections::BTreeMap<String, (u64, String, String)> {
        let out = self.python(&format!(
            r#"
found = {{}}
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix={prefix:?}):
    for o in page.get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        found[o["Key"]] = [o["Size"], hashlib.sha256(body).hexdigest(), o["ETag"].strip('"')]
print(json.dumps(found))
"#
        ));
        let v: Value = serde_json::from_str(&out).unwrap();
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let t = (v[0].as_u64().unwrap(), v[1].as_str().unwrap().to_owned(), v[2].as_str().unwrap().to_owned());
                (k.clone(), t)
            })
            .collect()
    }

    /// Replaces an object's bytes (to test checksum verification).
    pub fn overwrite(&self, key: &str, bytes: &str) {
        self.python(&format!("s3.put_object(Bucket=bucket, Key={key:?}, Body={bytes:?}.encode())"));
    }

    pub fn log(&self) -> String {
        read(&self.log)
    }
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
