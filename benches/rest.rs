//! The REST load suite: Directrix's items API against the same SQL run straight on Postgres,
//! side by side in one run, on this machine's loopback.
//!
//! `cargo bench --bench rest` (about 8 minutes) or `cargo bench --bench rest -- --quick`
//! (under 3). It starts a private PostgreSQL cluster, seeds 100,000 articles and 1,000 authors,
//! starts the release `directrix` binary on it, and for each scenario runs 32 concurrent
//! closed-loop clients against the server and 32 against Postgres through a pooled client (the
//! baseline: the SQL the server itself generates for that request), alternating each second. Then (a) is driven
//! open-loop at 70% of its measured peak to get a latency that queueing cannot hide, and so is
//! the baseline: at the same rate, and at 70% of its own peak.
//! Prints one table and writes it as JSON to `target/bench-rest.json`. The collections record
//! activity and revisions as Directus's default does (`accountability: all`);
//! `BENCH_REST_ACCOUNTABILITY=null` runs them untracked.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench that cannot set up should stop loudly

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Server, TOKEN};
use directrix::core::query::{self, Settings, params};
use directrix::db::items::{self, read};
use serde_json::json;

const CONCURRENCY: usize = 32;
const ROWS: i64 = 100_000;

const SEED: &str = r#"
create table authors (id serial primary key, name varchar(100) not null, email varchar(255));
create table articles (
    id serial primary key, title varchar(255) not null, status varchar(20) not null default 'draft',
    views integer not null default 0, body text, published_at timestamptz,
    author integer references authors (id)
);
insert into authors (name, email) select 'Author ' || i, 'a' || i || '@example.com' from generate_series(1, 1000) i;
insert into articles (title, status, views, body, published_at, author)
select 'Article ' || i, (array['draft', 'published', 'archived'])[1 + i % 3], i % 1000,
       repeat('lorem ipsum ', 10), timestamptz '2024-01-01' + i * interval '1 minute', 1 + i % 1000
from generate_series(1, 100000) i;
analyze;
"#;

struct Scenario {
    name: &'static str,
    method: &'static str,
    /// The URL path and query; `{id}` is replaced by a random key.
    path: &'static str,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "(a) GET /items/articles/:id",
        method: "GET",
        path: "/items/articles/{id}",
    },
    Scenario {
        name: "(b) filter+sort+limit 25",
        method: "GET",
        path: "/items/articles?filter[status][_eq]=published&sort=-id&limit=25",
    },
    Scenario {
        name: "(c) POST /items/articles",
        method: "POST",
        path: "/items/articles",
    },
    Scenario {
        name: "(d) fields=*,author.* limit 25",
        method: "GET",
        path: "/items/articles?fields=*,author.*&limit=25",
    },
];

#[derive(Default, Clone, serde::Serialize)]
struct Measure {
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn summarize(mut latencies: Vec<u32>, elapsed: Duration, errors: u64) -> Measure {
    latencies.sort_unstable();
    Measure {
        ops_per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: common::percentile_ms(&latencies, 0.50).max(0.0),
        p99_ms: common::percentile_ms(&latencies, 0.99).max(0.0),
        errors,
    }
}

/// A cheap deterministic key stream per worker (no shared RNG on the hot path).
fn next_key(state: &mut u64) -> i64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    1 + (*state % ROWS as u64) as i64
}

/// Closed loop: `CONCURRENCY` workers, each sending the next request when the last returns.
async fn closed_loop<F, Fut>(duration: Duration, op: F) -> Measure
where
    F: Fn(i64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    closed_loop_with(CONCURRENCY, duration, op).await
}

/// [`closed_loop`] with `clients` workers.
async fn closed_loop_with<F, Fut>(clients: usize, duration: Duration, op: F) -> Measure
where
    F: Fn(i64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    closed_loop_samples(clients, duration, op).await.measure()
}

/// Ours and the baseline, each at `CONCURRENCY`, in alternating one-second slices: this VM's
/// speed changes by 2x within a minute as its neighbours come and go, and back-to-back runs
/// would put that noise into the ratio.
async fn side_by_side<A, FutA, B, FutB>(duration: Duration, ours: A, baseline: B) -> (Measure, Measure)
where
    A: Fn(i64) -> FutA + Send + Sync + Clone + 'static,
    FutA: std::future::Future<Output = bool> + Send,
    B: Fn(i64) -> FutB + Send + Sync + Clone + 'static,
    FutB: std::future::Future<Output = bool> + Send,
{
    let slice = Duration::from_secs(1);
    let (mut a, mut b) = (Samples::default(), Samples::default());
    for _ in 0..duration.as_secs().max(1) {
        a.add(closed_loop_samples(CONCURRENCY, slice, ours.clone()).await);
        b.add(closed_loop_samples(CONCURRENCY, slice, baseline.clone()).await);
    }
    (a.measure(), b.measure())
}

