//! Refresh-token sessions: creating them at login, rotating them on refresh, ending them at
//! logout. Tokens are stored as SHA-256 digests; the plaintext exists only in the client.
//!
//! Every rotation of one login shares a `family`. A rotated token keeps working for the grace
//! period (so two tabs refreshing at once both succeed, as in Directus); presented again after
//! that, it is taken as stolen and the whole family is deleted (beyond Directus).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};
use tracing::instrument;
use uuid::Uuid;

/// Where a login or refresh came from, stored with the session.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub origin: Option<String>,
}

/// What presenting a refresh token led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Refreshed {
    /// A new session row replaced the presented one; the user is who it belongs to.
    Rotated { user: Uuid, status: String },
    /// No live session has this token (unknown, expired or logged out).
    Unknown,
    /// The token had been rotated before the grace period: the family is now revoked.
    Reused { family: Uuid },
}

#[derive(FromRow)]
struct Row {
    user: Uuid,
    family: Uuid,
    expires: DateTime<Utc>,
    next_token: Option<String>,
    rotated_at: Option<DateTime<Utc>>,
    status: String,
}

/// Starts a session (a new family) for `user`.
#[instrument(skip_all, fields(user = %user))]
pub async fn create(
    pool: &PgPool,
    digest: &str,
    user: Uuid,
    expires: DateTime<Utc>,
    from: &Origin,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        r#"insert into directrix.sessions (token, "user", family, expires, ip, user_agent, origin)
           values ($1, $2, gen_random_uuid(), $3, $4, $5, $6)"#,
    )
    .bind(digest)
    .bind(user)
    .bind(expires)
    .bind(&from.ip)
    .bind(&from.user_agent)
    .bind(&from.origin)
    .execute(pool)
    .await?;
    Ok(())
}

/// Replaces the session `old` with `new` (expiring at `expires`), in one transaction that
/// locks the old row, so two concurrent refreshes cannot both see it unrotated. `new` is the
/// digest of the successor derived from `old`, so a retry within `grace` finds it and gets the
/// same session back.
#[instrument(skip_all)]
pub async fn rotate(
    pool: &PgPool,
    old: &str,
    new: &str,
    expires: DateTime<Utc>,
    grace: Duration,
    now: DateTime<Utc>,
    from: &Origin,
) -> Result<Refreshed, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let row: Option<Row> = sqlx::query_as(
        r#"select s."user", s.family, s.expires, s.next_token, s.rotated_at, u.status
           from directrix.sessions s join directrix.users u on u.id = s."user"
           where s.token = $1
           for update of s"#,
    )
    .bind(old)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(Refreshed::Unknown);
    };
    if row.expires <= now {
        sqlx::query("delete from directrix.sessions where token = $1")
            .bind(old)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(Refreshed::Unknown);
    }
    if let Some(next) = &row.next_token {
        let rotated_at = row.rotated_at.unwrap_or(row.expires);
        if now - rotated_at > chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::zero()) {
            sqlx::query("delete from directrix.sessions where family = $1")
                .bind(row.family)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::warn!(family = %row.family, "rotated refresh token reused: session family revoked");
            return Ok(Refreshed::Reused { family: row.family });
        }
        if next == new {
            // A retry within the grace period: the successor already exists (the token is
            // derived from the presented one); it lives on from now, as Directus extends it.
            sqlx::query("update directrix.sessions set expires = $2 where token = $1")
                .bind(new)
                .bind(expires)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(Refreshed::Rotated {
                user: row.user,
                status: row.status,
            });
        }
    } else {
        sqlx::query("update directrix.sessions set next_token = $2, rotated_at = $3 where token = $1")
            .bind(old)
            .bind(new)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    // A successor derived under another secret (the server restarted with a random one): the
    // retry gets a sibling in the same family instead.
    sqlx::query(
        r#"insert into directrix.sessions (token, "user", family, expires, ip, user_agent, origin)
           values ($1, $2, $3, $4, $5, $6, $7)"#,
    )
    .bind(new)
    .bind(row.user)
    .bind(row.family)
    .bind(expires)
    .bind(&from.ip)
    .bind(&from.user_agent)
    .bind(&from.origin)
    .execute(&mut *tx)
    .await?;
    // Expired rows of this user go with every refresh, as in Directus.
    sqlx::query(r#"delete from directrix.sessions where "user" = $1 and expires < $2"#)
        .bind(row.user)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Refreshed::Rotated {
        user: row.user,
        status: row.status,
    })
}

/// Ends the login `digest` belongs to (every rotation of it). Returns whether one existed.
#[instrument(skip_all)]
pub async fn end(pool: &PgPool, digest: &str) -> Result<bool, sqlx::Error> {
    let ended = sqlx::query(
        "delete from directrix.sessions where family = (select family from directrix.sessions where token = $1)",
    )
    .bind(digest)
    .execute(pool)
    .await?;
    Ok(ended.rows_affected() > 0)
}

/// Whether a session-mode access token's session is still live: not expired, not revoked, and
/// not rotated longer ago than the grace period.
#[instrument(skip_all)]
pub async fn is_live(
    pool: &PgPool,
    digest: &str,
    user: Uuid,
    grace: Duration,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let cutoff = now - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::zero());
    sqlx::query_scalar(
        r#"select exists (select 1 from directrix.sessions
             where token = $1 and "user" = $2 and expires > $3
               and (rotated_at is null or rotated_at > $4))"#,
    )
    .bind(digest)
    .bind(user)
    .bind(now)
    .bind(cutoff)
    .fetch_one(pool)
    .await
}

/// Deletes every session of `user` (password change, suspension).
#[instrument(skip_all, fields(user = %user))]
pub async fn end_all_of(pool: &PgPool, user: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(r#"delete from directrix.sessions where "user" = $1"#)
        .bind(user)
        .execute(pool)
        .await?;
    Ok(())
}
