//! [`Decoder`]: the relation cache and transaction assembly for one replication session.
//!
//! It owns what a pgoutput stream only says once: table and column names from `Relation`
//! messages (keyed by oid) and type names from `Type` messages. With them it turns
//! Insert/Update/Delete/Truncate into named [`Change`]s and groups them between Begin and
//! Commit, handing out a whole [`Transaction`] at Commit and nothing before. Still pure: the
//! replication actor feeds it payloads and forwards what comes out.
//!
//! Postgres sends each `Relation` once per walsender session, so a decoder lives exactly as long
//! as one session: after a reconnect, start a new one. After any error the stream can no longer
//! be trusted; the open transaction is dropped (a transaction comes out whole or not at all) and
//! the caller should reconnect from the slot's confirmed position.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::lsn::Lsn;
use super::message::{self, ColumnData, Message, OldTuple, ReplicaIdentity};
use super::reader::DecodeError;
use super::row::{Datum, Row};

/// How much of one transaction a [`Decoder`] holds at once: past either bound it hands the
/// changes so far out as a chunk ([`Event::Chunk`]) and goes on, so a bulk `UPDATE` of millions
/// of rows, or of large values, streams through in bounded memory and no row is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionLimits {
    /// Changes per chunk.
    pub changes: usize,
    /// Bytes of text values (old, new and key rows) per chunk.
    pub bytes: usize,
}

impl Default for TransactionLimits {
    /// 10,000 changes or 16 MiB of values, whichever comes first.
    fn default() -> Self {
        TransactionLimits {
            changes: 10_000,
            bytes: 16 << 20,
        }
    }
}

/// Why a stream of payloads cannot be assembled into transactions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("malformed pgoutput message: {0}")]
    Decode(#[from] DecodeError),
    /// A change names a relation no `Relation` message described: the stream started in the
    /// middle of a session, or is corrupt.
    #[error("change for relation {oid} before its Relation message")]
    UnknownRelation { oid: u32 },
    /// A tuple's column count differs from its relation's.
    #[error("relation {oid} has {expected} columns but a tuple has {found}")]
    ColumnCount { oid: u32, expected: usize, found: usize },
    /// A binary value: the decoder reads text tuples only.
    #[error("binary value in column {column:?} of relation {oid}; start replication without `binary`")]
    BinaryValue { oid: u32, column: String },
    /// A change, origin or commit arrived with no transaction open.
    #[error("{what} outside a transaction")]
    OutsideTransaction { what: &'static str },
    /// Begin arrived while a transaction was still open.
    #[error("begin of xid {xid} while xid {open} is still open")]
    NestedBegin { xid: u32, open: u32 },
    /// Commit's LSN is not the one its Begin announced.
    #[error("commit at {commit} but its begin announced {begin}")]
    CommitLsn { begin: Lsn, commit: Lsn },
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Delete,
    /// The table was emptied. Tables a `CASCADE` reached arrive as their own truncates, so the
    /// cascade flag is not kept.
    Truncate,
}

/// One row change (or one truncated table), with names resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub schema: Arc<str>,
    pub table: Arc<str>,
    /// The relation's oid, stable while the table exists (names can change).
    pub relation: u32,
    pub op: Op,
    /// Update: the old row when Postgres sent one (REPLICA IDENTITY FULL: every column; a
    /// changed key under DEFAULT/INDEX: the key columns only). Delete: always, in the same way.
    pub old: Option<Row>,
    /// Insert and Update: the new row. Under REPLICA IDENTITY FULL its unchanged TOAST values
    /// are filled from `old`; otherwise they stay [`Datum::Unchanged`].
    pub new: Option<Row>,
    /// The replica identity columns of the row before the change (after, for an insert): the
    /// primary key under DEFAULT, every column under FULL. Empty for a truncate.
    pub key: Row,
}

/// A `pg_logical_emit_message` message (owned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmittedMessage {
    pub transactional: bool,
    pub lsn: Lsn,
    pub prefix: String,
    pub content: Vec<u8>,
}

