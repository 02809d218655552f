//! The realtime load suite, end to end on this machine's loopback against the release
//! `directrix` binary on a private (durable) PostgreSQL cluster:
//!
//! - (a) latency, one subscriber, 1,000 inserts/s (open loop, paced by an OS thread): an SSE
//!   stream and a WebSocket subscription side by side on the same inserts. Each insert carries
//!   its sequence number; the writer notes when it sent the insert and when its COMMIT returned,
//!   the subscribers when the event arrived (one clock, this process's). Reported: commit →
//!   client (the figure the targets are about) and send → client (which adds the insert and its
//!   fsync'd commit).
//! - (b) fan-out: 1,000 WebSocket subscribers with the same query on one collection (one
//!   group), 300 inserts/s: delivered messages/s in total and latency send → client.
//! - (c) idle memory: N authenticated WebSocket connections with one subscription each, N SSE
//!   streams, and N bare TCP connections that never send a byte, each phase on a freshly
//!   started server. Per connection = (VmRSS holding N − VmRSS of the same server idle just
//!   before, warmed up by one subscription) / N; the bare TCP phase shows what an accepted
//!   connection alone costs (actix drops it after its 5 s request timeout, so it is read as soon
//!   as the server holds all N).
//!
//! The bench process, the server and Postgres share the machine's cores; the table shows the
//! CPU each used during (a) and (b).
//!
//! `cargo bench --bench realtime` (about 3 minutes) or `cargo bench --bench realtime -- --quick`
//! (about 1.5); `-- --only=b` (or `a,c`…) runs only those parts. Prints one table and writes it as JSON to `target/bench-realtime.json`.
//! `cargo bench --bench pgoutput` measures the decoder alone.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench that cannot set up should stop loudly

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::{Server, TOKEN};
use directrix::db::cluster::ManagedCluster;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

const DATABASE: &str = "rtbench";
/// (a)'s insert rate.
const LATENCY_RATE: f64 = 1000.0;
/// (b)'s subscribers and insert rate.
const FANOUT_SUBSCRIBERS: usize = 1000;
const FANOUT_RATE: f64 = 300.0;
/// (c)'s connections per phase.
const IDLE_CONNECTIONS: usize = 10_000;
/// Connections being opened at once.
const CONNECT_PARALLEL: usize = 64;

const SEED: &str = r#"
create table lat (id bigserial primary key, seq bigint not null, sent_us bigint not null, title text not null);
create table fan (id bigserial primary key, seq bigint not null, sent_us bigint not null, title text not null);
create table idle (id bigserial primary key, title text not null);
insert into idle (title) values ('one');
"#;

/// Microseconds since the bench started, the one clock every timestamp here is read from.
fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

