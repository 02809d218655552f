//! Writes: `create_one`, `create_many`, `update_one`, `update_many`, `update_batch`,
//! `update_by_query`, `upsert_one`, `upsert_singleton`, `delete_one`, `delete_many`,
//! `delete_by_query`, and the read-back forms the REST and socket paths answer with.
//!
//! Every item is checked before anything is written: one forbidden item rejects the batch. A
//! batch, a nested write, or a write that records activity runs in one transaction (the
//! caller's, when it handed one); a single create runs as one statement with its activity,
//! revision and read-back.

use std::cell::RefCell;

use serde_json::Value;
use sqlx::PgConnection;

use super::{Conn, ItemsQuery, ItemsService, Op, Selector, UpdateBody, statement, transaction};
use crate::core::access::{Action, plan};
use crate::core::payload::{self, Context, Mode};
use crate::db::items::nested::{self, Change, Written};
use crate::db::items::read as sql_read;
use crate::db::items::write;
use crate::db::sql::ident;
use crate::error::Error;
use crate::service::activity::{self, Snapshotting, Tracking};

/// When and by whom a write happens, for `date-*` and `user-*` specials.
struct Stamp {
    now: String,
    user: Option<String>,
}

impl Stamp {
    fn of(op: &Op<'_>) -> Stamp {
        Stamp {
            now: chrono::Utc::now().to_rfc3339(),
            user: op.acc.user.map(|u| u.to_string()),
        }
    }

