//! Activity and revisions, as Directus's items service writes them (`api/src/services/items.ts`):
//! an activity row per item per action for every caller but the system itself, when the
//! collection's `accountability` is `activity` or `all`; with `all`, a revision for creates and
//! updates. A create's revision holds the payload (after presets, without relational fields) as
//! both `data` and `delta`; an update's holds the item as it is after the write as `data` (read
//! without permissions, without relational fields) and the written values as `delta` — no
//! revision when nothing was written. Deletes write activity only. Items written through a
//! nested write record their own rows, under their own collection's setting, and their
//! revisions point at the revision of the write that carried them (`parent`).
//!
//! Beyond Directus, hashed and concealed values are masked in revisions (`**********`), so a
//! password hash never lands in `directus_revisions`.

use serde_json::{Map, Value};
use sqlx::PgConnection;

use super::{Accountability, Client};
use crate::core::field_type::FieldType;
use crate::core::payload::ColumnValue;
use crate::core::query::{self, Settings};
use crate::core::schema::{Collection, SchemaSnapshot};
use crate::db::activity::{self, Entry, Revision};
use crate::db::items::read::{self, Target};
use crate::db::items::rules::ReadRules;
use crate::error::Error;

/// What a collection's `accountability` asks to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracking {
    Nothing,
    Activity,
    /// Activity and revisions.
    All,
}

impl Tracking {
    /// For a write to `collection` by `acc`: nothing for the system's own work or for
    /// `accountability: null`.
    pub fn of(acc: &Accountability, collection: &Collection) -> Tracking {
        if acc.system {
            return Tracking::Nothing;
        }
        // No meta row: Directus tracks everything (`get-schema.ts`).
        match collection.meta.as_ref().map(|m| m.accountability.as_deref()) {
            None | Some(Some("all")) => Tracking::All,
            Some(Some("activity")) => Tracking::Activity,
            Some(_) => Tracking::Nothing,
        }
    }

    pub fn any(self) -> bool {
        self != Tracking::Nothing
    }

    pub fn revisions(self) -> bool {
        self == Tracking::All
    }
}

/// The activity entry for `action` on `collection` by `acc`.
pub fn entry<'a>(acc: &'a Accountability, action: &'static str, collection: &'a str) -> Entry<'a> {
    Entry {
        action,
        user: acc.user,
        ip: acc.ip.map(|ip| ip.to_string()),
        user_agent: acc.user_agent.as_deref(),
        origin: acc.origin.as_deref(),
        collection,
    }
}

const MASK: &str = "**********";

fn masked(collection: &Collection, field: &str) -> bool {
    collection.field(field).is_some_and(|f| {
        f.field_type == FieldType::Hash
            || f.meta
                .as_ref()
                .and_then(|m| m.special.as_ref())
                .is_some_and(|s| s.iter().any(|s| s == "conceal"))
    })
}

/// A field Directus leaves out of revisions: relational (an M2O foreign key, an O2M alias) or
/// not a column.
fn relational(snapshot: &SchemaSnapshot, collection: &Collection, field: &str) -> bool {
    snapshot.relation(&collection.collection, field).is_some()
        || collection.field(field).is_none_or(|f| f.schema.is_none())
}

/// A create's revision text: the payload's own fields, `None` when that leaves nothing.
pub fn create_delta(snapshot: &SchemaSnapshot, collection: &Collection, payload: &Value) -> Option<String> {
    let object = payload.as_object()?;
    let mut delta = Map::new();
    for (field, value) in object {
        if relational(snapshot, collection, field) {
            continue;
        }
        let value = if masked(collection, field) && !value.is_null() {
            Value::String(MASK.into())
        } else {
            value.clone()
        };
        delta.insert(field.clone(), value);
    }
    (!delta.is_empty()).then(|| Value::Object(delta).to_string())
}

/// An update's delta text: the values written (specials included, the key not), typed as a
/// read returns them; `None` when nothing was written.
pub fn update_delta(collection: &Collection, values: &[(String, ColumnValue)]) -> Option<String> {
    let mut delta = Map::new();
    for (column, value) in values {
        if collection.primary_key.as_deref() == Some(column.as_str()) {
            continue;
        }
        let json = match value {
            None => Value::Null,
            Some(_) if masked(collection, column) => Value::String(MASK.into()),
            Some(text) => typed(collection, column, text),
        };
        delta.insert(column.clone(), json);
    }
    (!delta.is_empty()).then(|| Value::Object(delta).to_string())
}

/// A bound text value as JSON of its field's type.
fn typed(collection: &Collection, column: &str, text: &str) -> Value {
    let kind = collection.field(column).map(|f| f.field_type);
    match kind {
        Some(FieldType::Integer | FieldType::Float) => serde_json::from_str::<serde_json::Number>(text)
            .map(Value::Number)
            .unwrap_or_else(|_| Value::String(text.into())),
        Some(FieldType::Boolean) => match text {
            "true" | "t" => Value::Bool(true),
            "false" | "f" => Value::Bool(false),
            _ => Value::String(text.into()),
        },
        Some(FieldType::Json | FieldType::Csv) => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into()))
        }
        _ => Value::String(text.into()),
    }
}

