//! Turning a subscribe request (WebSocket `subscribe` or an SSE `/stream` collection) into what
//! a feed needs: the compiled [`Shape`], its group key, the re-read context when the shape needs
//! one, and the `init` rows read under a snapshot the feed can hand off from.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::super::auth::Accountability;
use super::super::items::collection as items_collection;
use super::super::route_target::CollectionName;
use super::super::state::AppState;
use actix_web::web;
use chrono::{DateTime, TimeDelta, Utc};

use crate::actors::feeds::{Recompile, Recompiled, RereadContext, Spec};
use crate::core::query::Query;
use crate::core::realtime::shape::{EventKind, RowRules, Shape};
use crate::core::realtime::snapshot::Snapshot;
use crate::db::items::read::{self, Target};
use crate::db::items::rules::ReadRules;
use crate::error::Error;

/// A compiled subscription, ready to attach to its collection's feed.
pub struct Compiled {
    pub collection: Arc<str>,
    pub spec: Spec,
    pub group: String,
    query: Query,
    rules: ReadRules,
    singleton: bool,
}

/// What a subscription asked for, kept by its session so it can be compiled again when its
/// reader's rights change (an access change, a re-`auth`). Kept compact, since every open
/// subscription holds one: the query as its JSON text (an SSE stream's collections share it).
#[derive(Debug, Clone)]
pub struct Wanted {
    pub collection: Box<str>,
    pub event: Option<EventKind>,
    pub item: Option<Box<str>>,
    pub params: Arc<str>,
}

impl Wanted {
    pub fn new(collection: &str, event: Option<EventKind>, item: Option<&str>, params: Arc<str>) -> Wanted {
        Wanted {
            collection: collection.into(),
            event,
            item: item.map(Into::into),
            params,
        }
    }

    /// Compiles it for `acc`, as [`compile`] does.
    pub fn compile(&self, state: &web::Data<AppState>, acc: &Accountability) -> Result<Compiled, Error> {
        let params = match serde_json::from_str(&self.params) {
            Ok(Value::Object(params)) => params,
            _ => Map::new(),
        };
        let item = self.item.as_deref().map(str::to_string);
        compile(state, acc, &self.collection, self.event, item, &params)
    }
}

/// What a session keeps of one subscription to re-plan it: the group it is in now, and what it
/// asked for.
#[derive(Debug, Clone)]
pub struct Kept {
    pub group: GroupId,
    pub wanted: Wanted,
}

/// The query text a [`Wanted`] keeps.
pub fn params_text(params: &Map<String, Value>) -> Arc<str> {
    Value::Object(params.clone()).to_string().into()
}

/// A group key as a session keeps it to tell whether a re-plan moved its subscription: 16
/// bytes of its SHA-256 instead of the whole text.
pub type GroupId = [u8; 16];

