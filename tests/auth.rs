//! `/auth/login`, `/auth/refresh`, `/auth/logout` in json, cookie and session modes; token
//! transport, expiry, rotation and reuse detection, suspended users, TFA, and login timing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Reply, TestApp, fresh_database, spawn_app_with, test_config};
use directrix::config::Config;
use reqwest::Method;
use serde_json::{Value, json};

/// A config with a short stall so tests stay fast; timing tests set their own.
async fn config() -> Config {
    let mut config = test_config(&fresh_database().await);
    config.auth.login_stall = Duration::from_millis(20);
    config.auth.refresh_grace = Duration::from_millis(600);
    config.rate_limits.auth.enabled = false;
    config
}

async fn app() -> TestApp {
    spawn_app_with(config().await).await
}

async fn login(app: &TestApp, body: Value) -> Reply {
    app.send(Method::POST, "/auth/login", Some(body), None).await
}

async fn post_with_cookie(app: &TestApp, path: &str, body: Value, cookie: &str) -> Reply {
    let req = app
        .client
        .post(format!("{}{}", app.base, path))
        .header("cookie", cookie)
        .json(&body);
    read(req).await
}

async fn get_with_cookie(app: &TestApp, path: &str, cookie: &str) -> Reply {
    read(
        app.client
            .get(format!("{}{}", app.base, path))
            .header("cookie", cookie),
    )
    .await
}

async fn read(req: reqwest::RequestBuilder) -> Reply {
    let res = req.send().await.expect("request");
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap_or_default();
    Reply {
        status,
        headers,
        text,
    }
}

/// The `Set-Cookie` header for `name`, whole.
fn set_cookie(reply: &Reply, name: &str) -> Option<String> {
    reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_string()
}

/// Creates an active user with a password through SQL, returning its id.
async fn create_user(app: &TestApp, email: &str, password: &str, extra: &str) -> String {
    let hash = directrix::core::password::hash(password).unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    app.sql(&format!(
        "insert into directrix.users (id, email, password{}) values ('{id}', '{email}', '{hash}'{})",
        if extra.is_empty() { "" } else { ", tfa_secret" },
        if extra.is_empty() {
            String::new()
        } else {
            format!(", '{extra}'")
        }
    ))
    .await;
    id
}

#[actix_web::test]
async fn json_login_issues_a_jwt_and_a_refresh_token() {
    let app = app().await;
    let reply = login(
        &app,
        json!({"email": ADMIN_EMAIL.to_uppercase(), "password": ADMIN_PASSWORD}),
    )
    .await;
    let data = reply.data();
    let keys: Vec<&String> = data.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["expires", "refresh_token", "access_token"],
        "Directus's key order"
    );
    assert_eq!(data["expires"], 900_000);
    let access = data["access_token"].as_str().unwrap();
    assert_eq!(access.split('.').count(), 3);
    assert_eq!(data["refresh_token"].as_str().unwrap().len(), 64);
    // The JWT opens admin-only routes; the header carries Directus's claims.
    let collections = app.send(Method::GET, "/collections", None, Some(access)).await;
    assert_eq!(collections.status, 200, "{}", collections.text);
    let via_query = app
        .send(
            Method::GET,
            &format!("/collections?access_token={access}"),
            None,
            None,
        )
        .await;
    assert_eq!(via_query.status, 200);
    // Two transports at once is refused (RFC 6750, as Directus).
    app.send(
        Method::GET,
        &format!("/collections?access_token={access}"),
        None,
        Some(access),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    app.stop().await;
}

#[actix_web::test]
async fn bad_credentials_and_bad_payloads() {
    let app = app().await;
    login(&app, json!({"email": ADMIN_EMAIL, "password": "wrong"}))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    login(&app, json!({"email": "nobody@example.com", "password": "x"}))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    let cases = [
        (json!({"password": "x"}), "\"email\" is required"),
        (
            json!({"email": "nope", "password": "x"}),
            "\"email\" must be a valid email",
        ),
        (json!({"email": ADMIN_EMAIL}), "\"password\" is required"),
        (
            json!({"email": ADMIN_EMAIL, "password": 5}),
            "\"password\" must be a string",
        ),
        (
            json!({"email": ADMIN_EMAIL, "password": "x", "mode": "jwt"}),
            "\"mode\" must be one of [cookie, json, session]",
        ),
    ];
    for (body, reason) in cases {
        let reply = login(&app, body).await;
        reply.assert_error(400, "INVALID_PAYLOAD");
        assert_eq!(reply.json()["errors"][0]["extensions"]["reason"], reason);
    }
    app.stop().await;
}