fn main() {
    if !common::bench_run("realtime") {
        return;
    }
    let quick = common::quick();
    now_us();
    // 10,000 connections on each side: raise the soft fd limit to the hard one (the server,
    // a child, inherits it).
    let (soft, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    if soft < hard {
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(quick, hard));
}

async fn run(quick: bool, fd_limit: u64) {
    let duration = Duration::from_secs(if quick { 5 } else { 20 });
    let warmup = Duration::from_secs(if quick { 1 } else { 3 });
    let cluster = common::cluster(DATABASE).await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect_with(cluster.connect_options(DATABASE))
        .await
        .unwrap();
    sqlx::raw_sql(SEED).execute(&pool).await.unwrap();
    for settle in ["vacuum analyze", "checkpoint"] {
        sqlx::raw_sql(settle).execute(&pool).await.unwrap();
    }

    let runs = |part: &str| common::only().is_none_or(|only| only.contains(part));
    let (a, b) = if runs("a") || runs("b") {
        let server = start_server(&cluster, "directrix_rtbench").await;
        let a = if runs("a") {
            eprintln!("(a) latency: 1 SSE + 1 WebSocket subscriber, {LATENCY_RATE}/s…");
            Some(latency(&server, &pool, warmup, duration).await)
        } else {
            None
        };
        let b = if runs("b") {
            eprintln!("(b) fan-out: {FANOUT_SUBSCRIBERS} WebSocket subscribers, {FANOUT_RATE}/s…");
            Some(fanout(&server, &pool, warmup, duration).await)
        } else {
            None
        };
        (a, b)
    } else {
        (None, None)
    };

    // Each side holds N sockets plus its own; leave room for the rest.
    let n = IDLE_CONNECTIONS.min(fd_limit.saturating_sub(200) as usize);
    let mut c = Vec::new();
    if runs("c") {
        eprintln!("(c) idle memory: {n} connections per phase…");
        for (phase, kind) in [Idle::Tcp, Idle::WebSocket, Idle::Sse].into_iter().enumerate() {
            // The server drops a connection that sends no request within 5 s (actix's
            // client_request_timeout): when this VM is slow enough that opening them all takes
            // longer, the bare phase loses most of them, so it is measured again.
            let mut attempt = 0;
            let measured = loop {
                // A slot of its own: the default one would replay what (a) and (b) wrote into
                // the new server's rings while the phase measures its memory.
                let slot = format!("directrix_idle_{phase}_{attempt}");
                let server = start_server(&cluster, &slot).await;
                let measured = idle_memory(&server, kind, n, (phase + 3 * attempt) as u8).await;
                attempt += 1;
                if measured.held * 10 >= n * 9 || attempt == 3 {
                    break measured;
                }
                eprintln!("    only {} of {n} held; again", measured.held);
            };
            c.push(measured);
        }
    }

    println!(
        "\nrealtime load suite ({} s per run after {} s warm-up{}; loopback, {} cores)",
        duration.as_secs(),
        warmup.as_secs(),
        if quick { ", quick" } else { "" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if let Some(a) = &a {
        print_latency(a);
    }
    if let Some(b) = &b {
        print_fanout(b);
    }
    let idle = (c.len() == 3).then(|| print_idle(&c, n));
    println!("(d) pgoutput decoder: see `cargo bench --bench pgoutput`");

    let report = json!({
        "quick": quick,
        "seconds_per_run": duration.as_secs(),
        "warmup_seconds": warmup.as_secs(),
        "a_latency": a.as_ref().map(Latency::json),
        "b_fanout": b.as_ref().map(Fanout::json),
        "c_idle_memory": idle,
    });
    let out = common::write_report("bench-realtime.json", &report);
    println!("written to {}", out.display());
    drop(pool);
    let _ = cluster.stop();
}

fn print_latency(a: &Latency) {
    println!(
        "(a) {LATENCY_RATE:.0} inserts/s, one subscriber each (side by side); sent {}, lost sse {} ws {}",
        a.sent, a.sse.lost, a.ws.lost
    );
    println!(
        "    {:<10} {:>22} {:>22} {:>22}",
        "", "commit→client p50 ms", "commit→client p99 ms", "send→client p99 ms"
    );
    for (name, side) in [("SSE", &a.sse), ("WebSocket", &a.ws)] {
        println!(
            "    {name:<10} {:>22.2} {:>22.2} {:>22.2}",
            side.commit_p50_ms, side.commit_p99_ms, side.send_p99_ms
        );
    }
    println!(
        "    targets: p50 < 2 ms, p99 < 10 ms; commit itself (send→COMMIT returned) p50 {:.2} ms, p99 {:.2} ms",
        a.commit_p50_ms, a.commit_p99_ms
    );
    println!("    cpu: {}", a.cpu);
}

fn print_fanout(b: &Fanout) {
    println!(
        "(b) {FANOUT_SUBSCRIBERS} WebSocket subscribers × {FANOUT_RATE:.0} inserts/s: delivered {:.0} messages/s ({:.0} rows/s), send→client p50 {:.2} ms, p99 {:.2} ms, expected {} got {} (refetch {})",
        b.messages_per_sec, b.rows_per_sec, b.p50_ms, b.p99_ms, b.expected, b.received, b.refetch
    );
    println!(
        "    commit→client p50 {:.2} ms, p99 {:.2} ms (send→client adds the insert and its commit)",
        b.commit_p50_ms, b.commit_p99_ms
    );
    println!("    targets: ≥ 300,000 messages/s, p99 < 50 ms");
    println!("    cpu: {}", b.cpu);
}

/// Prints (c) and returns its JSON.
fn print_idle(c: &[IdlePhase], n: usize) -> Value {
    println!("(c) idle memory, {n} connections per phase, each on a fresh server (VmRSS):");
    for phase in c {
        println!(
            "    {:<42} idle {:>7} KiB, holding {:>7} KiB: {:>6.2} KiB per connection{}",
            phase.label,
            phase.idle_kib,
            phase.held_kib,
            phase.per_connection_kib,
            if phase.held == n {
                String::new()
            } else {
                format!(" (only {} held)", phase.held)
            }
        );
    }
    let tcp = c[0].per_connection_kib;
    println!(
        "    beyond a bare TCP connection: WebSocket {:.2} KiB (target ≤ 8), SSE {:.2} KiB (target ≤ 4)",
        c[1].per_connection_kib - tcp,
        c[2].per_connection_kib - tcp
    );
    json!({
        "connections": n,
        "phases": c.iter().map(IdlePhase::json).collect::<Vec<_>>(),
        "ws_beyond_tcp_kib": c[1].per_connection_kib - tcp,
        "sse_beyond_tcp_kib": c[2].per_connection_kib - tcp,
    })
}

/// A server on replication slot `slot`.
async fn start_server(cluster: &ManagedCluster, slot: &str) -> Server {
    let env = [("DB_POOL__MAX", "16".into()), ("REALTIME_SLOT", slot.to_string())];
    let server = Server::start(cluster, DATABASE, &env).await;
    // Until the consumer streams: events only flow from then on.
    let client = reqwest::Client::new();
    for _ in 0..500 {
        let health: Value = client
            .get(format!("{}/server/health", server.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null);
        if health["checks"]["realtime:connected"][0]["observedValue"] == json!(true) {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the replication consumer did not start streaming");
}

/// CPU used during a run: the server, this process (the clients and the writer), and the rest
/// of the machine (Postgres, mostly), each as a share of one core.
struct Cpu {
    server: f64,
    bench: f64,
    rest: f64,
}

impl std::fmt::Display for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "server {:.0}%, bench clients+writer {:.0}%, rest (Postgres…) {:.0}% of one core",
            self.server * 100.0,
            self.bench * 100.0,
            self.rest * 100.0
        )
    }
}

struct CpuMeter {
    at: Instant,
    server: Duration,
    bench: Duration,
    machine: Duration,
}

impl CpuMeter {
    fn start(server: &Server) -> CpuMeter {
        CpuMeter {
            at: Instant::now(),
            server: server.cpu(),
            bench: common::cpu_of(std::process::id()),
            machine: common::machine_busy(),
        }
    }

    fn stop(self, server: &Server) -> Cpu {
        let wall = self.at.elapsed().as_secs_f64();
        let server = (server.cpu() - self.server).as_secs_f64();
        let bench = (common::cpu_of(std::process::id()) - self.bench).as_secs_f64();
        let machine = (common::machine_busy() - self.machine).as_secs_f64();
        Cpu {
            server: server / wall,
            bench: bench / wall,
            rest: (machine - server - bench).max(0.0) / wall,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The writer

/// Inserts into `table` at `rate` per second for `total` (open loop: an OS thread releases each
/// insert on schedule, whatever the previous ones are doing). Each row carries its sequence
/// number and the time it was sent; `sent` and `committed` get the times per sequence number.
async fn write_paced(
    pool: &sqlx::PgPool,
    table: &'static str,
    rate: f64,
    total: Duration,
    sent: Arc<Vec<AtomicU64>>,
    committed: Arc<Vec<AtomicU64>>,
) -> usize {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let count = (total.as_secs_f64() * rate) as usize;
    let runtime = tokio::runtime::Handle::current();
    let pool = pool.clone();
    let insert = format!("insert into {table} (seq, sent_us, title) values ($1, $2, $3)");
    let pacer = std::thread::spawn(move || {
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(count);
        for seq in 0..count {
            let scheduled = started + interval * seq as u32;
            if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let (pool, sent, committed, insert) =
                (pool.clone(), sent.clone(), committed.clone(), insert.clone());
            tasks.push(runtime.spawn(async move {
                let at = now_us();
                sent[seq].store(at, Ordering::Relaxed);
                sqlx::query(sqlx::AssertSqlSafe(insert))
                    .bind(seq as i64)
                    .bind(at as i64)
                    .bind(format!("Change number {seq}, a title of an ordinary length"))
                    .execute(&pool)
                    .await
                    .unwrap();
                committed[seq].store(now_us(), Ordering::Relaxed);
            }));
        }
        tasks
    });
    let tasks = tokio::task::spawn_blocking(move || pacer.join().unwrap())
        .await
        .unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    count
}

fn slots(n: usize) -> Arc<Vec<AtomicU64>> {
    Arc::new((0..n).map(|_| AtomicU64::new(0)).collect())
}

/// `"seq":<n>` and `"sent_us":<n>` of every row in an event's text, without parsing the JSON
/// (the fan-out clients read 300,000 messages a second on a machine the server shares).
/// bigint columns come as strings, as Directus sends them: `"seq":"17"`.
fn numbers_after<'a>(text: &'a str, key: &'a str) -> impl Iterator<Item = u64> + 'a {
    text.match_indices(key).filter_map(move |(at, _)| {
        let value = &text[at + key.len()..];
        let digits = value.strip_prefix('"').unwrap_or(value);
        let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
        digits[..end].parse().ok()
    })
}

// ---------------------------------------------------------------------------------------------
// Clients

type Ws = WebSocketStream<TcpStream>;

/// A TCP connection to the server from `source` (several source addresses keep the phases of
/// (c) from sharing, and running out of, one address's ephemeral ports).
async fn connect_from(server: &Server, source: Ipv4Addr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    // The port is picked at connect time: binding port 0 first searches the ephemeral range for
    // a port free for any peer, which slows as thousands are taken (10,000 took 4 s, about
    // actix's 5 s request timeout, so the bare phase lost connections before it was read).
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::IpBindAddressNoPort, &true).unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    let stream = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], server.port)))
        .await
        .unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// A WebSocket connection, authenticated as the admin (handshake), subscribed to `collection`
/// with fields `*`; the init message read.
async fn ws_subscribed(server: &Server, source: Ipv4Addr, collection: &str) -> Ws {
    let tcp = connect_from(server, source).await;
    let url = format!("ws://127.0.0.1:{}/websocket", server.port);
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    ws.send(Message::text(
        json!({"type": "auth", "access_token": TOKEN}).to_string(),
    ))
    .await
    .unwrap();
    let auth = next_json(&mut ws).await;
    assert_eq!(auth["status"], "ok", "{auth}");
    ws.send(Message::text(
        json!({"type": "subscribe", "collection": collection, "query": {"fields": ["*"]}, "uid": "s"})
            .to_string(),
    ))
    .await
    .unwrap();
    let init = next_json(&mut ws).await;
    assert_eq!(init["event"], "init", "{init}");
    ws
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let value: Value = serde_json::from_str(&text).unwrap();
                if value != json!({"type": "ping"}) {
                    return value;
                }
                ws.send(Message::text(r#"{"type":"pong"}"#)).await.unwrap();
            }
            Some(Ok(_)) => {}
            other => panic!("the websocket ended: {other:?}"),
        }
    }
}

/// Reads `ws` until it ends, answering heartbeats and handing every other text to `each`.
async fn ws_reader(mut ws: Ws, mut each: impl FnMut(&str)) {
    while let Some(Ok(message)) = ws.next().await {
        if let Message::Text(text) = message {
            if text.as_str() == r#"{"type":"ping"}"# {
                let _ = ws.send(Message::text(r#"{"type":"pong"}"#)).await;
            } else {
                each(text.as_str());
            }
        }
    }
}

/// [`ws_reader`] on the bare socket, for (b): 1,000 tungstenite clients decoding 300k messages
/// a second took more CPU than the server delivering them, on the same two cores. The server
/// sends every message as one unmasked frame, so reading frames by hand is enough; a text
/// heartbeat and a ping frame are answered, a close ends it. Used only once `ws` is subscribed and nothing else
/// can be in tungstenite's read buffer.
async fn raw_ws_reader(ws: Ws, mut each: impl FnMut(&str)) {
    let mut tcp = ws.into_inner();
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        while let Some((opcode, payload, next)) = frame_at(&buf, at) {
            at = next;
            match opcode {
                0x8 => return,
                // A ping frame (the server's lag probe): its pong, masked with a zero key.
                0x9 if payload.len() < 126 => {
                    let mut frame = vec![0x8a, 0x80 | payload.len() as u8, 0, 0, 0, 0];
                    frame.extend_from_slice(payload);
                    if tcp.write_all(&frame).await.is_err() {
                        return;
                    }
                }
                0x0 | 0x1 => {
                    let text = std::str::from_utf8(payload).unwrap_or("");
                    if text == r#"{"type":"ping"}"# {
                        // Masked with a zero key: the same bytes, as a client must send them.
                        let pong = br#"{"type":"pong"}"#;
                        let mut frame = vec![0x81, 0x80 | pong.len() as u8, 0, 0, 0, 0];
                        frame.extend_from_slice(pong);
                        if tcp.write_all(&frame).await.is_err() {
                            return;
                        }
                    } else {
                        each(text);
                    }
                }
                _ => {}
            }
        }
        buf.drain(..at);
    }
}

