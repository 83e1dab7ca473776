//! `TestEnv`: a Berth booted in-process on `127.0.0.1:0` with a temp data dir, and an HTTP client for it.

use berth::app::{self, AppHandle, Listeners};
use berth::config::Config;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use tempfile::TempDir;

pub struct TestEnv {
    pub dir: Arc<TempDir>,
    pub config: Arc<Config>,
    pub handle: Option<AppHandle>,
    pub base: String,
    /// The proxy's HTTP listener (app traffic by Host).
    pub apps: String,
    pub http: reqwest::Client,
}

/// A response reduced to what tests look at.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// Asserts the status and, for errors, the envelope; returns self for chaining.
    #[track_caller]
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.body);
        if status >= 400 {
            assert_eq!(self.body["success"], json!(false), "{}", self.body);
            assert!(self.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{}", self.body);
            assert!(self.body["code"].as_str().is_some_and(|c| !c.is_empty()), "{}", self.body);
        } else {
            assert_eq!(self.body["success"], json!(true), "{}", self.body);
        }
        self
    }

    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Cred {
    None,
    Key(String),
    Bearer(String),
    Session { cookie: String, csrf: Option<String> },
}

impl TestEnv {
    pub async fn start() -> TestEnv {
        Self::start_with(|_| {}).await
    }