/// Records creates of `collection`: one `(key, delta)` per item. Returns the revision ids
/// (when revisions are kept), in item order.
pub async fn created(
    conn: &mut PgConnection,
    acc: &Accountability,
    collection: &Collection,
    items: &[(String, Option<String>)],
) -> Result<Vec<i32>, Error> {
    let tracking = Tracking::of(acc, collection);
    if !tracking.any() || items.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = items.iter().map(|(k, _)| k.clone()).collect();
    let ids = activity::record(conn, &entry(acc, "create", &collection.collection), &keys).await?;
    if !tracking.revisions() {
        return Ok(Vec::new());
    }
    let revisions: Vec<Revision> = ids
        .iter()
        .zip(items)
        .map(|(id, (key, delta))| Revision {
            activity: *id,
            item: key.clone(),
            data: delta.clone(),
            delta: delta.clone(),
        })
        .collect();
    activity::revise(conn, &collection.collection, &revisions).await
}

/// Records an update of `keys` with `delta`; the revisions' `data` is each item as it is now.
/// Returns the revision ids, in key order (none when `delta` is empty).
pub async fn updated(
    conn: &mut PgConnection,
    acc: &Accountability,
    target: Snapshotting<'_>,
    keys: &[String],
    delta: Option<&str>,
) -> Result<Vec<i32>, Error> {
    let collection = target.collection;
    let tracking = Tracking::of(acc, collection);
    if !tracking.any() || keys.is_empty() {
        return Ok(Vec::new());
    }
    let ids = activity::record(conn, &entry(acc, "update", &collection.collection), keys).await?;
    let Some(delta) = delta.filter(|_| tracking.revisions()) else {
        return Ok(Vec::new());
    };
    let mut data = target.rows(conn, keys).await?;
    let revisions: Vec<Revision> = ids
        .iter()
        .zip(keys)
        .map(|(id, key)| Revision {
            activity: *id,
            item: key.clone(),
            data: data.remove(key),
            delta: Some(delta.to_string()),
        })
        .collect();
    activity::revise(conn, &collection.collection, &revisions).await
}

/// Records deletes of `keys`.
pub async fn deleted(
    conn: &mut PgConnection,
    acc: &Accountability,
    collection: &Collection,
    keys: &[String],
) -> Result<(), Error> {
    if !Tracking::of(acc, collection).any() {
        return Ok(());
    }
    activity::record(conn, &entry(acc, "delete", &collection.collection), keys)
        .await
        .map(drop)
}

/// Records a login of `acc.user` from `client` (Directus: whatever the users collection's
/// setting, outside any transaction).
pub async fn record_login(pool: &sqlx::PgPool, acc: &Accountability, client: &Client) -> Result<(), Error> {
    let Some(user) = acc.user else {
        return Ok(());
    };
    let entry = Entry {
        action: "login",
        user: Some(user),
        ip: client.ip.map(|ip| ip.to_string()),
        user_agent: client.user_agent.as_deref(),
        origin: client.origin.as_deref(),
        collection: "directus_users",
    };
    activity::record_login(pool, &entry, user).await
}

/// Where an update's revision `data` is read from: the collection's own non-relational
/// columns, without permissions, on the write's transaction.
#[derive(Clone, Copy)]
pub struct Snapshotting<'a> {
    pub snapshot: &'a SchemaSnapshot,
    pub user_schema: &'a str,
    pub collection: &'a Collection,
}

impl Snapshotting<'_> {
    /// Key → the item's JSON text.
    async fn rows(
        &self,
        conn: &mut PgConnection,
        keys: &[String],
    ) -> Result<std::collections::HashMap<String, String>, Error> {
        let collection = self.collection;
        let pk = collection.primary_key.as_deref().ok_or(Error::Forbidden)?;
        let fields: Vec<&str> = collection
            .fields
            .iter()
            .filter(|f| !relational(self.snapshot, collection, &f.field) || f.field == pk)
            .map(|f| f.field.as_str())
            .collect();
        let mut params = Map::new();
        params.insert("fields".into(), Value::String(fields.join(",")));
        params.insert("filter".into(), serde_json::json!({ pk: { "_in": keys } }));
        params.insert("limit".into(), Value::from(-1));
        let settings = Settings {
            max_limit: None,
            ..Settings::default()
        };
        let query = query::parse(
            &params,
            self.snapshot,
            &collection.collection,
            chrono::Utc::now(),
            settings,
        )?;
        let rules = ReadRules::unrestricted();
        let target = Target {
            snapshot: self.snapshot,
            schema: self.user_schema,
            collection,
            rules: &rules,
        };
        let sql = read::select(&target, &query, None)?;
        let rows = read::rows(&mut *conn, &sql, &collection.collection).await?;
        let mut by_key = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            let value: Value = serde_json::from_str(&row).map_err(Error::internal)?;
            if let Some(key) = value.get(pk).and_then(|k| super::items::input::key_text(k).ok()) {
                let mut object = value;
                for field in &fields {
                    if masked(collection, field)
                        && let Some(v) = object.get_mut(*field)
                        && !v.is_null()
                    {
                        *v = Value::String(MASK.into());
                    }
                }
                by_key.insert(key, object.to_string());
            }
        }
        Ok(by_key)
    }
}
