//! Projects and environments: defaults, validation with clear messages, pagination, roles, isolation.

use crate::support::{Cred, TestEnv};
use serde_json::json;

#[tokio::test]
async fn projects_are_created_listed_changed_and_deleted() {
    let env = TestEnv::start().await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;

    let r = env.post("/api/workspaces/acme/projects", &owner, json!({"name": "My App"})).await.expect(201);
    let p = r.data();
    assert_eq!(p["slug"], json!("my-app"));
    assert_eq!(p["status"], json!("pending"));
    assert_eq!((p["port"].clone(), p["replicas"].clone()), (json!(3000), json!(1)));
    assert_eq!((p["cpu"].clone(), p["ram"].clone()), (json!("0.5"), json!("0.5")));
    assert_eq!(p["url"], json!("http://my-app.acme.localhost"));
    assert_eq!(p["build"]["builder"], json!("auto"));
    assert_eq!(p["volumes"], json!([]));

    let r = env
        .post(
            "/api/workspaces/acme/projects",
            &owner,
            json!({"name": "API", "slug": "api", "port": 8080, "replicas": 2, "cpu": 1, "ram": "0.25",
                   "build": {"builder": "dockerfile", "root_directory": "./services/api/", "dockerfile_path": "Dockerfile.prod"},
                   "runtime": {"health_check_path": "/healthz"},
                   "volumes": [{"name": "data", "mount_path": "/var/lib/data/"}]}),
        )
        .await
        .expect(201);
    let p = r.data();
    assert_eq!((p["cpu"].clone(), p["ram"].clone()), (json!("1"), json!("0.25")));
    assert_eq!(p["build"]["root_directory"], json!("services/api"));
    assert_eq!(p["volumes"], json!([{"name": "data", "mount_path": "/var/lib/data"}]));
    assert_eq!(p["runtime"]["health_check_path"], json!("/healthz"));

    let r = env
        .post("/api/workspaces/acme/projects", &owner, json!({"name": "web", "image": "nginx:1.27"}))
        .await
        .expect(201);
    assert_eq!(r.data()["build"]["builder"], json!("image"), "an image alone means: run this image");

    let r =
        env.post("/api/workspaces/acme/projects", &owner, json!({"name": "Other", "slug": "api"})).await.expect(409);
    assert_eq!(r.code(), "slug_taken");

    let r = env.get("/api/workspaces/acme/projects?limit=2", &owner).await.expect(200);
    assert_eq!((r.data()["total"].clone(), r.data()["projects"].as_array().unwrap().len()), (json!(3), 2));
    let r = env.get("/api/workspaces/acme/projects?limit=2&page=2", &owner).await.expect(200);
    assert_eq!(r.data()["projects"][0]["slug"], json!("web"));

    let r = env
        .patch(
            "/api/workspaces/acme/projects/api",
            &owner,
            json!({"replicas": 3, "build": {"install_command": "npm ci", "dockerfile_path": ""},
                   "runtime": {"health_check_path": ""}, "volumes": []}),
        )
        .await
        .expect(200);
    let p = r.data();
    assert_eq!(p["replicas"], json!(3));
    assert_eq!(p["build"]["builder"], json!("dockerfile"), "absent fields stay");
    assert_eq!(p["build"]["install_command"], json!("npm ci"));
    assert_eq!(p["build"]["dockerfile_path"], json!(null), "empty clears");
    assert_eq!(p["runtime"]["health_check_path"], json!(null));
    assert_eq!(p["volumes"], json!([]));
    env.patch("/api/workspaces/acme/projects/api", &owner, json!({"slug": "my-app"})).await.expect(409);
    let r = env.patch("/api/workspaces/acme/projects/api", &owner, json!({"slug": "api-v2"})).await.expect(200);
    assert_eq!(r.data()["url"], json!("http://api-v2.acme.localhost"));
    env.get("/api/workspaces/acme/projects/api", &owner).await.expect(404);

    env.delete("/api/workspaces/acme/projects/api-v2", &owner).await.expect(200);
    env.get("/api/workspaces/acme/projects/api-v2", &owner).await.expect(404);
    env.delete("/api/workspaces/acme/projects/api-v2", &owner).await.expect(404);

    let audit = env.get("/api/workspaces/acme/audit?limit=50", &owner).await.expect(200);
    let actions: Vec<&str> =
        audit.data()["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for a in ["project.create", "project.update", "project.delete"] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
}

#[tokio::test]
async fn bad_project_input_is_refused_with_the_field_named() {
    let env = TestEnv::start_with(|c| c.max_replicas = 5).await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    let cases = [
        (json!({"name": "a", "port": 0}), "port"),
        (json!({"name": "a", "port": 70000}), "port"),
        (json!({"name": "a", "replicas": 6}), "replicas"),
        (json!({"name": "a", "cpu": "0.05"}), "cpu"),
        (json!({"name": "a", "cpu": "4096"}), "cpu"),
        (json!({"name": "a", "cpu": "lots"}), "cpu"),
        (json!({"name": "a", "ram": "0.01"}), "ram"),
        (json!({"name": "a", "ram": "100000"}), "ram"),
        (json!({"name": "a", "slug": "Bad Slug"}), "slug"),
        (json!({"name": "a", "slug": "detect"}), "slug"),
        (json!({"name": "!!!"}), "slug"),
        (json!({}), "name"),
        (json!({"name": "a", "volumes": [{"name": "data", "mount_path": "data"}]}), "volumes.mount_path"),
        (
            json!({"name": "a", "volumes": [{"name": "d1", "mount_path": "/x"}, {"name": "d2", "mount_path": "/x/"}]}),
            "volumes.mount_path",
        ),
        (json!({"name": "a", "volumes": [{"name": "Bad Name", "mount_path": "/x"}]}), "volumes.name"),
        (json!({"name": "a", "volumes": [{"name": "d", "mount_path": "/x/../etc"}]}), "volumes.mount_path"),
        (json!({"name": "a", "build": {"root_directory": "../up"}}), "build.root_directory"),
        (json!({"name": "a", "build": {"builder": "image"}}), "image"),
        (json!({"name": "a", "build": {"builder": "magic"}}), "build.builder"),
        (json!({"name": "a", "runtime": {"health_check_path": "healthz"}}), "runtime.health_check_path"),
        (json!({"name": "a", "image": "Not An Image"}), "image"),
        (json!({"name": "a", "colour": "red"}), "colour"),
        (json!({"name": "a", "template_name": "goclaw"}), "template_name"),
    ];
    for (body, field) in cases {
        let r = env.post("/api/workspaces/acme/projects", &owner, body.clone()).await.expect(400);
        assert!(r.error().contains(field), "{body}: error should name {field}: {}", r.error());
    }
    let r = env.get("/api/workspaces/acme/projects", &owner).await.expect(200);
    assert_eq!(r.data()["total"], json!(0), "nothing was stored");
    env.post("/api/workspaces/acme/projects", &owner, json!({"name": "ok", "replicas": 0})).await.expect(201);
    let r = env.patch("/api/workspaces/acme/projects/ok", &owner, json!({"port": 0})).await.expect(400);
    assert!(r.error().starts_with("port"), "{}", r.error());
    assert_eq!(env.get("/api/workspaces/acme/projects/ok", &owner).await.data()["port"], json!(3000));
}

#[tokio::test]
async fn members_read_admins_write_and_other_workspaces_see_nothing() {
    let env = TestEnv::start().await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    let (_, stranger) = env.user_with_key("eve@evil.io", "evil").await;
    let member = env.key_with_role(&owner, "acme", "member").await;
    let admin = env.key_with_role(&owner, "acme", "admin").await;

    env.post("/api/workspaces/acme/projects", &member, json!({"name": "app"})).await.expect(403);
    env.post("/api/workspaces/acme/projects", &admin, json!({"name": "app"})).await.expect(201);
    env.get("/api/workspaces/acme/projects/app", &member).await.expect(200);
    env.get("/api/workspaces/acme/projects", &member).await.expect(200);
    env.patch("/api/workspaces/acme/projects/app", &member, json!({"port": 1})).await.expect(403);
    env.delete("/api/workspaces/acme/projects/app", &member).await.expect(403);

    for r in [
        env.get("/api/workspaces/acme/projects", &stranger).await,
        env.get("/api/workspaces/acme/projects/app", &stranger).await,
        env.patch("/api/workspaces/acme/projects/app", &stranger, json!({"port": 1})).await,
        env.delete("/api/workspaces/acme/projects/app", &stranger).await,
        env.get("/api/workspaces/acme/projects/app/environments", &stranger).await,
        env.get("/api/workspaces/acme/projects/app/env", &stranger).await,
        env.get("/api/workspaces/acme/variables", &stranger).await,
        env.get("/api/workspaces/acme/projects/app/git", &stranger).await,
    ] {
        r.expect(404);
    }
    env.get("/api/workspaces/acme/projects", &Cred::None).await.expect(401);
}

#[tokio::test]
async fn environments_have_production_always_and_their_own_branches() {
    let env = TestEnv::start().await;
    let (_, owner) = env.user_with_key("ops@acme.io", "acme").await;
    env.post("/api/workspaces/acme/projects", &owner, json!({"name": "app"})).await.expect(201);
    let base = "/api/workspaces/acme/projects/app/environments";

    let r = env.get(base, &owner).await.expect(200);
    assert_eq!(r.data()["environments"][0]["name"], json!("production"));
    let r = env.post(base, &owner, json!({"name": "staging", "branch": "develop"})).await.expect(201);
    assert_eq!(r.data()["branch"], json!("develop"));
    env.post(base, &owner, json!({"name": "staging"})).await.expect(409);
    env.post(base, &owner, json!({"name": "Not Valid"})).await.expect(400);
    env.post(base, &owner, json!({"name": "qa", "branch": "bad..branch"})).await.expect(400);
    let r = env.patch(&format!("{base}/staging"), &owner, json!({"branch": "release"})).await.expect(200);
    assert_eq!(r.data()["branch"], json!("release"));
    let r = env.delete(&format!("{base}/production"), &owner).await.expect(409);
    assert!(r.error().contains("production"), "{}", r.error());
    let names: Vec<String> = env.get(base, &owner).await.data()["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["production", "staging"]);

    let r = env.get("/api/workspaces/acme/projects/app/env?environment=nope", &owner).await.expect(404);
    assert!(r.error().contains("production, staging"), "{}", r.error());
    env.delete(&format!("{base}/staging"), &owner).await.expect(200);
    env.delete(&format!("{base}/staging"), &owner).await.expect(404);
}