/// The server frame starting at `at` in `buf` (opcode, payload, where the next starts), if it
/// is all there.
fn frame_at(buf: &[u8], at: usize) -> Option<(u8, &[u8], usize)> {
    let head = buf.get(at..at + 2)?;
    let opcode = head[0] & 0x0f;
    let (len, start) = match head[1] & 0x7f {
        126 => (
            u16::from_be_bytes(buf.get(at + 2..at + 4)?.try_into().ok()?) as usize,
            at + 4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(at + 2..at + 10)?.try_into().ok()?) as usize,
            at + 10,
        ),
        len => (len as usize, at + 2),
    };
    let payload = buf.get(start..start + len)?;
    Some((opcode, payload, start + len))
}

/// An SSE stream of `collection` over a plain socket (the request written by hand, the
/// response read raw); returns once the `init` event arrived, with the bytes read after it.
async fn sse_subscribed(server: &Server, source: Ipv4Addr, collection: &str) -> (TcpStream, String) {
    let mut tcp = connect_from(server, source).await;
    let request = format!(
        "GET /stream?collection={collection}&fields=* HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut seen = String::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0, "the stream ended before its init: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        assert!(seen.starts_with("HTTP/1.1 200"), "stream refused: {seen}");
        if let Some(at) = seen.find("event: init")
            && let Some(end) = seen[at..].find("\n\n")
        {
            let rest = seen[at + end + 2..].to_string();
            return (tcp, rest);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (a) latency

#[derive(Default)]
struct Side {
    commit_p50_ms: f64,
    commit_p99_ms: f64,
    send_p50_ms: f64,
    send_p99_ms: f64,
    /// Events earlier than their COMMIT's return (the notification overtook the reply).
    before_commit: usize,
    lost: usize,
}

impl Side {
    fn of(
        range: std::ops::Range<usize>,
        sent: &[AtomicU64],
        committed: &[AtomicU64],
        received: &[AtomicU64],
    ) -> Side {
        let mut by_commit = Vec::new();
        let mut by_send = Vec::new();
        let mut side = Side::default();
        for seq in range {
            let got = received[seq].load(Ordering::Relaxed);
            if got == 0 {
                side.lost += 1;
                continue;
            }
            let done = committed[seq].load(Ordering::Relaxed);
            if got < done {
                side.before_commit += 1;
            }
            by_commit.push(got.saturating_sub(done) as u32);
            by_send.push(got.saturating_sub(sent[seq].load(Ordering::Relaxed)) as u32);
        }
        by_commit.sort_unstable();
        by_send.sort_unstable();
        side.commit_p50_ms = common::percentile_ms(&by_commit, 0.50);
        side.commit_p99_ms = common::percentile_ms(&by_commit, 0.99);
        side.send_p50_ms = common::percentile_ms(&by_send, 0.50);
        side.send_p99_ms = common::percentile_ms(&by_send, 0.99);
        side
    }

    fn json(&self) -> Value {
        json!({
            "commit_to_client_p50_ms": self.commit_p50_ms,
            "commit_to_client_p99_ms": self.commit_p99_ms,
            "send_to_client_p50_ms": self.send_p50_ms,
            "send_to_client_p99_ms": self.send_p99_ms,
            "events_before_commit_returned": self.before_commit,
            "lost": self.lost,
        })
    }
}

struct Latency {
    sent: usize,
    sse: Side,
    ws: Side,
    commit_p50_ms: f64,
    commit_p99_ms: f64,
    cpu: Cpu,
}

impl Latency {
    fn json(&self) -> Value {
        json!({
            "rate": LATENCY_RATE,
            "measured_inserts": self.sent,
            "sse": self.sse.json(),
            "websocket": self.ws.json(),
            "commit_p50_ms": self.commit_p50_ms,
            "commit_p99_ms": self.commit_p99_ms,
            "cpu_cores": {"server": self.cpu.server, "bench": self.cpu.bench, "rest": self.cpu.rest},
        })
    }
}

async fn latency(server: &Server, pool: &sqlx::PgPool, warmup: Duration, duration: Duration) -> Latency {
    let total = warmup + duration;
    let count = (total.as_secs_f64() * LATENCY_RATE) as usize;
    let (sent, committed, ws_got, sse_got) = (slots(count), slots(count), slots(count), slots(count));

    let ws = ws_subscribed(server, Ipv4Addr::LOCALHOST, "lat").await;
    let ws_reader = tokio::spawn({
        let got = ws_got.clone();
        ws_reader(ws, move |text| {
            let at = now_us();
            if text.contains(r#""event":"create""#) {
                for seq in numbers_after(text, r#""seq":"#) {
                    got[seq as usize].store(at, Ordering::Relaxed);
                }
            }
        })
    });
    let (mut sse, mut pending) = sse_subscribed(server, Ipv4Addr::LOCALHOST, "lat").await;
    let sse_reader = tokio::spawn({
        let got = sse_got.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                // Whole events only: a block ends with a blank line.
                while let Some(end) = pending.find("\n\n") {
                    let at = now_us();
                    let block: String = pending.drain(..end + 2).collect();
                    if block.contains("event: create") {
                        for seq in numbers_after(&block, r#""seq":"#) {
                            got[seq as usize].store(at, Ordering::Relaxed);
                        }
                    }
                }
                match sse.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => pending.push_str(std::str::from_utf8(&buf[..n]).unwrap()),
                }
            }
        }
    });

    let meter = CpuMeter::start(server);
    write_paced(pool, "lat", LATENCY_RATE, total, sent.clone(), committed.clone()).await;
    let cpu = meter.stop(server);
    // Until both have everything (or a generous bound on stragglers).
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && (ws_got[count - 1].load(Ordering::Relaxed) == 0 || sse_got[count - 1].load(Ordering::Relaxed) == 0)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    ws_reader.abort();
    sse_reader.abort();

    let measured = (warmup.as_secs_f64() * LATENCY_RATE) as usize..count;
    let mut commits: Vec<u32> = measured
        .clone()
        .map(|seq| (committed[seq].load(Ordering::Relaxed) - sent[seq].load(Ordering::Relaxed)) as u32)
        .collect();
    commits.sort_unstable();
    Latency {
        sent: measured.len(),
        sse: Side::of(measured.clone(), &sent, &committed, &sse_got),
        ws: Side::of(measured, &sent, &committed, &ws_got),
        commit_p50_ms: common::percentile_ms(&commits, 0.50),
        commit_p99_ms: common::percentile_ms(&commits, 0.99),
        cpu,
    }
}

