//! `directus_activity` and `directus_revisions` rows (`directrix.activity`, `.revisions`). The
//! items service writes them on the transaction of the change they record; a one-statement
//! create writes them in the same statement ([`tracking_ctes`]).

use sqlx::{PgConnection, PgPool};
use tracing::instrument;
use uuid::Uuid;

use crate::error::Error;

/// Who did what where, for one activity row per item.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// Directus's action: `create`, `update`, `delete`, `login`.
    pub action: &'static str,
    pub user: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub collection: &'a str,
}

/// A revision to write for an activity row.
#[derive(Debug, Clone)]
pub struct Revision {
    pub activity: i32,
    pub item: String,
    /// The item's data as JSON text (`null`: none).
    pub data: Option<String>,
    /// What the write changed, as JSON text.
    pub delta: Option<String>,
}

/// One activity row per key, in key order; returns their ids in the same order.
#[instrument(skip_all, fields(collection = entry.collection, action = entry.action, keys = keys.len()))]
pub async fn record(conn: &mut PgConnection, entry: &Entry<'_>, keys: &[String]) -> Result<Vec<i32>, Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    // Serial ids are drawn in the order the select yields its rows, so sorting the returned
    // ids gives the keys' order back.
    let mut ids: Vec<i32> = sqlx::query_scalar(
        r#"insert into directrix.activity (action, "user", ip, user_agent, origin, collection, item)
           select $1, $2, $3, $4, $5, $6, k from unnest($7::text[]) with ordinality as u(k, n) order by n
           returning id"#,
    )
    .bind(entry.action)
    .bind(entry.user)
    .bind(entry.ip.as_deref())
    .bind(entry.user_agent)
    .bind(entry.origin)
    .bind(entry.collection)
    .bind(keys)
    .fetch_all(&mut *conn)
    .await?;
    ids.sort_unstable();
    Ok(ids)
}

/// Writes revisions of `collection`; returns their ids in the given order.
#[instrument(skip_all, fields(collection, revisions = revisions.len()))]
pub async fn revise(
    conn: &mut PgConnection,
    collection: &str,
    revisions: &[Revision],
) -> Result<Vec<i32>, Error> {
    if revisions.is_empty() {
        return Ok(Vec::new());
    }
    let activity: Vec<i32> = revisions.iter().map(|r| r.activity).collect();
    let items: Vec<&str> = revisions.iter().map(|r| r.item.as_str()).collect();
    let data: Vec<Option<&str>> = revisions.iter().map(|r| r.data.as_deref()).collect();
    let delta: Vec<Option<&str>> = revisions.iter().map(|r| r.delta.as_deref()).collect();
    let mut ids: Vec<i32> = sqlx::query_scalar(
        r#"insert into directrix.revisions (activity, collection, item, data, delta)
           select a, $1, i, d::json, t::json
           from unnest($2::int4[], $3::text[], $4::text[], $5::text[]) with ordinality as u(a, i, d, t, n)
           order by n
           returning id"#,
    )
    .bind(collection)
    .bind(&activity)
    .bind(&items)
    .bind(&data)
    .bind(&delta)
    .fetch_all(&mut *conn)
    .await?;
    ids.sort_unstable();
    Ok(ids)
}

/// Links the revisions of nested writes to the revision of the write that carried them.
pub async fn set_parent(conn: &mut PgConnection, children: &[i32], parent: i32) -> Result<(), Error> {
    if children.is_empty() {
        return Ok(());
    }
    sqlx::query("update directrix.revisions set parent = $1 where id = any($2)")
        .bind(parent)
        .bind(children)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A `login` row for `user` (Directus writes it outside any transaction).
pub async fn record_login(pool: &PgPool, entry: &Entry<'_>, user: Uuid) -> Result<(), Error> {
    let mut conn = pool.acquire().await?;
    record(&mut conn, entry, &[user.to_string()]).await.map(drop)
}

/// For a statement whose CTE `source` returns the one row it wrote (`insert … returning *`):
/// the `, act as (…)` and, with `delta`, `, rev as (…)` CTEs recording it, numbered from
/// parameter `first`, and their binds in order. Data-modifying CTEs run to completion whether
/// or not the main query reads them, so the statement stays one round trip.
pub fn tracking_ctes(
    entry: &Entry<'_>,
    source: &str,
    key_column: &str,
    delta: Option<&str>,
    first: usize,
) -> (String, Vec<Option<String>>) {
    let p = |i: usize| format!("${}", first + i);
    let mut sql = format!(
        r#", act as (insert into directrix.activity (action, "user", ip, user_agent, origin, collection, item)
            select {}, cast({} as uuid), {}, {}, {}, {}, {source}.{key_column}::text from {source} returning id, item)"#,
        p(0),
        p(1),
        p(2),
        p(3),
        p(4),
        p(5)
    );
    let mut binds = vec![
        Some(entry.action.to_string()),
        entry.user.map(|u| u.to_string()),
        entry.ip.clone(),
        entry.user_agent.map(str::to_string),
        entry.origin.map(str::to_string),
        Some(entry.collection.to_string()),
    ];
    if let Some(delta) = delta {
        sql.push_str(&format!(
            ", rev as (insert into directrix.revisions (activity, collection, item, data, delta) \
             select act.id, {}, act.item, cast({} as json), cast({} as json) from act)",
            p(5),
            p(6),
            p(6)
        ));
        binds.push(Some(delta.to_string()));
    }
    (sql, binds)
}