/// One committed transaction, or one chunk of a large one. Postgres sends transactions in
/// commit order (protocol version 1 sends a transaction only once it committed), so `end_lsn`
/// only grows within a session; after a restart the slot replays from its confirmed position
/// (at-least-once), and a consumer skips any transaction whose `end_lsn` is not past the last
/// one it delivered (and any chunk it delivered already: [`Transaction::first`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    pub xid: u32,
    /// LSN of the commit record.
    pub commit_lsn: Lsn,
    /// LSN just past the commit record: what to confirm to the slot once delivered. For a
    /// chunk with more to follow, `commit_lsn + 1`: a position after every earlier transaction
    /// and before this one's end, which orders the chunk but is never confirmed nor resumed from.
    pub end_lsn: Lsn,
    pub commit_ts: DateTime<Utc>,
    /// Set when the transaction was replicated into this server from another origin.
    pub origin: Option<String>,
    /// In the order they were made.
    pub changes: Vec<Change>,
    /// Transactional `pg_logical_emit_message` messages, in order (of a chunk: those made
    /// before its last change).
    pub messages: Vec<EmittedMessage>,
    /// The position of this chunk's first change within its transaction (0 for a whole one).
    pub first: usize,
    /// More chunks of this transaction follow.
    pub more: bool,
}

/// What a payload completes.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A committed transaction: whole, or the last part of one handed out in chunks.
    Transaction(Transaction),
    /// A part of a committed transaction too large to hold at once ([`TransactionLimits`]);
    /// its `more` is set, and its other parts follow, the last as [`Event::Transaction`].
    Chunk(Transaction),
    /// A non-transactional `pg_logical_emit_message` message, delivered as soon as it is sent.
    Message(EmittedMessage),
}

/// A relation as its last `Relation` message described it.
#[derive(Debug, Clone, PartialEq)]
pub struct RelationInfo {
    pub schema: Arc<str>,
    pub table: Arc<str>,
    pub replica_identity: ReplicaIdentity,
    pub columns: Vec<ColumnInfo>,
}

/// One published column of a [`RelationInfo`].
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnInfo {
    pub name: Arc<str>,
    /// Part of the replica identity.
    pub key: bool,
    pub type_oid: u32,
    pub type_modifier: i32,
}

/// The transaction being assembled, between Begin and Commit.
#[derive(Debug)]
struct Open {
    xid: u32,
    final_lsn: Lsn,
    commit_ts: DateTime<Utc>,
    origin: Option<String>,
    changes: Vec<Change>,
    messages: Vec<EmittedMessage>,
    /// Text bytes held in `changes`.
    bytes: usize,
    /// Changes already handed out in chunks.
    emitted: usize,
}

impl Open {
    /// What is held so far, handed out as a chunk (the transaction goes on).
    fn chunk(&mut self) -> Transaction {
        let changes = std::mem::take(&mut self.changes);
        let first = self.emitted;
        self.emitted += changes.len();
        self.bytes = 0;
        Transaction {
            xid: self.xid,
            commit_lsn: self.final_lsn,
            end_lsn: Lsn(self.final_lsn.0.saturating_add(1)),
            commit_ts: self.commit_ts,
            origin: self.origin.clone(),
            changes,
            messages: std::mem::take(&mut self.messages),
            first,
            more: true,
        }
    }
}

/// Relation cache + transaction assembly for one replication session (see the module docs).
#[derive(Debug)]
pub struct Decoder {
    relations: HashMap<u32, RelationInfo>,
    types: HashMap<u32, (String, String)>,
    open: Option<Open>,
    limits: TransactionLimits,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder for a new session, with the default [`TransactionLimits`].
    pub fn new() -> Self {
        Decoder::with_limits(TransactionLimits::default())
    }

    /// A decoder that holds at most `limits` of a transaction at once, handing larger ones out
    /// in chunks.
    pub fn with_limits(limits: TransactionLimits) -> Self {
        Decoder {
            relations: HashMap::new(),
            types: HashMap::new(),
            open: None,
            limits,
        }
    }

    /// Decodes one XLogData payload and applies it; `Some` when it completes a transaction or
    /// is a non-transactional message.
    pub fn push(&mut self, payload: &[u8]) -> Result<Option<Event>, StreamError> {
        let applied = message::decode(payload)
            .map_err(StreamError::from)
            .and_then(|m| self.apply(m));
        if applied.is_err() {
            self.open = None;
        }
        applied
    }

