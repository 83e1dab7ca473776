//! A small WebDriver client over reqwest for the dashboard tests: starts `chromedriver` and a headless Chromium
//! with the flags TESTING.md lists and a fresh profile, and drives it (navigate, type, click, read the visible
//! text, take screenshots). Both processes are ended when the `Browser` is dropped.

use base64::Engine;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a session; fails loudly when Chromium is not installed.
    pub async fn start() -> Browser {
        assert!(
            std::path::Path::new("/usr/bin/chromedriver").exists(),
            "the dashboard tests need Chromium: apt-get install -y chromium chromium-driver"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let root = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        while http.get(format!("{root}/status")).send().await.is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "chromedriver did not answer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "unhandledPromptBehavior": "accept",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--hide-scrollbars",
                format!("--user-data-dir={}", profile.path().display()),
            ]}
        }}});
        let r: Value = http.post(format!("{root}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let id = r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {r}")).to_owned();
        let b = Browser { driver, base: format!("{root}/session/{id}"), http, _profile: profile };
        b.resize(1280, 900).await;
        b
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r: Value = req.send().await.unwrap().json().await.unwrap();
        if r["value"].get("error").is_some() {
            panic!("WebDriver {path}: {}", r["value"]);
        }
        r["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.cmd(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height})).await;
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    pub async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or("").to_owned()
    }

    /// Runs a script in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []})).await
    }

    /// The text a person sees on the page.
    pub async fn text(&self) -> String {
        self.eval("return document.body.innerText").await.as_str().unwrap_or("").to_owned()
    }

    async fn find(&self, css: &str) -> String {
        let start = Instant::now();
        loop {
            let r: Value = self
                .http
                .post(format!("{}/element", self.base))
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(id) = r["value"][ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no element {css} on {}: {}",
                self.url().await,
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types into the field with this CSS selector (after clearing it).
    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/clear"), json!({})).await;
        self.post(&format!("/element/{id}/value"), json!({"text": text})).await;
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    /// Clicks the button whose visible text contains `label`.
    pub async fn click_button(&self, label: &str) {
        let xpath = format!(
            "//button[contains(normalize-space(.), \"{label}\")] | //a[contains(normalize-space(.), \"{label}\")]"
        );
        let r = self.post("/element", json!({"using": "xpath", "value": xpath})).await;
        let id = r[ELEMENT].as_str().unwrap_or_else(|| panic!("no button '{label}'")).to_owned();
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    /// The `value` of an input.
    pub async fn value(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.cmd(reqwest::Method::GET, &format!("/element/{id}/property/value"), None)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// Waits until the visible text contains `needle`; returns the text.
    pub async fn wait_text(&self, needle: &str, within: Duration) -> String {
        let start = Instant::now();
        loop {
            let t = self.text().await;
            if t.contains(needle) {
                return t;
            }
            assert!(
                start.elapsed() < within,
                "waited {within:?} for '{needle}' on {}; the page shows:\n{t}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Light (`false`) or dark (`true`) `prefers-color-scheme`, through the DevTools protocol.
    pub async fn dark(&self, on: bool) {
        let value = if on { "dark" } else { "light" };
        self.post(
            "/goog/cdp/execute",
            json!({"cmd": "Emulation.setEmulatedMedia", "params": {"features": [{"name": "prefers-color-scheme", "value": value}]}}),
        )
        .await;
    }

    /// Writes a PNG of the page to `$BERTH_SCREENSHOTS/<name>.png` when that variable is set.
    pub async fn screenshot(&self, name: &str) {
        self.capture(name, None).await;
    }

    /// Like [`Browser::screenshot`], of the page's full width from the top of the element `top` (a JavaScript
    /// expression; `null` for the top of the page) to the bottom of the element `bottom`, with a small margin.
    pub async fn screenshot_span(&self, name: &str, top: &str, bottom: &str) {
        if std::env::var("BERTH_SCREENSHOTS").is_err() {
            return;
        }
        let script = format!(
            "var t = {top}, b = {bottom}; var y0 = t ? t.getBoundingClientRect().top + scrollY - 16 : 0; \
             var y1 = b.getBoundingClientRect().bottom + scrollY + 16; \
             return [Math.max(0, y0), y1 - Math.max(0, y0), document.documentElement.clientWidth];"
        );
        let r = self.eval(&script).await;
        let n = |i: usize| r[i].as_f64().unwrap_or_else(|| panic!("no element for the screenshot {name}: {r}"));
        let clip = json!({"x": 0, "y": n(0), "width": n(2), "height": n(1), "scale": 1});
        self.capture(name, Some(clip)).await;
    }

    async fn capture(&self, name: &str, clip: Option<Value>) {
        let Ok(dir) = std::env::var("BERTH_SCREENSHOTS") else { return };
        // The whole page (or the clip), beyond the window, through the DevTools protocol.
        let mut params = json!({"format": "png", "captureBeyondViewport": true});
        if let Some(clip) = clip {
            params["clip"] = clip;
        }
        let shot = self.post("/goog/cdp/execute", json!({"cmd": "Page.captureScreenshot", "params": params})).await;
        let b64 = shot["data"].clone();
        let png = base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap_or("")).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // End the session (closing Chromium) with a plain blocking request: no runtime is needed in drop.
        use std::io::{Read, Write};
        let rest = self.base.trim_start_matches("http://");
        if let Some((host, path)) = rest.split_once('/')
            && let Ok(mut s) = std::net::TcpStream::connect(host)
        {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ =
                write!(s, "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = s.read_to_end(&mut Vec::new());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
