//! The composition root: config → database → migrations/bootstrap → schema actor →
//! replication consumer (when realtime is on) → HTTP server.
//! `main` and the test harness both start Directrix through [`App::build`].

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix::Supervisor;
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{HttpServer, web};
use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::actors::collab::CollabHub;
use crate::actors::feeds::{FeedHub, FeedSettings, Realtime};
use crate::actors::replication::{self, ReplicationHandle, ReplicationSettings};
use crate::actors::schema::SchemaActor;
use crate::config::Config;
use crate::db::cluster::ManagedCluster;
use crate::db::{bootstrap, introspect, pool};
use crate::http::limits::Limits;
use crate::http::metrics::Metrics;
use crate::http::observe::observe;
use crate::http::state::AppState;

/// Seconds in-flight requests get to finish on shutdown.
const SHUTDOWN_TIMEOUT_SECS: u64 = 10;

/// A built, bound, not yet awaited Directrix server.
pub struct App {
    port: u16,
    server: Server,
    /// Cancelled when the server starts stopping: open WebSockets and SSE streams end at once
    /// (a WebSocket with close code 1001) rather than hold the shutdown to its timeout.
    closing: CancellationToken,
    pool: sqlx::PgPool,
    /// The services on the app's own pool: for in-process callers (tests, tools; hooks next).
    services: crate::service::Services,
    cluster: Option<ManagedCluster>,
    replication: Option<ReplicationHandle>,
}

impl App {
    /// Opens the database (starting the embedded cluster if configured), applies migrations,
    /// bootstraps, loads the schema and binds the HTTP listener.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let config = Arc::new(config);
        let database = pool::open(&config).await?;
        let pool = database.pool;
        bootstrap::migrate(&pool).await.context("applying migrations")?;
        crate::db::permissions::record_user_schema(&pool, &config.user_schema)
            .await
            .context("recording the user schema")?;
        let outcome = bootstrap::bootstrap(
            &pool,
            &config.admin_email,
            config.admin_password.as_ref(),
            config.admin_token.as_ref(),
        )
        .await
        .context("bootstrapping")?;
        announce_admin(&outcome);

        let loaded_at = Instant::now();
        let built = introspect::load(&pool, &config.user_schema)
            .await
            .context("reading the schema")?;
        let poll = !introspect::has_ddl_trigger(&pool).await?;
        if poll {
            tracing::warn!("no DDL event trigger (not a superuser): polling for schema changes");
        }
        let (snapshot_tx, schema_rx) = watch::channel(Arc::new(built.snapshot));
        let actor_pool = pool.clone();
        let user_schema = config.user_schema.clone();
        let tokens = Arc::new(crate::service::access_cache::AccessCache::default());
        let actor_tokens = tokens.clone();
        let schema_actor = Supervisor::start(move |_| {
            SchemaActor::new(
                actor_pool,
                user_schema,
                snapshot_tx,
                loaded_at,
                poll,
                actor_tokens,
            )
        });

        // Bound before the consumer starts, so a taken port leaves no consumer running.
        let listener = TcpListener::bind((config.host.as_str(), config.port))
            .with_context(|| format!("binding {}:{}", config.host, config.port))?;
        let sessions = Arc::new(crate::actors::sessions::SessionRegistry::default());
        let feeds = start_realtime(&config, &database.options, &schema_rx, &sessions, &tokens)?;
        let replication = feeds.as_ref().and_then(|(_, _, r)| r.clone());
        let metrics = Metrics::new().context("creating metrics")?;
        if let Some(replication) = &replication {
            metrics
                .watch_replication(replication.status().clone())
                .context("registering replication metrics")?;
        }

