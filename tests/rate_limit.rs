//! Rate limiting and overload shedding on a real server: the per-IP and global limiters
//! (`RATE_LIMITER_*`), which addresses they trust (`IP_TRUST_PROXY`, `IP_CUSTOM_HEADER`),
//! pressure shedding (`PRESSURE_LIMITER_*`), and the auth limiter's API for sign-in handlers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{ADMIN_TOKEN, Reply, TestApp, spawn_app, spawn_app_with};
use directrix::config::{Config, DatabaseConfig, LimiterConfig};
use directrix::error::Error;
use directrix::http::limits::Limits;
use tokio::io::AsyncWriteExt;

fn limiter(points: u32, seconds: u64) -> LimiterConfig {
    LimiterConfig {
        enabled: true,
        points,
        duration: Duration::from_secs(seconds),
    }
}

/// An app on a fresh database with `change` applied to its config.
async fn spawn_configured(change: impl FnOnce(&mut Config)) -> TestApp {
    let database = common::fresh_database().await;
    let mut config = common::test_config(&database);
    change(&mut config);
    spawn_app_with(config).await
}

/// `GET /server/info` (public, cheap), with extra headers.
async fn get_info(app: &TestApp, headers: &[(&str, &str)]) -> Reply {
    let mut req = app.client.get(format!("{}/server/info", app.base));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.expect("request sent");
    Reply {
        status: res.status(),
        headers: res.headers().clone(),
        text: res.text().await.expect("body read"),
    }
}

fn header_u64(reply: &Reply, name: &str) -> u64 {
    reply.headers[name]
        .to_str()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number: {:?}", reply.headers[name]))
}

#[actix_web::test]
async fn per_ip_limiter_answers_429_after_its_points_with_envelope_and_headers() {
    // Arrange
    let app = spawn_configured(|c| c.rate_limits.per_ip = limiter(3, 60)).await;

    // Act
    let mut allowed = Vec::new();
    for _ in 0..3 {
        allowed.push(get_info(&app, &[]).await);
    }
    let limited = get_info(&app, &[]).await;

    // Assert
    for (i, reply) in allowed.iter().enumerate() {
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(header_u64(reply, "ratelimit-limit"), 3);
        assert_eq!(header_u64(reply, "ratelimit-remaining"), 2 - i as u64);
        let reset = header_u64(reply, "ratelimit-reset");
        assert!((1..=60).contains(&reset), "reset {reset}");
    }
    limited.assert_error(429, "REQUESTS_EXCEEDED");
    // One point comes back every 20 s.
    let retry_after = header_u64(&limited, "retry-after");
    assert!((1..=20).contains(&retry_after), "retry-after {retry_after}");
    assert_eq!(
        limited.json()["errors"][0]["message"],
        format!("Too many requests, retry after {retry_after}s.")
    );
    assert_eq!(header_u64(&limited, "ratelimit-limit"), 3);
    assert_eq!(header_u64(&limited, "ratelimit-remaining"), 0);
    assert!(header_u64(&limited, "ratelimit-reset") >= retry_after);
    // Observed like any response.
    assert!(limited.headers.contains_key("x-request-id"));
    app.stop().await;
}

#[actix_web::test]
async fn per_ip_limiter_recovers_after_its_window() {
    let app = spawn_configured(|c| c.rate_limits.per_ip = limiter(1, 1)).await;
    assert_eq!(get_info(&app, &[]).await.status, 200);
    let limited = get_info(&app, &[]).await;
    limited.assert_error(429, "REQUESTS_EXCEEDED");
    assert_eq!(header_u64(&limited, "retry-after"), 1);

    // Waiting out the advertised window is the behaviour under test.
    tokio::time::sleep(Duration::from_secs(header_u64(&limited, "retry-after"))).await;

    let again = get_info(&app, &[]).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(header_u64(&again, "ratelimit-remaining"), 0);
    app.stop().await;
}

#[actix_web::test]
async fn global_limiter_counts_every_client_together() {
    let app = spawn_configured(|c| {
        c.rate_limits.global = limiter(2, 60);
        // Each request below then comes from a different client.
        c.client_ip.trust_proxy = true;
    })
    .await;
    let first = get_info(&app, &[("x-forwarded-for", "203.0.113.1")]).await;
    let second = get_info(&app, &[("x-forwarded-for", "203.0.113.2")]).await;
    let third = get_info(&app, &[("x-forwarded-for", "203.0.113.3")]).await;
    assert_eq!(first.status, 200);
    assert_eq!(header_u64(&first, "ratelimit-limit"), 2);
    assert_eq!(header_u64(&second, "ratelimit-remaining"), 0);
    third.assert_error(429, "REQUESTS_EXCEEDED");
    app.stop().await;
}