    fn context(&self) -> Context<'_> {
        Context {
            now: &self.now,
            user: self.user.as_deref(),
            hash: &hash_field,
            new_uuid: &|| uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// `hash` fields store argon2id, except static tokens (`directus_users.token`): those are
/// looked up on every request, so they are stored as a SHA-256 digest of a long random string.
fn hash_field(field: &str, text: &str) -> Result<String, String> {
    match field {
        "directus_users.token" => return Ok(crate::core::password::token_digest(text)),
        // The TOTP secret must stay usable: Directus only conceals it on read (`conceal`).
        "directus_users.tfa_secret" => return Ok(text.to_string()),
        _ => {}
    }
    crate::core::password::hash(text).map_err(|e| e.to_string())
}

/// An item of a batch update without its key: the key names the item, it is not written.
fn without_key(collection: &crate::core::schema::Collection, item: &Value) -> Value {
    let mut item = item.clone();
    if let (Some(pk), Some(object)) = (collection.primary_key.as_deref(), item.as_object_mut()) {
        object.remove(pk);
    }
    item
}

impl ItemsService<'_> {
    /// Creates one item; its key.
    pub async fn create_one(&mut self, payload: Value) -> Result<String, Error> {
        let keys = self.create_many(vec![payload]).await?;
        keys.into_iter().next().ok_or(Error::Forbidden)
    }

    /// Creates items in one transaction; their keys, in order.
    pub async fn create_many(&mut self, payloads: Vec<Value>) -> Result<Vec<String>, Error> {
        let (op, tx) = self.split()?;
        let items = op.authorize_creates(&payloads)?;
        let mut conn = transaction(tx, op.services).await?;
        let (keys, nested) = op.create(conn.get(), &items).await?;
        conn.finish().await?;
        op.forget_access(nested);
        Ok(keys)
    }

    /// Creates items and reads them back with `read_back` as the caller: one object (`many`
    /// false) or an array. `None`: written, but nothing the caller may read (Directus answers
    /// 204).
    pub async fn create_and_read(
        &mut self,
        payloads: Vec<Value>,
        many: bool,
        read_back: &ItemsQuery,
    ) -> Result<Option<String>, Error> {
        let (op, tx) = self.split()?;
        let items = op.authorize_creates(&payloads)?;
        let single_statement =
            matches!(items.as_slice(), [item] if !nested::has_nested(op.schema, op.collection, item));
        if single_statement && !many {
            // One statement is atomic on its own: no transaction round trips, and the
            // activity, the revision and the read-back ride in the same statement.
            // A read-back query that is wrong (not merely unreadable) is refused before
            // anything is written.
            let authorized = match op.authorized(read_back, chrono::Utc::now()) {
                Err(err) if !is_unreadable(&err) => return Err(err),
                authorized => authorized,
            };
            let select = match &authorized {
                Ok((query, rules)) => sql_read::select_inserted(&op.target(rules), query),
                Err(_) => None,
            };
            if authorized.is_err() || select.is_some() {
                let mut conn = statement(tx, op.services).await?;
                let (_, row) = op
                    .insert_one(conn.get(), &items[0], select.as_ref().map(|s| s.text.as_str()))
                    .await?;
                conn.finish().await?;
                op.forget_access(false);
                return match authorized {
                    Ok(_) => Ok(row),
                    Err(err) => unreadable(err),
                };
            }
        }
        let mut conn = transaction(tx, op.services).await?;
        let (keys, nested) = op.create(conn.get(), &items).await?;
        conn.finish().await?;
        op.forget_access(nested);
        self.read_back(&keys, !many, read_back).await
    }

    /// Updates the item `key`; its key.
    pub async fn update_one(&mut self, key: &str, payload: Value) -> Result<String, Error> {
        let op = self.op()?;
        sql_read::check_key(op.collection, key)?;
        self.update_many(&[key.to_string()], payload).await?;
        Ok(key.to_string())
    }

    /// Updates the items `keys` with one payload; their keys.
    pub async fn update_many(&mut self, keys: &[String], payload: Value) -> Result<Vec<String>, Error> {
        let (op, tx) = self.split()?;
        op.check_batch(keys.len())?;
        let data = op.authorize(Action::Update, &payload)?;
        let mut conn = conn_for(tx, &op, &data).await?;
        let nested = op.update(conn.get(), keys, &data).await?;
        conn.finish().await?;
        op.forget_access(nested);
        Ok(keys.to_vec())
    }

    /// Updates each item of a batch by the key it carries; their keys, in order.
    pub async fn update_batch(&mut self, items: Vec<Value>) -> Result<Vec<String>, Error> {
        let (op, tx) = self.split()?;
        op.check_batch(items.len())?;
        let mut conn = transaction(tx, op.services).await?;
        let (keys, nested) = op.update_batch(conn.get(), &items).await?;
        conn.finish().await?;
        op.forget_access(nested);
        Ok(keys)
    }

    /// Updates the items `query` selects (at most 100 unless it says) with one payload.
    pub async fn update_by_query(&mut self, query: ItemsQuery, payload: Value) -> Result<Vec<String>, Error> {
        let (op, tx) = self.split()?;
        let keys = {
            let mut conn = statement(tx, op.services).await?;
            op.keys_for(conn.get(), Selector::Query(query)).await?
        };
        self.update_many(&keys, payload).await
    }

    /// Updates the item the payload names by its key when it exists, else creates it.
    pub async fn upsert_one(&mut self, payload: Value) -> Result<String, Error> {
        let (op, tx) = self.split()?;
        let key = payload
            .as_object()
            .and_then(|o| payload::key_of(op.collection, o));
        if let Some(key) = key {
            let exists = {
                let mut conn = statement(tx, op.services).await?;
                write::exists(conn.get(), op.user_schema(), op.collection, &key).await?
            };
            if exists {
                let data = without_key(op.collection, &payload);
                return self.update_one(&key, data).await;
            }
        }
        self.create_one(payload).await
    }

    /// Writes a singleton's item: updates it, or creates it when there is none yet.
    pub async fn upsert_singleton(&mut self, payload: Value) -> Result<String, Error> {
        let (op, tx) = self.split()?;
        let mut conn = transaction(tx, op.services).await?;
        let key = op.upsert_singleton(conn.get(), &payload).await?;
        conn.finish().await?;
        op.forget_access(nested::has_nested(op.schema, op.collection, &payload));
        Ok(key)
    }

    /// A `PATCH` of the collection: a batch, `{keys, data}`, `{query, data}`, or a singleton's
    /// object; then the written items read back with `read_back` (an object for a singleton).
    pub async fn update_and_read(
        &mut self,
        body: Value,
        read_back: &ItemsQuery,
    ) -> Result<Option<String>, Error> {
        let (op, tx) = self.split()?;
        if op.collection.is_singleton() {
            let key = self.upsert_singleton(body).await?;
            return self.read_back(&[key], true, read_back).await;
        }
        let keys = match UpdateBody::parse(body)? {
            UpdateBody::Batch(items) => self.update_batch(items).await?,
            UpdateBody::Many { selector, data } => {
                let keys = {
                    let mut conn = statement(tx, op.services).await?;
                    op.keys_for(conn.get(), selector).await?
                };
                self.update_many(&keys, data).await?
            }
        };
        self.read_back(&keys, false, read_back).await
    }

    /// Updates the item `key` and reads it back with `read_back`.
    pub async fn update_one_and_read(
        &mut self,
        key: &str,
        payload: Value,
        read_back: &ItemsQuery,
    ) -> Result<Option<String>, Error> {
        self.update_one(key, payload).await?;
        self.read_back(&[key.to_string()], true, read_back).await
    }

    /// Deletes the item `key` (nothing to delete is not an error).
    pub async fn delete_one(&mut self, key: &str) -> Result<(), Error> {
        let op = self.op()?;
        sql_read::check_key(op.collection, key)?;
        self.delete_many(&[key.to_string()]).await
    }

    /// Deletes the items `keys` in one transaction.
    pub async fn delete_many(&mut self, keys: &[String]) -> Result<(), Error> {
        let (op, tx) = self.split()?;
        op.check_batch(keys.len())?;
        for key in keys {
            sql_read::check_key(op.collection, key)
                .map_err(|_| Error::payload(format!("Invalid primary key \"{key}\"")))?;
        }
        let mut conn = if Tracking::of(op.acc, op.collection).any() || keys.len() > 1 {
            transaction(tx, op.services).await?
        } else {
            statement(tx, op.services).await?
        };
        op.delete(conn.get(), keys).await?;
        conn.finish().await?;
        op.forget_access(false);
        Ok(())
    }

    /// Deletes the items `query` selects (at most 100 unless it says); their keys.
    pub async fn delete_by_query(&mut self, query: ItemsQuery) -> Result<Vec<String>, Error> {
        self.delete_selected(Selector::Query(query)).await
    }

    /// Deletes the items a key list or query names; their keys.
    pub async fn delete_selected(&mut self, selector: Selector) -> Result<Vec<String>, Error> {
        let (op, tx) = self.split()?;
        let keys = {
            let mut conn = statement(tx, op.services).await?;
            op.keys_for(conn.get(), selector).await?
        };
        self.delete_many(&keys).await?;
        Ok(keys)
    }

    /// Written items read back as the caller: one object or an array, in the query's order.
    /// `None` when there is nothing the caller may see (Directus answers 204).
    async fn read_back(
        &mut self,
        keys: &[String],
        single: bool,
        query: &ItemsQuery,
    ) -> Result<Option<String>, Error> {
        let rows = match self.read_many(keys, query).await {
            Ok(rows) => rows,
            Err(err) => return unreadable(err),
        };
        Ok(if single {
            rows.into_iter().next()
        } else {
            Some(sql_read::array(&rows))
        })
    }
}

/// A transaction when the write needs more than one statement, else one statement.
async fn conn_for<'c>(
    tx: &'c mut Option<&'_ mut PgConnection>,
    op: &Op<'_>,
    data: &Value,
) -> Result<Conn<'c>, Error> {
    let single =
        !Tracking::of(op.acc, op.collection).any() && !nested::has_nested(op.schema, op.collection, data);
    if single {
        statement(tx, op.services).await
    } else {
        transaction(tx, op.services).await
    }
}

