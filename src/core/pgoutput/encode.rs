//! Test-only: writes [`Message`]s in pgoutput's wire format, the inverse of `decode`, for
//! round-trip property tests and for building payloads in unit tests. Production code never
//! encodes pgoutput (Postgres does).

use super::message::{ColumnData, Message, OldTuple, POSTGRES_EPOCH_MICROS};

/// The payload Postgres would send for `message`.
pub(super) fn encode(message: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    match message {
        Message::Begin(m) => {
            out.push(b'B');
            out.extend(m.final_lsn.0.to_be_bytes());
            out.extend(micros(m.commit_ts).to_be_bytes());
            out.extend(m.xid.to_be_bytes());
        }
        Message::Commit(m) => {
            out.push(b'C');
            out.push(m.flags);
            out.extend(m.commit_lsn.0.to_be_bytes());
            out.extend(m.end_lsn.0.to_be_bytes());
            out.extend(micros(m.commit_ts).to_be_bytes());
        }
        Message::Origin(m) => {
            out.push(b'O');
            out.extend(m.commit_lsn.0.to_be_bytes());
            cstr(&mut out, m.name);
        }
        Message::Relation(m) => {
            out.push(b'R');
            out.extend(m.oid.to_be_bytes());
            cstr(&mut out, m.namespace);
            cstr(&mut out, m.name);
            out.push(m.replica_identity.as_byte());
            out.extend(count16(m.columns.len()).to_be_bytes());
            for c in &m.columns {
                out.push(u8::from(c.key));
                cstr(&mut out, c.name);
                out.extend(c.type_oid.to_be_bytes());
                out.extend(c.type_modifier.to_be_bytes());
            }
        }
        Message::Type(m) => {
            out.push(b'Y');
            out.extend(m.oid.to_be_bytes());
            cstr(&mut out, m.namespace);
            cstr(&mut out, m.name);
        }
        Message::Insert(m) => {
            out.push(b'I');
            out.extend(m.relation.to_be_bytes());
            out.push(b'N');
            tuple(&mut out, &m.new);
        }
        Message::Update(m) => {
            out.push(b'U');
            out.extend(m.relation.to_be_bytes());
            if let Some(old) = &m.old {
                old_tuple(&mut out, old);
            }
            out.push(b'N');
            tuple(&mut out, &m.new);
        }
        Message::Delete(m) => {
            out.push(b'D');
            out.extend(m.relation.to_be_bytes());
            old_tuple(&mut out, &m.old);
        }
        Message::Truncate(m) => {
            out.push(b'T');
            out.extend(count32(m.relations.len()).to_be_bytes());
            out.push(u8::from(m.cascade) | (u8::from(m.restart_identity) << 1));
            for oid in &m.relations {
                out.extend(oid.to_be_bytes());
            }
        }
        Message::Logical(m) => {
            out.push(b'M');
            out.push(u8::from(m.transactional));
            out.extend(m.lsn.0.to_be_bytes());
            cstr(&mut out, m.prefix);
            out.extend(count32(m.content.len()).to_be_bytes());
            out.extend(m.content);
        }
    }
    out
}

fn micros(ts: chrono::DateTime<chrono::Utc>) -> i64 {
    ts.timestamp_micros() - POSTGRES_EPOCH_MICROS
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend(s.as_bytes());
    out.push(0);
}

fn count16(n: usize) -> i16 {
    i16::try_from(n).expect("test messages have fewer than 32768 columns")
}

fn count32(n: usize) -> i32 {
    i32::try_from(n).expect("test payloads are smaller than 2 GiB")
}

fn old_tuple(out: &mut Vec<u8>, old: &OldTuple<'_>) {
    let (marker, columns) = match old {
        OldTuple::Key(columns) => (b'K', columns),
        OldTuple::Full(columns) => (b'O', columns),
    };
    out.push(marker);
    tuple(out, columns);
}

fn tuple(out: &mut Vec<u8>, columns: &[ColumnData<'_>]) {
    out.extend(count16(columns.len()).to_be_bytes());
    for column in columns {
        match column {
            ColumnData::Null => out.push(b'n'),
            ColumnData::Unchanged => out.push(b'u'),
            ColumnData::Text(text) => {
                out.push(b't');
                out.extend(count32(text.len()).to_be_bytes());
                out.extend(text.as_bytes());
            }
            ColumnData::Binary(bytes) => {
                out.push(b'b');
                out.extend(count32(bytes.len()).to_be_bytes());
                out.extend(*bytes);
            }
        }
    }
}
