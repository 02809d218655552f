//! The replication-protocol connection, derived from the same connection options the pool
//! uses, so realtime reaches exactly the database the REST API serves.

use std::time::Duration;

use pgwire_replication::{ReplicationConfig, TlsConfig};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use super::ReplicationError;

/// Session settings the decoder depends on: `value.rs` parses ISO dates, and timestamps are
/// rendered in UTC as the REST side renders them.
const SESSION_OPTIONS: &str = "-c DateStyle=ISO,MDY -c TimeZone=UTC -c IntervalStyle=postgres";
/// Shown in `pg_stat_replication`, so operators can tell our walsender apart.
const APPLICATION_NAME: &str = "directrix-replication";
/// Events the transport buffers ahead of us; bounded so a slow hub pushes back on the server.
const BUFFER_EVENTS: usize = 8192;

/// The password in a connection URL, from its user info or a `password=` parameter (how
/// `DB_PASSWORD` is written into the URL). `None` for trust or peer authentication.
pub fn password_in_url(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if let Some(password) = parsed.password() {
        return percent_decode(password);
    }
    parsed
        .query_pairs()
        .find(|(key, _)| key == "password")
        .map(|(_, value)| value.into_owned())
}

/// `url` keeps user info percent-encoded (a query pair comes decoded already). Not form
/// decoding: a `+` in a password is a plus.
fn percent_decode(text: &str) -> Option<String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(|cow| cow.into_owned())
}

/// A replication connection to the database `options` points at, for `slot` and
/// `publication`. The pool's TLS is not available to replication sessions (the transport is
/// built without TLS), so a database that requires TLS is refused with a clear reason.
pub fn wire_config(
    options: &PgConnectOptions,
    password: Option<&str>,
    slot: &str,
    publication: &str,
    status_interval: Duration,
) -> Result<ReplicationConfig, ReplicationError> {
    let user = options.get_username();
    let database = options.get_database().unwrap_or(user);
    let password = password.unwrap_or_default();
    let port = options.get_port();
    let socket_dir = options
        .get_socket()
        .map(|dir| dir.to_string_lossy().into_owned())
        .or_else(|| {
            let host = options.get_host();
            host.starts_with('/').then(|| host.to_string())
        });
    let config = match socket_dir {
        Some(dir) => ReplicationConfig::unix(dir, port, user, password, database, slot, publication),
        None => {
            match options.get_ssl_mode() {
                PgSslMode::Disable | PgSslMode::Allow | PgSslMode::Prefer => {}
                PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull => {
                    return Err(ReplicationError::Unavailable(
                        "realtime is off: the database connection requires TLS, which replication \
                         connections do not support yet; use sslmode=prefer or a local connection"
                            .into(),
                    ));
                }
            }
            ReplicationConfig::new(options.get_host(), user, password, database, slot, publication)
                .with_port(port)
                .with_tls(TlsConfig::disabled())
        }
    };
    Ok(config
        .with_status_interval(status_interval)
        .with_buffer_size(BUFFER_EVENTS)
        .with_options(SESSION_OPTIONS)
        .with_application_name(APPLICATION_NAME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_come_from_user_info_or_the_query() {
        assert_eq!(
            password_in_url("postgres://me:p%40s+s@db:5432/app").as_deref(),
            Some("p@s+s")
        );
        assert_eq!(
            password_in_url("postgres://db:5432/app?user=me&password=p%40ss%2Fword").as_deref(),
            Some("p@ss/word")
        );
        assert_eq!(
            password_in_url("postgres://postgres@localhost/app?host=/tmp"),
            None
        );
    }

    #[test]
    fn sockets_and_tcp_become_the_right_transport() -> Result<(), Box<dyn std::error::Error>> {
        let socket: PgConnectOptions = "postgres://postgres@localhost/app?host=/tmp/pg".parse()?;
        let config = wire_config(&socket, None, "s", "p", Duration::from_secs(1))?;
        assert!(config.is_unix_socket());
        assert_eq!(config.host, "/tmp/pg");
        assert_eq!(config.database, "app");
        let tcp: PgConnectOptions = "postgres://me@db.local:6543/app?sslmode=disable".parse()?;
        let config = wire_config(&tcp, Some("pw"), "s", "p", Duration::from_secs(1))?;
        assert_eq!((config.host.as_str(), config.port), ("db.local", 6543));
        assert_eq!(config.password, "pw");
        let tls: PgConnectOptions = "postgres://me@db.local/app?sslmode=require".parse()?;
        assert!(wire_config(&tls, None, "s", "p", Duration::from_secs(1)).is_err());
        Ok(())
    }
}