/// The [`GroupId`] of `group`.
pub fn group_id(group: &str) -> GroupId {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(group.as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

/// What a subscription is compiled from, kept by subscriptions that read `$NOW`.
struct Request {
    state: web::Data<AppState>,
    acc: Accountability,
    collection: String,
    event: Option<EventKind>,
    item: Option<String>,
    params: Map<String, Value>,
}

impl Recompile for Request {
    fn at(&self, now: DateTime<Utc>) -> Option<Recompiled> {
        let (compiled, _) = compile_at(
            &self.state,
            &self.acc,
            &self.collection,
            self.event,
            self.item.clone(),
            &self.params,
            now,
        )
        .ok()?;
        Some(Recompiled {
            shape: compiled.spec.shape,
            reread: compiled.spec.reread,
        })
    }
}

/// Compiles a subscription for `acc`. Errors are the REST errors a read would give.
pub fn compile(
    state: &web::Data<AppState>,
    acc: &Accountability,
    collection: &str,
    event: Option<EventKind>,
    item: Option<String>,
    params: &Map<String, Value>,
) -> Result<Compiled, Error> {
    let now = Utc::now();
    let (mut compiled, resolved) = compile_at(state, acc, collection, event, item.clone(), params, now)?;
    // `$NOW` shows as a different shape at another moment: such a subscription is compiled
    // again for every transaction, and groups with those of the same request and access.
    let (_, later) = compile_at(
        state,
        acc,
        collection,
        event,
        item.clone(),
        params,
        now + TimeDelta::days(400),
    )?;
    if later != resolved {
        compiled.group = format!(
            "$NOW|{collection}|{event:?}|{item:?}|{}|{}",
            Value::Object(params.clone()),
            access_key(acc)
        );
        compiled.spec.recompile = Some(Arc::new(Request {
            state: state.clone(),
            acc: acc.clone(),
            collection: collection.to_string(),
            event,
            item,
            params: params.clone(),
        }));
    }
    Ok(compiled)
}

/// [`compile`] with `$NOW` at `now`; also returns what the query and rules came to, which
/// differ between two moments exactly when they read `$NOW`.
fn compile_at(
    state: &AppState,
    acc: &Accountability,
    collection: &str,
    event: Option<EventKind>,
    item: Option<String>,
    params: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<(Compiled, String), Error> {
    let schema = state.schema();
    let name = CollectionName {
        name: collection.to_string(),
        system: false,
    };
    let found = items_collection(&schema, &name)?;
    if let Some(key) = &item {
        read::check_key(found, key)?;
    }
    let singleton = found.is_singleton();
    let service = crate::service::ItemsService::new(&state.services, collection, acc, schema.clone());
    let (query, rules) = service.plan_read(&crate::service::items::ItemsQuery(params.clone()), now)?;
    let row_rules = (!rules.unrestricted && !acc.admin).then(|| {
        let level = rules.collections.get(collection).cloned().unwrap_or_default();
        RowRules {
            rows: level.rows,
            conditional: level.conditional.into_iter().collect::<BTreeMap<_, _>>(),
        }
    });
    let resolved = resolved(&query, &rules);
    let shape = Shape::compile(schema.clone(), collection, event, item, &query, row_rules);
    let mut group = shape.group_key(&query);
    let reread = if shape.rereads() {
        // A re-read runs with the subscriber's rules for every collection it reaches, so only
        // callers with the same access share the group.
        group.push('|');
        group.push_str(&access_key(acc));
        Some(Arc::new(RereadContext {
            pool: state.pool.clone(),
            snapshot: schema.clone(),
            user_schema: state.config.user_schema.clone(),
            collection: collection.to_string(),
            query: query.clone(),
            rules: rules.clone(),
        }))
    } else {
        None
    };
    let compiled = Compiled {
        collection: collection.into(),
        spec: Spec {
            shape: Arc::new(shape),
            reread,
            recompile: None,
        },
        group,
        query,
        rules,
        singleton,
    };
    Ok((compiled, resolved))
}

/// Who reads, for group keys: callers with equal keys read with the same rules.
fn access_key(acc: &Accountability) -> String {
    format!(
        "{}|{:?}|{:?}|{:?}",
        acc.admin, acc.user, acc.role, acc.access.policies
    )
}

/// What the query and rules came to, in an order of their own: the rules' maps iterate in a
/// different order each time they are built, and two compiles must differ only where `$NOW` made
/// them (readable field sets hold no values).
fn resolved(query: &Query, rules: &ReadRules) -> String {
    let mut out = format!("{query:?}|{}", rules.unrestricted);
    let collections: BTreeMap<_, _> = rules.collections.iter().collect();
    for (name, level) in collections {
        let conditional: BTreeMap<_, _> = level.conditional.iter().collect();
        let _ = write!(out, "|{name}:{:?}:{conditional:?}", level.rows);
    }
    out
}

impl Compiled {
    /// Reads the `init` rows (the list, or the one `item`) in a repeatable-read transaction and
    /// returns them as JSON text with the snapshot they were read under.
    pub async fn init(&self, state: &AppState) -> Result<(String, Snapshot), Error> {
        let schema = state.schema();
        let collection = schema.collection(&self.collection).ok_or(Error::Forbidden)?;
        let target = Target {
            snapshot: &schema,
            schema: &state.config.user_schema,
            collection,
            rules: &self.rules,
        };
        let mut query = self.query.clone();
        let item = self.spec.shape.item.clone();
        if self.singleton {
            query.limit = Some(1);
            query.offset = 0;
        }
        let sql = read::select(&target, &query, item.as_deref())?;
        let (rows, snapshot) = read::rows_with_snapshot(&state.pool, &sql, &self.collection).await?;
        let data = if item.is_some() || self.singleton {
            rows.into_iter().next().unwrap_or_else(|| "null".into())
        } else {
            read::array(&rows)
        };
        Ok((data, snapshot))
    }

    /// The current snapshot alone: for a subscription without `init` rows, so changes the
    /// database already held when it subscribed (a restart's replay) are not sent as new.
    pub async fn snapshot_only(state: &AppState) -> Result<Snapshot, Error> {
        read::current_snapshot(&state.pool).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::filter::{Filter, Variables};
    use crate::db::items::rules::CollectionRules;

    /// Rules for 24 collections, each with a conditional field, built afresh (so with their
    /// maps' own iteration order).
    fn rules() -> ReadRules {
        let filter = |value: &str| -> Filter {
            let params = serde_json::json!({ "filter": format!(r#"{{"title":{{"_eq":"{value}"}}}}"#) });
            let params = params.as_object().cloned().unwrap_or_default();
            let query = crate::core::query::parse(
                &params,
                crate::core::access::testing::blog(),
                "articles",
                Variables::default(),
                crate::core::query::Settings::default(),
            );
            query
                .ok()
                .and_then(|q| q.filter)
                .unwrap_or(Filter::And(Vec::new()))
        };
        let collections = (0..24)
            .map(|i| {
                let level = CollectionRules {
                    rows: Some(filter(&format!("row {i}"))),
                    conditional: [(format!("f{i}"), filter("c")), (format!("g{i}"), filter("d"))].into(),
                    readable: None,
                };
                (format!("c{i}"), level)
            })
            .collect();
        ReadRules {
            unrestricted: false,
            collections,
        }
    }

    #[test]
    fn equal_rules_resolve_to_equal_text_whatever_their_maps_order() {
        let query = Query::default();
        let first = resolved(&query, &rules());
        for _ in 0..8 {
            assert_eq!(resolved(&query, &rules()), first);
        }
    }
}
