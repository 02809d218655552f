//! Reads users for authentication. The auth issue adds sessions, roles and policies on top.

use sqlx::{FromRow, PgPool};
use tracing::instrument;
use uuid::Uuid;

/// The user a static token belongs to, with what its policies grant.
#[derive(Debug, Clone, FromRow)]
pub struct TokenOwner {
    pub id: Uuid,
    pub role: Option<Uuid>,
    /// Any of the user's policies (direct or through the role) has `admin_access`.
    pub admin_access: bool,
}

/// Finds the active user whose static token has this digest.
#[instrument(skip_all)]
pub async fn by_token_digest(pool: &PgPool, digest: &str) -> Result<Option<TokenOwner>, sqlx::Error> {
    sqlx::query_as(
        r#"select u.id, u.role, coalesce(bool_or(p.admin_access), false) as admin_access
           from directrix.users u
           left join directrix.access a on a."user" = u.id or (u.role is not null and a.role = u.role)
           left join directrix.policies p on p.id = a.policy
           where u.token = $1 and u.status = 'active'
           group by u.id"#,
    )
    .bind(digest)
    .fetch_optional(pool)
    .await
}