#[actix_web::test]
async fn tokens_expire_and_tampering_is_detected() {
    let mut config = config().await;
    config.auth.access_token_ttl = Duration::from_secs(1);
    let app = spawn_app_with(config).await;
    let data = login(&app, json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .await
        .data();
    assert_eq!(data["expires"], 1_000);
    let access = data["access_token"].as_str().unwrap().to_string();
    let mut tampered = access.clone();
    tampered.pop();
    tampered.push(if access.ends_with('A') { 'B' } else { 'A' });
    app.send(Method::GET, "/collections", None, Some(&tampered))
        .await
        .assert_error(403, "INVALID_TOKEN");
    app.send(
        Method::GET,
        "/collections",
        None,
        Some("not-a-known-static-token"),
    )
    .await
    .assert_error(401, "INVALID_CREDENTIALS");
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    app.send(Method::GET, "/collections", None, Some(&access))
        .await
        .assert_error(401, "TOKEN_EXPIRED");
    app.stop().await;
}

#[actix_web::test]
async fn refresh_rotates_and_reuse_after_grace_revokes_the_family() {
    let app = app().await;
    let first = login(&app, json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .await
        .data();
    let r1 = first["refresh_token"].as_str().unwrap().to_string();
    let refresh = |token: String| {
        let app = &app;
        async move {
            app.send(
                Method::POST,
                "/auth/refresh",
                Some(json!({"refresh_token": token})),
                None,
            )
            .await
        }
    };
    let second = refresh(r1.clone()).await.data();
    let r2 = second["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(r1, r2, "rotated on every refresh");
    assert!(second["access_token"].is_string());
    // Within the grace period the old token still works (two tabs refreshing at once) and
    // gives the same successor, as Directus returns the same next session: no fork.
    let again = refresh(r1.clone()).await.data();
    assert_eq!(again["refresh_token"], second["refresh_token"]);
    assert!(again["access_token"].is_string());
    // Many at once: all the same one.
    let racing = futures_util::future::join_all((0..8).map(|_| refresh(r1.clone()))).await;
    for reply in racing {
        assert_eq!(reply.data()["refresh_token"], second["refresh_token"]);
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    // After it, presenting the rotated token again is taken as theft: the whole login ends.
    refresh(r1).await.assert_error(401, "INVALID_CREDENTIALS");
    refresh(r2).await.assert_error(401, "INVALID_CREDENTIALS");
    // Missing token: Directus's message.
    let missing = app
        .send(Method::POST, "/auth/refresh", Some(json!({})), None)
        .await;
    missing.assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(
        missing.json()["errors"][0]["extensions"]["reason"],
        "The refresh token is required in either the payload or cookie"
    );
    app.stop().await;
}

#[actix_web::test]
async fn cookie_mode_keeps_the_refresh_token_in_an_http_only_cookie() {
    let app = app().await;
    let reply = login(
        &app,
        json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "mode": "cookie"}),
    )
    .await;
    let data = reply.data();
    assert!(data.get("refresh_token").is_none());
    assert!(data["access_token"].is_string());
    let cookie = set_cookie(&reply, "directus_refresh_token").expect("refresh cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=604800"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(!cookie.contains("Secure"));
    let refreshed = post_with_cookie(&app, "/auth/refresh", json!({}), &cookie_value(&cookie)).await;
    let next = set_cookie(&refreshed, "directus_refresh_token").expect("rotated cookie");
    assert_ne!(cookie_value(&next), cookie_value(&cookie));
    assert!(refreshed.data()["access_token"].is_string());
    let out = post_with_cookie(&app, "/auth/logout", json!({}), &cookie_value(&next)).await;
    assert_eq!(out.status, 204);
    let cleared = set_cookie(&out, "directus_refresh_token").expect("cleared cookie");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    post_with_cookie(&app, "/auth/refresh", json!({}), &cookie_value(&next))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    app.stop().await;
}

#[actix_web::test]
async fn session_mode_authenticates_by_cookie_until_logout() {
    let app = app().await;
    let reply = login(
        &app,
        json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "mode": "session"}),
    )
    .await;
    let data = reply.data();
    assert_eq!(data, json!({"expires": 86_400_000}));
    let cookie = cookie_value(&set_cookie(&reply, "directus_session_token").expect("session cookie"));
    assert_eq!(get_with_cookie(&app, "/collections", &cookie).await.status, 200);
    let refreshed = post_with_cookie(&app, "/auth/refresh", json!({"mode": "session"}), &cookie).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let next = cookie_value(&set_cookie(&refreshed, "directus_session_token").expect("new session cookie"));
    assert_eq!(get_with_cookie(&app, "/collections", &next).await.status, 200);
    let out = post_with_cookie(&app, "/auth/logout", json!({"mode": "session"}), &next).await;
    assert_eq!(out.status, 204, "{}", out.text);
    // The session is gone, so its token no longer authenticates.
    get_with_cookie(&app, "/collections", &next)
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    app.stop().await;
}

#[actix_web::test]
async fn suspended_users_lose_access_and_directus_hashes_are_upgraded() {
    let app = app().await;
    // A hash as Directus writes it (argon2id, 64 MiB, 3 passes, 4 lanes).
    let directus_hash = {
        use argon2::password_hash::PasswordHasher;
        argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(65_536, 3, 4, None).unwrap(),
        )
        .hash_password(b"pw-of-ed")
        .unwrap()
        .to_string()
    };
    app.sql(&format!(
        "insert into directrix.users (email, password) values ('ed@example.com', '{directus_hash}')"
    ))
    .await;
    let data = login(&app, json!({"email": "ed@example.com", "password": "pw-of-ed"}))
        .await
        .data();
    let stored = query_one(
        &app,
        "select password from directrix.users where email = 'ed@example.com'",
    )
    .await;
    assert!(
        !directrix::core::password::needs_rehash(&stored),
        "rehashed at login: {stored}"
    );
    let access = data["access_token"].as_str().unwrap().to_string();
    let refresh = data["refresh_token"].as_str().unwrap().to_string();
    app.sql("update directrix.users set status = 'suspended' where email = 'ed@example.com'")
        .await;
    app.eventually("suspension reaches the access cache", || async {
        app.send(Method::GET, "/server/info", None, Some(&access))
            .await
            .status
            == 401
    })
    .await;
    app.send(
        Method::POST,
        "/auth/refresh",
        Some(json!({"refresh_token": refresh})),
        None,
    )
    .await
    .assert_error(401, "USER_SUSPENDED");
    login(&app, json!({"email": "ed@example.com", "password": "pw-of-ed"}))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    app.stop().await;
}