    /// The relation `oid` as last described, if it was.
    pub fn relation(&self, oid: u32) -> Option<&RelationInfo> {
        self.relations.get(&oid)
    }

    /// `(namespace, name)` of a type a `Type` message described (non-built-in types only).
    pub fn type_name(&self, oid: u32) -> Option<(&str, &str)> {
        self.types.get(&oid).map(|(n, t)| (n.as_str(), t.as_str()))
    }

    /// Whether a Begin has arrived without its Commit yet.
    pub fn in_transaction(&self) -> bool {
        self.open.is_some()
    }

    fn apply(&mut self, message: Message<'_>) -> Result<Option<Event>, StreamError> {
        match message {
            Message::Begin(begin) => {
                if let Some(open) = &self.open {
                    return Err(StreamError::NestedBegin {
                        xid: begin.xid,
                        open: open.xid,
                    });
                }
                self.open = Some(Open {
                    xid: begin.xid,
                    final_lsn: begin.final_lsn,
                    commit_ts: begin.commit_ts,
                    origin: None,
                    changes: Vec::new(),
                    messages: Vec::new(),
                    bytes: 0,
                    emitted: 0,
                });
            }
            Message::Commit(commit) => {
                let open = self
                    .open
                    .take()
                    .ok_or(StreamError::OutsideTransaction { what: "commit" })?;
                if open.final_lsn != commit.commit_lsn {
                    return Err(StreamError::CommitLsn {
                        begin: open.final_lsn,
                        commit: commit.commit_lsn,
                    });
                }
                return Ok(Some(Event::Transaction(Transaction {
                    xid: open.xid,
                    commit_lsn: commit.commit_lsn,
                    end_lsn: commit.end_lsn,
                    commit_ts: commit.commit_ts,
                    origin: open.origin,
                    changes: open.changes,
                    messages: open.messages,
                    first: open.emitted,
                    more: false,
                })));
            }
            Message::Origin(origin) => {
                self.open_mut("origin")?.origin = Some(origin.name.to_string());
            }
            Message::Relation(relation) => {
                let info = RelationInfo {
                    schema: relation.namespace.into(),
                    table: relation.name.into(),
                    replica_identity: relation.replica_identity,
                    columns: relation
                        .columns
                        .iter()
                        .map(|c| ColumnInfo {
                            name: c.name.into(),
                            key: c.key,
                            type_oid: c.type_oid,
                            type_modifier: c.type_modifier,
                        })
                        .collect(),
                };
                // A later description replaces the earlier one (the table was altered);
                // changes already assembled keep the names they had.
                self.relations.insert(relation.oid, info);
            }
            Message::Type(ty) => {
                self.types
                    .insert(ty.oid, (ty.namespace.to_string(), ty.name.to_string()));
            }
            Message::Insert(insert) => {
                let relation = self.relation_info(insert.relation)?;
                let new = row(insert.relation, relation, &insert.new)?;
                let key = key_of(relation, &new);
                return Ok(self
                    .record(insert.relation, Op::Insert, None, Some(new), key)?
                    .map(Event::Chunk));
            }
            Message::Update(update) => {
                let relation = self.relation_info(update.relation)?;
                let mut new = row(update.relation, relation, &update.new)?;
                let old = match &update.old {
                    Some(old) => Some(old_row(update.relation, relation, old)?),
                    None => None,
                };
                if let Some(old) = &old {
                    new.fill_unchanged_from(old);
                }
                let key = key_of(relation, old.as_ref().unwrap_or(&new));
                return Ok(self
                    .record(update.relation, Op::Update, old, Some(new), key)?
                    .map(Event::Chunk));
            }
            Message::Delete(delete) => {
                let relation = self.relation_info(delete.relation)?;
                let old = old_row(delete.relation, relation, &delete.old)?;
                let key = key_of(relation, &old);
                return Ok(self
                    .record(delete.relation, Op::Delete, Some(old), None, key)?
                    .map(Event::Chunk));
            }
            Message::Truncate(truncate) => {
                // One message, one step: its relations stay together whatever the limits.
                for &oid in &truncate.relations {
                    let (schema, table) = self.names(oid)?;
                    self.open_mut("change")?.changes.push(Change {
                        schema,
                        table,
                        relation: oid,
                        op: Op::Truncate,
                        old: None,
                        new: None,
                        key: Row::default(),
                    });
                }
            }
            Message::Logical(logical) => {
                let emitted = EmittedMessage {
                    transactional: logical.transactional,
                    lsn: logical.lsn,
                    prefix: logical.prefix.to_string(),
                    content: logical.content.to_vec(),
                };
                if !logical.transactional {
                    return Ok(Some(Event::Message(emitted)));
                }
                self.open_mut("transactional message")?.messages.push(emitted);
            }
        }
        Ok(None)
    }

