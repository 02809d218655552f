//! The embedded PostgreSQL cluster: created with the system's `initdb`, run with `pg_ctl`,
//! reachable only through a Unix socket inside its own data folder.
//!
//! `directrix serve` with no `DB_*` settings and the test harness both go through
//! [`ManagedCluster::start`], so tests exercise exactly what users run. PostgreSQL refuses to run
//! as root; when we are root, every server process runs as the unprivileged `postgres` user
//! (never through `sudo`), and the data folder is handed to that user.
//!
//! Everything here blocks (it spawns and waits for `initdb`/`pg_ctl`); async callers use
//! `spawn_blocking`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nix::unistd::{Gid, Uid, User};
use sqlx::postgres::PgConnectOptions;

/// The port number only names the socket file (`.s.PGSQL.5432`); no TCP port is opened.
const SOCKET_PORT: u16 = 5432;
/// The database superuser created by `initdb`.
const SUPERUSER: &str = "postgres";
/// Seconds `pg_ctl` waits for the server to start or stop.
const PG_CTL_TIMEOUT_SECS: &str = "60";
/// Unix socket paths are limited to 107 bytes on Linux.
const MAX_SOCKET_PATH: usize = 107;
/// The settings file we own, included from `postgresql.conf`.
const OUR_CONF: &str = "directrix.conf";

/// How durable the cluster must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Real data: `fsync` and synchronous commit stay on.
    Durable,
    /// Throwaway test data: no fsync, no full-page writes; a crash may lose everything.
    Ephemeral,
}

