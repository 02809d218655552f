//! [`ItemsService`]: Directus's items service. The one path by which anything reads or writes
//! the items of a collection (user tables and the system collections served like them), as one
//! [`Accountability`], on one schema snapshot, in a transaction it opens or one the caller
//! hands it ([`ItemsService::in_transaction`]), so an extension can make several writes in
//! several collections atomically.
//!
//! Every operation plans its permissions with `core::access::plan` (reads: the query checked,
//! `*` narrowed, rules for every collection it reaches; writes: payloads checked, preset and
//! validated), checks the items it touches against the action's item rule on the same
//! connection, writes, and records activity and revisions on the same transaction
//! ([`super::activity`]). A single create, update or delete that needs no transaction of its
//! own runs as one statement.
//!
//! Files: [`input`] (what callers pass), [`read`] (reads), [`write`] (creates, updates,
//! upserts, deletes).

pub mod input;
mod read;
mod write;

use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres, Transaction};

use super::{Accountability, Services};
use crate::core::access::plan;
use crate::core::query::{self, Query};
use crate::core::schema::{Collection, SchemaSnapshot};
use crate::db::items::read::{self as sql_read, Target};
use crate::db::items::rules::ReadRules;
use crate::error::Error;

pub use input::{ItemsQuery, Selector, UpdateBody};
pub use read::ReadResult;

/// Directus reads at most this many items to find the keys of `{query}` writes without a limit.
const QUERY_WRITE_DEFAULT_LIMIT: i64 = 100;

/// The system collections behind who a caller is and what they may do: a write to one empties
/// the access cache before the operation returns.
const ACCESS_COLLECTIONS: [&str; 5] = [
    "directus_users",
    "directus_roles",
    "directus_policies",
    "directus_access",
    "directus_permissions",
];

/// Reads and writes the items of one collection as one accountability.
pub struct ItemsService<'a> {
    services: &'a Services,
    acc: &'a Accountability,
    schema: Arc<SchemaSnapshot>,
    collection: String,
    /// The caller's transaction; `None`: the service opens what each operation needs.
    tx: Option<&'a mut PgConnection>,
}

impl<'a> ItemsService<'a> {
    /// A service for `collection` as `acc` on `schema`. The collection is looked up (and
    /// refused as `FORBIDDEN` when it is not a table) by each operation.
    pub fn new(
        services: &'a Services,
        collection: &str,
        acc: &'a Accountability,
        schema: Arc<SchemaSnapshot>,
    ) -> ItemsService<'a> {
        ItemsService {
            services,
            acc,
            schema,
            collection: collection.to_string(),
            tx: None,
        }
    }

    /// Runs every operation on the caller's transaction: nothing is committed until the
    /// caller commits, and a failure of a later operation rolls back this one's writes too.
    pub fn in_transaction(mut self, tx: &'a mut PgConnection) -> ItemsService<'a> {
        self.tx = Some(tx);
        self
    }

    /// The collection this service serves.
    pub fn collection(&self) -> Result<&Collection, Error> {
        collection_of(&self.schema, &self.collection)
    }

    /// What every operation shares, and apart from it the caller's transaction.
    #[allow(clippy::type_complexity)]
    fn split(&mut self) -> Result<(Op<'_>, &mut Option<&'a mut PgConnection>), Error> {
        let ItemsService {
            services,
            acc,
            schema,
            collection,
            tx,
        } = self;
        let op = Op {
            services,
            acc,
            schema,
            collection: collection_of(schema, collection)?,
        };
        Ok((op, tx))
    }

    /// What every operation shares (for planning, which needs no connection).
    fn op(&self) -> Result<Op<'_>, Error> {
        Ok(Op {
            services: self.services,
            acc: self.acc,
            schema: &self.schema,
            collection: collection_of(&self.schema, &self.collection)?,
        })
    }
}

/// A table collection by name (system collections included); `FORBIDDEN` otherwise.
pub fn collection_of<'s>(schema: &'s SchemaSnapshot, name: &str) -> Result<&'s Collection, Error> {
    Ok(crate::core::schema_change::table_collection(schema, name)?)
}

/// A connection for one operation: the caller's transaction, or one of ours.
enum Conn<'c> {
    Caller(&'c mut PgConnection),
    Pooled(PoolConnection<Postgres>),
    Tx(Transaction<'static, Postgres>),
}

impl Conn<'_> {
    fn get(&mut self) -> &mut PgConnection {
        match self {
            Conn::Caller(conn) => conn,
            Conn::Pooled(conn) => conn,
            Conn::Tx(tx) => tx,
        }
    }

    /// Commits what this operation opened; the caller's transaction stays the caller's.
    async fn finish(self) -> Result<(), Error> {
        if let Conn::Tx(tx) = self {
            tx.commit().await?;
        }
        Ok(())
    }
}

/// A connection for work that is atomic on its own (one statement, or reads).
async fn statement<'c>(
    tx: &'c mut Option<&'_ mut PgConnection>,
    services: &Services,
) -> Result<Conn<'c>, Error> {
    Ok(match tx {
        Some(conn) => Conn::Caller(conn),
        None => Conn::Pooled(services.pool.acquire().await?),
    })
}