// ---------------------------------------------------------------------------------------------
// (b) fan-out

struct Fanout {
    messages_per_sec: f64,
    rows_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    commit_p50_ms: f64,
    commit_p99_ms: f64,
    expected: usize,
    received: usize,
    refetch: usize,
    cpu: Cpu,
}

impl Fanout {
    fn json(&self) -> Value {
        json!({
            "subscribers": FANOUT_SUBSCRIBERS,
            "rate": FANOUT_RATE,
            "messages_per_sec": self.messages_per_sec,
            "rows_per_sec": self.rows_per_sec,
            "send_to_client_p50_ms": self.p50_ms,
            "send_to_client_p99_ms": self.p99_ms,
            "commit_to_client_p50_ms": self.commit_p50_ms,
            "commit_to_client_p99_ms": self.commit_p99_ms,
            "expected_messages": self.expected,
            "received_messages": self.received,
            "refetch": self.refetch,
            "cpu_cores": {"server": self.cpu.server, "bench": self.cpu.bench, "rest": self.cpu.rest},
        })
    }
}

/// What one fan-out subscriber saw in the measured window.
#[derive(Default)]
struct Seen {
    /// Each row sent in the window: its sequence number and when it arrived.
    arrivals: Vec<(u32, u64)>,
    /// Messages and rows received in the window.
    messages: usize,
    rows: usize,
    refetch: usize,
}