/// Written but not readable by the writer: nothing to show, as Directus answers.
fn unreadable(err: Error) -> Result<Option<String>, Error> {
    if is_unreadable(&err) { Ok(None) } else { Err(err) }
}

/// Whether `err` only says the writer may not read what it wrote.
fn is_unreadable(err: &Error) -> bool {
    matches!(err, Error::Forbidden | Error::ForbiddenCollection { .. })
}

impl Op<'_> {
    /// Checks one payload (and, through relations, the items nested in it) against the
    /// caller's rules for `action`; presets applied where it creates.
    fn authorize(&self, action: Action, payload: &Value) -> Result<Value, Error> {
        let vars = self.acc.variables();
        Ok(plan::authorize_payload(
            &self.acc.access,
            self.schema,
            self.name(),
            action,
            payload,
            &vars,
            0,
        )?)
    }

    fn authorize_creates(&self, payloads: &[Value]) -> Result<Vec<Value>, Error> {
        if self.collection.is_singleton() {
            return Err(Error::Forbidden);
        }
        self.check_batch(payloads.len())?;
        payloads
            .iter()
            .map(|item| self.authorize(Action::Create, item))
            .collect()
    }

    /// Inserts one checked item with its activity, revision and `read_back` in one statement.
    async fn insert_one(
        &self,
        conn: &mut PgConnection,
        item: &Value,
        read_back: Option<&str>,
    ) -> Result<(String, Option<String>), Error> {
        let stamp = Stamp::of(self);
        let values = payload::prepare(self.collection, item, Mode::Create, &stamp.context())?;
        let tracking = Tracking::of(self.acc, self.collection);
        let pk = self.collection.primary_key.as_deref().ok_or(Error::Forbidden)?;
        let ctes = tracking.any().then(|| {
            let delta = tracking
                .revisions()
                .then(|| activity::create_delta(self.schema, self.collection, item))
                .flatten();
            crate::db::activity::tracking_ctes(
                &activity::entry(self.acc, "create", self.name()),
                "ins",
                &ident(pk),
                delta.as_deref(),
                values.len() + 1,
            )
        });
        write::insert_returning(
            conn,
            self.user_schema(),
            self.collection,
            &values,
            ctes.as_ref().map(|(sql, binds)| (sql.as_str(), binds.as_slice())),
            read_back,
        )
        .await
    }

    /// Creates checked items on `conn`; their keys, and whether any carried nested writes.
    async fn create(&self, conn: &mut PgConnection, items: &[Value]) -> Result<(Vec<String>, bool), Error> {
        let stamp = Stamp::of(self);
        let ctx = stamp.context();
        let log = RefCell::new(Vec::new());
        let mut keys = Vec::with_capacity(items.len());
        let mut any_nested = false;
        for item in items {
            let key = if nested::has_nested(self.schema, self.collection, item) {
                any_nested = true;
                nested::create(conn, self.scope(&ctx, &log), self.collection, item, 0).await?
            } else {
                let values = payload::prepare(self.collection, item, Mode::Create, &ctx)?;
                write::insert(conn, self.user_schema(), self.collection, &values).await?
            };
            let delta = activity::create_delta(self.schema, self.collection, item);
            let revisions =
                activity::created(conn, self.acc, self.collection, &[(key.clone(), delta)]).await?;
            self.record_nested(conn, &log, revisions.first().copied()).await?;
            keys.push(key);
        }
        Ok((keys, any_nested))
    }

    fn scope<'c>(&'c self, ctx: &'c Context<'c>, log: &'c RefCell<Vec<Written>>) -> nested::Scope<'c> {
        nested::Scope {
            schema: self.user_schema(),
            snapshot: self.schema,
            ctx,
            log,
        }
    }

    /// Records what nested writes did to related items, each under its own collection's
    /// setting, their revisions pointing at `parent`.
    async fn record_nested(
        &self,
        conn: &mut PgConnection,
        log: &RefCell<Vec<Written>>,
        parent: Option<i32>,
    ) -> Result<(), Error> {
        let written = std::mem::take(&mut *log.borrow_mut());
        let mut children = Vec::new();
        for entry in written {
            let Some(collection) = self.schema.collection(&entry.collection) else {
                continue;
            };
            let key = std::slice::from_ref(&entry.key);
            match entry.change {
                Change::Create(payload) => {
                    let delta = activity::create_delta(self.schema, collection, &Value::Object(payload));
                    children.extend(
                        activity::created(conn, self.acc, collection, &[(entry.key.clone(), delta)]).await?,
                    );
                }
                Change::Update(values) => {
                    let delta = activity::update_delta(collection, &values);
                    let target = Snapshotting {
                        snapshot: self.schema,
                        user_schema: self.user_schema(),
                        collection,
                    };
                    children.extend(activity::updated(conn, self.acc, target, key, delta.as_deref()).await?);
                }
                Change::Delete => activity::deleted(conn, self.acc, collection, key).await?,
            }
        }
        if let Some(parent) = parent {
            crate::db::activity::set_parent(conn, &children, parent).await?;
        }
        Ok(())
    }

    fn snapshotting(&self) -> Snapshotting<'_> {
        Snapshotting {
            snapshot: self.schema,
            user_schema: self.user_schema(),
            collection: self.collection,
        }
    }

    /// Updates `keys` with checked `data` on `conn`; whether it carried nested writes.
    async fn update(&self, conn: &mut PgConnection, keys: &[String], data: &Value) -> Result<bool, Error> {
        let vars = self.acc.variables();
        let rules = plan::write_rules(&self.acc.access, self.schema, self.name(), Action::Update, &vars)?;
        let condition = plan::write_condition(rules.as_ref(), data)?;
        self.ensure_matching(conn, keys, condition).await?;
        let stamp = Stamp::of(self);
        let ctx = stamp.context();
        if nested::has_nested(self.schema, self.collection, data) {
            for key in keys {
                self.update_item(conn, key, data, &ctx).await?;
            }
            return Ok(true);
        }
        let values = payload::prepare(self.collection, data, Mode::Update, &ctx)?;
        write::update(conn, self.user_schema(), self.collection, keys, &values).await?;
        let delta = activity::update_delta(self.collection, &values);
        activity::updated(conn, self.acc, self.snapshotting(), keys, delta.as_deref()).await?;
        Ok(false)
    }

    /// Updates one item, with its nested writes when it has any, and records it.
    async fn update_item(
        &self,
        conn: &mut PgConnection,
        key: &str,
        item: &Value,
        ctx: &Context<'_>,
    ) -> Result<(), Error> {
        let log = RefCell::new(Vec::new());
        let keys = [key.to_string()];
        let values = if nested::has_nested(self.schema, self.collection, item) {
            nested::update(conn, self.scope(ctx, &log), self.collection, key, item, 0).await?;
            // The item's own columns, as the nested write prepared them.
            let own: serde_json::Map<String, Value> = item
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(k, _)| {
                            self.collection.field(k).is_some_and(|f| f.schema.is_some())
                                && self.schema.relation(self.name(), k).is_none()
                        })
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            payload::prepare(self.collection, &Value::Object(own), Mode::Update, ctx)?
        } else {
            let values = payload::prepare(self.collection, item, Mode::Update, ctx)?;
            write::update(conn, self.user_schema(), self.collection, &keys, &values).await?;
            values
        };
        let delta = activity::update_delta(self.collection, &values);
        let revisions =
            activity::updated(conn, self.acc, self.snapshotting(), &keys, delta.as_deref()).await?;
        self.record_nested(conn, &log, revisions.first().copied()).await
    }

    /// Each item of a batch by its key: all checked first, then written.
    async fn update_batch(
        &self,
        conn: &mut PgConnection,
        items: &[Value],
    ) -> Result<(Vec<String>, bool), Error> {
        let vars = self.acc.variables();
        let rules = plan::write_rules(&self.acc.access, self.schema, self.name(), Action::Update, &vars)?;
        let mut checked = Vec::with_capacity(items.len());
        for item in items {
            let key = item
                .as_object()
                .and_then(|o| payload::key_of(self.collection, o))
                .ok_or_else(|| Error::payload("Item in update misses primary key"))?;
            // The key names the item; it is not written, so it needs no update right (as
            // Directus's `updateBatch` omits it before `updateOne`).
            let item = self.authorize(Action::Update, &without_key(self.collection, item))?;
            let condition = plan::write_condition(rules.as_ref(), &item)?;
            self.ensure_matching(conn, std::slice::from_ref(&key), condition)
                .await?;
            checked.push((key, item));
        }
        let stamp = Stamp::of(self);
        let ctx = stamp.context();
        let mut nested_writes = false;
        let mut keys = Vec::with_capacity(checked.len());
        for (key, item) in checked {
            nested_writes |= nested::has_nested(self.schema, self.collection, &item);
            self.update_item(conn, &key, &item, &ctx).await?;
            keys.push(key);
        }
        Ok((keys, nested_writes))
    }

    /// A singleton's write: update its item, or create it.
    async fn upsert_singleton(&self, conn: &mut PgConnection, body: &Value) -> Result<String, Error> {
        let vars = self.acc.variables();
        let rules = plan::write_rules(&self.acc.access, self.schema, self.name(), Action::Update, &vars)?;
        let body = self.authorize(Action::Update, body)?;
        let existing = write::first_key(conn, self.user_schema(), self.collection).await?;
        let stamp = Stamp::of(self);
        let ctx = stamp.context();
        match existing {
            Some(key) => {
                let condition = plan::write_condition(rules.as_ref(), &body)?;
                self.ensure_matching(conn, std::slice::from_ref(&key), condition)
                    .await?;
                self.update_item(conn, &key, &body, &ctx).await?;
                Ok(key)
            }
            None => {
                self.authorize(Action::Create, &body)?;
                let values = payload::prepare(self.collection, &body, Mode::Create, &ctx)?;
                let key = write::insert(conn, self.user_schema(), self.collection, &values).await?;
                let delta = activity::create_delta(self.schema, self.collection, &body);
                activity::created(conn, self.acc, self.collection, &[(key.clone(), delta)]).await?;
                Ok(key)
            }
        }
    }

    /// Deletes `keys` once the caller's delete rule admits every one.
    async fn delete(&self, conn: &mut PgConnection, keys: &[String]) -> Result<(), Error> {
        let vars = self.acc.variables();
        let rules = plan::write_rules(&self.acc.access, self.schema, self.name(), Action::Delete, &vars)?;
        if let Some(rules) = rules {
            self.ensure_matching(conn, keys, rules.row_filter().cloned())
                .await?;
        }
        write::delete(conn, self.user_schema(), self.collection, keys).await?;
        activity::deleted(conn, self.acc, self.collection, keys).await
    }
}