/// A transaction: the caller's, or a new one.
async fn transaction<'c>(
    tx: &'c mut Option<&'_ mut PgConnection>,
    services: &Services,
) -> Result<Conn<'c>, Error> {
    Ok(match tx {
        Some(conn) => Conn::Caller(conn),
        None => Conn::Tx(services.pool.begin().await?),
    })
}

/// The parts of an operation that are not the connection.
#[derive(Clone, Copy)]
struct Op<'s> {
    services: &'s Services,
    acc: &'s Accountability,
    schema: &'s SchemaSnapshot,
    collection: &'s Collection,
}

impl<'s> Op<'s> {
    fn name(&self) -> &'s str {
        &self.collection.collection
    }

    fn user_schema(&self) -> &'s str {
        &self.services.config.user_schema
    }

    /// Parses `query` for this caller and authorizes it: `*` narrows to readable fields,
    /// anything unreadable is refused, and the rules the SQL must apply come with it.
    fn authorized(
        &self,
        query: &ItemsQuery,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(Query, ReadRules), Error> {
        self.authorized_with(query, now, self.services.config.query)
    }

    fn authorized_with(
        &self,
        query: &ItemsQuery,
        now: chrono::DateTime<chrono::Utc>,
        settings: query::Settings,
    ) -> Result<(Query, ReadRules), Error> {
        let mut vars = self.acc.variables();
        vars.now = now;
        Ok(plan::plan_read(
            &self.acc.access,
            self.schema,
            self.name(),
            query.params(),
            &vars,
            settings,
        )?)
    }

    /// The read `query` as a plan that can be planned again at another moment (`$NOW`).
    fn read_plan(&self, query: &ItemsQuery, schema: Arc<SchemaSnapshot>) -> plan::ReadPlan {
        plan::ReadPlan {
            snapshot: schema,
            collection: self.name().to_string(),
            params: query.params().clone(),
            access: self.acc.access.clone(),
            vars: self.acc.variables(),
            settings: self.services.config.query,
        }
    }

    fn target<'t>(&'t self, rules: &'t ReadRules) -> Target<'t> {
        Target {
            snapshot: self.schema,
            schema: self.user_schema(),
            collection: self.collection,
            rules,
        }
    }

    fn check_batch(&self, count: usize) -> Result<(), Error> {
        match self.services.config.max_batch_mutation {
            Some(max) if count > max => Err(Error::payload(format!(
                "Exceeded max batch mutation limit of {max}"
            ))),
            _ => Ok(()),
        }
    }

    /// After a committed write: one that changed users, roles, policies, access or
    /// permissions (or wrote nested items, which may be any of those) empties the access cache
    /// before the operation returns, so the caller's next request already sees it. The
    /// notification does the same on every instance, a moment later.
    fn forget_access(&self, nested: bool) {
        if nested || ACCESS_COLLECTIONS.contains(&self.name()) {
            self.services.access.clear();
        }
    }

    /// The keys a `{keys}` or `{query}` selector names (a query reads at most 100 unless it
    /// says), read as the caller.
    async fn keys_for(&self, conn: &mut PgConnection, selector: Selector) -> Result<Vec<String>, Error> {
        let query = match selector {
            Selector::Keys(keys) => return Ok(keys),
            Selector::Query(query) => query,
        };
        let pk = self.collection.primary_key.clone().ok_or(Error::Forbidden)?;
        let mut params = query.0;
        params.insert("fields".into(), serde_json::Value::String(pk.clone()));
        let settings = query::Settings {
            default_limit: QUERY_WRITE_DEFAULT_LIMIT,
            ..self.services.config.query
        };
        let (parsed, rules) = self.authorized_with(&ItemsQuery(params), chrono::Utc::now(), settings)?;
        let rows = sql_read::rows(
            &mut *conn,
            &sql_read::select(&self.target(&rules), &parsed, None)?,
            self.name(),
        )
        .await?;
        rows.iter()
            .map(|row| {
                let value: serde_json::Value = serde_json::from_str(row).map_err(Error::internal)?;
                input::key_text(&value[&pk])
            })
            .collect()
    }

    /// Refuses the write unless every item `keys` names exists and matches `condition` (the
    /// action's item rule and, for updates, the cases of the written fields).
    async fn ensure_matching(
        &self,
        conn: &mut PgConnection,
        keys: &[String],
        condition: Option<crate::core::filter::Filter>,
    ) -> Result<(), Error> {
        let Some(condition) = condition else {
            return Ok(());
        };
        let pk = self.collection.primary_key.as_deref().ok_or(Error::Forbidden)?;
        let pk_type = self
            .collection
            .field(pk)
            .map(|f| f.field_type)
            .ok_or(Error::Forbidden)?;
        let mut distinct: Vec<String> = keys.to_vec();
        distinct.sort();
        distinct.dedup();
        let by_key = crate::core::filter::keys_in(pk, pk_type, &distinct)
            .map_err(|e| Error::internal(anyhow::anyhow!("{e}")))?;
        let everything = ReadRules::unrestricted();
        let sql = sql_read::count_matching(
            &self.target(&everything),
            &crate::core::filter::Filter::And(vec![by_key, condition]),
        )?;
        let matching = sql_read::number(&mut *conn, &sql).await?;
        if usize::try_from(matching).ok() != Some(distinct.len()) {
            return Err(Error::Forbidden);
        }
        Ok(())
    }
}
