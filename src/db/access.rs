//! Loads who a caller is, for access control: the user's and role's rows, the role chain, the
//! policies that apply and their permission rows. One load per user, cached by
//! `service::access_cache` until access data changes.

use std::sync::Arc;

use serde_json::{Map, Value};
use sqlx::{FromRow, PgPool};
use tracing::instrument;
use uuid::Uuid;

use crate::core::access::{Action, PermissionRow, PolicyRow};

/// Everything access control needs to know about one user (or the public, `user: None`).
#[derive(Debug, Clone, Default)]
pub struct Principal {
    pub user: Option<Uuid>,
    pub role: Option<Uuid>,
    /// The role and its ancestors, nearest first (`$CURRENT_ROLES`).
    pub roles: Vec<Uuid>,
    /// The user's row without secrets, for `$CURRENT_USER.<field>`.
    /// Shared: every request's filter variables point at it rather than copying it.
    pub user_row: Option<Arc<Map<String, Value>>>,
    /// The role's row, for `$CURRENT_ROLE.<field>`.
    pub role_row: Option<Arc<Map<String, Value>>>,
    /// Policies through the user, the role chain, or (for the public) the Public policy.
    pub policies: Vec<PolicyRow>,
    pub permissions: Vec<PermissionRow>,
    /// The effective access when no policy limits IPs: the same from every address, so built
    /// once and shared by every request and socket of this principal.
    pub open_access: std::sync::OnceLock<std::sync::Arc<crate::core::access::Access>>,
}

impl Principal {
    /// This principal's effective access from `ip`; shared when no policy has an IP list.
    pub fn access_from(&self, ip: std::net::IpAddr) -> std::sync::Arc<crate::core::access::Access> {
        use crate::core::access::Access;
        if self.policies.iter().all(|p| p.ip_access.is_none()) {
            return self
                .open_access
                .get_or_init(|| std::sync::Arc::new(Access::build(&self.policies, &self.permissions, None)))
                .clone();
        }
        std::sync::Arc::new(Access::build(&self.policies, &self.permissions, Some(ip)))
    }
}

#[derive(FromRow)]
struct PolicyDb {
    id: Uuid,
    admin_access: bool,
    app_access: bool,
    enforce_tfa: bool,
    ip_access: Option<Vec<String>>,
}

#[derive(FromRow)]
struct PermissionDb {
    policy: Uuid,
    collection: String,
    action: String,
    permissions: Option<Value>,
    validation: Option<Value>,
    presets: Option<Value>,
    fields: Option<Vec<String>>,
}

/// Loads a principal. An unknown or inactive user loads as nobody: no policies at all.
#[instrument(skip_all, fields(user = ?user))]
pub async fn load(pool: &PgPool, user: Option<Uuid>) -> Result<Principal, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let (user_row, role) = match user {
        Some(id) => {
            let row: Option<(Value, Option<Uuid>)> = sqlx::query_as(
                r#"select to_jsonb(u) - 'password' - 'token' - 'tfa_secret' - 'auth_data', u.role
                   from directrix.users u where u.id = $1 and u.status = 'active'"#,
            )
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            match row {
                Some((Value::Object(row), role)) => (Some(Arc::new(row)), role),
                _ => return Ok(Principal::default()),
            }
        }
        None => (None, None),
    };
    // Nearest first; the depth bound stops a cycle somebody wrote with SQL.
    let roles: Vec<(Uuid, Value)> = sqlx::query_as(
        r#"with recursive chain(id, depth) as (
               select $1::uuid, 0 where $1 is not null
               union all
               select r.parent, c.depth + 1 from directrix.roles r join chain c on r.id = c.id
               where r.parent is not null and c.depth < 32)
           select r.id, to_jsonb(r) from chain c join directrix.roles r on r.id = c.id order by c.depth"#,
    )
    .bind(role)
    .fetch_all(&mut *conn)
    .await?;
    let role_ids: Vec<Uuid> = roles.iter().map(|(id, _)| *id).collect();
    let policies: Vec<PolicyDb> = sqlx::query_as(
        r#"select distinct on (p.id) p.id, p.admin_access, p.app_access, p.enforce_tfa,
                  string_to_array(p.ip_access, ',') as ip_access
           from directrix.access a join directrix.policies p on p.id = a.policy
           where case when $1::uuid is null then a."user" is null and a.role is null
                      else a."user" = $1 or a.role = any($2) end
           order by p.id"#,
    )
    .bind(user)
    .bind(&role_ids)
    .fetch_all(&mut *conn)
    .await?;
    let policy_ids: Vec<Uuid> = policies.iter().map(|p| p.id).collect();
    let permissions: Vec<PermissionDb> = sqlx::query_as(
        r#"select policy, collection, action, permissions, validation, presets,
                  string_to_array(fields, ',') as fields
           from directrix.permissions where policy = any($1) order by id"#,
    )
    .bind(&policy_ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut permissions: Vec<PermissionRow> = permissions
        .into_iter()
        .filter_map(|p| {
            Some(PermissionRow {
                policy: p.policy,
                collection: p.collection,
                action: Action::parse(&p.action)?,
                fields: p.fields,
                permissions: p.permissions,
                validation: p.validation,
                presets: p.presets,
            })
        })
        .collect();
    for policy in policies.iter().filter(|p| p.app_access) {
        permissions.extend(app_access_minimal(policy.id));
    }
    Ok(Principal {
        user: user_row.as_ref().and(user),
        role,
        role_row: roles
            .first()
            .and_then(|(_, row)| row.as_object().cloned())
            .map(Arc::new),
        roles: role_ids,
        user_row,
        policies: policies
            .into_iter()
            .map(|p| PolicyRow {
                id: p.id,
                admin_access: p.admin_access,
                app_access: p.app_access,
                enforce_tfa: p.enforce_tfa,
                ip_access: p.ip_access,
            })
            .collect(),
        permissions,
        open_access: std::sync::OnceLock::new(),
    })
}

/// Directus's `appAccessMinimalPermissions` for the system collections we serve: a policy
/// with app access may read its user's own row, its roles and its own activity. Tied to that
/// policy, so they go when an IP allow-list drops it.
fn app_access_minimal(policy: uuid::Uuid) -> [PermissionRow; 3] {
    let row = |collection: &str, rule: Value, fields: Vec<&str>| PermissionRow {
        policy,
        collection: collection.into(),
        action: Action::Read,
        fields: Some(fields.into_iter().map(str::to_string).collect()),
        permissions: Some(rule),
        validation: None,
        presets: None,
    };
    [
        row(
            "directus_users",
            serde_json::json!({"id": {"_eq": "$CURRENT_USER"}}),
            vec![
                "id",
                "first_name",
                "last_name",
                "last_page",
                "email",
                "password",
                "location",
                "title",
                "description",
                "tags",
                "provider",
                "avatar",
                "language",
                "appearance",
                "theme_light",
                "theme_dark",
                "tfa_secret",
                "status",
                "role",
            ],
        ),
        row(
            "directus_roles",
            serde_json::json!({"id": {"_in": "$CURRENT_ROLES"}}),
            vec!["*"],
        ),
        row(
            "directus_activity",
            serde_json::json!({"user": {"_eq": "$CURRENT_USER"}}),
            vec!["*"],
        ),
    ]
}
