//! Migrations and first-start bootstrap: system tables, the Administrator role and policy, the
//! Public policy, and the first admin user.
//!
//! Both are idempotent and safe to run from several instances at once (sqlx's migrator and the
//! bootstrap each hold an advisory lock).

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use uuid::Uuid;

use crate::core::password;

/// Directrix's own migrations, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Applies pending migrations. The `_sqlx_migrations` bookkeeping table lives in the
/// `directrix` schema too, so the user schema holds only user tables.
pub async fn migrate(pool: &PgPool) -> Result<(), anyhow::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query("create schema if not exists directrix")
        .execute(&mut *conn)
        .await?;
    sqlx::query("set search_path to directrix")
        .execute(&mut *conn)
        .await?;
    let result = MIGRATOR.run(&mut *conn).await;
    sqlx::query("reset search_path").execute(&mut *conn).await?;
    result?;
    Ok(())
}

/// What bootstrap did.
#[derive(Debug, Default)]
pub struct Bootstrapped {
    /// Set when the first admin was created: their email, and the password if we generated it.
    pub admin_created: Option<(String, Option<SecretString>)>,
}

/// Creates the Administrator role/policy, the Public policy and the first admin on an empty
/// database, and (re)assigns `ADMIN_TOKEN` to the admin on every start.
pub async fn bootstrap(
    pool: &PgPool,
    admin_email: &str,
    admin_password: Option<&SecretString>,
    admin_token: Option<&SecretString>,
) -> Result<Bootstrapped, anyhow::Error> {
    let mut outcome = Bootstrapped::default();
    let mut tx = pool.begin().await?;
    sqlx::query("select pg_advisory_xact_lock(hashtext('directrix.bootstrap'))")
        .execute(&mut *tx)
        .await?;
    let users: i64 = sqlx::query_scalar("select count(*) from directrix.users")
        .fetch_one(&mut *tx)
        .await?;
    if users == 0 {
        let role: Uuid = sqlx::query_scalar(
            "insert into directrix.roles (name, icon, description) \
             values ('Administrator', 'verified', '$t:admin_description') returning id",
        )
        .fetch_one(&mut *tx)
        .await?;
        let policy: Uuid = sqlx::query_scalar(
            "insert into directrix.policies (name, icon, description, admin_access, app_access) \
             values ('Administrator', 'verified', '$t:admin_policy_description', true, true) returning id",
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("insert into directrix.access (role, policy) values ($1, $2)")
            .bind(role)
            .bind(policy)
            .execute(&mut *tx)
            .await?;
        // Directus's Public policy: attached to no role and no user, it applies to anonymous
        // requests. It grants nothing until permissions are added.
        let public: Uuid = sqlx::query_scalar(
            "insert into directrix.policies (name, icon, description) \
             values ('$t:public_label', 'public', '$t:public_description') returning id",
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("insert into directrix.access (policy) values ($1)")
            .bind(public)
            .execute(&mut *tx)
            .await?;

        let (plain, generated) = match admin_password {
            Some(pw) => (pw.clone(), None),
            None => {
                let pw = SecretString::from(password::generate(24));
                (pw.clone(), Some(pw))
            }
        };
        let phc = password::hash(plain.expose_secret())
            .map_err(|e| anyhow::anyhow!("hashing the admin password: {e}"))?;
        sqlx::query(
            "insert into directrix.users (first_name, last_name, email, password, status, role) \
             values ('Admin', 'User', lower($1), $2, 'active', $3)",
        )
        .bind(admin_email)
        .bind(phc)
        .bind(role)
        .execute(&mut *tx)
        .await?;
        outcome.admin_created = Some((admin_email.to_lowercase(), generated));
    }
    if let Some(token) = admin_token {
        let digest = password::token_digest(token.expose_secret());
        sqlx::query("update directrix.users set token = null where token = $1 and lower(email) <> lower($2)")
            .bind(&digest)
            .bind(admin_email)
            .execute(&mut *tx)
            .await?;
        let updated = sqlx::query("update directrix.users set token = $1 where lower(email) = lower($2)")
            .bind(&digest)
            .bind(admin_email)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if updated == 0 {
            tracing::warn!(
                admin_email,
                "ADMIN_TOKEN is set but no user has ADMIN_EMAIL; the token is not active"
            );
        }
    }
    tx.commit().await?;
    Ok(outcome)
}
