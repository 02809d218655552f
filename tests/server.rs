//! `/server/*`, `/metrics`, request ids.

mod common;

use common::spawn_app;
use reqwest::Method;

#[actix_web::test]
async fn ping_answers_pong() {
    let app = spawn_app().await;
    let res = app.send(Method::GET, "/server/ping", None, None).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.text, "pong");
    app.stop().await;
}

#[actix_web::test]
async fn health_shows_status_to_everyone_and_checks_to_admins() {
    let app = spawn_app().await;
    let public = app.send(Method::GET, "/server/health", None, None).await;
    assert_eq!(public.status, 200);
    assert!(
        public.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/health+json")
    );
    assert_eq!(public.json(), serde_json::json!({"status": "ok"}));

    let admin = app.get("/server/health").await.json();
    assert_eq!(admin["status"], "ok");
    assert_eq!(admin["releaseId"], env!("CARGO_PKG_VERSION"));
    assert!(admin["serviceId"].is_string());
    let response_time = &admin["checks"]["pg:responseTime"][0];
    assert_eq!(response_time["componentType"], "datastore");
    assert_eq!(response_time["observedUnit"], "ms");
    assert!(response_time["observedValue"].as_f64().unwrap() >= 0.0);
    assert!(admin["checks"]["pg:connectionsAvailable"][0]["observedValue"].is_u64());
    app.stop().await;
}

#[actix_web::test]
async fn health_reports_error_when_the_database_is_gone() {
    let database = common::fresh_database().await;
    let app = common::spawn_app_with(common::test_config(&database)).await;
    // Kill the app's connections and forbid new ones, as an outage would.
    common::cluster_sql(&format!(
        "alter database {database} allow_connections false; \
         select pg_terminate_backend(pid) from pg_stat_activity where datname = '{database}'"
    ))
    .await;
    let res = app.send(Method::GET, "/server/health", None, None).await;
    assert_eq!(res.status, 503, "{}", res.text);
    assert_eq!(res.json()["status"], "error");
    app.stop().await;
}

#[actix_web::test]
async fn connections_killed_while_idle_are_replaced_without_a_failed_request() {
    let app = spawn_app().await;
    app.sql(
        "create table notes (id serial primary key, body text); insert into notes (body) values ('kept')",
    )
    .await;
    app.post("/collections", serde_json::json!({"collection": "notes"}))
        .await;
    assert_eq!(app.get("/items/notes/1").await.status, 200);
    // Every pooled connection dies (a Postgres restart or an idle timeout does this); the pool
    // must notice on the next acquire instead of failing the request that draws one.
    common::cluster_sql(&format!(
        "select pg_terminate_backend(pid) from pg_stat_activity          where datname = '{}' and application_name = 'directrix' and backend_type = 'client backend'",
        app.database
    ))
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    for _ in 0..3 {
        let res = app.get("/items/notes/1").await;
        assert_eq!(res.status, 200, "{}", res.text);
        assert_eq!(res.data()["body"], "kept");
    }
    app.stop().await;
}

#[actix_web::test]
async fn info_shows_the_project_and_admin_details() {
    let app = spawn_app().await;
    let public = app.send(Method::GET, "/server/info", None, None).await.data();
    assert_eq!(public["project"]["project_name"], "Directrix");
    assert!(
        public.get("version").is_none(),
        "the version is for signed-in users only"
    );
    assert_eq!(public["setupCompleted"], true);
    let admin = app.get("/server/info").await.data();
    assert_eq!(admin["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        admin["directrix"]["database"]["version"]
            .as_str()
            .unwrap()
            .starts_with(char::is_numeric)
    );
    assert_eq!(admin["queryLimit"]["default"], 100);
    app.stop().await;
}

#[actix_web::test]
async fn metrics_count_requests_by_route_pattern() {
    let app = spawn_app().await;
    app.get("/collections/anything").await;
    app.get("/collections/else").await;
    let metrics = app.send(Method::GET, "/metrics", None, None).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.text.contains(
            r#"directrix_http_requests_total{method="GET",route="/collections/{collection}",status="403"} 2"#
        ),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains("directrix_http_request_duration_seconds_bucket")
    );
    assert!(
        !metrics.text.contains("anything"),
        "raw paths never become labels"
    );
    app.stop().await;
}

#[actix_web::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let res = app.get("/server/ping").await;
    let id = res.headers["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36);
    let res = app
        .client
        .get(format!("{}/nope", app.base))
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-123");
    app.stop().await;
}

#[actix_web::test]
async fn a_revoked_static_token_stops_working_at_once() {
    let app = spawn_app().await;
    assert_eq!(
        app.get("/collections").await.status,
        200,
        "the token works and is now cached"
    );
    // Revoked from outside the API, as an operator would in psql.
    app.sql("update directrix.users set token = null").await;
    app.eventually("the cached token to be dropped", || async {
        app.get("/collections").await.status == 401
    })
    .await;
    app.stop().await;
}
