//! Connecting to PostgreSQL: the pool, creating the embedded database, and startup checks.

use std::time::Duration;

use log::LevelFilter;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

/// How long a request waits for a free connection before the database counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a health check waits for one of its own connections.
const HEALTH_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// Statements slower than this are logged at `warn`.
const SLOW_STATEMENT: Duration = Duration::from_millis(500);

/// A connection returned to the pool this recently is handed out without a ping. sqlx pings
/// every connection as it is released, so its default ping on acquire is a second extra round
/// trip per query that only catches connections which died while idle; like HikariCP's
/// `aliveBypassWindowMs`, only a connection idle longer than this is checked again.
const ALIVE_BYPASS: Duration = Duration::from_millis(500);

/// Opens a pool. One connection is made eagerly so a wrong address fails at startup.
pub async fn connect(options: PgConnectOptions, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    pool_options(max_connections)
        .min_connections(1)
        .connect_with(session_options(options))
        .await
}

/// A pool that connects on first use, from the runtime that uses it.
pub fn connect_lazy(options: PgConnectOptions, max_connections: u32) -> PgPool {
    pool_options(max_connections).connect_lazy_with(session_options(options))
}

/// Health checks' own pool: they must answer while the request pools are exhausted, which
/// is when they are needed most. Two connections, a short wait, no ping on acquire.
pub fn connect_health(options: PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(HEALTH_ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .connect_lazy_with(session_options(options))
}

fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= ALIVE_BYPASS {
                    // A failed ping discards the connection and sqlx opens another.
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

fn session_options(options: PgConnectOptions) -> PgConnectOptions {
    // UTC sessions: `extract()` on timestamptz and timestamp rendering must not depend on the
    // server's time zone (the in-memory evaluator works in UTC).
    options
        .application_name("directrix")
        .options([("TimeZone", "UTC")])
        .log_statements(LevelFilter::Trace)
        .log_slow_statements(LevelFilter::Warn, SLOW_STATEMENT)
}

/// Creates `database` if it does not exist, connecting through `maintenance` (the `postgres`
/// database of the same server).
pub async fn ensure_database(maintenance: PgConnectOptions, database: &str) -> Result<(), sqlx::Error> {
    let mut conn = maintenance.connect().await?;
    let exists: bool = sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
        .bind(database)
        .fetch_one(&mut conn)
        .await?;
    if !exists {
        let sql = format!("create database {}", super::sql::ident(database));
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await?;
        tracing::info!(database, "created database");
    }
    Ok(())
}

/// One round trip (`select 1`): whether the database answers, for `/server/health`.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query_scalar::<_, i32>("select 1")
        .fetch_one(pool)
        .await
        .map(drop)
}

/// The server's `wal_level`; realtime needs `logical`.
pub async fn wal_level(pool: &PgPool) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("select current_setting('wal_level')")
        .fetch_one(pool)
        .await
}

/// The server's version string, for `/server/info`.
pub async fn server_version(pool: &PgPool) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("select current_setting('server_version')")
        .fetch_one(pool)
        .await
}

/// A connected database, and the embedded cluster behind it when we manage one.
pub struct Database {
    pub pool: PgPool,
    /// How to reach the database, for the per-worker pools.
    pub options: PgConnectOptions,
    pub cluster: Option<super::cluster::ManagedCluster>,
}

/// The database name inside the embedded cluster.
pub const EMBEDDED_DATABASE: &str = "directrix";

/// Opens the configured database: starts (or creates) the embedded cluster when no `DB_*` is
/// set, then connects and warns if realtime will not work (`wal_level` is not `logical`).
pub async fn open(config: &crate::config::Config) -> Result<Database, anyhow::Error> {
    use anyhow::Context;
    use secrecy::ExposeSecret;

    let (options, cluster) = match &config.database {
        crate::config::DatabaseConfig::Embedded { data_dir } => {
            let data_dir = data_dir.clone();
            let cluster = tokio::task::spawn_blocking(move || {
                super::cluster::ManagedCluster::start(&data_dir, super::cluster::Durability::Durable)
            })
            .await??;
            ensure_database(cluster.connect_options("postgres"), EMBEDDED_DATABASE)
                .await
                .context("creating the embedded database")?;
            (cluster.connect_options(EMBEDDED_DATABASE), Some(cluster))
        }
        crate::config::DatabaseConfig::External { url } => {
            let options: PgConnectOptions = url
                .expose_secret()
                .parse()
                .context("DB_CONNECTION_STRING is not a valid connection string")?;
            (options, None)
        }
    };
    let pool = connect(options.clone(), config.db_pool_max)
        .await
        .context("connecting to PostgreSQL")?;
    match wal_level(&pool).await {
        Ok(level) if level == "logical" => {}
        Ok(level) => tracing::warn!(
            wal_level = %level,
            "PostgreSQL wal_level is not `logical`: realtime updates need it (set wal_level = logical and restart PostgreSQL)"
        ),
        Err(err) => tracing::warn!(error = %err, "cannot read wal_level"),
    }
    Ok(Database {
        pool,
        options,
        cluster,
    })
}
