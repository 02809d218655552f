//! `/items/:collection` writes: `POST` (one or many), `PATCH` (one, a batch of items with keys,
//! `{keys, data}`, `{query, data}`, or a singleton's object) and `DELETE` (one, keys, `{keys}`,
//! `{query}`). Every request is one transaction; written items are re-read with the URL's query.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value};

use super::access::{authorize_payload, write_condition, write_rules};
use super::auth::Accountability;
use super::items::{collection, target};
use super::route_target::{CollectionName, ItemKey};
use super::state::AppState;
use crate::core::access::Action;
use crate::core::payload::{self, Context, Mode};
use crate::core::query::{self, Settings, params};
use crate::core::schema::{Collection, SchemaSnapshot};
use crate::db::items::read;
use crate::db::items::rules::ReadRules;
use crate::db::items::{nested, write};
use crate::error::Error;

/// Directus reads at most this many items to find the keys of `{query}` writes without a limit.
const QUERY_WRITE_DEFAULT_LIMIT: i64 = 100;

/// When and by whom a write happens, for `date-*` and `user-*` specials.
struct Stamp {
    now: String,
    user: Option<String>,
}

impl Stamp {
    fn of(acc: &Accountability) -> Stamp {
        Stamp {
            now: chrono::Utc::now().to_rfc3339(),
            user: acc.user.map(|u| u.to_string()),
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

/// The system collections behind who a caller is and what they may do.
const ACCESS_COLLECTIONS: [&str; 5] = [
    "directus_users",
    "directus_roles",
    "directus_policies",
    "directus_access",
    "directus_permissions",
];

/// After a committed write: one that changed users, roles, policies, access or permissions
/// (or wrote nested items, which may be any of those) drops the access cache before the
/// response goes out, so the caller's next request already sees it. The notification does the
/// same on every instance, a moment later.
fn forget_access(state: &AppState, collection: &Collection, nested: bool) {
    if nested || ACCESS_COLLECTIONS.contains(&collection.collection.as_str()) {
        state.access.clear();
    }
}

fn check_batch(state: &AppState, count: usize) -> Result<(), Error> {
    match state.config.max_batch_mutation {
        Some(max) if count > max => Err(Error::payload(format!(
            "Exceeded max batch mutation limit of {max}"
        ))),
        _ => Ok(()),
    }
}

/// The collection of an `/items/:collection/:id` route: a table, not a singleton (those have
/// no ids in routes: 404, as Directus), with a key of the right shape.
fn item_collection<'a>(
    schema: &'a SchemaSnapshot,
    name: &CollectionName,
    key: &str,
    req: &HttpRequest,
) -> Result<&'a Collection, Error> {
    let collection = writable_collection(schema, name, req)?;
    read::check_key(collection, key)?;
    Ok(collection)
}

/// The collection of a route that creates items or names one: not a singleton (404 there,
/// as Directus).
fn writable_collection<'a>(
    schema: &'a SchemaSnapshot,
    name: &CollectionName,
    req: &HttpRequest,
) -> Result<&'a Collection, Error> {
    let collection = collection(schema, name)?;
    if collection.is_singleton() {
        return Err(Error::RouteNotFound {
            path: req.path().to_string(),
        });
    }
    Ok(collection)
}

