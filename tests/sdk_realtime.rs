//! The official `@directus/sdk`'s `realtime()` (npm, run by Node, with the `ws` package as its
//! WebSocket) against a running Directrix with realtime on: handshake auth with a static token,
//! a subscription to `articles`, and create/update/delete through REST arriving as init,
//! create, update and delete. The script is `clients/sdk-check/realtime.mjs`;
//! `scripts/test.sh` installs its dependencies.

mod common;
#[path = "common/realtime.rs"]
mod realtime;

use std::path::Path;
use std::process::Command;

use serde_json::json;

#[actix_web::test]
async fn the_directus_sdk_realtime_client_works_against_directrix() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/sdk-check");
    assert!(
        dir.join("node_modules/@directus/sdk").exists() && dir.join("node_modules/ws").exists(),
        "run `npm ci --prefix clients/sdk-check` first (scripts/test.sh does)"
    );
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

    let base = rt.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("realtime.mjs")
            .arg(base)
            .arg(common::ADMIN_TOKEN)
            .current_dir(dir)
            .output()
    })
    .await
    .expect("join")
    .expect("node runs (install Node.js: scripts/install-deps.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    rt.finish().await;
    assert!(
        out.status.success(),
        "sdk realtime check failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("sdk realtime check passed"), "{stdout}");
}