/// The raw results of closed-loop runs of one operation; slices add up.
#[derive(Default)]
struct Samples {
    latencies: Vec<u32>,
    elapsed: Duration,
    errors: u64,
}

impl Samples {
    fn add(&mut self, other: Samples) {
        self.latencies.extend(other.latencies);
        self.elapsed += other.elapsed;
        self.errors += other.errors;
    }

    fn measure(self) -> Measure {
        summarize(self.latencies, self.elapsed, self.errors)
    }
}

async fn closed_loop_samples<F, Fut>(clients: usize, duration: Duration, op: F) -> Samples
where
    F: Fn(i64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..clients {
        let op = op.clone();
        let errors = errors.clone();
        workers.push(tokio::spawn(async move {
            let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (w as u64 + 1);
            let mut latencies = Vec::with_capacity(100_000);
            while started.elapsed() < duration {
                let t = Instant::now();
                if op(next_key(&mut state)).await {
                    latencies.push(t.elapsed().as_micros() as u32);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    Samples {
        latencies: all,
        elapsed: started.elapsed(),
        errors: errors.load(Ordering::Relaxed),
    }
}

/// Open loop at `rate` requests per second: latency counts from the scheduled send time.
async fn open_loop<F, Fut>(duration: Duration, rate: f64, op: F) -> Measure
where
    F: Fn(i64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let interval = Duration::from_secs_f64(1.0 / rate);
    let runtime = tokio::runtime::Handle::current();
    // The pacer is an OS thread: tokio's timer wheel has 1 ms granularity and would release
    // requests in bursts, adding its own lateness to every latency measured from the schedule.
    let pacer = std::thread::spawn(move || {
        let started = Instant::now();
        let mut tasks = Vec::new();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut n = 0u32;
        loop {
            let scheduled = started + interval * n;
            if scheduled.duration_since(started) >= duration {
                break;
            }
            if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let op = op.clone();
            let key = next_key(&mut state);
            tasks.push(runtime.spawn(async move {
                let ok = op(key).await;
                (ok, scheduled.elapsed().as_micros() as u32)
            }));
            n += 1;
        }
        tasks
    });
    let tasks = tokio::task::spawn_blocking(move || pacer.join().unwrap())
        .await
        .unwrap();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (ok, latency) = task.await.unwrap();
        if ok { latencies.push(latency) } else { errors += 1 }
    }
    summarize(latencies, duration, errors)
}

/// A 2xx response whose body arrived in full.
async fn ok(res: reqwest::Result<reqwest::Response>) -> bool {
    match res {
        Ok(res) if res.status().is_success() => res.bytes().await.is_ok(),
        _ => false,
    }
}

fn main() {
    if !common::bench_run("rest") {
        return;
    }
    let quick = common::quick();
    let duration = Duration::from_secs(if quick { 6 } else { 20 });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(quick, duration));
}

async fn run(quick: bool, duration: Duration) {
    let cluster = common::cluster("bench").await;
    let pool_size = 16;
    // The baseline's pool is the server's own pool policy, so only the server's work differs.
    let pool = directrix::db::pool::connect(cluster.connect_options("bench"), pool_size)
        .await
        .unwrap();
    eprintln!("seeding {ROWS} articles…");
    sqlx::raw_sql(SEED).execute(&pool).await.unwrap();
    // Settle the freshly written table first, so vacuum and a checkpoint don't land mid-run.
    for settle in ["vacuum analyze", "checkpoint"] {
        sqlx::raw_sql(settle).execute(&pool).await.unwrap();
    }

    let server = Server::start(
        &cluster,
        "bench",
        &[
            ("DB_POOL__MAX", pool_size.to_string()),
            // The login scenario measures argon2id and the session write, not the stall.
            ("LOGIN_STALL_TIME", "0".into()),
            ("RATE_LIMITER_AUTH_ENABLED", "false".into()),
        ],
    )
    .await;
    // `BENCH_REST_ACCOUNTABILITY=null` measures collections that record no activity; the
    // default (`all`, as Directus) writes an activity row and a revision with every write.
    let accountability = std::env::var("BENCH_REST_ACCOUNTABILITY").unwrap_or_else(|_| "all".into());
    if accountability == "null" {
        sqlx::raw_sql(
            "insert into directrix.collections (collection, accountability) values ('articles', null), ('authors', null)",
        )
        .execute(&pool)
        .await
        .unwrap();
        // The server's schema actor hears of the change by notification; let it reload.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    eprintln!("articles and authors: accountability {accountability}");
    let base = server.base.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();

    // The baseline runs the SQL the server compiles for the same request.
    let schema = directrix::db::introspect::load(&pool, "public")
        .await
        .unwrap()
        .snapshot;
    let schema = Arc::new(schema);
    let mut rows = Vec::new();
    let mut peak_a = 0.0;
    let mut open = Measure::default();
    let mut open_pg = Measure::default();
    let mut open_pg_own = Measure::default();
    let mut peak_pg = 0.0;
    for scenario in SCENARIOS {
        let ours_op = {
            let client = client.clone();
            let base = base.clone();
            move |key: i64| {
                let client = client.clone();
                let url = format!("{base}{}", scenario.path.replace("{id}", &key.to_string()));
                async move {
                    let req = if scenario.method == "POST" {
                        client.post(url).json(&json!({"title": format!("New {key}"), "status": "draft", "author": 1 + key % 1000}))
                    } else {
                        client.get(url)
                    };
                    ok(req.bearer_auth(TOKEN).send().await).await
                }
            }
        };
        let baseline_op = {
            let pool = pool.clone();
            let schema = schema.clone();
            let (path, query_string) = scenario.path.split_once('?').unwrap_or((scenario.path, ""));
            let params = params::decode(query_string).unwrap();
            let collection = schema.collection("articles").unwrap().clone();
            let parsed = query::parse(
                &params,
                &schema,
                "articles",
                chrono::Utc::now(),
                Settings::default(),
            )
            .unwrap();
            let by_key = path.ends_with("{id}");
            let post = scenario.method == "POST";
            move |key: i64| {
                let pool = pool.clone();
                let schema = schema.clone();
                let collection = collection.clone();
                let parsed = parsed.clone();
                async move {
                    if post {
                        return sqlx::query(
                            "insert into articles (title, status, author) values ($1, $2, $3) returning id",
                        )
                        .bind(format!("New {key}"))
                        .bind("draft")
                        .bind((1 + key % 1000) as i32)
                        .fetch_one(&pool)
                        .await
                        .is_ok();
                    }
                    let everything = directrix::db::items::rules::ReadRules::unrestricted();
                    let target = read::Target {
                        snapshot: &schema,
                        schema: "public",
                        collection: &collection,
                        rules: &everything,
                    };
                    let key = key.to_string();
                    let sql = read::select(&target, &parsed, by_key.then_some(key.as_str())).unwrap();
                    items::query(&sql).fetch_all(&pool).await.is_ok()
                }
            }
        };
        let (ours, baseline) = side_by_side(duration, ours_op, baseline_op.clone()).await;
        if scenario.name.starts_with("(a)") {
            peak_a = ours.ops_per_sec;
            // (a) open loop at 70% of its closed-loop peak, right after (a) and before any write
            // scenario, so it measures reads on an idle server rather than vacuum after inserts.
            open = {
                // Open loop can have more requests in flight than the closed loop's 32: keep
                // every connection it opens, so the tail measures the server, not TCP setup.
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1024)
                    .build()
                    .unwrap();
                let base = base.clone();
                let op = move |key: i64| {
                    let client = client.clone();
                    let url = format!("{base}/items/articles/{key}");
                    async move { ok(client.get(url).bearer_auth(TOKEN).send().await).await }
                };
                // Warm up first: the connections an open loop needs are opened here, unmeasured.
                open_loop(Duration::from_secs(2), (peak_a * 0.7).max(1.0), op.clone()).await;
                open_loop(duration, (peak_a * 0.7).max(1.0), op).await
            };
            // The same rate straight on Postgres: the tail this machine gives any client.
            open_pg = open_loop(duration, (peak_a * 0.7).max(1.0), baseline_op.clone()).await;
            // And at 70% of Postgres's own closed-loop peak: on a machine whose cores the load
            // generator, the server and Postgres share, the closed-loop peak is reached by
            // batching that an open loop at a lower rate loses, so this shows whether the
            // criterion is reachable on this machine at all.
            open_pg_own = open_loop(duration, (baseline.ops_per_sec * 0.7).max(1.0), baseline_op).await;
            peak_pg = baseline.ops_per_sec;
        }
        let ratio = ours.ops_per_sec / baseline.ops_per_sec;
        rows.push((scenario.name, ours, baseline, ratio));
    }
    // Permission cost: the same list read by the admin (no checks) and by an editor whose
    // policy has an item filter, side by side.
    let hash = directrix::core::password::hash("bench-editor").unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        r#"insert into directrix.roles (id, name) values ('00000000-0000-4000-8000-0000000000b1', 'Editor');
           insert into directrix.policies (id, name) values ('00000000-0000-4000-8000-0000000000b2', 'Editing');
           insert into directrix.access (role, policy) values ('00000000-0000-4000-8000-0000000000b1', '00000000-0000-4000-8000-0000000000b2');
           insert into directrix.users (email, password, role) values ('editor@bench.test', '{hash}', '00000000-0000-4000-8000-0000000000b1');
           insert into directrix.permissions (policy, collection, action, permissions, fields)
           values ('00000000-0000-4000-8000-0000000000b2', 'articles', 'read', '{{"status": {{"_neq": "archived"}}}}', '*');"#
    )))
    .execute(&pool)
    .await
    .unwrap();
    let (login_client, login_base) = (client.clone(), base.clone());
    let login = move |email: &'static str, password: &'static str| {
        let client = login_client.clone();
        let base = login_base.clone();
        async move {
            client
                .post(format!("{base}/auth/login"))
                .json(&json!({"email": email, "password": password}))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
        }
    };
    let editor: serde_json::Value = login("editor@bench.test", "bench-editor")
        .await
        .expect("editor login")
        .json()
        .await
        .unwrap();
    let editor_token = editor["data"]["access_token"].as_str().unwrap().to_string();
    let list = |token: String| {
        let client = client.clone();
        let url = format!("{base}/items/articles?limit=25");
        move |_key: i64| {
            let client = client.clone();
            let url = url.clone();
            let token = token.clone();
            async move { ok(client.get(url).bearer_auth(token).send().await).await }
        }
    };
    // Both at once, half the clients each, so they share the machine's state and noise.
    let (as_admin, as_editor) = tokio::join!(
        closed_loop_with(CONCURRENCY / 2, duration, list(TOKEN.to_string())),
        closed_loop_with(CONCURRENCY / 2, duration, list(editor_token)),
    );
    let logins = closed_loop(duration, move |_key| {
        let login = login.clone();
        async move { login("editor@bench.test", "bench-editor").await.is_some() }
    })
    .await;

    println!(
        "\nREST load suite ({} s per run, concurrency {CONCURRENCY}, {ROWS} rows{})",
        duration.as_secs(),
        if quick { ", quick" } else { "" }
    );
    println!(
        "{:<34} {:>10} {:>8} {:>8} | {:>10} {:>8} {:>8} | {:>6}",
        "scenario", "ours/s", "p50 ms", "p99 ms", "pg/s", "p50 ms", "p99 ms", "ratio"
    );
    for (name, ours, base, ratio) in &rows {
        println!(
            "{name:<34} {:>10.0} {:>8.2} {:>8.2} | {:>10.0} {:>8.2} {:>8.2} | {ratio:>6.2}",
            ours.ops_per_sec, ours.p50_ms, ours.p99_ms, base.ops_per_sec, base.p50_ms, base.p99_ms
        );
        if ours.errors + base.errors > 0 {
            println!("   errors: ours {}, baseline {}", ours.errors, base.errors);
        }
    }
    println!(
        "(a) open loop at {:.0}/s (70% of peak): p50 {:.2} ms, p99 {:.2} ms, errors {} | same rate on pg: p50 {:.2} ms, p99 {:.2} ms",
        peak_a * 0.7,
        open.p50_ms,
        open.p99_ms,
        open.errors,
        open_pg.p50_ms,
        open_pg.p99_ms
    );
    println!(
        "    pg open loop at {:.0}/s (70% of its own peak): p50 {:.2} ms, p99 {:.2} ms",
        peak_pg * 0.7,
        open_pg_own.p50_ms,
        open_pg_own.p99_ms
    );
    let permission_ratio = as_editor.ops_per_sec / as_admin.ops_per_sec;
    println!(
        "permissions: GET /items/articles?limit=25 admin {:.0}/s (p99 {:.2} ms), editor with item filter {:.0}/s (p99 {:.2} ms): ratio {permission_ratio:.2} (target >= 0.90)",
        as_admin.ops_per_sec, as_admin.p99_ms, as_editor.ops_per_sec, as_editor.p99_ms
    );
    println!(
        "login (argon2id 19 MiB x 2, session row, JWT; stall off): {:.0}/s, p50 {:.1} ms, p99 {:.1} ms, errors {}",
        logins.ops_per_sec, logins.p50_ms, logins.p99_ms, logins.errors
    );
    let report = json!({
        "permissions": { "admin": as_admin, "editor": as_editor, "ratio": permission_ratio },
        "login": logins,
        "quick": quick,
        "seconds_per_run": duration.as_secs(),
        "concurrency": CONCURRENCY,
        "rows": ROWS,
        "scenarios": rows.iter().map(|(name, ours, base, ratio)| json!({
            "scenario": name, "ours": ours, "baseline": base, "ratio": ratio,
        })).collect::<Vec<_>>(),
        "a_open_loop_70pct": { "rate": peak_a * 0.7, "p50_ms": open.p50_ms, "p99_ms": open.p99_ms, "errors": open.errors, "baseline": open_pg,
            "baseline_at_own_70pct": { "rate": peak_pg * 0.7, "measure": open_pg_own } },
    });
    let out = common::write_report("bench-rest.json", &report);
    println!("written to {}", out.display());
    drop(pool);
    drop(server);
    let _ = cluster.stop();
}