        let limits = Limits::start(&config);
        let mailer = Arc::new(crate::mail::Mailer::new(&config.mail));
        let services = crate::service::Services {
            pool: pool.clone(),
            config: config.clone(),
            access: tokens.clone(),
            schema_rx: schema_rx.clone(),
            sign_in: limits.clone(),
            mailer,
        };
        let state = AppState {
            config: config.clone(),
            pool: pool.clone(),
            health_pool: pool::connect_health(database.options.clone()),
            schema_actor,
            schema_rx,
            metrics,
            access: tokens,
            limits,
            started: Instant::now(),
            realtime: None,
            replication: replication.as_ref().map(|r| r.status().clone()),
            services,
        };
        let mut state = state;
        let closing = CancellationToken::new();
        if let Some((hub, collab, replication)) = &feeds {
            state.realtime = Some(Realtime {
                hub: hub.clone(),
                sessions: sessions.clone(),
                replication: replication.as_ref().map(|r| r.status().clone()),
                connections: Arc::default(),
                collab: collab.clone(),
                closing: closing.clone(),
            });
        }
        let port = listener.local_addr()?.port();
        let max_payload_size = config.max_payload_size;
        let workers = config
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let worker_pool_max = config.db_pool_max.div_ceil(workers as u32).max(1);
        let options = database.options.clone();
        let ws_path = config.realtime.ws_path.clone();
        let app_services = state.services.clone();
        let server = HttpServer::new(move || {
            // Each worker is its own single-threaded runtime; a pool whose connections were
            // opened elsewhere has its socket readiness driven by another thread's reactor,
            // which costs a cross-thread wake-up per query. A pool per worker keeps each
            // connection's I/O on the thread that awaits it.
            let worker_pool = pool::connect_lazy(options.clone(), worker_pool_max);
            let state = web::Data::new(AppState {
                pool: worker_pool.clone(),
                services: crate::service::Services {
                    pool: worker_pool,
                    ..state.services.clone()
                },
                ..state.clone()
            });
            let limits = state.limits.middleware(Some(state.pool.clone()));
            actix_web::App::new()
                .app_data(state)
                .route(&ws_path, web::get().to(crate::http::realtime::ws::websocket))
                .wrap(limits)
                .wrap(from_fn(observe))
                .configure(|cfg| crate::http::configure(cfg, max_payload_size))
        })
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        // Realtime frames are small and written as they happen; with Nagle on, a frame sent
        // while an earlier one (a lag probe, a heartbeat) is unacknowledged waits out the
        // peer's delayed ACK (up to 40 ms on Linux).
        .tcp_nodelay(true)
        // Signals are ours (`run`): realtime connections must be told before the server stops.
        .disable_signals()
        .workers(workers);
        let server = server.listen(listener)?.run();
        tracing::info!(host = %config.host, port, "directrix listening");
        Ok(App {
            port,
            server,
            closing,
            pool,
            services: app_services,
            cluster: database.cluster,
            replication,
        })
    }

    /// The bound port (useful with `PORT=0`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server.
    /// The items and auth services, as in-process callers use them.
    pub fn services(&self) -> crate::service::Services {
        self.services.clone()
    }

    /// A handle that stops the server.
    pub fn handle(&self) -> AppHandle {
        AppHandle {
            server: self.server.handle(),
            closing: self.closing.clone(),
        }
    }

    /// Serves until SIGTERM (graceful), SIGINT or SIGQUIT (fast), or [`AppHandle::stop`], then
    /// stops the embedded cluster.
    pub async fn run(self) -> anyhow::Result<()> {
        let handle = self.handle();
        let signals = actix_web::rt::spawn(async move {
            match stop_signal().await {
                Ok(graceful) => handle.stop(graceful).await,
                Err(err) => tracing::error!(error = %err, "cannot listen for stop signals"),
            }
        });
        let served = self.server.await;
        signals.abort();
        // Before the pool and cluster go: the consumer sends its final confirmation.
        if let Some(replication) = &self.replication {
            replication.stop().await;
        }
        // Closing the pool first tells background listeners the shutdown is deliberate.
        self.pool.close().await;
        if let Some(cluster) = self.cluster {
            tracing::info!("stopping embedded postgres");
            tokio::task::spawn_blocking(move || cluster.stop()).await??;
        }
        served.context("http server")
    }
}

/// Stops a running [`App`].
#[derive(Clone)]
pub struct AppHandle {
    server: ServerHandle,
    closing: CancellationToken,
}

impl AppHandle {
    /// Ends realtime connections, then stops the server: `graceful` gives in-flight requests
    /// up to the shutdown timeout.
    pub async fn stop(&self, graceful: bool) {
        self.closing.cancel();
        self.server.stop(graceful).await;
    }
}

/// Waits for a stop signal: `true` for SIGTERM (graceful, as actix treats it), `false` for
/// SIGINT and SIGQUIT.
async fn stop_signal() -> std::io::Result<bool> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    Ok(tokio::select! {
        _ = term.recv() => true,
        _ = int.recv() => false,
        _ = quit.recv() => false,
    })
}

/// The feed hub, the collab rooms and the replication consumer.
type RealtimeParts = (
    actix::Addr<FeedHub>,
    actix::Addr<CollabHub>,
    Option<ReplicationHandle>,
);

/// Realtime, when enabled: the feed hub and its collection feeds on one thread, and the
/// replication consumer on another, confirming the slot no further than the hub retains.
fn start_realtime(
    config: &Config,
    options: &sqlx::postgres::PgConnectOptions,
    schema: &watch::Receiver<Arc<crate::core::schema::SchemaSnapshot>>,
    sessions: &Arc<crate::actors::sessions::SessionRegistry>,
    access: &Arc<crate::service::access_cache::AccessCache>,
) -> anyhow::Result<Option<RealtimeParts>> {
    if !config.realtime.enabled {
        return Ok(None);
    }
    let collab = actix::Actor::start(CollabHub::default());
    let (hub, hold) = FeedHub::start(
        FeedSettings {
            retention_changes: config.realtime.retention_changes,
            retention: config.realtime.retention,
        },
        Some(collab.clone()),
        sessions.clone(),
        Some(access.clone()),
    );
    let settings = ReplicationSettings::from_config(config, options);
    let handle = replication::start(
        settings,
        schema.clone(),
        hub.clone().recipient(),
        hold,
        Some(hub.clone().recipient()),
    )
    .context("starting the replication consumer")?;
    hub.do_send(crate::actors::feeds::WatchReplication(handle.status().clone()));
    Ok(Some((hub, collab, Some(handle))))
}

/// Prints the first admin's credentials once, as Directus does, when we generated the password.
fn announce_admin(outcome: &bootstrap::Bootstrapped) {
    if let Some((email, generated)) = &outcome.admin_created {
        tracing::info!(email = %email, "created the first admin user");
        if let Some(password) = generated {
            println!(
                "\nAdmin user created. Email: {email}  Password: {}\n(shown once; set ADMIN_PASSWORD to choose it)\n",
                password.expose_secret()
            );
        }
    }
}
