//! The realtime load suite, end to end on loopback against the release binary:
//!
//! - (a) latency for one subscriber (WebSocket and SSE, side by side) at 1,000 inserts/s;
//! - (b) fan-out: 1,000 WebSocket subscribers of one collection at 300 changes/s;
//! - (c) idle memory per connection: N authenticated WebSocket connections with one
//!   subscription each, and N SSE streams, against N bare TCP connections held open on the same
//!   server (what an accept loop alone costs), from the server's RSS.
//!
//! Latency is insert sent → event received (both clocks are this process's), so it includes
//! the insert's own commit: an upper bound on commit → client.
//!
//! `cargo bench --bench realtime` or `cargo bench --bench realtime -- --quick`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench that cannot set up should stop loudly

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use directrix::db::cluster::{Durability, ManagedCluster};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "bench-admin-token";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

impl Server {
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap()
    }
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as i64
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("realtime load suite: run it with `cargo bench --bench realtime [-- --quick]`");
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    // Thousands of sockets on both ends; the server inherits the limit.
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 65536, 65536);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(quick));
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An authenticated socket subscribed to `events` creates.
async fn subscriber(base: &str) -> Ws {
    let url = format!("{}/websocket", base.replace("http", "ws"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::text(
        json!({"type": "auth", "access_token": TOKEN}).to_string(),
    ))
    .await
    .unwrap();
    ws.next().await.unwrap().unwrap();
    ws.send(Message::text(
        json!({"type": "subscribe", "collection": "events", "event": "create", "uid": "s",
               "query": {"fields": ["id", "t0us"]}})
        .to_string(),
    ))
    .await
    .unwrap();
    ws.next().await.unwrap().unwrap();
    ws
}

/// Latencies (ms) of every row in a create message.
fn latencies(text: &str, out: &mut Vec<f64>) {
    let now = now_us();
    let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    if value["event"] != "create" {
        return;
    }
    for row in value["data"].as_array().into_iter().flatten() {
        if let Some(t0) = row["t0us"]
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .or(row["t0us"].as_i64())
        {
            out.push((now - t0) as f64 / 1000.0);
        }
    }
}

/// Inserts at `rate` per second for `duration`, open loop; returns how many.
async fn write(pool: &sqlx::PgPool, rate: f64, duration: Duration) -> u64 {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = Instant::now() + duration;
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    while Instant::now() < end {
        ticker.tick().await;
        let pool = pool.clone();
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            sqlx::query("insert into events (t0us, payload) values ($1, 'x')")
                .bind(now_us())
                .execute(&pool)
                .await
                .unwrap();
            sent.fetch_add(1, Ordering::Relaxed);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    sent.load(Ordering::Relaxed)
}

/// Starts the release binary on the bench database and waits until its change feed streams.
async fn start_server(url: &str) -> (Server, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_directrix"))
            .arg("serve")
            .env("DB_CONNECTION_STRING", url)
            .env("PORT", port.to_string())
            .env("ADMIN_TOKEN", TOKEN)
            .env("ADMIN_PASSWORD", "bench")
            .env("LOG_LEVEL", "warn")
            .env("REALTIME_OUTBOUND_QUEUE", "4096")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..500 {
        let health = client
            .get(format!("{base}/server/health"))
            .bearer_auth(TOKEN)
            .send()
            .await;
        if let Ok(res) = health
            && res
                .text()
                .await
                .unwrap_or_default()
                .contains("\"realtime:connected\":[{\"status\":\"ok\"")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (server, port)
}

async fn run(quick: bool) {
    let root = tempfile::Builder::new()
        .prefix("directrix-rt-bench-")
        .tempdir()
        .unwrap()
        .keep();
    std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    if nix::unistd::Uid::effective().is_root() {
        let pg = nix::unistd::User::from_name("postgres").unwrap().unwrap();
        nix::unistd::chown(&root, Some(pg.uid), Some(pg.gid)).unwrap();
    }
    let cluster = ManagedCluster::start(&root, Durability::Durable).unwrap();
    cluster
        .stop_when_process_exits(std::process::id(), &root)
        .unwrap();
    directrix::db::pool::ensure_database(cluster.connect_options("postgres"), "bench")
        .await
        .unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect_with(cluster.connect_options("bench"))
        .await
        .unwrap();
    sqlx::raw_sql("create table events (id bigserial primary key, t0us bigint not null, payload text); alter table events replica identity full")
        .execute(&pool)
        .await
        .unwrap();
    let url = format!(
        "postgres://postgres@localhost/bench?host={}",
        cluster.pgdata().display()
    );
    let (server, port) = start_server(&url).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let secs = if quick { 5 } else { 15 };
    let mut report = Vec::new();

    // (a) one subscriber each, WebSocket and SSE, 1,000 inserts/s.
    {
        let ws_lat = Arc::new(Mutex::new(Vec::new()));
        let sse_lat = Arc::new(Mutex::new(Vec::new()));
        let mut ws = subscriber(&base).await;
        let sink = ws_lat.clone();
        let ws_task = tokio::spawn(async move {
            let mut local = Vec::new();
            while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
                if let Message::Text(text) = message {
                    latencies(&text, &mut local);
                }
            }
            sink.lock().await.extend(local);
        });
        let res = client
            .get(format!(
                "{base}/stream?collection=events&event=create&fields=id,t0us&limit=0&access_token={TOKEN}"
            ))
            .send()
            .await
            .unwrap();
        let sink = sse_lat.clone();
        let sse_task = tokio::spawn(async move {
            let mut res = res;
            let mut buffer = String::new();
            let mut local = Vec::new();
            while let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_secs(3), res.chunk()).await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                        latencies(data, &mut local);
                    }
                }
            }
            sink.lock().await.extend(local);
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sent = write(&pool, 1000.0, Duration::from_secs(secs)).await;
        ws_task.await.unwrap();
        sse_task.await.unwrap();
        for (name, lat) in [
            ("(a) WebSocket, 1 subscriber, 1,000 inserts/s", ws_lat),
            ("(a) SSE, 1 subscriber, 1,000 inserts/s", sse_lat),
        ] {
            let mut lat = lat.lock().await.clone();
            lat.sort_by(f64::total_cmp);
            report.push(json!({"scenario": name, "sent": sent, "received": lat.len(),
                "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99), "max_ms": lat.last().copied().unwrap_or(f64::NAN)}));
        }
    }

    // (b) fan-out: 1,000 WebSocket subscribers, 300 changes/s.
    {
        let subscribers = 1000;
        let mut sockets = Vec::with_capacity(subscribers);
        for _ in 0..subscribers {
            sockets.push(subscriber(&base).await);
        }
        let delivered = Arc::new(AtomicU64::new(0));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, mut ws) in sockets.into_iter().enumerate() {
            let delivered = delivered.clone();
            let samples = samples.clone();
            tasks.push(tokio::spawn(async move {
                let mut local = Vec::new();
                while let Ok(Some(Ok(message))) =
                    tokio::time::timeout(Duration::from_secs(3), ws.next()).await
                {
                    if let Message::Text(text) = message {
                        delivered.fetch_add(1, Ordering::Relaxed);
                        // Every tenth socket parses for latency; the rest only count.
                        if i % 10 == 0 {
                            latencies(&text, &mut local);
                        }
                    }
                }
                samples.lock().await.extend(local);
            }));
        }
        let started = Instant::now();
        let sent = write(&pool, 300.0, Duration::from_secs(secs)).await;
        let write_time = started.elapsed();
        for task in tasks {
            task.await.unwrap();
        }
        let mut lat = samples.lock().await.clone();
        lat.sort_by(f64::total_cmp);
        let total = delivered.load(Ordering::Relaxed);
        report.push(json!({"scenario": "(b) fan-out: 1,000 WebSocket subscribers, 300 changes/s",
            "sent": sent, "delivered": total, "expected": sent * subscribers as u64,
            "delivered_per_s": total as f64 / write_time.as_secs_f64(),
            "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99), "max_ms": lat.last().copied().unwrap_or(f64::NAN)}));
    }

    // (c) idle memory per connection, each kind on a fresh server (freed memory stays in the
    // allocator, so measuring one kind after another would hide the second).
    drop(server);
    {
        let n = if quick { 2000 } else { 10_000 };
        let mut per_conn = Vec::new();
        for kind in ["bare TCP", "WebSocket", "SSE"] {
            let (server, port) = start_server(&url).await;
            let base = format!("http://127.0.0.1:{port}");
            tokio::time::sleep(Duration::from_secs(1)).await;
            let before = server.rss_kib();
            let mut bare = Vec::new();
            let mut sockets = Vec::new();
            let mut streams = Vec::new();
            let sse_client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            for _ in 0..n {
                match kind {
                    "bare TCP" => {
                        bare.push(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap())
                    }
                    "WebSocket" => sockets.push(subscriber(&base).await),
                    _ => streams.push(
                        sse_client
                            .get(format!(
                                "{base}/stream?collection=events&event=create&limit=0&access_token={TOKEN}"
                            ))
                            .send()
                            .await
                            .unwrap(),
                    ),
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let after = server.rss_kib();
            per_conn.push((
                kind,
                (after as f64 - before as f64) * 1024.0 / n as f64,
                before,
                after,
            ));
            drop((bare, sockets, streams));
        }
        let bare = per_conn[0].1;
        report.push(json!({"scenario": format!("(c) idle memory, {n} connections, bytes each (RSS)"),
            "bare_tcp": bare, "websocket": per_conn[1].1, "sse": per_conn[2].1,
            "websocket_above_bare": per_conn[1].1 - bare, "sse_above_bare": per_conn[2].1 - bare,
            "rss_kib_before_after": per_conn.iter().map(|(k, _, b, a)| json!({"kind": k, "before": b, "after": a})).collect::<Vec<_>>()}));
    }

    for row in &report {
        println!("{row}");
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-realtime.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    eprintln!("wrote {}", path.display());
}
