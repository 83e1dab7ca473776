//! The dashboard in a real headless Chromium against a real Berth on the real Docker engine: the journeys a
//! person walks, checked by the text on the page. With `BERTH_SCREENSHOTS=<dir>` the walk also writes PNGs of
//! the main pages (light, dark and 360 px wide) — the README's screenshots come from there.

use crate::browser::Browser;
use crate::deploy::{Cleanup, base_image, commit, sh, write_app};
use crate::support::TestEnv;
use std::time::Duration;

const BUILD: Duration = Duration::from_secs(120);

/// The environment variables of the running containers of a deployment.
fn container_env(deployment: &str) -> String {
    let filter = format!("label=berth.deployment={deployment}");
    let ids = sh(std::path::Path::new("/"), "docker", &["ps", "-q", "--filter", &filter]);
    let id = ids.split_whitespace().next().unwrap_or_else(|| panic!("no container of {deployment}"));
    sh(std::path::Path::new("/"), "docker", &["inspect", "--format", "{{json .Config.Env}}", id])
}

/// The deployment id in a `/w/:ws/d/:id` URL.
fn deployment_id(url: &str) -> String {
    url.rsplit("/d/").next().unwrap_or("").trim_end_matches('/').to_owned()
}

/// Waits until the deployment page's status badge (updated live by the stream) says `want` and the page has been
/// reloaded with the outcome.
async fn wait_status(b: &Browser, want: &str) {
    let start = std::time::Instant::now();
    loop {
        let s = b.eval("var e = document.getElementById('dep-status'); return e ? e.textContent : ''").await;
        // The script reloads the page once the stream is done; the reloaded page no longer streams.
        let streaming = b.eval("return document.querySelector('pre[data-stream]') !== null").await;
        if s.as_str() == Some(want) && streaming.as_bool() == Some(false) {
            return;
        }
        assert!(s.as_str() != Some("failed"), "the deployment failed: {}", b.text().await);
        assert!(start.elapsed() < BUILD, "status is {s}, waited for {want}: {}", b.text().await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_person_sets_up_berth_deploys_from_git_manages_secrets_rolls_back_and_invites_a_member() {
    base_image();
    let env = TestEnv::start_with(|c| {
        c.allow_local_repos = true;
        c.health_timeout_secs = 5;
        c.drain_secs = 1;
    })
    .await;
    let repo = tempfile::tempdir().unwrap();
    sh(repo.path(), "git", &["init", "-q", "-b", "main"]);
    write_app(repo.path(), "hello from berth v1", 8080);
    commit(repo.path(), "v1");
    let b = Browser::start().await;
    let base = env.base.clone();

    // First run: the dashboard sends a new instance to setup, and setup signs in.
    b.goto(&format!("{base}/")).await;
    b.wait_text("Set up Berth", Duration::from_secs(5)).await;
    b.fill("#token", "wrong-token").await;
    b.fill("#email", "ada@home.lan").await;
    b.fill("#password", "correct horse battery").await;
    b.fill("#workspace_name", "Home").await;
    b.click("button[type=submit]").await;
    // The answer is the setup page again, with the error; until it has loaded the old page is still showing, so
    // wait for the error itself rather than for the page's title.
    let started = std::time::Instant::now();
    loop {
        let error = b.eval("return document.getElementById('token-error')?.textContent ?? ''").await;
        if error.as_str().is_some_and(|e| !e.is_empty()) {
            break;
        }
        let t = b.text().await;
        assert!(started.elapsed() < Duration::from_secs(5), "the token error sits next to the token field: {t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.wait_text("Set up Berth", Duration::from_secs(5)).await;
    b.screenshot("setup").await;
    b.fill("#token", &env.setup_token().unwrap()).await;
    b.fill("#password", "correct horse battery").await;
    b.click("button[type=submit]").await;
    b.wait_text("0 projects in Home", Duration::from_secs(5)).await;

    // A second workspace, from the header.
    b.click_button("New workspace").await;
    b.fill("#name", "Acme").await;
    b.click("main button[type=submit]").await;
    let t = b.wait_text("0 projects in Acme", Duration::from_secs(5)).await;
    assert!(t.contains("New project"), "an owner sees the admin action: {t}");
    let services = env.handle.as_ref().unwrap().services.clone();
    let owner = services.cli_actor("ada@home.lan").await.unwrap();
    let ws_id = services.access(&owner, "acme").await.unwrap().workspace.id;
    let _cleanup = Cleanup(ws_id);

    // A project from the local git repository: detection first, then create and deploy.
    b.click_button("New project").await;
    b.fill("#name", "web").await;
    b.fill("#repo_url", &format!("file://{}", repo.path().display())).await;
    b.fill("#port", "8080").await;
    b.click_button("Detect").await;
    let t = b.wait_text("Detected: dockerfile", Duration::from_secs(20)).await;
    assert!(t.contains("main at"), "the detection names the branch and commit: {t}");
    b.screenshot("new-project-detected").await;
    b.click_button("Create and deploy").await;
    b.wait_text("DEP-0001", Duration::from_secs(10)).await;
    let first = deployment_id(&b.url().await);
    // The build log streams into the page while the build runs: the page that was loaded mid-build (marked
    // here) receives the build's lines without a reload.
    let streaming =
        b.eval("window.__loaded_once = true; return document.querySelector('pre[data-stream]') !== null").await;
    assert_eq!(streaming.as_bool(), Some(true), "the deployment page opens while the build runs");
    let start = std::time::Instant::now();
    loop {
        let r = b.eval("return [window.__loaded_once === true, document.querySelector('pre.log').textContent.includes('COPY www /www')]").await;
        assert_eq!(r[0].as_bool(), Some(true), "the build's lines arrived only with a reload");
        if r[1].as_bool() == Some(true) {
            break;
        }
        assert!(start.elapsed() < BUILD, "no build line streamed: {}", b.text().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_status(&b, "running").await;
    b.screenshot("deployment-log").await;

    // The overview shows the replica and the app's URL, which serves the app.
    b.click_button("Overview").await;
    let t = b.wait_text("replicas ready", Duration::from_secs(5)).await;
    assert!(t.contains("1 / 1"), "{t}");
    assert!(t.contains("DEP-0001"), "{t}");
    b.screenshot("overview").await;
    b.dark(true).await;
    b.screenshot("overview-dark").await;
    b.dark(false).await;
    let app_url = b.eval("return document.getElementById('app-url').href").await.as_str().unwrap().to_owned();
    assert!(app_url.starts_with("http://web.acme.localhost:"), "{app_url}");
    b.click("#app-url").await;
    b.wait_text("hello from berth v1", Duration::from_secs(10)).await;

    // A secret variable: masked on the page, revealed to the owner, in the containers after a redeploy.
    b.goto(&format!("{base}/w/acme/p/web/env")).await;
    b.fill("#key", "API_TOKEN").await;
    b.fill("#value", "s3cr3t-v4lue").await;
    b.click("#is_secret").await;
    b.click_button("Add").await;
    let t = b.wait_text("Added API_TOKEN", Duration::from_secs(5)).await;
    assert!(t.contains("Redeploy to apply"), "{t}");
    let html = b.eval("return document.documentElement.outerHTML").await;
    assert!(!html.as_str().unwrap().contains("s3cr3t-v4lue"), "a secret's value is not in the page");
    b.screenshot("env").await;
    b.click_button("Reveal").await;
    b.wait_text("Copy", Duration::from_secs(5)).await;
    assert_eq!(b.value("#val-1").await, "s3cr3t-v4lue");
    b.goto(&format!("{base}/w/acme/p/web")).await;
    b.click_button("Redeploy").await;
    b.wait_text("DEP-0002", Duration::from_secs(10)).await;
    wait_status(&b, "running").await;
    let second = deployment_id(&b.url().await);
    assert!(container_env(&second).contains("API_TOKEN=s3cr3t-v4lue"), "the redeployed containers have the secret");

    // A new commit deployed from the deployments page, then a rollback to the first release.
    // v2 also writes to its log: a line at start and, with -vv, one per request.
    write_app(repo.path(), "hello from berth v2", 8080);
    std::fs::write(
        repo.path().join("Dockerfile"),
        format!(
            "FROM {}\nCOPY www /www\nCMD [\"busybox\", \"sh\", \"-c\", \"echo runtime hello from v2; exec busybox httpd -f -vv -p 8080 -h /www\"]\n",
            crate::deploy::BASE_IMAGE
        ),
    )
    .unwrap();
    commit(repo.path(), "v2");
    b.click_button("Deployments").await;
    b.click_button("Deploy now").await;
    b.wait_text("DEP-0003", Duration::from_secs(10)).await;
    wait_status(&b, "running").await;
    // (A query string, so the browser's cache of the first visit is not what answers.)
    b.goto(&format!("{app_url}?after=DEP-0003")).await;
    b.wait_text("hello from berth v2", Duration::from_secs(10)).await;
    // The runtime log: searched, then followed live while the app is requested.
    b.goto(&format!("{base}/w/acme/p/web/logs?q=hello+from+v2&since=1h")).await;
    let t = b.wait_text("runtime hello from v2", Duration::from_secs(20)).await;
    assert!(t.contains("1 line,"), "the search keeps only the matching line: {t}");
    b.goto(&format!("{base}/w/acme/p/web/logs")).await;
    b.wait_text("runtime hello from v2", Duration::from_secs(5)).await;
    let lines =
        "return [window.__logs_page === true, document.querySelector('pre.log').textContent.split('\\n').length]";
    let before = b.eval(&format!("window.__logs_page = true; {lines}")).await;
    let host = app_url.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let start = std::time::Instant::now();
    loop {
        let _ = env.http.get(format!("{}/?live", env.apps)).header("Host", &host).send().await;
        let now = b.eval(lines).await;
        assert_eq!(now[0].as_bool(), Some(true), "the page was reloaded");
        if now[1].as_u64() > before[1].as_u64() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no new runtime line arrived: {}", b.text().await);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    b.screenshot("logs").await;
    b.goto(&format!("{base}/w/acme/p/web/deployments")).await;
    let t = b.wait_text("Releases", Duration::from_secs(5)).await;
    assert!(t.contains("DEP-0003") && t.contains("Roll back to v1"), "{t}");
    b.screenshot("deployments").await;
    b.click_button("Roll back to v1").await;
    b.wait_text("DEP-0004", Duration::from_secs(10)).await;
    wait_status(&b, "running").await;
    b.goto(&format!("{app_url}?after=DEP-0004")).await;
    b.wait_text("hello from berth v1", Duration::from_secs(10)).await;
    assert_ne!(first, second);

    // Pages a screenshot should show.
    b.goto(&format!("{base}/w/acme/p/web/settings")).await;
    let t = b.wait_text("Danger zone", Duration::from_secs(5)).await;
    assert!(t.contains("Type the project's slug to confirm"), "{t}");
    b.screenshot("settings").await;
    b.fill("#confirm", "not-web").await;
    b.click_button("Delete web").await;
    let t = b.wait_text("type the project's slug 'web' to confirm", Duration::from_secs(5)).await;
    assert!(b.eval("return document.getElementById('confirm-error') !== null").await.as_bool() == Some(true), "{t}");

    // A custom domain waits for verification, with what to do.
    b.goto(&format!("{base}/w/acme/p/web/domains")).await;
    b.fill("#domain", "app.example.test").await;
    b.click_button("Add domain").await;
    let t = b.wait_text("app.example.test", Duration::from_secs(10)).await;
    assert!(t.contains("pending_dns"), "{t}");
    b.screenshot("domains").await;

    // An API key is shown once; the audit log shows who did what.
    b.goto(&format!("{base}/w/acme/api-keys")).await;
    b.fill("#name", "laptop").await;
    b.click_button("Create key").await;
    b.wait_text("it is never shown again", Duration::from_secs(5)).await;
    assert!(b.value("#new-key").await.starts_with("berth_sk_"));
    b.goto(&format!("{base}/w/acme/api-keys")).await;
    let t = b.wait_text("laptop", Duration::from_secs(5)).await;
    assert!(!t.contains("it is never shown again"), "{t}");
    b.goto(&format!("{base}/w/acme/audit")).await;
    let t = b.wait_text("ada@home.lan", Duration::from_secs(5)).await;
    assert!(t.contains("api_key.create") || t.contains("project.create"), "{t}");
    b.screenshot("audit").await;
    b.goto(&format!("{base}/w/acme")).await;
    b.wait_text("1 project in Acme", Duration::from_secs(5)).await;
    b.screenshot("projects").await;
    b.dark(true).await;
    b.screenshot("projects-dark").await;
    b.dark(false).await;
    b.resize(360, 780).await;
    b.goto(&format!("{base}/w/acme/p/web")).await;
    b.wait_text("replicas ready", Duration::from_secs(5)).await;
    let overflow = b.eval("return document.documentElement.scrollWidth > window.innerWidth").await;
    b.screenshot("overview-360px").await;
    assert_eq!(overflow.as_bool(), Some(false), "the overview fits 360 px without sideways scrolling");
    b.resize(1280, 900).await;

    // An invitation: the link is shown once, the invitee accepts and signs in as a member.
    b.goto(&format!("{base}/w/acme/settings")).await;
    b.fill("#email", "mia@acme.io").await;
    b.click_button("Invite").await;
    b.wait_text("Invitation created", Duration::from_secs(5)).await;
    let link = b.value("#invite-link").await;
    assert!(link.contains("/invitations/"), "{link}");
    b.screenshot("members").await;
    b.click_button("Sign out").await;
    b.wait_text("Sign in to Berth", Duration::from_secs(5)).await;
    let path = &link[link.find("/invitations/").unwrap()..];
    b.goto(&format!("{base}{path}")).await;
    let t = b.wait_text("Join a workspace", Duration::from_secs(5)).await;
    assert!(t.contains("mia@acme.io is invited as member"), "{t}");
    b.fill("#password", "mias password").await;
    b.click_button("Accept invitation").await;
    let t = b.wait_text("1 project in Acme", Duration::from_secs(5)).await;
    assert!(t.contains("mia@acme.io (member)"), "{t}");
    assert!(!t.contains("New project"), "a member sees no admin action: {t}");
    b.screenshot("member-projects").await;
    b.goto(&format!("{base}/w/acme/p/web/env")).await;
    let t = b.wait_text("API_TOKEN", Duration::from_secs(5)).await;
    assert!(!t.contains("Reveal"), "a member cannot reveal secrets: {t}");
    b.goto(&format!("{base}/w/acme/p/web/settings")).await;
    let t = b.wait_text("Only admins change settings", Duration::from_secs(5)).await;
    assert!(!t.contains("Danger zone") && !t.contains("Save build"), "{t}");
    b.goto(&format!("{base}/w/acme/settings")).await;
    let t = b.wait_text("ada@home.lan", Duration::from_secs(5)).await;
    assert!(!t.contains("Invite someone") && !t.contains("Remove"), "{t}");

    // A forged admin action, posted with the member's own valid session and token, is refused.
    b.goto(&format!("{base}/w/acme/p/web")).await;
    b.wait_text("replicas ready", Duration::from_secs(5)).await;
    b.eval(
        "var f = document.createElement('form'); f.method = 'post'; f.action = '/w/acme/p/web/settings';
         var add = function (k, v) { var i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); };
         add('_csrf', document.querySelector('input[name=_csrf]').value); add('section', 'delete'); add('confirm', 'web');
         document.body.appendChild(f); f.submit(); return true;",
    )
    .await;
    let t = b.wait_text("Not allowed", Duration::from_secs(5)).await;
    assert!(t.contains("needs the admin role"), "{t}");
    b.screenshot("member-forbidden").await;
    b.goto(&format!("{base}/w/acme/p/web")).await;
    b.wait_text("replicas ready", Duration::from_secs(5)).await;
}

/// The `Set-Cookie` values of a response, joined.
fn cookies(r: &reqwest::Response) -> String {
    r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join("\n")
}

/// The value of cookie `name` in `Set-Cookie` lines.
fn cookie_value(set_cookie: &str, name: &str) -> String {
    set_cookie
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_owned()
}

/// The value of the hidden `_csrf` field in a page.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"_csrf\" value=\"").unwrap() + "name=\"_csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn sessions_cookies_csrf_rate_limits_and_assets_hold_without_a_browser() {
    let env = TestEnv::start_with(|c| c.login_attempts_per_minute = 3).await;
    let (_, owner_key) = env.user_with_key("ada@acme.io", "acme").await;
    let (http, base) = (&env.http, &env.base);

    // Not signed in: pages send you to sign in and come back.
    let r = http.get(format!("{base}/w/acme")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?next=%2Fw%2Facme");

    // The sign-in form needs its own token (double submit): without the cookie it is refused.
    let page = http.get(format!("{base}/login")).send().await.unwrap();
    let form_cookie = cookie_value(&cookies(&page), "berth_form");
    let html = page.text().await.unwrap();
    let token = csrf_of(&html);
    assert_eq!(token, form_cookie);
    let body = format!("_csrf={token}&email=ada%40acme.io&password=password123&next=%2Fw%2Facme");
    let r = http
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "no form cookie, no sign-in");
    let r = http
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", format!("berth_form={form_cookie}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/w/acme");
    let set = cookies(&r);
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && !set.contains("Secure"), "{set}");
    let session = format!("berth_session={}", cookie_value(&set, "berth_session"));

    // Signed in: a page, its hashed assets with a year of immutable caching.
    let html =
        http.get(format!("{base}/w/acme")).header("cookie", &session).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("0 projects in acme"), "{html}");
    let css = &html[html.find("/static/app.").unwrap()..];
    let css = &css[..css.find('"').unwrap()];
    let r = http.get(format!("{base}{css}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/"));
    assert_eq!(http.get(format!("{base}/static/app.000000000000.css")).send().await.unwrap().status(), 404);

    // Every form carries the session's token: without it or with another, nothing happens.
    let csrf = csrf_of(&html);
    for sent in ["", "&_csrf=not-the-token"] {
        let r = http
            .post(format!("{base}/workspaces/new"))
            .header("cookie", &session)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("name=Forged{sent}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.text().await.unwrap().contains("security token"));
    }
    assert!(env.get("/api/workspaces/forged", &crate::support::Cred::None).await.status != 200);

    // A field error comes back next to its field.
    let r = http
        .post(format!("{base}/workspaces/new"))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("_csrf={csrf}&name=&slug=Not+A+Slug"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"name-error\"") || html.contains("id=\"slug-error\""), "{html}");
    assert!(html.contains("aria-invalid=\"true\""), "{html}");

    // A project from an image: no detection, the image builder, and the first deployment's page next.
    base_image();
    let ws_id = env.get("/api/workspaces/acme", &owner_key).await.data()["id"].as_str().unwrap().to_owned();
    let _cleanup = Cleanup(ws_id);
    let r = http
        .post(format!("{base}/w/acme/new"))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("_csrf={csrf}&source=image&name=cache&image=berth-test%2Fbusybox%3A1&port=8080&action=create"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/w/acme/d/"), "{to}");
    let p = env.get("/api/workspaces/acme/projects/cache", &owner_key).await.expect(200);
    assert_eq!(
        (p.data()["build"]["builder"].as_str(), p.data()["image"].as_str()),
        (Some("image"), Some("berth-test/busybox:1"))
    );
    let html = http.get(format!("{base}{to}")).header("cookie", &session).send().await.unwrap().text().await.unwrap();
    assert!(
        html.contains("DEP-0001") && html.contains("Build log"),
        "without JavaScript the page shows the log so far"
    );

    // Sign-in attempts are rate limited; the form says so.
    let page = http.get(format!("{base}/login")).send().await.unwrap();
    let form_cookie = cookie_value(&cookies(&page), "berth_form");
    let mut last = String::new();
    for _ in 0..5 {
        let r = http
            .post(format!("{base}/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", format!("berth_form={form_cookie}"))
            .body(format!("_csrf={form_cookie}&email=ada%40acme.io&password=wrong-password"))
            .send()
            .await
            .unwrap();
        last = r.text().await.unwrap();
    }
    assert!(last.to_lowercase().contains("rate limit") || last.contains("retry"), "{last}");

    // Signing out ends the session.
    let r = http
        .post(format!("{base}/logout"))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("_csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = http.get(format!("{base}/w/acme")).header("cookie", &session).send().await.unwrap();
    assert_eq!(r.status(), 303, "the old cookie no longer signs in");
}

/// What a person reads on a page: the HTML without tags and with its whitespace collapsed.
fn page_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out.replace("&#34;", "\"").replace("&#39;", "'").replace("&amp;", "&").replace("&#38;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A signed-in person's view of the dashboard over plain HTTP: their session cookie and form token.
struct Person<'a> {
    env: &'a TestEnv,
    cookie: String,
    csrf: String,
}

impl<'a> Person<'a> {
    async fn sign_in(env: &'a TestEnv, email: &str) -> Person<'a> {
        match env.login(email, "password123").await {
            crate::support::Cred::Session { cookie, csrf } => {
                Person { env, cookie: format!("berth_session={cookie}"), csrf: csrf.unwrap() }
            }
            _ => unreachable!(),
        }
    }

    /// GETs a page: its status and HTML.
    async fn get(&self, path: &str) -> (u16, String) {
        let r = self.env.http.get(format!("{}{path}", self.env.base)).header("cookie", &self.cookie).send().await;
        let r = r.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Posts a form with the session's token: the status, where a redirect goes, and the HTML.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("_csrf", &self.csrf);
        for (k, v) in fields {
            form.append_pair(k, v);
        }
        let r = self
            .env
            .http
            .post(format!("{}{path}", self.env.base))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.finish())
            .send()
            .await
            .unwrap();
        let to = r.headers().get("location").map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
        (r.status().as_u16(), to, r.text().await.unwrap())
    }

    /// Posts a form that must succeed, and reads the page it redirects to.
    async fn post_ok(&self, path: &str, fields: &[(&str, &str)]) -> (String, String) {
        let (status, to, html) = self.post(path, fields).await;
        assert_eq!(status, 303, "{fields:?} was refused: {}", page_text(&html));
        let (status, html) = self.get(&to).await;
        assert_eq!(status, 200, "{to}: {}", page_text(&html));
        (to, html)
    }
}

#[tokio::test]
async fn a_database_is_created_backed_up_scheduled_restored_downloaded_and_deleted_from_the_dashboard() {
    let (env, owner_key, _cleanup) = crate::databases::setup().await;
    env.add_member(&owner_key, "acme", "mia@acme.io", "member").await;
    let admin = Person::sign_in(&env, "ops@acme.io").await;
    let member = Person::sign_in(&env, "mia@acme.io").await;

    // The workspace navigation leads to the (empty) list; a bad name comes back next to its field.
    let (_, html) = admin.get("/w/acme").await;
    assert!(html.contains("href=\"/w/acme/databases\""), "the workspace navigation links the databases");
    let (status, html) = admin.get("/w/acme/databases").await;
    assert_eq!(status, 200);
    assert!(page_text(&html).contains("No databases yet."), "{}", page_text(&html));
    let (status, _, html) = admin.post("/w/acme/databases", &[("name", "Not A Name"), ("type", "redis")]).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"name-error\"") && html.contains("aria-invalid=\"true\""), "{html}");

    // Created through the form: its page, then the list with its status as text.
    let (to, html) = admin.post_ok("/w/acme/databases", &[("name", "cache"), ("type", "redis")]).await;
    let db_path = to.split('?').next().unwrap().to_owned();
    let id = db_path.rsplit('/').next().unwrap().to_owned();
    let t = page_text(&html);
    assert!(t.contains("Created cache (running).") && t.contains("cache.db"), "{t}");
    let (_, html) = admin.get("/w/acme/databases").await;
    let t = page_text(&html);
    assert!(t.contains("cache redis 7 running never"), "name, type, version, status, last backup: {t}");

    // Connection details: masked for a member with no admin action; shown with copy buttons to an admin.
    let api = env.get(&format!("/api/workspaces/acme/databases/{id}"), &owner_key).await.expect(200);
    let password = api.data()["password"].as_str().unwrap().to_owned();
    let (status, html) = member.get(&db_path).await;
    assert_eq!(status, 200);
    let t = page_text(&html);
    assert!(t.contains("Password ******** (admins see it)"), "{t}");
    assert!(!html.contains(&password) && !html.contains("data-copy"), "a member gets no secret and no copy button");
    for admin_only in ["Danger zone", "Restore", "Attach to a project", "Save schedule", "Restart"] {
        assert!(!t.contains(admin_only), "a member sees no '{admin_only}': {t}");
    }
    assert!(t.contains("Back up now"), "members may back up: {t}");
    let (_, html) = admin.get(&db_path).await;
    assert!(html.contains(&format!("value=\"{password}\"")), "the admin sees the password");
    assert!(html.contains("data-copy=\"db-password\"") && html.contains("data-copy=\"db-url\""), "{html}");

    // A forged admin action by the member, with their own valid session and token, is refused.
    let (status, _, html) = member.post(&db_path, &[("action", "delete"), ("delete_confirm", "cache")]).await;
    assert_eq!(status, 403);
    let t = page_text(&html);
    assert!(t.contains("Not allowed") && t.contains("needs the admin role"), "{t}");

    // Stop and start; attach to a project as a secret variable (a bad variable name errs next to its field).
    let buttons = |html: &str| {
        ["Start", "Stop", "Restart"]
            .into_iter()
            .filter(|b| html.contains(&format!(">{b}</button>")))
            .collect::<Vec<_>>()
    };
    let (_, html) = admin.get(&db_path).await;
    assert_eq!(buttons(&html), ["Stop", "Restart"], "a running database can be stopped or restarted");
    let (_, html) = admin.post_ok(&db_path, &[("action", "stop")]).await;
    assert!(page_text(&html).contains("cache is stopped."), "{}", page_text(&html));
    assert_eq!(buttons(&html), ["Start"], "a stopped database can only be started");
    let (_, html) = admin.get("/w/acme/databases").await;
    assert!(page_text(&html).contains("cache redis 7 stopped"), "{}", page_text(&html));
    let (_, html) = admin.post_ok(&db_path, &[("action", "start")]).await;
    assert!(page_text(&html).contains("cache is running."), "{}", page_text(&html));
    assert_eq!(buttons(&html), ["Stop", "Restart"]);
    env.post("/api/workspaces/acme/projects", &owner_key, serde_json::json!({"name": "app"})).await.expect(201);
    let attach = |key| [("action", "attach"), ("project", "app"), ("env_key", key)];
    let (status, _, html) = admin.post(&db_path, &attach("1BAD")).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"env_key-error\""), "{}", page_text(&html));
    let (_, html) = admin.post_ok(&db_path, &attach("")).await;
    assert!(page_text(&html).contains("REDIS_URL of app created."), "{}", page_text(&html));
    let (_, html) = admin.get("/w/acme/p/app/env").await;
    assert!(page_text(&html).contains("REDIS_URL secret"), "{}", page_text(&html));

    // Back up now: listed running, then succeeded with its size and checksum.
    let (_, html) = member.post_ok(&db_path, &[("action", "backup")]).await;
    assert!(page_text(&html).contains("Backup started."));
    let started = std::time::Instant::now();
    let backup = loop {
        let r = env.get(&format!("/api/workspaces/acme/databases/{id}/backups"), &owner_key).await.expect(200);
        let b = r.data()["backups"][0].clone();
        if b["status"] != "running" {
            break b;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the backup did not finish: {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(backup["status"], "succeeded", "{backup}");
    let (bid, size) = (backup["id"].as_str().unwrap().to_owned(), backup["size_bytes"].as_u64().unwrap());
    let sha = backup["sha256"].as_str().unwrap();
    let (_, html) = admin.get(&db_path).await;
    let t = page_text(&html);
    assert!(t.contains("succeeded manual"), "{t}");
    assert!(html.contains(&format!("title=\"{size} bytes\"")) && html.contains(&format!("title=\"{sha}\"")), "{html}");
    assert!(t.contains(&sha[..12]), "{t}");
    let (_, html) = admin.get("/w/acme/databases").await;
    assert!(page_text(&html).contains("running succeeded 20"), "the list shows the last backup");

    // The schedule: a wrong expression next to its field, then saved.
    let (status, _, html) =
        admin.post(&db_path, &[("action", "schedule"), ("cron", "every night"), ("retain", "3")]).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"cron-error\""), "{}", page_text(&html));
    assert!(page_text(&html).contains("is not a cron expression"), "{}", page_text(&html));
    let (_, html) = admin.post_ok(&db_path, &[("action", "schedule"), ("cron", "0 3 * * *"), ("retain", "3")]).await;
    let t = page_text(&html);
    assert!(t.contains("Backups scheduled at 0 3 * * * (UTC), keeping 3.") && t.contains("next at"), "{t}");

    // Restore: a wrong name is refused next to the field; the right one restores (after a safety backup).
    let restore = [("action", "restore"), ("backup", bid.as_str()), ("restore_confirm", "cash")];
    let (status, _, html) = admin.post(&db_path, &restore).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"restore_confirm-error\""), "{}", page_text(&html));
    let restore = [("action", "restore"), ("backup", bid.as_str()), ("restore_confirm", "cache")];
    let (_, html) = admin.post_ok(&db_path, &restore).await;
    let t = page_text(&html);
    assert!(t.contains(&format!("Restored backup {bid} into cache.")) && t.contains("pre_restore"), "{t}");
    // Into a new database by name: its own page.
    let restore = [("action", "restore"), ("backup", bid.as_str()), ("into", "cache-copy")];
    let (to, html) = admin.post_ok(&db_path, &restore).await;
    assert!(!to.starts_with(&db_path), "{to}");
    assert!(page_text(&html).contains(&format!("Restored backup {bid} into cache-copy.")), "{}", page_text(&html));
    database_screenshots(&env, &db_path).await;

    // The download (admin only) is the gzip file.
    let download = format!("{db_path}/backups/{bid}/download");
    assert!(admin.get(&db_path).await.1.contains(&format!("href=\"{download}\"")));
    assert!(!member.get(&db_path).await.1.contains("/download"));
    let r = env.http.get(format!("{}{download}", env.base)).header("cookie", &admin.cookie).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/gzip");
    let bytes = r.bytes().await.unwrap();
    assert_eq!((bytes.len() as u64, &bytes[..2]), (size, &[0x1f, 0x8b][..]));
    assert_eq!(member.get(&download).await.0, 403);

    // Delete: a wrong name next to the field, then the right one with the volume purged.
    let (status, _, html) = admin.post(&db_path, &[("action", "delete"), ("delete_confirm", "cach")]).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"delete_confirm-error\""), "{}", page_text(&html));
    let delete = [("action", "delete"), ("delete_confirm", "cache"), ("purge", "on")];
    let (to, html) = admin.post_ok(&db_path, &delete).await;
    assert!(to.starts_with("/w/acme/databases?"), "{to}");
    let t = page_text(&html);
    assert!(t.contains("Database deleted with its volume and backups.") && t.contains("cache-copy"), "{t}");
    assert!(!t.contains("cache redis"), "{t}");
    assert_eq!(admin.get(&db_path).await.0, 404);
}