/// `POST /items/:collection`.
pub async fn create(
    acc: Accountability,
    req: HttpRequest,
    name: CollectionName,
    body: crate::http::body::Json,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let schema = state.schema();
    let collection = writable_collection(&schema, &name, &req)?;
    let body = body.into_inner();
    let many = body.is_array();
    let items = match body {
        Value::Array(items) => items,
        item => vec![item],
    };
    check_batch(&state, items.len())?;
    // Every item is checked before anything is written: one forbidden item rejects the batch.
    let vars = acc.variables();
    let items = items
        .iter()
        .map(|item| {
            authorize_payload(
                &acc,
                &schema,
                &collection.collection,
                Action::Create,
                item,
                &vars,
                0,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let stamp = Stamp::of(&acc);
    let ctx = stamp.context();
    let nested_writes = items
        .iter()
        .any(|item| nested::has_nested(&schema, collection, item));
    let prepared = if nested_writes {
        Vec::new()
    } else {
        items
            .iter()
            .map(|item| payload::prepare(collection, item, Mode::Create, &ctx))
            .collect::<Result<Vec<_>, _>>()?
    };
    let mut keys = Vec::with_capacity(prepared.len());
    if nested_writes {
        // Nested related writes: every item and all it carries in one transaction.
        let mut tx = state.pool.begin().await?;
        for item in &items {
            keys.push(
                nested::create(
                    &mut tx,
                    nested::Scope {
                        schema: &state.config.user_schema,
                        snapshot: &schema,
                        ctx: &ctx,
                    },
                    collection,
                    item,
                    0,
                )
                .await?,
            );
        }
        tx.commit().await?;
        forget_access(&state, collection, true);
    } else if let [values] = prepared.as_slice() {
        // One statement is atomic on its own: no transaction round trips, and when the
        // read-back needs only the new row, it comes back from the same statement.
        let (query, rules) = read_back_query(&state, &acc, &req, &schema, collection)?;
        let target = target(&state, &schema, collection, &rules);
        let mut conn = state.pool.acquire().await?;
        if !many && let Some(select) = read::select_inserted(&target, &query) {
            let row = write::insert_returning(
                &mut conn,
                &state.config.user_schema,
                collection,
                values,
                &select.text,
            )
            .await?;
            forget_access(&state, collection, false);
            return Ok(match row {
                Some(row) => json_response(format!("{{\"data\":{row}}}")),
                None => HttpResponse::NoContent().finish(),
            });
        }
        keys.push(write::insert(&mut conn, &state.config.user_schema, collection, values).await?);
        forget_access(&state, collection, false);
    } else {
        let mut tx = state.pool.begin().await?;
        for values in &prepared {
            keys.push(write::insert(&mut tx, &state.config.user_schema, collection, values).await?);
        }
        tx.commit().await?;
        forget_access(&state, collection, false);
    }
    read_back(&state, &acc, &req, &schema, collection, &keys, !many).await
}

/// `PATCH /items/:collection/:id`.
pub async fn update_one(
    acc: Accountability,
    req: HttpRequest,
    name: CollectionName,
    ItemKey(key): ItemKey,
    body: crate::http::body::Json,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    update_by_key(&acc, &req, &name, key, body.into_inner(), &state).await
}

/// Updates one item by key and reads it back (also `PATCH /users/me`).
pub(super) async fn update_by_key(
    acc: &Accountability,
    req: &HttpRequest,
    name: &CollectionName,
    key: String,
    body: Value,
    state: &AppState,
) -> Result<HttpResponse, Error> {
    let schema = state.schema();
    let collection = item_collection(&schema, name, &key, req)?;
    let vars = acc.variables();
    let rules = write_rules(acc, &schema, &collection.collection, Action::Update, &vars)?;
    let body = authorize_payload(
        acc,
        &schema,
        &collection.collection,
        Action::Update,
        &body,
        &vars,
        0,
    )?;
    let condition = write_condition(rules.as_ref(), &body)?;
    ensure_writable(state, &schema, collection, std::slice::from_ref(&key), condition).await?;
    let stamp = Stamp::of(acc);
    let ctx = stamp.context();
    if nested::has_nested(&schema, collection, &body) {
        let mut tx = state.pool.begin().await?;
        nested::update(
            &mut tx,
            nested::Scope {
                schema: &state.config.user_schema,
                snapshot: &schema,
                ctx: &ctx,
            },
            collection,
            &key,
            &body,
            0,
        )
        .await?;
        tx.commit().await?;
        forget_access(state, collection, true);
    } else {
        let values = payload::prepare(collection, &body, Mode::Update, &ctx)?;
        // One statement is atomic on its own: no transaction round trips.
        let mut conn = state.pool.acquire().await?;
        write::update(
            &mut conn,
            &state.config.user_schema,
            collection,
            std::slice::from_ref(&key),
            &values,
        )
        .await?;
        forget_access(state, collection, false);
    }
    read_back(state, acc, req, &schema, collection, &[key], true).await
}

/// `PATCH /items/:collection`: a batch, `{keys, data}`, `{query, data}`, or a singleton.
pub async fn update_many(
    acc: Accountability,
    req: HttpRequest,
    name: CollectionName,
    body: crate::http::body::Json,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let schema = state.schema();
    let collection = collection(&schema, &name)?;
    let stamp = Stamp::of(&acc);
    let ctx = stamp.context();
    let body = body.into_inner();
    let nested_writes = match &body {
        Value::Array(items) => items.iter().any(|i| nested::has_nested(&schema, collection, i)),
        other => [other, other.get("data").unwrap_or(&Value::Null)]
            .into_iter()
            .any(|v| nested::has_nested(&schema, collection, v)),
    };
    let vars = acc.variables();
    let name = collection.collection.as_str();
    let rules = write_rules(&acc, &schema, name, Action::Update, &vars)?;
    let mut tx = state.pool.begin().await?;
    let keys = if collection.is_singleton() {
        let body = authorize_payload(&acc, &schema, name, Action::Update, &body, &vars, 0)?;
        if let Some(key) = write::first_key(&mut tx, &state.config.user_schema, collection).await? {
            let condition = write_condition(rules.as_ref(), &body)?;
            ensure_writable(&state, &schema, collection, std::slice::from_ref(&key), condition).await?;
        } else {
            authorize_payload(&acc, &schema, name, Action::Create, &body, &vars, 0)?;
        }
        let values = payload::prepare(collection, &body, Mode::Update, &ctx)?;
        let key = match write::first_key(&mut tx, &state.config.user_schema, collection).await? {
            Some(key) => {
                write::update(
                    &mut tx,
                    &state.config.user_schema,
                    collection,
                    std::slice::from_ref(&key),
                    &values,
                )
                .await?;
                key
            }
            None => {
                let values = payload::prepare(collection, &body, Mode::Create, &ctx)?;
                write::insert(&mut tx, &state.config.user_schema, collection, &values).await?
            }
        };
        vec![key]
    } else if let Value::Array(items) = &body {
        check_batch(&state, items.len())?;
        // Every item is checked before any is written: one forbidden item rejects the batch.
        let mut checked = Vec::with_capacity(items.len());
        for item in items {
            let key = item
                .as_object()
                .and_then(|o| payload::key_of(collection, o))
                .ok_or_else(|| Error::payload("Item in update misses primary key"))?;
            // The key names the item; it is not written, so it needs no update right (as
            // Directus's `updateBatch` omits it before `updateOne`).
            let item = without_key(collection, item);
            let item = authorize_payload(&acc, &schema, name, Action::Update, &item, &vars, 0)?;
            let condition = write_condition(rules.as_ref(), &item)?;
            ensure_writable(&state, &schema, collection, std::slice::from_ref(&key), condition).await?;
            checked.push((key, item));
        }
        let mut keys = Vec::with_capacity(checked.len());
        for (key, item) in checked {
            update_item(&state, &mut tx, &schema, collection, &key, &item, &ctx).await?;
            keys.push(key);
        }
        keys
    } else {
        let (selector, data) = batch_body(body, true)?;
        let keys = keys_for(&state, &acc, &schema, collection, selector).await?;
        check_batch(&state, keys.len())?;
        let data = authorize_payload(&acc, &schema, name, Action::Update, &data, &vars, 0)?;
        let condition = write_condition(rules.as_ref(), &data)?;
        ensure_writable(&state, &schema, collection, &keys, condition).await?;
        if nested::has_nested(&schema, collection, &data) {
            for key in &keys {
                update_item(&state, &mut tx, &schema, collection, key, &data, &ctx).await?;
            }
        } else {
            let values = payload::prepare(collection, &data, Mode::Update, &ctx)?;
            write::update(&mut tx, &state.config.user_schema, collection, &keys, &values).await?;
        }
        keys
    };
    tx.commit().await?;
    forget_access(&state, collection, nested_writes);
    read_back(
        &state,
        &acc,
        &req,
        &schema,
        collection,
        &keys,
        collection.is_singleton(),
    )
    .await
}

/// Updates one item of a batch, with its nested writes when it has any.
async fn update_item(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    schema: &SchemaSnapshot,
    collection: &Collection,
    key: &str,
    item: &Value,
    ctx: &Context<'_>,
) -> Result<(), Error> {
    if nested::has_nested(schema, collection, item) {
        nested::update(
            tx,
            nested::Scope {
                schema: &state.config.user_schema,
                snapshot: schema,
                ctx,
            },
            collection,
            key,
            item,
            0,
        )
        .await?;
    } else {
        let values = payload::prepare(collection, item, Mode::Update, ctx)?;
        write::update(
            tx,
            &state.config.user_schema,
            collection,
            &[key.to_string()],
            &values,
        )
        .await?;
    }
    Ok(())
}

/// `DELETE /items/:collection/:id`: 204, also when there was nothing to delete.
pub async fn delete_one(
    acc: Accountability,
    req: HttpRequest,
    name: CollectionName,
    ItemKey(key): ItemKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let schema = state.schema();
    let collection = item_collection(&schema, &name, &key, &req)?;
    ensure_deletable(&state, &acc, &schema, collection, std::slice::from_ref(&key)).await?;
    let mut conn = state.pool.acquire().await?;
    write::delete(&mut conn, &state.config.user_schema, collection, &[key]).await?;
    forget_access(&state, collection, false);
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /items/:collection`: an array of keys, `{keys}` or `{query}`; one transaction.
pub async fn delete_many(
    acc: Accountability,
    name: CollectionName,
    body: Option<crate::http::body::Json>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let schema = state.schema();
    let collection = collection(&schema, &name)?;
    let body = body.map(|b| b.into_inner()).unwrap_or(Value::Object(Map::new()));
    let keys = match body {
        Value::Array(keys) => keys.iter().map(key_text).collect::<Result<Vec<_>, _>>()?,
        other => {
            let (selector, _) = batch_body(other, false)?;
            keys_for(&state, &acc, &schema, collection, selector).await?
        }
    };
    check_batch(&state, keys.len())?;
    for key in &keys {
        read::check_key(collection, key)
            .map_err(|_| Error::payload(format!("Invalid primary key \"{key}\"")))?;
    }
    ensure_deletable(&state, &acc, &schema, collection, &keys).await?;
    let mut tx = state.pool.begin().await?;
    write::delete(&mut tx, &state.config.user_schema, collection, &keys).await?;
    tx.commit().await?;
    forget_access(&state, collection, false);
    Ok(HttpResponse::NoContent().finish())
}

/// How a batch body names its items.
enum Selector {
    Keys(Vec<String>),
    Query(Map<String, Value>),
}

/// Validates `{keys|query, data?}` with Directus's (Joi's) messages.
fn batch_body(body: Value, needs_data: bool) -> Result<(Selector, Value), Error> {
    let Value::Object(mut body) = body else {
        return Err(Error::payload("\"value\" must be of type object"));
    };
    if let Some(extra) = body
        .keys()
        .find(|k| !matches!(k.as_str(), "keys" | "query" | "data"))
    {
        return Err(Error::payload(format!("\"{extra}\" is not allowed")));
    }
    let data = body.remove("data");
    let data = match (needs_data, data) {
        (true, None) => return Err(Error::payload("\"data\" is required")),
        (true, Some(data)) => data,
        (false, Some(_)) => return Err(Error::payload("\"data\" is not allowed")),
        (false, None) => Value::Null,
    };
    let selector = match (body.remove("keys"), body.remove("query")) {
        (Some(_), Some(_)) => {
            return Err(Error::payload(
                "\"value\" contains a conflict between exclusive peers [query, keys]",
            ));
        }
        (Some(Value::Array(keys)), None) => {
            Selector::Keys(keys.iter().map(key_text).collect::<Result<_, _>>()?)
        }
        (Some(_), None) => return Err(Error::payload("\"keys\" must be an array")),
        (None, Some(Value::Object(query))) => Selector::Query(query),
        (None, Some(_)) => return Err(Error::payload("\"query\" must be of type object")),
        (None, None) => {
            return Err(Error::payload(
                "\"value\" must contain at least one of [query, keys]",
            ));
        }
    };
    Ok((selector, data))
}

fn key_text(key: &Value) -> Result<String, Error> {
    match key {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(Error::payload("\"keys\" items must be strings or numbers")),
    }
}

/// The keys a `{keys}` or `{query}` selector names (a query reads at most 100 unless it says).
async fn keys_for(
    state: &AppState,
    acc: &Accountability,
    schema: &SchemaSnapshot,
    collection: &Collection,
    selector: Selector,
) -> Result<Vec<String>, Error> {
    let mut params = match selector {
        Selector::Keys(keys) => return Ok(keys),
        Selector::Query(params) => params,
    };
    let pk = collection.primary_key.clone().ok_or(Error::Forbidden)?;
    params.insert("fields".into(), Value::String(pk.clone()));
    let settings = Settings {
        default_limit: QUERY_WRITE_DEFAULT_LIMIT,
        ..state.config.query
    };
    let vars = acc.variables();
    let mut query = query::parse(&params, schema, &collection.collection, vars.clone(), settings)?;
    let requested = vec![pk.clone()];
    let rules =
        super::access::authorize_read(acc, schema, &collection.collection, &mut query, &requested, &vars)?;
    let target = target(state, schema, collection, &rules);
    let rows = read::fetch(&state.pool, &target, &query, None).await?;
    rows.iter()
        .map(|row| {
            let value: Value = serde_json::from_str(row).map_err(Error::internal)?;
            key_text(&value[&pk])
        })
        .collect()
}

/// The URL's query for re-reading written items.
fn read_back_query(
    state: &AppState,
    acc: &Accountability,
    req: &HttpRequest,
    schema: &SchemaSnapshot,
    collection: &Collection,
) -> Result<(query::Query, ReadRules), Error> {
    let params = params::decode(req.query_string()).map_err(|e| Error::query(e.to_string()))?;
    super::items::authorized_query(state, acc, &params, schema, &collection.collection)
}

/// Refuses the write unless every item `keys` names exists and matches `condition` (the
/// action's item rule and, for updates, the cases of the written fields).
async fn ensure_writable(
    state: &AppState,
    schema: &SchemaSnapshot,
    collection: &Collection,
    keys: &[String],
    condition: Option<crate::core::filter::Filter>,
) -> Result<(), Error> {
    let Some(condition) = condition else {
        return Ok(());
    };
    let pk = collection.primary_key.as_deref().ok_or(Error::Forbidden)?;
    let pk_type = collection
        .field(pk)
        .map(|f| f.field_type)
        .ok_or(Error::Forbidden)?;
    let mut distinct: Vec<&String> = keys.iter().collect();
    distinct.sort();
    distinct.dedup();
    let owned: Vec<String> = distinct.iter().map(|k| (*k).clone()).collect();
    let by_key = crate::core::filter::keys_in(pk, pk_type, &owned)
        .map_err(|e| Error::internal(anyhow::anyhow!("{e}")))?;
    let everything = ReadRules::unrestricted();
    let target = target(state, schema, collection, &everything);
    let sql = read::count_matching(
        &target,
        &crate::core::filter::Filter::And(vec![by_key, condition]),
    )?;
    let matching = read::number(&state.pool, &sql).await?;
    if usize::try_from(matching).ok() != Some(owned.len()) {
        return Err(Error::Forbidden);
    }
    Ok(())
}

/// Refuses a delete unless the caller's delete rule admits every item `keys` names.
async fn ensure_deletable(
    state: &AppState,
    acc: &Accountability,
    schema: &SchemaSnapshot,
    collection: &Collection,
    keys: &[String],
) -> Result<(), Error> {
    let rules = write_rules(
        acc,
        schema,
        &collection.collection,
        Action::Delete,
        &acc.variables(),
    )?;
    match rules {
        Some(rules) => ensure_writable(state, schema, collection, keys, rules.row_filter().cloned()).await,
        None => Ok(()),
    }
}

/// An item of a batch update without its key: the key names the item, it is not written.
fn without_key(collection: &Collection, item: &Value) -> Value {
    let mut item = item.clone();
    if let (Some(pk), Some(object)) = (collection.primary_key.as_deref(), item.as_object_mut()) {
        object.remove(pk);
    }
    item
}

fn json_response(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .body(body)
}

/// Re-reads written items with the URL's query: one object, or an array in the query's order.
async fn read_back(
    state: &AppState,
    acc: &Accountability,
    req: &HttpRequest,
    schema: &SchemaSnapshot,
    collection: &Collection,
    keys: &[String],
    single: bool,
) -> Result<HttpResponse, Error> {
    let (mut query, rules) = match read_back_query(state, acc, req, schema, collection) {
        Ok(authorized) => authorized,
        // Written but not readable by the writer: 204, as Directus answers.
        Err(Error::Forbidden | Error::ForbiddenCollection { .. }) => {
            return Ok(HttpResponse::NoContent().finish());
        }
        Err(err) => return Err(err),
    };
    let pk = collection.primary_key.as_deref().ok_or(Error::Forbidden)?;
    let pk_type = collection
        .field(pk)
        .map(|f| f.field_type)
        .ok_or(Error::Forbidden)?;
    let by_key = crate::core::filter::keys_in(pk, pk_type, keys)
        .map_err(|e| Error::internal(anyhow::anyhow!("{e}")))?;
    query.filter = Some(match query.filter.take() {
        Some(filter) => crate::core::filter::Filter::And(vec![by_key, filter]),
        None => by_key,
    });
    query.limit = None;
    query.offset = 0;
    let target = target(state, schema, collection, &rules);
    let rows = read::fetch(&state.pool, &target, &query, None).await?;
    let body = if single {
        match rows.into_iter().next() {
            Some(row) => format!("{{\"data\":{row}}}"),
            // Nothing to show (an update of a key that does not exist): 204, as Directus.
            None => return Ok(HttpResponse::NoContent().finish()),
        }
    } else {
        format!("{{\"data\":{}}}", read::array(&rows))
    };
    Ok(json_response(body))
}
