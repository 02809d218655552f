//! PostgreSQL's own lifecycle under a live feed: a fast shutdown (`pg_ctl stop -m fast`, what
//! service managers send) completes although Directrix is streaming its slot, and the feed
//! resumes once PostgreSQL is back, with nothing lost. The cluster is private to this test,
//! since stopping it would stop every other test's database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/realtime.rs"]
mod realtime;

use std::time::Duration;

use directrix::config::{Config, DatabaseConfig};
use directrix::db::cluster::{Durability, ManagedCluster};
use serde_json::json;

async fn start_cluster(root: std::path::PathBuf) -> ManagedCluster {
    tokio::task::spawn_blocking(move || ManagedCluster::start(&root, Durability::Ephemeral))
        .await
        .unwrap()
        .expect("the private cluster starts")
}

#[actix_web::test]
async fn a_fast_shutdown_completes_under_a_live_feed_which_resumes_with_nothing_lost() {
    let root = tempfile::Builder::new()
        .prefix("directrix-restart-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .tempdir()
        .unwrap()
        .keep();
    common::hand_to_postgres(&root);
    let cluster = start_cluster(root.clone()).await;
    cluster
        .stop_when_process_exits(std::process::id(), &root)
        .unwrap();
    let url = format!(
        "postgres://postgres@localhost/postgres?host={}",
        cluster.pgdata().display()
    );
    let mut config = Config::for_database(DatabaseConfig::External { url: url.into() });
    config.port = 0;
    config.workers = Some(1);
    config.db_pool_max = 5;
    config.admin_token = Some(common::ADMIN_TOKEN.into());
    config.admin_password = Some(common::ADMIN_PASSWORD.into());
    config.realtime.enabled = true;
    config.realtime.status_interval = Duration::from_millis(100);
    let rt = realtime::start(config).await;
    // Through the API only: the harness's SQL helpers reach the shared test cluster.
    rt.post(
        "/collections",
        json!({"collection": "notes", "schema": {}, "fields": [{"field": "body", "type": "string"}]}),
    )
    .await
    .data();
    let insert = |body: &'static str| {
        let rt = &rt;
        async move { rt.post("/items/notes", json!({ "body": body })).await.data() }
    };
    let mut stream = realtime::sse(&rt, "collection=notes").await;
    stream.expect("init").await;
    insert("before").await;
    assert_eq!(stream.expect("create").await.ids(), [1]);
    // Written just before the stop: must not be lost whatever happens next.
    insert("last before the stop").await;

    // A fast shutdown completes (pg_ctl would give up after 60 s; a hang fails here first).
    let stopped = tokio::time::timeout(
        Duration::from_secs(45),
        tokio::task::spawn_blocking(move || cluster.stop()),
    )
    .await
    .expect("pg_ctl stop -m fast completes while Directrix is connected")
    .unwrap();
    stopped.expect("a clean fast shutdown");

    // Back up: the feed resumes by itself.
    let cluster = start_cluster(root.clone()).await;
    rt.wait_streaming().await;
    rt.eventually("the API serves again", || async {
        rt.post("/items/notes", json!({"body": "after"})).await.status == 200
    })
    .await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.extend(stream.expect("create").await.ids());
    }
    assert_eq!(seen, [2, 3], "nothing lost, nothing doubled");
    let realtime::Rt { app, .. } = rt;
    app.stop().await;
    tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .unwrap()
        .unwrap();
}