#[actix_web::test]
async fn tfa_users_need_a_current_otp() {
    let app = app().await;
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    create_user(&app, "tfa@example.com", "pw", secret).await;
    login(&app, json!({"email": "tfa@example.com", "password": "pw"}))
        .await
        .assert_error(401, "INVALID_OTP");
    login(
        &app,
        json!({"email": "tfa@example.com", "password": "pw", "otp": "000000"}),
    )
    .await
    .assert_error(401, "INVALID_OTP");
    let key = directrix::core::otp::base32_decode(secret).unwrap();
    let now = chrono::Utc::now().timestamp();
    let otp = directrix::core::otp::code_at(&key, now / 30).unwrap();
    let reply = login(
        &app,
        json!({"email": "tfa@example.com", "password": "pw", "otp": otp}),
    )
    .await;
    assert!(reply.data()["access_token"].is_string());
    // A secret set through /users is stored usable (only concealed on read).
    let other = create_user(&app, "tfa2@example.com", "pw", "").await;
    let patched = app
        .patch(&format!("/users/{other}"), json!({"tfa_secret": secret}))
        .await
        .data();
    assert_eq!(patched["tfa_secret"], "**********");
    let otp = directrix::core::otp::code_at(&key, chrono::Utc::now().timestamp() / 30).unwrap();
    let reply = login(
        &app,
        json!({"email": "tfa2@example.com", "password": "pw", "otp": otp}),
    )
    .await;
    assert!(reply.data()["access_token"].is_string(), "{}", reply.text);
    app.stop().await;
}