async fn fanout(server: &Server, pool: &sqlx::PgPool, warmup: Duration, duration: Duration) -> Fanout {
    let sockets: Vec<Ws> = futures_util::stream::iter(0..FANOUT_SUBSCRIBERS)
        .map(|_| ws_subscribed(server, Ipv4Addr::LOCALHOST, "fan"))
        .buffer_unordered(CONNECT_PARALLEL)
        .collect()
        .await;
    // The window opens after the warm-up and closes with the last insert; readers stop reading
    // a little after that, whatever is still under way.
    let window_start = Arc::new(AtomicU64::new(u64::MAX));
    let window_end = Arc::new(AtomicU64::new(u64::MAX));
    let total = warmup + duration;
    let stop_reading = tokio::time::Instant::now() + total + Duration::from_secs(3);
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|ws| {
            let (start, end) = (window_start.clone(), window_end.clone());
            tokio::spawn(async move {
                let mut seen = Seen::default();
                let seen_ref = &mut seen;
                let reading = raw_ws_reader(ws, move |text| {
                    let at = now_us();
                    let (start, end) = (start.load(Ordering::Relaxed), end.load(Ordering::Relaxed));
                    if text.contains(r#""event":"refetch""#) {
                        seen_ref.refetch += 1;
                        return;
                    }
                    let mut rows = 0;
                    let seqs = numbers_after(text, r#""seq":"#);
                    for (seq, sent) in seqs.zip(numbers_after(text, r#""sent_us":"#)) {
                        rows += 1;
                        if sent >= start && sent < end {
                            seen_ref.arrivals.push((seq as u32, at));
                        }
                    }
                    if at >= start && at < end {
                        seen_ref.messages += 1;
                        seen_ref.rows += rows;
                    }
                });
                let _ = tokio::time::timeout_at(stop_reading, reading).await;
                seen
            })
        })
        .collect();
    let meter = CpuMeter::start(server);
    let marks = {
        let (start, end) = (window_start.clone(), window_end.clone());
        tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            start.store(now_us(), Ordering::Relaxed);
            tokio::time::sleep(duration).await;
            end.store(now_us(), Ordering::Relaxed);
        })
    };
    let count = (total.as_secs_f64() * FANOUT_RATE) as usize;
    let (sent, committed) = (slots(count), slots(count));
    write_paced(pool, "fan", FANOUT_RATE, total, sent.clone(), committed.clone()).await;
    marks.await.unwrap();
    let cpu = meter.stop(server);
    let (start, end) = (
        window_start.load(Ordering::Relaxed),
        window_end.load(Ordering::Relaxed),
    );
    let in_window = sent
        .iter()
        .filter(|at| (start..end).contains(&at.load(Ordering::Relaxed)))
        .count();
    let (mut by_send, mut by_commit) = (Vec::new(), Vec::new());
    let (mut messages, mut rows, mut refetch) = (0, 0, 0);
    for reader in readers {
        let seen = reader.await.unwrap();
        for (seq, at) in seen.arrivals {
            let seq = seq as usize;
            let (sent, committed) = (
                sent[seq].load(Ordering::Relaxed),
                committed[seq].load(Ordering::Relaxed),
            );
            by_send.push(at.saturating_sub(sent) as u32);
            // An event can reach a client before its writer hears COMMIT return: zero.
            by_commit.push(at.saturating_sub(committed) as u32);
        }
        messages += seen.messages;
        rows += seen.rows;
        refetch += seen.refetch;
    }
    by_send.sort_unstable();
    by_commit.sort_unstable();
    let window = Duration::from_micros(end - start).as_secs_f64();
    Fanout {
        messages_per_sec: messages as f64 / window,
        rows_per_sec: rows as f64 / window,
        p50_ms: common::percentile_ms(&by_send, 0.50),
        p99_ms: common::percentile_ms(&by_send, 0.99),
        commit_p50_ms: common::percentile_ms(&by_commit, 0.50),
        commit_p99_ms: common::percentile_ms(&by_commit, 0.99),
        expected: in_window * FANOUT_SUBSCRIBERS,
        received: by_send.len(),
        refetch,
        cpu,
    }
}