/// With `BERTH_SCREENSHOTS` set: the databases list, a database's connection details and its backups and schedule,
/// as the admin sees them in Chromium (the rest of the test walks these pages over plain HTTP).
async fn database_screenshots(env: &TestEnv, db_path: &str) {
    if std::env::var("BERTH_SCREENSHOTS").is_err() {
        return;
    }
    let b = Browser::start().await;
    b.goto(&format!("{}/login", env.base)).await;
    b.fill("#email", "ops@acme.io").await;
    b.fill("#password", "password123").await;
    b.click("button[type=submit]").await;
    b.wait_text("Projects", Duration::from_secs(10)).await;
    b.goto(&format!("{}/w/acme/databases", env.base)).await;
    b.wait_text("cache-copy", Duration::from_secs(10)).await;
    b.screenshot("databases").await;
    b.goto(&format!("{}{db_path}", env.base)).await;
    b.wait_text("Connection string", Duration::from_secs(10)).await;
    let panel = |heading: &str| {
        format!(
            "[...document.querySelectorAll('section.panel')].find(s => s.querySelector('h2').textContent == '{heading}')"
        )
    };
    b.screenshot_span("database", "null", &panel("Connection")).await;
    b.screenshot_span("database-backups", &panel("Backups"), &panel("Schedule")).await;
}