#[actix_web::test]
async fn unknown_emails_and_wrong_passwords_take_the_same_time() {
    let mut config = config().await;
    config.auth.login_stall = Duration::from_millis(150);
    let app = spawn_app_with(config).await;
    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    for i in 0..8 {
        let started = Instant::now();
        login(
            &app,
            json!({"email": format!("ghost{i}@example.com"), "password": "x"}),
        )
        .await;
        unknown.push(started.elapsed());
        let started = Instant::now();
        login(
            &app,
            json!({"email": ADMIN_EMAIL, "password": format!("wrong{i}")}),
        )
        .await;
        wrong.push(started.elapsed());
    }
    unknown.sort();
    wrong.sort();
    // Every attempt waits out the stall, and the two distributions overlap: neither's fastest
    // attempt is slower than the other's slowest.
    assert!(unknown[0] >= Duration::from_millis(150) && wrong[0] >= Duration::from_millis(150));
    assert!(
        unknown[0] <= wrong[7] && wrong[0] <= unknown[7],
        "unknown {unknown:?} vs wrong {wrong:?}"
    );
    app.stop().await;
}

async fn query_one(app: &TestApp, sql: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&common::database_url(&app.database))
        .await
        .unwrap();
    let value: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    value
}

#[actix_web::test]
async fn password_reset_mails_a_single_use_link() {
    let mut config = config().await;
    let outbox = directrix::config::Outbox::default();
    config.mail.transport = directrix::config::EmailTransport::Capture(outbox.clone());
    config.mail.reset_url_allow_list = vec!["https://app.example.com/reset".into()];
    let app = spawn_app_with(config).await;
    create_user(&app, "forgetful@example.com", "old-pw", "").await;
    let request = |body: Value| {
        let app = &app;
        async move {
            app.send(Method::POST, "/auth/password/request", Some(body), None)
                .await
        }
    };
    // Unknown emails get the same answer and no mail.
    assert_eq!(request(json!({"email": "nobody@example.com"})).await.status, 204);
    let refused =
        request(json!({"email": "forgetful@example.com", "reset_url": "https://evil.example.com/x"})).await;
    refused.assert_error(400, "INVALID_PAYLOAD");
    let asked =
        request(json!({"email": "FORGETFUL@example.com", "reset_url": "https://app.example.com/reset"}))
            .await;
    assert_eq!(asked.status, 204);
    let mut mail = None;
    for _ in 0..100 {
        mail = outbox.lock().unwrap().first().cloned();
        if mail.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mail = mail.expect("a reset mail");
    assert_eq!(
        outbox.lock().unwrap().len(),
        1,
        "one mail, none for the unknown email"
    );
    assert_eq!(mail.to, "forgetful@example.com");
    let token = mail
        .text
        .split("https://app.example.com/reset?token=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("link with token")
        .to_string();
    let reset = |token: String, password: &'static str| {
        let app = &app;
        async move {
            app.send(
                Method::POST,
                "/auth/password/reset",
                Some(json!({"token": token, "password": password})),
                None,
            )
            .await
        }
    };
    assert_eq!(reset(token.clone(), "new-pw").await.status, 204);
    login(
        &app,
        json!({"email": "forgetful@example.com", "password": "old-pw"}),
    )
    .await
    .assert_error(401, "INVALID_CREDENTIALS");
    assert!(
        login(
            &app,
            json!({"email": "forgetful@example.com", "password": "new-pw"})
        )
        .await
        .data()["access_token"]
            .is_string()
    );
    // The link works once: the password it was made for is gone.
    reset(token, "again").await.assert_error(403, "FORBIDDEN");
    reset("garbage".into(), "x")
        .await
        .assert_error(403, "INVALID_TOKEN");
    app.stop().await;
}

#[actix_web::test]
async fn a_token_that_is_not_valid_yet_is_refused() {
    let mut config = config().await;
    config.secret = "a-known-test-secret".to_string().into();
    let app = spawn_app_with(config).await;
    let me = app.get("/users/me").await.data();
    let now = chrono::Utc::now().timestamp();
    let claims = |nbf: Option<i64>| directrix::core::token::AccessClaims {
        id: Some(me["id"].as_str().unwrap().parse().unwrap()),
        role: me["role"].as_str().map(|r| r.parse().unwrap()),
        app_access: true,
        admin_access: true,
        session: None,
        enforce_tfa: None,
        iat: now,
        exp: now + 600,
        nbf,
        iss: "directus".into(),
    };
    let sign = |nbf| directrix::core::token::sign(&claims(nbf), b"a-known-test-secret").unwrap();
    let early = sign(Some(now + 300));
    app.send(Method::GET, "/users/me", None, Some(&early))
        .await
        .assert_error(403, "INVALID_TOKEN");
    let valid = sign(Some(now - 1));
    assert_eq!(
        app.send(Method::GET, "/users/me", None, Some(&valid))
            .await
            .data()["id"],
        me["id"]
    );
    app.stop().await;
}