    fn open_mut(&mut self, what: &'static str) -> Result<&mut Open, StreamError> {
        self.open.as_mut().ok_or(StreamError::OutsideTransaction { what })
    }

    fn relation_info(&self, oid: u32) -> Result<&RelationInfo, StreamError> {
        self.relations
            .get(&oid)
            .ok_or(StreamError::UnknownRelation { oid })
    }

    fn names(&self, oid: u32) -> Result<(Arc<str>, Arc<str>), StreamError> {
        let relation = self.relation_info(oid)?;
        Ok((relation.schema.clone(), relation.table.clone()))
    }

    /// Adds a change to the open transaction; when it would not fit in the chunk held so far,
    /// that chunk is handed out first (returned) and the change starts the next one.
    fn record(
        &mut self,
        oid: u32,
        op: Op,
        old: Option<Row>,
        new: Option<Row>,
        key: Row,
    ) -> Result<Option<Transaction>, StreamError> {
        let limits = self.limits;
        let (schema, table) = self.names(oid)?;
        let open = self.open_mut("change")?;
        // The key counts too: under FULL it is a second copy of the old row.
        let size = old
            .iter()
            .chain(&new)
            .chain([&key])
            .map(Row::text_len)
            .fold(0usize, usize::saturating_add);
        let full = open.changes.len() >= limits.changes || open.bytes.saturating_add(size) > limits.bytes;
        let chunk = (full && !open.changes.is_empty()).then(|| open.chunk());
        open.bytes = open.bytes.saturating_add(size);
        open.changes.push(Change {
            schema,
            table,
            relation: oid,
            op,
            old,
            new,
            key,
        });
        Ok(chunk)
    }
}

/// Names a tuple's values with its relation's columns; text only.
fn row(oid: u32, relation: &RelationInfo, tuple: &[ColumnData<'_>]) -> Result<Row, StreamError> {
    named(oid, relation, tuple, false)
}

/// An old tuple as a row: a key-only tuple keeps only the key columns, since Postgres sends
/// the others as null without them being null.
fn old_row(oid: u32, relation: &RelationInfo, old: &OldTuple<'_>) -> Result<Row, StreamError> {
    match old {
        OldTuple::Key(tuple) => named(oid, relation, tuple, true),
        OldTuple::Full(tuple) => named(oid, relation, tuple, false),
    }
}

fn named(
    oid: u32,
    relation: &RelationInfo,
    tuple: &[ColumnData<'_>],
    key_only: bool,
) -> Result<Row, StreamError> {
    if tuple.len() != relation.columns.len() {
        return Err(StreamError::ColumnCount {
            oid,
            expected: relation.columns.len(),
            found: tuple.len(),
        });
    }
    let mut row = Row::with_capacity(tuple.len());
    for (column, data) in relation.columns.iter().zip(tuple) {
        if key_only && !column.key {
            continue;
        }
        let datum = match data {
            ColumnData::Null => Datum::Null,
            ColumnData::Unchanged => Datum::Unchanged,
            ColumnData::Text(text) => Datum::Text((*text).to_string()),
            ColumnData::Binary(_) => {
                return Err(StreamError::BinaryValue {
                    oid,
                    column: column.name.to_string(),
                });
            }
        };
        row.push(column.name.clone(), datum);
    }
    Ok(row)
}

/// The key columns of `row` (which has them all: a new row, or either kind of old row).
fn key_of(relation: &RelationInfo, row: &Row) -> Row {
    relation
        .columns
        .iter()
        .filter(|c| c.key)
        .filter_map(|c| row.get(&c.name).map(|d| (c.name.clone(), d.clone())))
        .collect()
}

#[cfg(test)]
mod tests;