    /// Boots with the default config, changed by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestEnv {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let mut config = Config::for_data_dir(dir.path().to_path_buf());
        tweak(&mut config);
        Self::boot(dir, Arc::new(config)).await
    }

    /// Boots with the given app listeners (e.g. the ports an ACME test CA validates on) and HTTPS.
    pub async fn start_with_listeners(
        tweak: impl FnOnce(&mut Config),
        http: tokio::net::TcpListener,
        https: tokio::net::TcpListener,
    ) -> TestEnv {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let mut config = Config::for_data_dir(dir.path().to_path_buf());
        tweak(&mut config);
        let listeners = Listeners {
            api: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            http: Some(http),
            https: Some(https),
        };
        Self::boot_on(dir, Arc::new(config), listeners).await
    }

    async fn boot(dir: Arc<TempDir>, config: Arc<Config>) -> TestEnv {
        let listeners = Listeners {
            api: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            http: Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
            https: None,
        };
        Self::boot_on(dir, config, listeners).await
    }

    async fn boot_on(dir: Arc<TempDir>, config: Arc<Config>, listeners: Listeners) -> TestEnv {
        let handle = app::start(config.clone(), listeners).await.unwrap();
        let base = format!("http://{}", handle.api_addr);
        let apps = format!("http://{}", handle.http_addr.unwrap());
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        TestEnv { dir, config, handle: Some(handle), base, apps, http }
    }

    /// Shuts down and boots again on the same data dir and config.
    pub async fn restart(mut self) -> TestEnv {
        self.handle.take().unwrap().shutdown().await.unwrap();
        Self::boot(self.dir.clone(), self.config.clone()).await
    }

    pub fn setup_token(&self) -> Option<String> {
        self.handle.as_ref().and_then(|h| h.setup_token.clone())
    }

    pub async fn call(&self, method: Method, path: &str, cred: &Cred, body: Option<Value>) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        req = match cred {
            Cred::None => req,
            Cred::Key(k) => req.header("X-API-Key", k),
            Cred::Bearer(k) => req.header("Authorization", format!("Bearer {k}")),
            Cred::Session { cookie, csrf } => {
                let r = req.header("Cookie", format!("berth_session={cookie}"));
                match csrf {
                    Some(c) => r.header("X-CSRF-Token", c),
                    None => r,
                }
            }
        };
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }));
        Reply { status, headers, body }
    }

    pub async fn get(&self, path: &str, cred: &Cred) -> Reply {
        self.call(Method::GET, path, cred, None).await
    }

    pub async fn post(&self, path: &str, cred: &Cred, body: Value) -> Reply {
        self.call(Method::POST, path, cred, Some(body)).await
    }

    pub async fn patch(&self, path: &str, cred: &Cred, body: Value) -> Reply {
        self.call(Method::PATCH, path, cred, Some(body)).await
    }

    pub async fn put(&self, path: &str, cred: &Cred, body: Value) -> Reply {
        self.call(Method::PUT, path, cred, Some(body)).await
    }

    /// Sends a raw body with a content type; the reply's `body` is JSON, or `{"raw": text}` for other answers.
    pub async fn send_raw(&self, method: Method, path: &str, cred: &Cred, content_type: &str, body: &str) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).header("Content-Type", content_type);
        if let Cred::Key(k) = cred {
            req = req.header("X-API-Key", k);
        }
        let resp = req.body(body.to_owned()).send().await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }));
        Reply { status, headers, body }
    }

    /// A GET whose answer is text (e.g. a dotenv export).
    pub async fn get_text(&self, path: &str, cred: &Cred) -> (u16, String) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Cred::Key(k) = cred {
            req = req.header("X-API-Key", k);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// Stops the server, keeping the data dir (for tools that work on it while Berth is down).
    pub async fn stop(&mut self) {
        self.handle.take().unwrap().shutdown().await.unwrap();
    }

    /// Boots again on the same data dir and config after [`TestEnv::stop`].
    pub async fn boot_again(self) -> TestEnv {
        Self::boot(self.dir.clone(), self.config.clone()).await
    }

    pub async fn delete(&self, path: &str, cred: &Cred) -> Reply {
        self.call(Method::DELETE, path, cred, None).await
    }

    /// Creates a user owning workspace `slug` (through the same code as `berth admin`) and an owner key.
    pub async fn user_with_key(&self, email: &str, slug: &str) -> (String, Cred) {
        let services = &self.handle.as_ref().unwrap().services;
        let (user, _) = services.create_user(email, "password123", Some(slug)).await.unwrap();
        let actor = services.cli_actor(email).await.unwrap();
        let key = services
            .create_api_key(
                &actor,
                slug,
                berth::services::NewKey { name: "test".into(), expires_in_days: None, role: None },
            )
            .await
            .unwrap();
        (user.id, Cred::Key(key.key))
    }

    /// Signs in and returns a session credential carrying the CSRF token.
    pub async fn login(&self, email: &str, password: &str) -> Cred {
        let r =
            self.post("/api/auth/login", &Cred::None, json!({"email": email, "password": password})).await.expect(200);
        let cookie = r.headers.get("set-cookie").unwrap().to_str().unwrap().to_owned();
        let token = cookie.split(';').next().unwrap().trim_start_matches("berth_session=").to_owned();
        Cred::Session { cookie: token, csrf: Some(r.data()["csrf_token"].as_str().unwrap().to_owned()) }
    }

    /// Creates a key in `slug` with `role`, using `admin` (an owner or admin key).
    pub async fn key_with_role(&self, admin: &Cred, slug: &str, role: &str) -> Cred {
        let r = self
            .post(&format!("/api/workspaces/{slug}/api-keys"), admin, json!({"name": role, "role": role}))
            .await
            .expect(201);
        Cred::Key(r.data()["key"].as_str().unwrap().to_owned())
    }

    /// Invites `email` into `slug` with `role` and accepts with a new account; returns the new user's id.
    pub async fn add_member(&self, admin: &Cred, slug: &str, email: &str, role: &str) -> String {
        let inv = self
            .post(&format!("/api/workspaces/{slug}/invitations"), admin, json!({"email": email, "role": role}))
            .await
            .expect(201);
        let token = inv.data()["token"].as_str().unwrap().to_owned();
        let acc = self
            .post(&format!("/api/invitations/{token}/accept"), &Cred::None, json!({"password": "password123"}))
            .await
            .expect(200);
        acc.data()["user"]["id"].as_str().unwrap().to_owned()
    }
}

/// Runs `tests/fixtures/<script>` (an image-making script that caches by recipe hash) and returns its stdout.
/// Fails the test, never skips it, when the script fails (e.g. docker or debootstrap is missing).
pub fn fixture_script(script: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(script);
    let started = std::time::Instant::now();
    let out =
        std::process::Command::new("bash").arg(&path).output().expect("bash must be installed to run the fixtures");
    assert!(
        out.status.success(),
        "{} failed (it needs docker and debootstrap: apt-get install -y debootstrap): {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{script}: ready in {} ms", started.elapsed().as_millis());
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Background tasks and the server die with the test's runtime; nothing outside the temp dir was created.
        self.handle.take();
    }
}

/// `N` distinct loopback TCP ports that were free a moment ago, for servers a test starts as child processes. Every
/// listener is held until all are bound: taken one at a time, a port just released can come back, and Pebble was
/// once given its own management port as its listening port.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<_> = (0..N).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    std::array::from_fn(|n| listeners[n].local_addr().unwrap().port())
}
