//! The official `@directus/sdk` (npm, run by Node) against a running Directrix: CRUD, batch,
//! filters, relational fields, aggregate, meta and errors with a static token; login, refresh
//! and logout in json mode; and a non-admin user with a role, a policy and a narrowed read
//! permission, all created through the SDK. The script is
//! `clients/sdk-check/check.mjs`; `scripts/test.sh` installs its dependencies. The SDK's
//! `realtime()` client (handshake auth with a static token, the `ws` package as its WebSocket)
//! runs `clients/sdk-check/realtime.mjs` against a server with realtime on: a subscription to
//! `articles` must yield init, then create, update and delete with the rows REST writes made.

mod common;
#[path = "common/realtime.rs"]
mod realtime;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

#[actix_web::test]
async fn the_directus_sdk_works_against_directrix_unchanged() {
    let dir = check_dir(&["@directus/sdk"]);
    let app = common::spawn_app().await;
    app.post(
        "/collections",
        json!({"collection": "authors", "schema": {},
               "fields": [{"field": "id", "type": "integer", "schema": {"is_primary_key": true, "has_auto_increment": true}},
                          {"field": "name", "type": "string", "schema": {"is_nullable": false}}]}),
    )
    .await
    .data();
    app.post(
        "/collections",
        json!({"collection": "articles", "schema": {},
               "fields": [{"field": "id", "type": "integer", "schema": {"is_primary_key": true, "has_auto_increment": true}},
                          {"field": "title", "type": "string", "schema": {"is_nullable": false}},
                          {"field": "status", "type": "string", "schema": {"default_value": "draft", "is_nullable": false}},
                          {"field": "views", "type": "integer"},
                          {"field": "author", "type": "integer"}]}),
    )
    .await
    .data();
    app.post(
        "/fields/authors",
        json!({"field": "articles", "type": "alias", "meta": {"special": ["o2m"]}}),
    )
    .await
    .data();
    app.post(
        "/relations",
        json!({"collection": "articles", "field": "author", "related_collection": "authors",
               "meta": {"one_field": "articles"}}),
    )
    .await
    .data();

    let env = [
        ("ADMIN_EMAIL", common::ADMIN_EMAIL),
        ("ADMIN_PASSWORD", common::ADMIN_PASSWORD),
    ];
    let outcome = run_check(dir, "check.mjs", app.base.clone(), &env, "sdk check passed").await;
    app.stop().await;
    outcome.unwrap_or_else(|failure| panic!("{failure}"));
}

#[actix_web::test]
async fn the_directus_sdk_realtime_client_works_against_directrix() {
    let dir = check_dir(&["@directus/sdk", "ws"]);
    let rt = realtime::spawn(|_| {}).await;
    rt.post(
        "/collections",
        json!({"collection": "articles", "schema": {},
               "fields": [{"field": "id", "type": "integer", "schema": {"is_primary_key": true, "has_auto_increment": true}},
                          {"field": "title", "type": "string", "schema": {"is_nullable": false}},
                          {"field": "status", "type": "string", "schema": {"default_value": "draft", "is_nullable": false}},
                          {"field": "views", "type": "integer"}]}),
    )
    .await
    .data();

    let outcome = run_check(
        dir,
        "realtime.mjs",
        rt.base.clone(),
        &[],
        "sdk realtime check passed",
    )
    .await;
    rt.finish().await;
    outcome.unwrap_or_else(|failure| panic!("{failure}"));
}

/// `clients/sdk-check`, once the npm packages `modules` are installed there.
fn check_dir(modules: &[&str]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/sdk-check");
    assert!(
        modules.iter().all(|m| dir.join("node_modules").join(m).exists()),
        "run `npm ci --prefix clients/sdk-check` first (scripts/test.sh does)"
    );
    dir
}

/// Runs `script` in `dir` with Node against `base` and the admin token; what it printed unless
/// it exited cleanly and said `passed`. The caller stops its server before judging.
async fn run_check(
    dir: PathBuf,
    script: &'static str,
    base: String,
    env: &[(&'static str, &'static str)],
    passed: &'static str,
) -> Result<(), String> {
    let env = env.to_vec();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(base)
            .arg(common::ADMIN_TOKEN)
            .envs(env)
            .current_dir(dir)
            .output()
    })
    .await
    .map_err(|e| format!("{script}: {e}"))?
    .map_err(|e| format!("node runs (install Node.js: scripts/install-deps.sh): {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() && stdout.contains(passed) {
        Ok(())
    } else {
        Err(format!("{script} failed ({}):\n{stdout}\n{stderr}", out.status))
    }
}
