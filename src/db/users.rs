//! Reads and stamps users for authentication: static-token owners, login lookups, password
//! changes and `last_access`.

use sqlx::{FromRow, PgPool};
use tracing::instrument;
use uuid::Uuid;

/// The active user whose static token has this digest. Roles and policies come from the
/// principal (`db::access`), not from here.
#[instrument(skip_all)]
pub async fn by_token_digest(pool: &PgPool, digest: &str) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("select id from directrix.users where token = $1 and status = 'active'")
        .bind(digest)
        .fetch_optional(pool)
        .await
}

/// What login needs of a user.
#[derive(Debug, Clone, FromRow)]
pub struct LoginUser {
    pub id: Uuid,
    pub email: Option<String>,
    pub password: Option<String>,
    pub status: String,
    pub role: Option<Uuid>,
    pub tfa_secret: Option<String>,
    pub provider: String,
}

/// Finds a user by email, case-insensitively (emails are unique by `lower(email)`).
#[instrument(skip_all)]
pub async fn by_email(pool: &PgPool, email: &str) -> Result<Option<LoginUser>, sqlx::Error> {
    sqlx::query_as(
        r#"select id, email, password, status, role, tfa_secret, provider
           from directrix.users where lower(email) = lower($1)"#,
    )
    .bind(email)
    .fetch_optional(pool)
    .await
}

/// Replaces a user's password hash (a rehash at login, or a reset).
#[instrument(skip_all, fields(user = %id))]
pub async fn set_password(pool: &PgPool, id: Uuid, phc: &str) -> Result<(), sqlx::Error> {
    sqlx::query("update directrix.users set password = $2 where id = $1")
        .bind(id)
        .bind(phc)
        .execute(pool)
        .await?;
    Ok(())
}

/// Records a successful login or refresh.
#[instrument(skip_all, fields(user = %id))]
pub async fn touch_last_access(
    pool: &PgPool,
    id: Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("update directrix.users set last_access = $2 where id = $1")
        .bind(id)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}
