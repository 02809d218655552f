//! The pgoutput messages of protocol version 1 and [`decode`], which turns one XLogData payload
//! into one [`Message`].
//!
//! Messages borrow their strings and values from the payload (no copy until `transaction.rs`
//! assembles rows). Formats follow the Postgres docs, "Logical Replication Message Formats";
//! streamed (`S`, `E`, `c`, `A`) and two-phase (`b`, `P`, `K`, `r`, `p`) messages of protocol
//! 2–4 are refused, since with them the other messages change shape (a leading xid).

use chrono::{DateTime, Utc};

use super::lsn::Lsn;
use super::reader::{DecodeError, Reader};

/// One pgoutput message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message<'a> {
    Begin(Begin),
    Commit(Commit),
    Origin(Origin<'a>),
    Relation(Relation<'a>),
    Type(Type<'a>),
    Insert(Insert<'a>),
    Update(Update<'a>),
    Delete(Delete<'a>),
    Truncate(Truncate),
    /// `M`, from `pg_logical_emit_message` (only sent when replication asks for `messages`).
    Logical(LogicalMessage<'a>),
}

/// `B`: a transaction starts. Only committed transactions are sent, whole, in commit order.
#[derive(Debug, Clone, PartialEq)]
pub struct Begin {
    /// LSN of the commit record; equals [`Commit::commit_lsn`].
    pub final_lsn: Lsn,
    pub commit_ts: DateTime<Utc>,
    pub xid: u32,
}

/// `C`: the transaction's last message.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// Unused by Postgres so far (always 0); kept so nothing on the wire is lost.
    pub flags: u8,
    pub commit_lsn: Lsn,
    /// The LSN just past the commit record: the position to confirm once the transaction is
    /// delivered.
    pub end_lsn: Lsn,
    pub commit_ts: DateTime<Utc>,
}

/// `O`: the transaction was replicated into this server from another origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin<'a> {
    pub commit_lsn: Lsn,
    pub name: &'a str,
}

/// `R`: a table's published columns. Sent before the first change to the table in each
/// replication session and again after its definition changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Relation<'a> {
    pub oid: u32,
    /// Empty for `pg_catalog`, as Postgres sends it.
    pub namespace: &'a str,
    pub name: &'a str,
    pub replica_identity: ReplicaIdentity,
    pub columns: Vec<RelationColumn<'a>>,
}

/// `pg_class.relreplident`: which old values updates and deletes carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaIdentity {
    /// `d`: the primary key.
    Default,
    /// `n`: nothing.
    Nothing,
    /// `f`: the whole old row (every column is flagged as key).
    Full,
    /// `i`: the columns of a chosen unique index.
    Index,
}

impl ReplicaIdentity {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            b'd' => Some(ReplicaIdentity::Default),
            b'n' => Some(ReplicaIdentity::Nothing),
            b'f' => Some(ReplicaIdentity::Full),
            b'i' => Some(ReplicaIdentity::Index),
            _ => None,
        }
    }

    /// The byte Postgres sends for it.
    pub fn as_byte(self) -> u8 {
        match self {
            ReplicaIdentity::Default => b'd',
            ReplicaIdentity::Nothing => b'n',
            ReplicaIdentity::Full => b'f',
            ReplicaIdentity::Index => b'i',
        }
    }
}

/// One column of a [`Relation`].
#[derive(Debug, Clone, PartialEq)]
pub struct RelationColumn<'a> {
    /// Part of the replica identity (flag bit 1); other flag bits are undefined and ignored.
    pub key: bool,
    pub name: &'a str,
    pub type_oid: u32,
    /// `atttypmod`: e.g. `varchar(n)` is n + 4; -1 when none.
    pub type_modifier: i32,
}

/// `Y`: a non-built-in type a following relation uses (enums, domains, extension types).
#[derive(Debug, Clone, PartialEq)]
pub struct Type<'a> {
    pub oid: u32,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// `I`: a new row.
#[derive(Debug, Clone, PartialEq)]
pub struct Insert<'a> {
    pub relation: u32,
    pub new: Vec<ColumnData<'a>>,
}

/// `U`: a changed row.
#[derive(Debug, Clone, PartialEq)]
pub struct Update<'a> {
    pub relation: u32,
    /// Present with REPLICA IDENTITY FULL, or when the key changed.
    pub old: Option<OldTuple<'a>>,
    pub new: Vec<ColumnData<'a>>,
}

