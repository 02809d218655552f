//! The pgoutput decoder: bytes of Postgres's built-in logical replication output plugin in,
//! whole committed transactions of named rows out. Pure: no I/O, no async, no clock.
//!
//! ```text
//!  replication actor (streams START_REPLICATION … LOGICAL, proto_version '1')
//!        │ one XLogData payload at a time
//!        ▼
//!  message::decode ──► Message (borrowed, bounds-checked)          message.rs, reader.rs
//!        ▼
//!  Decoder: relation cache (oid → names), Begin … Commit           transaction.rs, row.rs
//!        │ Event::Transaction { xid, commit_lsn, end_lsn, changes } at Commit
//!        ▼
//!  collection feeds: value::to_json per column → Directus JSON    value.rs
//! ```
//!
//! This module never talks to Postgres and never decides which LSN is durable: the replication
//! actor owns the connection, the slot and the confirmed position (it confirms a transaction's
//! `end_lsn` once the feeds have it, and after a restart skips transactions whose `end_lsn` it
//! already delivered). Protocol version 1 (version 2 without `streaming` sends the same
//! messages), text tuples only; streamed and two-phase messages are refused with
//! [`DecodeError::Unsupported`].

#[cfg(test)]
mod encode;
mod lsn;
mod message;
mod reader;
mod row;
#[cfg(test)]
mod tests;
mod transaction;
pub mod value;

pub use lsn::{Lsn, LsnParseError};
pub use message::{
    Begin, ColumnData, Commit, Delete, Insert, LogicalMessage, Message, OldTuple, Origin, Relation,
    RelationColumn, ReplicaIdentity, Truncate, Type, Update, decode,
};
pub use reader::DecodeError;
pub use row::{Datum, Row};
pub use transaction::{
    Change, ColumnInfo, Decoder, EmittedMessage, Event, Op, RelationInfo, StreamError, Transaction,
    TransactionLimits,
};
