//! The real binary on the embedded default: `directrix serve` creates and starts its own
//! PostgreSQL cluster, stops it on SIGTERM/SIGINT, and reuses it (with the data) on restart.
//! Also `directrix migrate` and `directrix bootstrap`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

const TOKEN: &str = "embedded-admin-token";

/// A running `directrix serve`; stopped (SIGTERM, then SIGKILL) when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_directrix"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATA_DIR", data_dir)
            .env("PORT", port.to_string())
            .env("ADMIN_TOKEN", TOKEN)
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Waits until `/server/ping` answers; returns how long that took.
    async fn ready(&mut self, since: Instant) -> Duration {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let ping = client.get(format!("{}/server/ping", self.base)).send().await;
            if ping.is_ok_and(|res| res.status() == 200) {
                return since.elapsed();
            }
            assert!(self.child.try_wait().unwrap().is_none(), "server exited early");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("server never became ready");
    }

    fn stop(&mut self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "server exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server did not stop");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            for _ in 0..500 {
                if self.child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
        }
    }
}

/// Runs one statement with psql over the embedded cluster's socket; returns its trimmed output.
fn psql(socket: &Path, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            socket.to_str().unwrap(),
            "-U",
            "postgres",
            "-d",
            "directrix",
            "-tAc",
            sql,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn postmaster_running(data_dir: &Path) -> bool {
    data_dir.join("postgres/postmaster.pid").exists()
}

#[actix_web::test]
async fn serve_manages_its_cluster_across_restarts_and_keeps_data() {
    let dir = tempfile::Builder::new()
        .prefix("directrix-embedded-")
        .tempdir()
        .unwrap();
    let data_dir = dir.path().join("data");
    let client = reqwest::Client::new();

    // First start: creates the cluster.
    let mut server = Server::start(&data_dir);
    server.ready(Instant::now()).await;
    assert!(postmaster_running(&data_dir));
    let res = client
        .post(format!("{}/collections", server.base))
        .bearer_auth(TOKEN)
        .json(&json!({"collection": "kept", "schema": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let socket = data_dir.join("postgres");
    psql(&socket, "insert into kept default values");

    // SIGTERM stops the server and the cluster with it.
    server.stop(Signal::SIGTERM);
    assert!(
        !postmaster_running(&data_dir),
        "the cluster stops with the server"
    );

    // Second start reuses the data folder.
    let started = Instant::now();
    let mut server = Server::start(&data_dir);
    let cold_start = server.ready(started).await;
    eprintln!(
        "cold start on an existing data folder: {} ms",
        cold_start.as_millis()
    );
    let res = client
        .get(format!("{}/collections/kept", server.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(psql(&socket, "select count(*) from kept"), "1");
    assert_eq!(psql(&socket, "show wal_level"), "logical");

    // SIGINT (Ctrl-C) is a clean stop too.
    server.stop(Signal::SIGINT);
    assert!(!postmaster_running(&data_dir));
}

#[test]
fn migrate_and_bootstrap_subcommands() {
    let dir = tempfile::Builder::new()
        .prefix("directrix-cli-")
        .tempdir()
        .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_directrix"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATA_DIR", dir.path())
            .env("LOG_LEVEL", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(run(&["migrate"]).contains("Migrations applied."));
    let first = run(&["bootstrap"]);
    assert!(
        first.contains("Admin user created. Email: admin@example.com"),
        "{first}"
    );
    assert!(
        first.contains("Password: "),
        "a generated password is shown once: {first}"
    );
    let second = run(&["bootstrap"]);
    assert!(second.contains("Database already bootstrapped."), "{second}");
    assert!(
        !postmaster_running(dir.path()),
        "one-shot commands stop the cluster"
    );
}

#[test]
fn a_database_url_that_cannot_connect_fails_clearly() {
    let out = Command::new(env!("CARGO_BIN_EXE_directrix"))
        .arg("migrate")
        .env_clear()
        .env("DB_CONNECTION_STRING", "postgres://nobody@127.0.0.1:1/none")
        .env("LOG_LEVEL", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("connecting to PostgreSQL"), "{stderr}");
}
