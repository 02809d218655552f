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
    // Realtime is off in this app and no limiter is on.
    assert_eq!(admin["websocket"], false);
    assert_eq!(admin["rateLimit"], false);
    app.stop().await;

    // What is configured is what is reported.
    let mut config = common::test_config(&common::fresh_database().await);
    config.realtime.enabled = true;
    config.realtime.slot = Some(format!("info_{}", uuid::Uuid::new_v4().simple()));
    config.rate_limits.per_ip.enabled = true;
    config.rate_limits.per_ip.points = 70;
    config.query.max_limit = Some(500);
    let slot = config.realtime.slot.clone().unwrap();
    let app = common::spawn_app_with(config).await;
    let info = app.get("/server/info").await.data();
    assert_eq!(
        info["rateLimit"],
        serde_json::json!({"points": 70, "duration": 1})
    );
    assert_eq!(info["rateLimitGlobal"], false);
    assert_eq!(
        info["queryLimit"],
        serde_json::json!({"default": 100, "max": 500})
    );
    assert_eq!(
        info["websocket"],
        serde_json::json!({"rest": {"authentication": "handshake", "path": "/websocket"},
            "graphql": false, "heartbeat": 30, "collaborativeEditing": true, "logs": false})
    );
    let database = app.database.clone();
    app.stop().await;
    let pool = sqlx::PgPool::connect(&common::database_url(&database))
        .await
        .unwrap();
    // Slots are cluster-wide and pin WAL: this one goes with the test, once the stopped
    // server's walsender has let go of it (that takes a moment after the stop returns).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let active: Option<bool> =
            sqlx::query_scalar("select active from pg_replication_slots where slot_name = $1")
                .bind(&slot)
                .fetch_optional(&pool)
                .await
                .unwrap();
        if active != Some(true) || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    directrix::db::replication::drop_slot(&pool, &slot).await.unwrap();
    pool.close().await;
}

#[actix_web::test]
async fn metrics_count_requests_by_route_pattern() {
    let app = spawn_app().await;
    app.get("/collections/anything").await;
    app.get("/collections/else").await;
    let metrics = app.get("/metrics").await;
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

#[actix_web::test]
async fn metrics_need_an_admin_or_a_metrics_token() {
    let mut config = common::test_config(&common::fresh_database().await);
    config.http.metrics.tokens = vec!["scraper-secret".to_string().into()];
    let app = common::spawn_app_with(config).await;
    let as_public = app.send(Method::GET, "/metrics", None, None).await;
    as_public.assert_error(403, "FORBIDDEN");
    assert!(!as_public.text.contains("directrix_"), "nothing leaks");
    let scrape = |auth: &'static str| {
        let req = app
            .client
            .get(format!("{}/metrics", app.base))
            .header("authorization", auth);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(scrape("Metrics scraper-secret").await, 200);
    assert_eq!(scrape("metrics scraper-secret").await, 200);
    assert_eq!(scrape("Metrics scraper-secreT").await, 403);
    assert_eq!(scrape("Bearer scraper-secret").await, 401);
    assert_eq!(app.get("/metrics").await.status, 200, "admins may read");
    app.stop().await;

    // Explicitly opened, or switched off.
    let mut config = common::test_config(&common::fresh_database().await);
    config.http.metrics.public = true;
    let app = common::spawn_app_with(config).await;
    assert_eq!(app.send(Method::GET, "/metrics", None, None).await.status, 200);
    app.stop().await;
    let mut config = common::test_config(&common::fresh_database().await);
    config.http.metrics.enabled = false;
    let app = common::spawn_app_with(config).await;
    app.get("/metrics").await.assert_error(404, "ROUTE_NOT_FOUND");
    app.stop().await;
}

#[actix_web::test]
async fn every_response_carries_security_headers() {
    let app = spawn_app().await;
    for reply in [
        app.get("/server/ping").await,
        app.get("/items/nothing").await,
        app.get("/no/such/route").await,
        app.send(Method::GET, "/users/me", None, Some("bad-token")).await,
    ] {
        let h = &reply.headers;
        assert_eq!(h["x-content-type-options"], "nosniff", "{:?}", reply);
        assert_eq!(h["referrer-policy"], "no-referrer");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
        assert!(
            h.get("access-control-allow-origin").is_none(),
            "CORS is off by default"
        );
    }
    // CORS off: a preflight is not answered as one.
    let preflight = app
        .client
        .request(Method::OPTIONS, format!("{}/items/x", app.base))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(preflight.headers().get("access-control-allow-origin").is_none());
    app.stop().await;
}

#[actix_web::test]
async fn cors_answers_allowed_origins_only() {
    let mut config = common::test_config(&common::fresh_database().await);
    config.http.cors.enabled = true;
    config.http.cors.origin = directrix::config::http::parse_origin(
        "https://app.example,regex:^https://[a-z]+\\.tenant\\.example$",
    )
    .unwrap();
    let app = common::spawn_app_with(config).await;
    let preflight = |origin: &'static str| {
        let req = app
            .client
            .request(Method::OPTIONS, format!("{}/items/articles", app.base))
            .header("origin", origin)
            .header("access-control-request-method", "PATCH")
            .header("access-control-request-headers", "content-type,authorization");
        async move { req.send().await.unwrap() }
    };
    let ok = preflight("https://app.example").await;
    assert_eq!(ok.status(), 204);
    let h = ok.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-allow-methods"], "GET,POST,PATCH,DELETE");
    assert_eq!(h["access-control-allow-headers"], "Content-Type,Authorization");
    assert_eq!(h["access-control-max-age"], "18000");
    let pattern = preflight("https://acme.tenant.example").await;
    assert_eq!(
        pattern.headers()["access-control-allow-origin"],
        "https://acme.tenant.example"
    );
    let refused = preflight("https://evil.example").await;
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    // An actual request: the origin echoed, `Vary: Origin`, exposed headers.
    let res = app
        .client
        .get(format!("{}/server/ping", app.base))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(res.headers()["vary"], "Origin");
    assert_eq!(res.headers()["access-control-expose-headers"], "Content-Range");
    let res = app
        .client
        .get(format!("{}/server/ping", app.base))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    app.stop().await;
}