// ---------------------------------------------------------------------------------------------
// (c) idle memory

#[derive(Clone, Copy)]
enum Idle {
    Tcp,
    WebSocket,
    Sse,
}

struct IdlePhase {
    label: &'static str,
    idle_kib: u64,
    held_kib: u64,
    held: usize,
    per_connection_kib: f64,
}

impl IdlePhase {
    fn json(&self) -> Value {
        json!({
            "phase": self.label, "idle_rss_kib": self.idle_kib, "held_rss_kib": self.held_kib,
            "held": self.held, "per_connection_kib": self.per_connection_kib,
        })
    }
}

/// What holding one idle connection needs on the client side.
enum Held {
    Tcp(#[allow(dead_code)] TcpStream),
    Task(tokio::task::JoinHandle<()>),
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Held::Task(task) = self {
            task.abort();
        }
    }
}

/// Opens `n` connections of `kind` to a fresh `server` and reads its RSS once it holds them all.
async fn idle_memory(server: &Server, kind: Idle, n: usize, phase: u8) -> IdlePhase {
    // Warm up what every connection of this kind shares (the feed, the group, buffers' first
    // allocation) with one connection, then settle.
    match kind {
        Idle::Tcp => drop(connect_from(server, Ipv4Addr::LOCALHOST).await),
        Idle::WebSocket => drop(ws_subscribed(server, Ipv4Addr::LOCALHOST, "idle").await),
        Idle::Sse => drop(sse_subscribed(server, Ipv4Addr::LOCALHOST, "idle").await),
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_kib = server.rss_kib();
    let idle_fds = server.fds();
    // A source address of its own per phase: the previous phases' ports sit in TIME_WAIT.
    let source = Ipv4Addr::new(127, 0, 0, 10 + phase);
    let opening = Instant::now();
    let held: Vec<Held> = futures_util::stream::iter(0..n)
        .map(|_| async move {
            match kind {
                Idle::Tcp => Held::Tcp(connect_from(server, source).await),
                Idle::WebSocket => {
                    let ws = ws_subscribed(server, source, "idle").await;
                    Held::Task(tokio::spawn(ws_reader(ws, |_| {})))
                }
                Idle::Sse => {
                    let (mut sse, _) = sse_subscribed(server, source, "idle").await;
                    Held::Task(tokio::spawn(async move {
                        let mut buf = [0u8; 1024];
                        while matches!(sse.read(&mut buf).await, Ok(n) if n > 0) {}
                    }))
                }
            }
        })
        .buffer_unordered(CONNECT_PARALLEL)
        .collect()
        .await;
    // The bare phase must be read within actix's 5 s request timeout.
    eprintln!("    opened {n} in {:.1} s", opening.elapsed().as_secs_f64());
    // Until the server holds them all (bare TCP: accepted), then let its allocations settle.
    let deadline = Instant::now() + Duration::from_secs(4);
    while server.fds() < idle_fds + n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if !matches!(kind, Idle::Tcp) {
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let held_kib = server.rss_kib();
    let holding = server.fds().saturating_sub(idle_fds).min(n);
    drop(held);
    IdlePhase {
        label: match kind {
            Idle::Tcp => "bare TCP (accepted, never sends)",
            Idle::WebSocket => "WebSocket (authenticated, 1 subscription)",
            Idle::Sse => "SSE stream (1 collection)",
        },
        idle_kib,
        held_kib,
        held: holding,
        per_connection_kib: held_kib.saturating_sub(idle_kib) as f64 / holding.max(1) as f64,
    }
}