/// `D`: a removed row.
#[derive(Debug, Clone, PartialEq)]
pub struct Delete<'a> {
    pub relation: u32,
    pub old: OldTuple<'a>,
}

/// The old values an update or delete carries.
#[derive(Debug, Clone, PartialEq)]
pub enum OldTuple<'a> {
    /// `K`: the replica identity columns; the other columns are sent as null.
    Key(Vec<ColumnData<'a>>),
    /// `O`: the whole old row (REPLICA IDENTITY FULL).
    Full(Vec<ColumnData<'a>>),
}

/// `T`: tables emptied by one `TRUNCATE`, including those reached by `CASCADE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Truncate {
    pub cascade: bool,
    pub restart_identity: bool,
    pub relations: Vec<u32>,
}

/// `M`: a message written with `pg_logical_emit_message`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogicalMessage<'a> {
    /// Sent inside its transaction (true) or on its own, right away (false).
    pub transactional: bool,
    pub lsn: Lsn,
    pub prefix: &'a str,
    pub content: &'a [u8],
}

/// One column of a tuple, as sent.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData<'a> {
    /// `n`.
    Null,
    /// `u`: a TOASTed value this update did not change, so Postgres did not send it.
    Unchanged,
    /// `t`: the type's text output.
    Text(&'a str),
    /// `b`: the type's binary send format (only with the `binary` replication option).
    Binary(&'a [u8]),
}

/// Microseconds from the Unix epoch to Postgres's epoch, 2000-01-01 00:00:00 UTC.
pub(super) const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

// Smallest encodings, used to check counts against the bytes left before allocating:
// a column is flags + empty name + type oid + typmod; a tuple column is its kind byte.
const MIN_RELATION_COLUMN_LEN: usize = 1 + 1 + 4 + 4;
const MIN_TUPLE_COLUMN_LEN: usize = 1;
const OID_LEN: usize = 4;

/// Decodes one pgoutput payload (the data of one XLogData message) of protocol version 1.
///
/// Never panics and never allocates more than the payload could describe; any malformed or
/// truncated input, and any byte left over, is a [`DecodeError`].
pub fn decode(bytes: &[u8]) -> Result<Message<'_>, DecodeError> {
    let mut r = Reader::new(bytes);
    let tag = r.u8("message tag")?;
    let message = match tag {
        b'B' => Message::Begin(Begin {
            final_lsn: lsn(&mut r, "final LSN")?,
            commit_ts: timestamp(&mut r, "commit timestamp")?,
            xid: r.u32("xid")?,
        }),
        b'C' => Message::Commit(Commit {
            flags: r.u8("commit flags")?,
            commit_lsn: lsn(&mut r, "commit LSN")?,
            end_lsn: lsn(&mut r, "end LSN")?,
            commit_ts: timestamp(&mut r, "commit timestamp")?,
        }),
        b'O' => Message::Origin(Origin {
            commit_lsn: lsn(&mut r, "origin commit LSN")?,
            name: r.cstr("origin name")?,
        }),
        b'R' => Message::Relation(relation(&mut r)?),
        b'Y' => Message::Type(Type {
            oid: r.u32("type oid")?,
            namespace: r.cstr("type namespace")?,
            name: r.cstr("type name")?,
        }),
        b'I' => {
            let relation = r.u32("relation oid")?;
            expect(&mut r, b'N', "new tuple marker 'N'")?;
            Message::Insert(Insert {
                relation,
                new: tuple(&mut r)?,
            })
        }
        b'U' => {
            let relation = r.u32("relation oid")?;
            let at = r.offset();
            let old = match r.u8("tuple marker 'K', 'O' or 'N'")? {
                b'K' => Some(OldTuple::Key(tuple(&mut r)?)),
                b'O' => Some(OldTuple::Full(tuple(&mut r)?)),
                b'N' => None,
                found => return Err(unexpected(at, "tuple marker 'K', 'O' or 'N'", found)),
            };
            if old.is_some() {
                expect(&mut r, b'N', "new tuple marker 'N'")?;
            }
            Message::Update(Update {
                relation,
                old,
                new: tuple(&mut r)?,
            })
        }
        b'D' => {
            let relation = r.u32("relation oid")?;
            let at = r.offset();
            let old = match r.u8("old tuple marker 'K' or 'O'")? {
                b'K' => OldTuple::Key(tuple(&mut r)?),
                b'O' => OldTuple::Full(tuple(&mut r)?),
                found => return Err(unexpected(at, "old tuple marker 'K' or 'O'", found)),
            };
            Message::Delete(Delete { relation, old })
        }
        b'T' => {
            let count = r.count_i32("relation count", OID_LEN)?;
            let options = r.u8("truncate options")?;
            let mut relations = Vec::with_capacity(count);
            for _ in 0..count {
                relations.push(r.u32("relation oid")?);
            }
            Message::Truncate(Truncate {
                cascade: options & 1 != 0,
                restart_identity: options & 2 != 0,
                relations,
            })
        }
        b'M' => Message::Logical(LogicalMessage {
            transactional: r.u8("message flags")? & 1 != 0,
            lsn: lsn(&mut r, "message LSN")?,
            prefix: r.cstr("message prefix")?,
            content: r.counted_bytes("message content")?,
        }),
        b'S' => return Err(unsupported(tag, "stream start")),
        b'E' => return Err(unsupported(tag, "stream stop")),
        b'c' => return Err(unsupported(tag, "stream commit")),
        b'A' => return Err(unsupported(tag, "stream abort")),
        b'b' => return Err(unsupported(tag, "begin prepare")),
        b'P' => return Err(unsupported(tag, "prepare")),
        b'K' => return Err(unsupported(tag, "commit prepared")),
        b'r' => return Err(unsupported(tag, "rollback prepared")),
        b'p' => return Err(unsupported(tag, "stream prepare")),
        found => return Err(unexpected(0, "message tag", found)),
    };
    r.finish()?;
    Ok(message)
}