#[tokio::test]
async fn deleting_a_project_from_its_settings_names_the_volumes_it_keeps() {
    let (env, owner_key, _cleanup) = crate::databases::setup().await;
    let admin = Person::sign_in(&env, "ops@acme.io").await;
    let r =
        env.post("/api/workspaces/acme/projects", &owner_key, serde_json::json!({"name": "keep"})).await.expect(201);
    let id = r.data()["id"].as_str().unwrap().to_owned();
    // The volume a deploy makes for a configured volume: named after the project, labelled with it.
    let volume = format!("berth-{id}-data");
    let ws_id = env.get("/api/workspaces/acme", &owner_key).await.data()["id"].as_str().unwrap().to_owned();
    let made = sh(
        std::path::Path::new("/"),
        "docker",
        &[
            "volume",
            "create",
            "--label",
            "berth.managed=true",
            "--label",
            &format!("berth.workspace={ws_id}"),
            "--label",
            &format!("berth.project={id}"),
            &volume,
        ],
    );
    assert_eq!(made.trim(), volume);

    let (to, html) = admin.post_ok("/w/acme/p/keep/settings", &[("section", "delete"), ("confirm", "keep")]).await;
    assert!(to.starts_with("/w/acme?"), "{to}");
    let t = page_text(&html);
    assert!(t.contains(&format!("Deleted keep. Its volumes are kept with their data: {volume}")), "{t}");
    env.get("/api/workspaces/acme/projects/keep", &owner_key).await.expect(404);
    let listed =
        sh(std::path::Path::new("/"), "docker", &["volume", "ls", "-q", "--filter", &format!("name={volume}")]);
    assert_eq!(listed.trim(), volume, "the volume is still there");
    sh(std::path::Path::new("/"), "docker", &["volume", "rm", &volume]);

    // A project with no volume says only that it is gone.
    env.post("/api/workspaces/acme/projects", &owner_key, serde_json::json!({"name": "bare"})).await.expect(201);
    let (_, html) = admin.post_ok("/w/acme/p/bare/settings", &[("section", "delete"), ("confirm", "bare")]).await;
    let t = page_text(&html);
    assert!(t.contains("Deleted bare.") && !t.contains("volumes are kept"), "{t}");
}
