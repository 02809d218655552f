//! The one test harness: a private PostgreSQL cluster per test binary (started by the same code
//! as `directrix serve`'s embedded default), a migrated + bootstrapped template database, and
//! for each test a fresh database cloned from it and a running app on a random port.
//!
//! Set `TEST_LOG=1` to see the server's logs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::OnceLock;

use directrix::app::App;
use directrix::config::{Config, DatabaseConfig};
use directrix::db::bootstrap;
use directrix::db::cluster::{Durability, ManagedCluster};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::OnceCell;

/// The admin's static token in every test app.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// The admin's password in every test app.
pub const ADMIN_PASSWORD: &str = "test-admin-password";
pub const ADMIN_EMAIL: &str = "admin@example.com";
const TEMPLATE: &str = "directrix_tpl";

struct TestCluster {
    cluster: ManagedCluster,
    root: PathBuf,
}

static CLUSTER: OnceLock<TestCluster> = OnceLock::new();
static TEMPLATE_READY: OnceCell<()> = OnceCell::const_new();

/// The cluster shared by every test of this binary; stopped and deleted when the process ends
/// (by a watcher process, since statics are never dropped).
pub fn cluster() -> &'static ManagedCluster {
    &CLUSTER
        .get_or_init(|| {
            let root = tempfile::Builder::new()
                .prefix("directrix-test-")
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .tempdir()
                .expect("temp dir")
                .keep();
            hand_to_postgres(&root);
            let cluster = ManagedCluster::start(&root, Durability::Ephemeral).expect("start test cluster");
            cluster
                .stop_when_process_exits(std::process::id(), &root)
                .expect("watcher");
            TestCluster { cluster, root }
        })
        .cluster
}

/// As root, the cluster runs as `postgres`; giving it the whole temp folder lets the watcher
/// delete it.
pub fn hand_to_postgres(dir: &std::path::Path) {
    if nix::unistd::Uid::effective().is_root() {
        let user = nix::unistd::User::from_name("postgres")
            .unwrap()
            .expect("postgres user");
        nix::unistd::chown(dir, Some(user.uid), Some(user.gid)).unwrap();
    }
}

/// Connection URL of one database in the test cluster.
pub fn database_url(database: &str) -> String {
    format!(
        "postgres://postgres@localhost/{database}?host={}",
        cluster().pgdata().display()
    )
}

async fn maintenance() -> PgConnection {
    cluster()
        .connect_options("postgres")
        .connect()
        .await
        .expect("connect to postgres db")
}

async fn ensure_template() {
    TEMPLATE_READY
        .get_or_init(|| async {
            let mut conn = maintenance().await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("drop database if exists {TEMPLATE}")))
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {TEMPLATE}")))
                .execute(&mut conn)
                .await
                .unwrap();
            let pool = sqlx::PgPool::connect_with(cluster().connect_options(TEMPLATE))
                .await
                .unwrap();
            bootstrap::migrate(&pool).await.unwrap();
            let password = secrecy::SecretString::from(ADMIN_PASSWORD);
            bootstrap::bootstrap(&pool, ADMIN_EMAIL, Some(&password), None)
                .await
                .unwrap();
            pool.close().await;
        })
        .await;
}

/// Runs SQL on the cluster's `postgres` database (for statements about other databases).
pub async fn cluster_sql(sql: &str) {
    let mut conn = maintenance().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .expect("sql runs");
}

/// A fresh database cloned from the template; returns its name.
pub async fn fresh_database() -> String {
    ensure_template().await;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = maintenance().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "create database {name} template {TEMPLATE}"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    name
}

/// A configuration pointing at `database` on the test cluster.
pub fn test_config(database: &str) -> Config {
    let mut config = Config::for_database(DatabaseConfig::External {
        url: database_url(database).into(),
    });
    config.port = 0;
    config.workers = Some(1);
    config.db_pool_max = 5;
    config.admin_token = Some(ADMIN_TOKEN.into());
    config.admin_password = Some(ADMIN_PASSWORD.into());
    // Each app would hold a replication slot, and the cluster has 32; realtime tests turn it on.
    config.realtime.enabled = false;
    config
}

fn init_logs() {
    if std::env::var("TEST_LOG").is_ok() {
        directrix::telemetry::init("debug", directrix::config::LogStyle::Pretty);
    }
}

/// A running app on its own database.
pub struct TestApp {
    pub base: String,
    pub database: String,
    pub client: reqwest::Client,
    /// The app's items and auth services, for tests that call them without HTTP.
    pub services: directrix::service::Services,
    handle: directrix::app::AppHandle,
}

/// Starts an app on a fresh database.
pub async fn spawn_app() -> TestApp {
    let database = fresh_database().await;
    spawn_app_with(test_config(&database)).await
}

/// Starts an app with a given configuration.
pub async fn spawn_app_with(config: Config) -> TestApp {
    init_logs();
    let database = match &config.database {
        DatabaseConfig::External { url } => {
            let url: &str = secrecy::ExposeSecret::expose_secret(url);
            url.split('/')
                .nth(3)
                .and_then(|s| s.split('?').next())
                .unwrap_or_default()
                .to_string()
        }
        DatabaseConfig::Embedded { .. } => String::new(),
    };
    let app = App::build(config).await.expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let services = app.services();
    actix_web::rt::spawn(async move {
        if let Err(err) = app.run().await {
            eprintln!("test app stopped with an error: {err:#}");
        }
    });
    TestApp {
        base,
        database,
        client: reqwest::Client::new(),
        services,
        handle,
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    /// The body as JSON (`Null` when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// `extensions.code` of the first error.
    pub fn code(&self) -> String {
        self.json()["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Asserts a Directus error envelope with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "status; body: {}", self.text);
        assert_eq!(self.code(), code, "code; body: {}", self.text);
        let message = &self.json()["errors"][0]["message"];
        assert!(message.is_string(), "error message missing: {}", self.text);
    }

    /// `data` of a success envelope, asserting 200.
    #[track_caller]
    pub fn data(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.text);
        self.json()["data"].clone()
    }
}

impl TestApp {
    /// Sends a request as the admin (static token).
    pub async fn request(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.send(method, path, body, Some(ADMIN_TOKEN)).await
    }

    /// Sends a request with an optional bearer token.
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>, token: Option<&str>) -> Reply {
        let mut req = self.client.request(method, format!("{}{}", self.base, path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.read(req).await
    }

    /// Sends a raw body with a content type, as the admin.
    pub async fn send_raw(&self, method: Method, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        let req = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body);
        self.read(req).await
    }

    async fn read(&self, req: reqwest::RequestBuilder) -> Reply {
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body read");
        Reply {
            status,
            headers,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.request(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.request(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.request(Method::DELETE, path, None).await
    }

    /// Runs SQL directly on this app's database, as psql would.
    pub async fn sql(&self, sql: &str) {
        let mut conn = PgConnection::connect(&database_url(&self.database))
            .await
            .expect("connect");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await
            .expect("sql runs");
        conn.close().await.ok();
    }

    /// Polls `check` until it holds (schema refreshes arrive asynchronously from NOTIFY).
    pub async fn eventually<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if check().await {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for: {what}");
    }

    /// Stops the server and waits for it (and its pool) to shut down.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop the worker threads and their connections even when a test forgets `stop()`.
        let handle = self.handle.clone();
        actix_web::rt::spawn(async move { handle.stop(false).await });
    }
}