fn relation<'a>(r: &mut Reader<'a>) -> Result<Relation<'a>, DecodeError> {
    let oid = r.u32("relation oid")?;
    let namespace = r.cstr("relation namespace")?;
    let name = r.cstr("relation name")?;
    let at = r.offset();
    let identity = r.u8("replica identity")?;
    let replica_identity = ReplicaIdentity::from_byte(identity)
        .ok_or_else(|| unexpected(at, "replica identity 'd', 'n', 'f' or 'i'", identity))?;
    let count = r.count_i16("column count", MIN_RELATION_COLUMN_LEN)?;
    let mut columns = Vec::with_capacity(count);
    for _ in 0..count {
        columns.push(RelationColumn {
            key: r.u8("column flags")? & 1 != 0,
            name: r.cstr("column name")?,
            type_oid: r.u32("column type oid")?,
            type_modifier: r.i32("column type modifier")?,
        });
    }
    Ok(Relation {
        oid,
        namespace,
        name,
        replica_identity,
        columns,
    })
}

/// TupleData: an `Int16` column count, then each column's kind and value.
fn tuple<'a>(r: &mut Reader<'a>) -> Result<Vec<ColumnData<'a>>, DecodeError> {
    let count = r.count_i16("tuple column count", MIN_TUPLE_COLUMN_LEN)?;
    let mut columns = Vec::with_capacity(count);
    for _ in 0..count {
        let at = r.offset();
        let column = match r.u8("column kind")? {
            b'n' => ColumnData::Null,
            b'u' => ColumnData::Unchanged,
            b't' => ColumnData::Text(r.counted_str("text value")?),
            b'b' => ColumnData::Binary(r.counted_bytes("binary value")?),
            found => return Err(unexpected(at, "column kind 'n', 'u', 't' or 'b'", found)),
        };
        columns.push(column);
    }
    Ok(columns)
}

fn lsn(r: &mut Reader<'_>, expected: &'static str) -> Result<Lsn, DecodeError> {
    Ok(Lsn(r.u64(expected)?))
}

fn timestamp(r: &mut Reader<'_>, expected: &'static str) -> Result<DateTime<Utc>, DecodeError> {
    let at = r.offset();
    let micros = r.i64(expected)?;
    micros
        .checked_add(POSTGRES_EPOCH_MICROS)
        .and_then(DateTime::from_timestamp_micros)
        .ok_or(DecodeError::TimestampOutOfRange { offset: at, micros })
}

fn expect(r: &mut Reader<'_>, byte: u8, expected: &'static str) -> Result<(), DecodeError> {
    let at = r.offset();
    match r.u8(expected)? {
        found if found == byte => Ok(()),
        found => Err(unexpected(at, expected, found)),
    }
}

fn unexpected(offset: usize, expected: &'static str, found: u8) -> DecodeError {
    DecodeError::Unexpected {
        offset,
        expected,
        found,
    }
}

fn unsupported(tag: u8, what: &'static str) -> DecodeError {
    DecodeError::Unsupported {
        tag: char::from(tag),
        what,
    }
}

#[cfg(test)]
mod tests;
