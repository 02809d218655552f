//! Turning a subscribe request (WebSocket `subscribe` or an SSE `/stream` collection) into what
//! a feed needs: the compiled [`Shape`], its group key, the re-read context when the shape needs
//! one, and the `init` rows read under a snapshot the feed can hand off from.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::{Map, Value};

use actix::Addr;

use crate::actors::feeds::{Attach, CollectionFeed, Detach, GetFeed, Ready, Realtime, Start};
use crate::actors::outbox::{Outbox, SubId};
use crate::config::SlowConsumer;
use crate::core::access::plan::ReadPlan;
use crate::core::pgoutput::Lsn;
use crate::service::items::ItemsQuery;
use crate::service::{Accountability, ItemsService, Services};
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
    pub fn compile(&self, state: &Services, acc: &Accountability) -> Result<Compiled, Error> {
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

/// What a subscription whose query or rules read `$NOW` is compiled from again for every
/// transaction: a pure plan from `core` and what its re-reads run on. It never calls back into
/// a transport or a service.
struct NowPlan {
    plan: ReadPlan,
    event: Option<EventKind>,
    item: Option<String>,
    singleton: bool,
    reader: Reader,
}

impl Recompile for NowPlan {
    fn at(&self, now: DateTime<Utc>) -> Option<Recompiled> {
        let (query, rules) = self.plan.at(now).ok()?;
        let compiled = assemble(
            &self.plan,
            self.event,
            self.item.clone(),
            self.singleton,
            &self.reader,
            query,
            rules,
        );
        Some(Recompiled {
            shape: compiled.spec.shape,
            reread: compiled.spec.reread,
        })
    }
}

/// Who reads and where re-reads run: the parts of a compile that are not the plan.
#[derive(Clone)]
struct Reader {
    admin: bool,
    /// [`access_key`] of the caller.
    access_key: String,
    pool: sqlx::PgPool,
    user_schema: String,
}

/// Compiles a subscription for `acc`. Errors are the REST errors a read would give.
pub fn compile(
    services: &Services,
    acc: &Accountability,
    collection: &str,
    event: Option<EventKind>,
    item: Option<String>,
    params: &Map<String, Value>,
) -> Result<Compiled, Error> {
    // System collections have no change feed; refused as a missing collection is.
    if collection.starts_with("directus_") {
        return Err(Error::Forbidden);
    }
    let schema = services.schema();
    let found = crate::service::items::collection_of(&schema, collection)?;
    if let Some(key) = &item {
        read::check_key(found, key)?;
    }
    let singleton = found.is_singleton();
    let plan = ItemsService::new(services, collection, acc, schema.clone())
        .read_plan(&ItemsQuery(params.clone()))?;
    let reader = Reader {
        admin: acc.admin,
        access_key: access_key(acc),
        pool: services.pool.clone(),
        user_schema: services.config.user_schema.clone(),
    };
    let now = Utc::now();
    let (query, rules) = plan.at(now)?;
    let resolved_now = resolved(&query, &rules);
    // `$NOW` shows as a different shape at another moment: such a subscription is compiled
    // again for every transaction, and groups with those of the same request and access.
    let (later_query, later_rules) = plan.at(now + TimeDelta::days(400))?;
    let reads_now = resolved(&later_query, &later_rules) != resolved_now;
    let mut compiled = assemble(&plan, event, item.clone(), singleton, &reader, query, rules);
    if reads_now {
        compiled.group = format!(
            "$NOW|{collection}|{event:?}|{item:?}|{}|{}",
            Value::Object(params.clone()),
            reader.access_key
        );
        compiled.spec.recompile = Some(Arc::new(NowPlan {
            plan,
            event,
            item,
            singleton,
            reader,
        }));
    }
    Ok(compiled)
}

/// A subscription from its planned query and rules: the shape the feed evaluates, its group
/// key, and the re-read context when the shape needs one.
fn assemble(
    plan: &ReadPlan,
    event: Option<EventKind>,
    item: Option<String>,
    singleton: bool,
    reader: &Reader,
    query: Query,
    rules: ReadRules,
) -> Compiled {
    let collection = plan.collection.as_str();
    let schema = plan.snapshot.clone();
    let row_rules = (!rules.unrestricted && !reader.admin).then(|| {
        let level = rules.collections.get(collection).cloned().unwrap_or_default();
        RowRules {
            rows: level.rows,
            conditional: level.conditional.into_iter().collect::<BTreeMap<_, _>>(),
        }
    });
    let shape = Shape::compile(schema.clone(), collection, event, item, &query, row_rules);
    let mut group = shape.group_key(&query);
    let reread = if shape.rereads() {
        // A re-read runs with the subscriber's rules for every collection it reaches, so only
        // callers with the same access share the group.
        group.push('|');
        group.push_str(&reader.access_key);
        Some(Arc::new(RereadContext {
            pool: reader.pool.clone(),
            snapshot: schema,
            user_schema: reader.user_schema.clone(),
            collection: collection.to_string(),
            query: query.clone(),
            rules: rules.clone(),
        }))
    } else {
        None
    };
    Compiled {
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
    }
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

/// How a subscription starts.
#[derive(Debug, Clone, Copy)]
pub enum Opening {
    /// With its current rows (`init` data), read under a snapshot the feed hands off from.
    Rows,
    /// With no rows, from the current snapshot: changes already committed are not new.
    Empty,
    /// After this transaction, replaying what followed (or a `refetch` when that is gone).
    Resume(Lsn),
}

/// The one subscribe path of every transport: finds the collection's feed, attaches
/// `compiled` as `sub` (events go to `outbox` under `policy`), reads its opening, queues the
/// transport's `init` frame (rendered by `init` from the rows, `None` when it opens without
/// rows; nothing when `init` gives `None`) and tells the feed it is ready. The `init` frame
/// precedes every event of the subscription. On failure nothing stays attached.
#[allow(clippy::too_many_arguments)]
pub async fn attach(
    realtime: &Realtime,
    services: &Services,
    compiled: &Compiled,
    sub: SubId,
    outbox: &Arc<Outbox>,
    policy: SlowConsumer,
    opening: Opening,
    init: impl FnOnce(Option<&str>) -> Option<String>,
) -> Result<Addr<CollectionFeed>, Error> {
    let feed = realtime
        .hub
        .send(GetFeed(compiled.collection.clone()))
        .await
        .map_err(Error::internal)?;
    let mut init = Some(init);
    let start = match opening {
        Opening::Resume(lsn) => {
            // Before attaching, so the resume's replay (or its refetch) follows the init.
            if let Some(frame) = init.take().and_then(|init| init(None)) {
                outbox.push_text(frame);
            }
            Start::Since(lsn)
        }
        Opening::Rows | Opening::Empty => Start::Snapshot,
    };
    feed.send(Attach {
        sub,
        outbox: outbox.clone(),
        policy,
        spec: compiled.spec.clone(),
        group: compiled.group.clone(),
        start,
    })
    .await
    .map_err(Error::internal)?;
    let opened = match opening {
        Opening::Resume(_) => return Ok(feed),
        Opening::Rows => compiled
            .init(services)
            .await
            .map(|(data, snapshot)| (Some(data), snapshot)),
        Opening::Empty => Compiled::snapshot_only(services)
            .await
            .map(|snapshot| (None, snapshot)),
    };
    match opened {
        Ok((data, snapshot)) => {
            if let Some(frame) = init.take().and_then(|init| init(data.as_deref())) {
                outbox.push_text(frame);
            }
            feed.do_send(Ready { sub, snapshot });
            Ok(feed)
        }
        Err(err) => {
            feed.do_send(Detach { sub });
            Err(err)
        }
    }
}

impl Compiled {
    /// Reads the `init` rows (the list, or the one `item`) in a repeatable-read transaction and
    /// returns them as JSON text with the snapshot they were read under.
    pub async fn init(&self, state: &Services) -> Result<(String, Snapshot), Error> {
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
    pub async fn snapshot_only(state: &Services) -> Result<Snapshot, Error> {
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
