//! What the end-to-end load suites (`rest`, `realtime`) share: the bench-only guard, a private
//! PostgreSQL cluster, the release `directrix` binary started on it, and percentiles.
//!
//! Included with `mod common;`; each suite uses part of it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use directrix::db::cluster::{Durability, ManagedCluster};

/// The admin's static token in every bench server.
pub const TOKEN: &str = "bench-admin-token";

/// `cargo test --all-targets` runs bench binaries too, without `--bench`: a load suite has no
/// place in the test run, so then it only says how to run it (and this is false).
pub fn bench_run(name: &str) -> bool {
    if std::env::args().any(|a| a == "--bench") {
        return true;
    }
    println!("{name} load suite: run it with `cargo bench --bench {name} [-- --quick]`");
    false
}

/// `-- --quick`.
pub fn quick() -> bool {
    std::env::args().any(|a| a == "--quick")
}

/// `-- --only=a,b`: the parts of a suite to run (all when absent).
pub fn only() -> Option<String> {
    std::env::args().find_map(|a| a.strip_prefix("--only=").map(str::to_string))
}

/// A private cluster, as the embedded default runs it (durable settings), with database
/// `database`; stopped and deleted when this process exits.
pub async fn cluster(database: &str) -> ManagedCluster {
    let root = tempfile::Builder::new()
        .prefix("directrix-bench-")
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
    directrix::db::pool::ensure_database(cluster.connect_options("postgres"), database)
        .await
        .unwrap();
    cluster
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The release `directrix serve`, stopped (SIGTERM, then waited for) when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    pub base: String,
}

impl Server {
    /// Starts `directrix serve` on `database` of `cluster` with the admin token [`TOKEN`],
    /// `env` on top of the defaults, and waits until it answers `/server/ping`.
    pub async fn start(cluster: &ManagedCluster, database: &str, env: &[(&str, String)]) -> Server {
        let port = free_port();
        let url = format!(
            "postgres://postgres@localhost/{database}?host={}",
            cluster.pgdata().display()
        );
        let mut command = Command::new(env!("CARGO_BIN_EXE_directrix"));
        command
            .arg("serve")
            .env("DB_CONNECTION_STRING", &url)
            .env("PORT", port.to_string())
            .env("ADMIN_TOKEN", TOKEN)
            .env("ADMIN_PASSWORD", "bench")
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let server = Server {
            child: command.spawn().unwrap(),
            port,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..1000 {
            if client
                .get(format!("{}/server/ping", server.base))
                .send()
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the server did not answer /server/ping");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// VmRSS of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Open file descriptors of the server process.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|dir| dir.count())
            .unwrap_or(0)
    }

    /// CPU time the server process has used (user + system).
    pub fn cpu(&self) -> Duration {
        cpu_of(self.pid())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) of process `pid`, from `/proc/<pid>/stat`.
pub fn cpu_of(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // After the `(comm)` field: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    // USER_HZ is 100 on every Linux this runs on.
    Duration::from_millis(ticks * 10)
}

/// CPU time the whole machine spent busy (everything but idle and iowait), from `/proc/stat`.
pub fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let line = stat.lines().next().unwrap();
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let busy: u64 = fields.iter().sum::<u64>() - fields[3] - fields.get(4).copied().unwrap_or(0);
    Duration::from_millis(busy * 10)
}

/// The `p` quantile of sorted microseconds, in milliseconds.
pub fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted_us.len() as f64 - 1.0) * p).round() as usize;
    sorted_us[index] as f64 / 1000.0
}

/// Writes `report` as pretty JSON to `target/<file>`; the path.
pub fn write_report(file: &str, report: &serde_json::Value) -> std::path::PathBuf {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join(file);
    std::fs::write(&out, serde_json::to_string_pretty(report).unwrap()).unwrap();
    out
}