#[actix_web::test]
async fn headers_show_the_tighter_of_global_and_per_ip() {
    let app = spawn_configured(|c| {
        c.rate_limits.global = limiter(100, 60);
        c.rate_limits.per_ip = limiter(2, 60);
    })
    .await;
    let reply = get_info(&app, &[]).await;
    assert_eq!(header_u64(&reply, "ratelimit-limit"), 2);
    assert_eq!(header_u64(&reply, "ratelimit-remaining"), 1);
    app.stop().await;
}

#[actix_web::test]
async fn forwarded_for_cannot_dodge_the_limiter_unless_proxies_are_trusted() {
    let app = spawn_configured(|c| c.rate_limits.per_ip = limiter(2, 60)).await;
    let spoofed = ["198.51.100.1", "198.51.100.2", "198.51.100.3"];
    let mut statuses = Vec::new();
    for ip in spoofed {
        statuses.push(get_info(&app, &[("x-forwarded-for", ip)]).await.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
    app.stop().await;
}

#[actix_web::test]
async fn a_trusted_proxy_gives_each_forwarded_client_its_own_bucket() {
    let app = spawn_configured(|c| {
        c.rate_limits.per_ip = limiter(1, 60);
        c.client_ip.trust_proxy = true;
    })
    .await;
    let a = [("x-forwarded-for", "198.51.100.7, 10.0.0.1")];
    assert_eq!(get_info(&app, &a).await.status, 200);
    get_info(&app, &a).await.assert_error(429, "REQUESTS_EXCEEDED");
    let b = [("x-forwarded-for", "198.51.100.8, 10.0.0.1")];
    assert_eq!(get_info(&app, &b).await.status, 200);
    app.stop().await;
}

#[actix_web::test]
async fn a_configured_custom_header_names_the_client() {
    let app = spawn_configured(|c| {
        c.rate_limits.per_ip = limiter(1, 60);
        c.client_ip.custom_header = Some("CF-Connecting-IP".into());
    })
    .await;
    let a = [("cf-connecting-ip", "192.0.2.10")];
    assert_eq!(get_info(&app, &a).await.status, 200);
    get_info(&app, &a).await.assert_error(429, "REQUESTS_EXCEEDED");
    assert_eq!(
        get_info(&app, &[("cf-connecting-ip", "192.0.2.11")]).await.status,
        200
    );
    // Without a usable header value the socket address counts, and it has not been used yet.
    assert_eq!(get_info(&app, &[("cf-connecting-ip", "nope")]).await.status, 200);
    get_info(&app, &[]).await.assert_error(429, "REQUESTS_EXCEEDED");
    app.stop().await;
}

#[actix_web::test]
async fn disabled_limiters_add_no_headers() {
    let app = spawn_app().await;
    let reply = get_info(&app, &[]).await;
    assert_eq!(reply.status, 200);
    for name in [
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "retry-after",
    ] {
        assert!(!reply.headers.contains_key(name), "{name} present");
    }
    app.stop().await;
}

#[actix_web::test]
async fn requests_past_max_in_flight_get_503_while_health_and_ping_answer() {
    // Arrange: one worker (the harness default) that admits one request at a time.
    let app = spawn_configured(|c| {
        c.pressure.max_in_flight = 1;
        c.pressure.retry_after = Duration::from_secs(7);
    })
    .await;
    // A request that stays in flight: its handler waits for a body that never finishes.
    let port = app.base.rsplit(':').next().unwrap();
    let mut slow = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let head = format!(
        "POST /collections HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"collection\":"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.flush().await.unwrap();

    // Act: once the slow request is admitted, the next one is shed.
    app.eventually("the slow request holds the only slot", || async {
        get_info(&app, &[]).await.status == 503
    })
    .await;
    let shed = get_info(&app, &[]).await;

    // Assert
    shed.assert_error(503, "SERVICE_UNAVAILABLE");
    assert_eq!(header_u64(&shed, "retry-after"), 7);
    assert_eq!(
        shed.json()["errors"][0],
        serde_json::json!({"message": "Service \"api\" is unavailable. Under pressure.",
            "extensions": {"code": "SERVICE_UNAVAILABLE", "service": "api", "reason": "Under pressure"}})
    );
    let ping = app
        .client
        .get(format!("{}/server/ping", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 200);
    let health = app
        .client
        .get(format!("{}/server/health", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // Closing the slow request frees its slot.
    drop(slow);
    app.eventually("the slot is free again", || async {
        get_info(&app, &[]).await.status == 200
    })
    .await;
    app.stop().await;
}

/// `Limits` for the auth tests: only the auth limiter matters, no server needed.
fn auth_limits(points: u32) -> Limits {
    let mut config = Config::for_database(DatabaseConfig::External {
        url: "postgres://unused".into(),
    });
    config.rate_limits.auth = limiter(points, 60);
    Limits::new(&config)
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[actix_web::test]
async fn auth_limiter_trips_per_ip_across_many_emails() {
    let limits = auth_limits(3);
    let attacker = ip("203.0.113.9");
    for n in 0..3 {
        let email = format!("user{n}@example.com");
        let info = limits.check_auth(attacker, Some(&email)).await.unwrap().unwrap();
        // The IP bucket is the tighter one.
        assert_eq!(info.remaining, 2 - n);
    }
    let err = limits
        .check_auth(attacker, Some("user9@example.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::RequestsExceeded { retry_after_secs } if (1..=20).contains(&retry_after_secs))
    );
    // Routes without an email (refresh) are limited by the IP bucket too.
    assert!(limits.check_auth(attacker, None).await.is_err());
    // Other clients are not affected, and the attacker's last try did not touch user9's bucket.
    for _ in 0..3 {
        limits
            .check_auth(ip("198.51.100.1"), Some("user9@example.com"))
            .await
            .unwrap();
    }
}

#[actix_web::test]
async fn auth_limiter_trips_per_email_across_rotating_ips() {
    let limits = auth_limits(3);
    for n in 0..3 {
        let source = ip(&format!("198.51.100.{n}"));
        limits
            .check_auth(source, Some("victim@example.com"))
            .await
            .unwrap();
    }
    // Case and surrounding spaces do not make a new account.
    let err = limits
        .check_auth(ip("198.51.100.200"), Some("  Victim@Example.COM "))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RequestsExceeded { .. }));
    assert!(
        err.to_string().starts_with("Too many requests, retry after"),
        "{err}"
    );
    // Another account from a fresh address is fine.
    limits
        .check_auth(ip("198.51.100.201"), Some("other@example.com"))
        .await
        .unwrap();
}

#[actix_web::test]
async fn auth_limiter_keys_ipv6_clients_by_their_slash_64() {
    let limits = auth_limits(2);
    limits.check_auth(ip("2001:db8:1:2::1"), None).await.unwrap();
    limits.check_auth(ip("2001:db8:1:2::2"), None).await.unwrap();
    assert!(limits.check_auth(ip("2001:db8:1:2:ffff::3"), None).await.is_err());
    limits.check_auth(ip("2001:db8:1:3::1"), None).await.unwrap();
}

#[actix_web::test]
async fn auth_limiter_off_allows_everything() {
    let mut limits_config = Config::for_database(DatabaseConfig::External {
        url: "postgres://unused".into(),
    });
    limits_config.rate_limits.auth.enabled = false;
    let limits = Limits::new(&limits_config);
    for _ in 0..50 {
        assert_eq!(
            limits
                .check_auth(ip("192.0.2.1"), Some("a@example.com"))
                .await
                .unwrap(),
            None
        );
    }
}

#[actix_web::test]
async fn an_exhausted_pool_sheds_at_once_with_retry_after_while_health_answers() {
    // Arrange: a pool of two for the one worker, and a table whose reads block behind a lock
    // held elsewhere, as a slow query would hold connections.
    let app = spawn_configured(|c| {
        c.db_pool_max = 2;
        c.pressure.max_pool_wait = Duration::from_millis(200);
        c.pressure.sample_interval = Duration::from_millis(50);
        c.pressure.retry_after = Duration::from_secs(3);
    })
    .await;
    app.sql("create table slow (id serial primary key, v text); insert into slow (v) values ('x')")
        .await;
    app.eventually("slow is served", || async {
        app.get("/items/slow").await.status == 200
    })
    .await;
    let mut locker = sqlx::PgConnection::connect(&common::database_url(&app.database))
        .await
        .unwrap();
    use sqlx::Connection;
    sqlx::raw_sql("begin; lock table slow in access exclusive mode")
        .execute(&mut locker)
        .await
        .unwrap();
    // Every pooled connection is now stuck in a read of `slow`.
    let stuck: Vec<_> = (0..4)
        .map(|_| {
            let req = app
                .client
                .get(format!("{}/items/slow", app.base))
                .bearer_auth(ADMIN_TOKEN);
            tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();

    // Act: new requests are refused at once by the pressure limiter, not after the pool's
    // acquire timeout.
    app.eventually("requests are shed", || async {
        get_info(&app, &[]).await.status == 503
    })
    .await;
    let shed = app.get("/items/slow").await;

    // Assert
    shed.assert_error(503, "SERVICE_UNAVAILABLE");
    assert_eq!(
        shed.json()["errors"][0]["extensions"]["service"],
        "api",
        "{}",
        shed.text
    );
    assert_eq!(header_u64(&shed, "retry-after"), 3);
    // Health has connections of its own: it answers, and says the database is fine.
    let health = app.send(reqwest::Method::GET, "/server/health", None, None).await;
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.json()["status"], "ok");

    // Releasing the lock lets the stuck reads finish and the pool recover.
    sqlx::raw_sql("rollback").execute(&mut locker).await.unwrap();
    for request in stuck {
        let status = request.await.unwrap().unwrap();
        assert!(status == 200 || status == 503, "{status}");
    }
    app.eventually("the pool recovered", || async {
        app.get("/items/slow").await.status == 200
    })
    .await;
    app.stop().await;
}