/// What went wrong managing the cluster. Messages are written for the person running the server.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "PostgreSQL server programs (initdb, pg_ctl) were not found on PATH or under \
         /usr/lib/postgresql/*/bin. Install them with `apt-get install postgresql` \
         (scripts/install-deps.sh does this), or set DB_CONNECTION_STRING to use an existing database."
    )]
    BinariesMissing,
    #[error(
        "running as root, but there is no `postgres` system user to run PostgreSQL as (it refuses \
         to run as root). Installing Debian's `postgresql` package creates it, or run Directrix as \
         a normal user."
    )]
    NoServiceUser,
    #[error(
        "the `postgres` user cannot reach {path} (PostgreSQL runs as that user). Choose a DATA_DIR \
         outside it, or allow traversal with `chmod o+x {path}`."
    )]
    Unreachable { path: PathBuf },
    #[error(
        "the data folder path {path} is too long for a Unix socket ({len} bytes, at most {MAX_SOCKET_PATH}); \
         choose a shorter DATA_DIR"
    )]
    PathTooLong { path: PathBuf, len: usize },
    #[error("{path} exists and is not an empty folder or a PostgreSQL data folder")]
    NotADataFolder { path: PathBuf },
    #[error("{step} failed: {detail}")]
    Command { step: &'static str, detail: String },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let context = context.into();
    move |source| ClusterError::Io { context, source }
}

/// The Unix user the server processes run as (`None`: as ourselves).
#[derive(Debug, Clone, Copy)]
struct ServiceUser {
    uid: Uid,
    gid: Gid,
}

/// A running cluster that this process manages.
#[derive(Debug)]
pub struct ManagedCluster {
    pgdata: PathBuf,
    bin_dir: PathBuf,
    user: Option<ServiceUser>,
}

impl ManagedCluster {
    /// Creates the cluster under `data_dir/postgres` if needed, writes our settings and starts it.
    /// A cluster that is already running (left by a crashed server) is adopted as it is.
    pub fn start(data_dir: &Path, durability: Durability) -> Result<ManagedCluster, ClusterError> {
        let bin_dir = find_bin_dir().ok_or(ClusterError::BinariesMissing)?;
        let user = service_user()?;
        fs::create_dir_all(data_dir).map_err(io(format!("creating {}", data_dir.display())))?;
        let data_dir = data_dir
            .canonicalize()
            .map_err(io(format!("resolving {}", data_dir.display())))?;
        let pgdata = data_dir.join("postgres");
        let socket_len = pgdata
            .join(format!(".s.PGSQL.{SOCKET_PORT}.lock"))
            .as_os_str()
            .len();
        if socket_len > MAX_SOCKET_PATH {
            return Err(ClusterError::PathTooLong {
                path: pgdata,
                len: socket_len,
            });
        }
        if let Some(user) = user {
            check_reachable(&pgdata, user)?;
        }
        let cluster = ManagedCluster {
            pgdata,
            bin_dir,
            user,
        };
        if !cluster.pgdata.join("PG_VERSION").exists() {
            cluster.init(durability)?;
        }
        cluster.write_settings(durability)?;
        if !cluster.is_running()? {
            cluster.pg_ctl_start()?;
        } else {
            tracing::info!(pgdata = %cluster.pgdata.display(), "adopting running postgres cluster");
        }
        Ok(cluster)
    }

    /// Connection options for one database of this cluster, over its Unix socket.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.pgdata)
            .port(SOCKET_PORT)
            .username(SUPERUSER)
            .database(database)
    }

    /// The cluster's data folder (`PGDATA`).
    pub fn pgdata(&self) -> &Path {
        &self.pgdata
    }

    /// Stops the server with a fast shutdown (active transactions roll back, data is flushed).
    pub fn stop(&self) -> Result<(), ClusterError> {
        if !self.is_running()? {
            return Ok(());
        }
        let out = self.run_pg_ctl(&[
            "-D",
            path_str(&self.pgdata)?,
            "-m",
            "fast",
            "-w",
            "-t",
            PG_CTL_TIMEOUT_SECS,
            "stop",
        ])?;
        check_output("pg_ctl stop", out)
    }

    /// Starts a detached watcher that stops the cluster and deletes `remove` once process `pid`
    /// is gone. Test binaries use it because statics are never dropped, and it also fires when
    /// the test process is killed.
    pub fn stop_when_process_exits(&self, pid: u32, remove: &Path) -> Result<(), ClusterError> {
        let pg_ctl = self.bin_dir.join("pg_ctl");
        let script = format!(
            "while [ -d /proc/{pid} ]; do sleep 0.5; done; \"$0\" -D \"$1\" -m immediate -w stop >/dev/null 2>&1; rm -rf \"$2\""
        );
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .arg(&pg_ctl)
            .arg(&self.pgdata)
            .arg(remove);
        self.as_service_user(&mut cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        cmd.spawn().map_err(io("starting the cluster watcher"))?;
        Ok(())
    }

    fn init(&self, durability: Durability) -> Result<(), ClusterError> {
        if self.pgdata.exists() {
            let empty = fs::read_dir(&self.pgdata)
                .map_err(io(format!("reading {}", self.pgdata.display())))?
                .next()
                .is_none();
            if !empty {
                return Err(ClusterError::NotADataFolder {
                    path: self.pgdata.clone(),
                });
            }
        } else {
            fs::create_dir(&self.pgdata).map_err(io(format!("creating {}", self.pgdata.display())))?;
        }
        fs::set_permissions(&self.pgdata, fs::Permissions::from_mode(0o700))
            .map_err(io("restricting the data folder"))?;
        if let Some(user) = self.user {
            nix::unistd::chown(&self.pgdata, Some(user.uid), Some(user.gid)).map_err(|errno| {
                ClusterError::Io {
                    context: "handing the data folder to postgres".into(),
                    source: errno.into(),
                }
            })?;
        }
        tracing::info!(pgdata = %self.pgdata.display(), "creating postgres cluster");
        let pgdata = path_str(&self.pgdata)?;
        // Trust is safe: the only way in is the socket inside this 0700 folder. C.UTF-8 orders
        // text by code point and folds case for all of Unicode, which is exactly what the
        // in-memory filter evaluator does (`core::filter::eval`), so REST and realtime agree.
        let mut args = vec![
            "-D",
            pgdata,
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ];
        if durability == Durability::Ephemeral {
            args.push("--no-sync");
        }
        let mut cmd = Command::new(self.bin_dir.join("initdb"));
        cmd.args(&args);
        let out = self.output(cmd, "initdb")?;
        check_output("initdb", out)?;
        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(self.pgdata.join("postgresql.conf"))
            .map_err(io("opening postgresql.conf"))?;
        writeln!(
            conf,
            "\n# Directrix's settings; rewritten on every start.\ninclude_if_exists = '{OUR_CONF}'"
        )
        .map_err(io("writing postgresql.conf"))
    }

    fn write_settings(&self, durability: Durability) -> Result<(), ClusterError> {
        let socket_dir = path_str(&self.pgdata)?.replace('\'', "''");
        let mut conf = format!(
            "listen_addresses = ''\n\
             unix_socket_directories = '{socket_dir}'\n\
             port = {SOCKET_PORT}\n\
             wal_level = logical\n\
             max_replication_slots = 32\n\
             max_wal_senders = 32\n\
             max_connections = 200\n"
        );
        if durability == Durability::Ephemeral {
            conf.push_str(
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nshared_buffers = 32MB\n",
            );
        }
        let path = self.pgdata.join(OUR_CONF);
        fs::write(&path, conf).map_err(io(format!("writing {}", path.display())))?;
        if let Some(user) = self.user {
            nix::unistd::chown(&path, Some(user.uid), Some(user.gid)).map_err(|errno| ClusterError::Io {
                context: format!("chown {}", path.display()),
                source: errno.into(),
            })?;
        }
        Ok(())
    }

    fn is_running(&self) -> Result<bool, ClusterError> {
        let out = self.run_pg_ctl(&["-D", path_str(&self.pgdata)?, "status"])?;
        // pg_ctl status: 0 running, 3 not running, 4 no usable data folder.
        match out.status.code() {
            Some(0) => Ok(true),
            Some(3) => Ok(false),
            _ => Err(command_error("pg_ctl status", &out)),
        }
    }

    fn pg_ctl_start(&self) -> Result<(), ClusterError> {
        let log = self.pgdata.join("server.log");
        let out = self.run_pg_ctl(&[
            "-D",
            path_str(&self.pgdata)?,
            "-l",
            path_str(&log)?,
            "-w",
            "-t",
            PG_CTL_TIMEOUT_SECS,
            "start",
        ])?;
        if out.status.success() {
            return Ok(());
        }
        let tail = fs::read_to_string(&log)
            .map(|text| {
                text.lines()
                    .rev()
                    .take(15)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        Err(ClusterError::Command {
            step: "pg_ctl start",
            detail: format!("{}\n{}", String::from_utf8_lossy(&out.stderr).trim(), tail),
        })
    }

    fn run_pg_ctl(&self, args: &[&str]) -> Result<Output, ClusterError> {
        let mut cmd = Command::new(self.bin_dir.join("pg_ctl"));
        cmd.args(args);
        self.output(cmd, "pg_ctl")
    }

    fn output(&self, mut cmd: Command, step: &'static str) -> Result<Output, ClusterError> {
        self.as_service_user(&mut cmd);
        // Its own process group: a Ctrl-C in the terminal reaches us, and we stop the server
        // in order, instead of the server receiving the signal at the same time.
        cmd.process_group(0).stdin(Stdio::null()).current_dir("/");
        cmd.output().map_err(io(format!("running {step}")))
    }

    fn as_service_user(&self, cmd: &mut Command) {
        if let Some(user) = self.user {
            cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
    }
}

/// The user to run the server as: `postgres` when we are root, otherwise ourselves.
fn service_user() -> Result<Option<ServiceUser>, ClusterError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    match User::from_name(SUPERUSER) {
        Ok(Some(user)) => Ok(Some(ServiceUser {
            uid: user.uid,
            gid: user.gid,
        })),
        _ => Err(ClusterError::NoServiceUser),
    }
}

/// Every folder above `pgdata` must be traversable by the service user.
fn check_reachable(pgdata: &Path, user: ServiceUser) -> Result<(), ClusterError> {
    for dir in pgdata.ancestors().skip(1) {
        let meta = fs::metadata(dir).map_err(io(format!("reading {}", dir.display())))?;
        let mode = meta.permissions().mode();
        let can_pass = if meta.uid() == user.uid.as_raw() {
            mode & 0o100 != 0
        } else if meta.gid() == user.gid.as_raw() {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !can_pass {
            return Err(ClusterError::Unreachable {
                path: dir.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Finds the folder holding `initdb` and `pg_ctl`: on PATH first, then the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian keeps them off PATH).
fn find_bin_dir() -> Option<PathBuf> {
    // PATH is process context, not configuration, so reading it here is the one exception.
    find_bin_dir_in(std::env::var_os("PATH").as_deref(), Path::new(DEBIAN_LIB))
}

/// Where Debian installs each major version's server programs (`<version>/bin`).
const DEBIAN_LIB: &str = "/usr/lib/postgresql";

fn find_bin_dir_in(path: Option<&std::ffi::OsStr>, debian_lib: &Path) -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = path.and_then(|p| std::env::split_paths(p).find(|d| has_both(d))) {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(debian_lib)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_both(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

fn path_str(path: &Path) -> Result<&str, ClusterError> {
    path.to_str().ok_or_else(|| ClusterError::Command {
        step: "path check",
        detail: format!("{} is not valid UTF-8", path.display()),
    })
}

fn check_output(step: &'static str, out: Output) -> Result<(), ClusterError> {
    if out.status.success() {
        Ok(())
    } else {
        Err(command_error(step, &out))
    }
}

fn command_error(step: &'static str, out: &Output) -> ClusterError {
    let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if detail.is_empty() {
        detail = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    ClusterError::Command {
        step,
        detail: format!("{detail} ({})", out.status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_bin(dir: &Path) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("initdb"), "").unwrap();
        fs::write(dir.join("pg_ctl"), "").unwrap();
    }

    #[test]
    fn server_programs_are_found_on_path_first_then_newest_debian_version() {
        let root = tempfile::tempdir().unwrap();
        let lib = root.path().join("lib");
        fake_bin(&lib.join("13/bin"));
        fake_bin(&lib.join("15/bin"));
        fs::create_dir_all(lib.join("16/bin")).unwrap(); // incomplete: no programs
        assert_eq!(find_bin_dir_in(None, &lib), Some(lib.join("15/bin")));

        let on_path = root.path().join("custom");
        fake_bin(&on_path);
        let path = std::env::join_paths([root.path().join("empty"), on_path.clone()]).unwrap();
        assert_eq!(find_bin_dir_in(Some(&path), &lib), Some(on_path));
    }

    #[test]
    fn missing_programs_give_the_install_hint() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(find_bin_dir_in(None, &root.path().join("nothing")), None);
        let message = ClusterError::BinariesMissing.to_string();
        assert!(message.contains("apt-get install postgresql"), "{message}");
    }

    #[test]
    fn a_data_folder_the_service_user_cannot_reach_is_reported() {
        let Ok(Some(user)) = service_user() else { return }; // only meaningful as root
        let root = tempfile::tempdir().unwrap();
        let locked = root.path().join("locked");
        fs::create_dir_all(locked.join("data")).unwrap();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).unwrap();
        let err = check_reachable(&locked.join("data/postgres"), user).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("chmod o+x {}", locked.display())),
            "{err}"
        );
    }
}
