//! DNS-01 TXT records: the provider trait and its two implementations.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

/// Publishes and removes the `_acme-challenge` TXT records of DNS-01 validation (RFC 8555 §8.4).
///
/// `fqdn` is the record's full name with a trailing dot (`_acme-challenge.example.com.`), `value` the base64url
/// digest to publish. A name can hold several values at once (a wildcard and its apex in one order need two), so
/// `cleanup` removes only the record with that value.
pub trait DnsProvider: Send + Sync + std::fmt::Debug {
    /// Publishes a TXT record `fqdn` → `value`. Returns once the provider accepted it.
    fn present<'a>(&'a self, fqdn: &'a str, value: &'a str) -> BoxFuture<'a, Result<(), String>>;
    /// Removes the record published by `present` with the same arguments.
    fn cleanup<'a>(&'a self, fqdn: &'a str, value: &'a str) -> BoxFuture<'a, Result<(), String>>;
    /// How long to wait after publishing before asking the CA to validate, for the record to reach every
    /// authoritative server.
    fn propagation_delay(&self) -> Duration {
        Duration::ZERO
    }
}

/// Runs the operator's command: `<command> present|cleanup <fqdn> <value>`, through `sh -c` so the command may
/// carry its own arguments. Exit status 0 is success; otherwise the error carries the exit status and the end of
/// stderr. The command should return only once the record is visible (it knows its DNS; Berth does not wait).
#[derive(Debug, Clone)]
pub struct HookProvider {
    command: String,
    timeout: Duration,
}

impl HookProvider {
    /// A hook running `command`, killed after `timeout`.
    pub fn new(command: impl Into<String>, timeout: Duration) -> HookProvider {
        HookProvider { command: command.into(), timeout }
    }

    async fn run(&self, action: &str, fqdn: &str, value: &str) -> Result<(), String> {
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{} \"$@\"", self.command))
            .arg("berth-dns-hook")
            .args([action, fqdn, value])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("dns hook `{}` could not start: {e}", self.command))?;
        let mut stderr = child.stderr.take();
        let waited = tokio::time::timeout(self.timeout, async {
            let mut text = Vec::new();
            if let Some(stderr) = stderr.as_mut() {
                let _ = stderr.take(64 * 1024).read_to_end(&mut text).await;
            }
            (child.wait().await, text)
        })
        .await;
        let (status, stderr) = waited
            .map_err(|_| format!("dns hook `{} {action}` did not finish within {:?}", self.command, self.timeout))?;
        let status = status.map_err(|e| format!("dns hook `{} {action}`: {e}", self.command))?;
        if status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&stderr);
        let tail: String = stderr.trim().chars().rev().take(500).collect::<Vec<_>>().into_iter().rev().collect();
        Err(format!("dns hook `{} {action} {fqdn}` failed ({status}): {tail}", self.command))
    }
}

impl DnsProvider for HookProvider {
    fn present<'a>(&'a self, fqdn: &'a str, value: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.run("present", fqdn, value))
    }

    fn cleanup<'a>(&'a self, fqdn: &'a str, value: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.run("cleanup", fqdn, value))
    }
}

/// Cloudflare's v4 API with an API token (Zone:DNS:Edit on the zones concerned): finds the zone by walking up the
/// labels (`GET /zones?name=`), creates the TXT record (`POST /zones/:id/dns_records`) and deletes it by id
/// (`DELETE /zones/:id/dns_records/:rid`).
pub struct CloudflareProvider {
    base_url: String,
    token: String,
    http: reqwest::Client,
    propagation: Duration,
    /// (fqdn, value) → (zone id, record id) of records this provider created.
    records: Mutex<HashMap<(String, String), (String, String)>>,
}

impl std::fmt::Debug for CloudflareProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudflareProvider").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl CloudflareProvider {
    /// A provider calling `base_url` (normally `https://api.cloudflare.com/client/v4`) with `token`, waiting
    /// `propagation` after creating a record before validation is requested.
    pub fn new(base_url: &str, token: &str, propagation: Duration) -> Result<CloudflareProvider, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cloudflare client: {e}"))?;
        Ok(CloudflareProvider {
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http,
            propagation,
            records: Mutex::new(HashMap::new()),
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base_url);
        let mut req = self.http.request(method.clone(), &url).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.map_err(|e| format!("cloudflare {method} {path}: {e}"))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() || body["success"] == json!(false) {
            let errors = body["errors"]
                .as_array()
                .map(|e| e.iter().filter_map(|e| e["message"].as_str()).collect::<Vec<_>>().join("; "))
                .unwrap_or_default();
            return Err(format!("cloudflare {method} {path} answered {status}: {errors}"));
        }
        Ok(body)
    }

    /// The id of the zone holding `name`: the longest parent of `name` that is a zone of this account.
    async fn zone_for(&self, name: &str) -> Result<String, String> {
        let labels: Vec<&str> = name.split('.').collect();
        for start in 0..labels.len().saturating_sub(1) {
            let candidate = labels[start..].join(".");
            let query: String =
                form_urlencoded::Serializer::new(String::new()).append_pair("name", &candidate).finish();
            let body = self.call(reqwest::Method::GET, &format!("/zones?{query}"), None).await?;
            if let Some(id) = body["result"].as_array().and_then(|z| z.first()).and_then(|z| z["id"].as_str()) {
                return Ok(id.to_owned());
            }
        }
        Err(format!("cloudflare: no zone of this API token contains {name}"))
    }
}

impl DnsProvider for CloudflareProvider {
    fn present<'a>(&'a self, fqdn: &'a str, value: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let name = fqdn.trim_end_matches('.');
            let zone = self.zone_for(name.trim_start_matches("_acme-challenge.")).await?;
            let body = json!({"type": "TXT", "name": name, "content": value, "ttl": 60});
            let created = self.call(reqwest::Method::POST, &format!("/zones/{zone}/dns_records"), Some(body)).await?;
            let id = created["result"]["id"]
                .as_str()
                .ok_or_else(|| "cloudflare created a record but returned no id".to_owned())?;
            if let Ok(mut records) = self.records.lock() {
                records.insert((fqdn.to_owned(), value.to_owned()), (zone, id.to_owned()));
            }
            Ok(())
        })
    }

    fn cleanup<'a>(&'a self, fqdn: &'a str, value: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let record = self.records.lock().ok().and_then(|mut r| r.remove(&(fqdn.to_owned(), value.to_owned())));
            let Some((zone, id)) = record else { return Ok(()) };
            self.call(reqwest::Method::DELETE, &format!("/zones/{zone}/dns_records/{id}"), None).await.map(|_| ())
        })
    }

    fn propagation_delay(&self) -> Duration {
        self.propagation
    }
}
