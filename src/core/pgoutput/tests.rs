//! Properties of the whole decoder: no input makes it panic, encode → decode is the identity
//! for every message the protocol can carry, and any sequence of well-formed messages is
//! either assembled or refused with an error.

use chrono::{DateTime, Utc};
use proptest::collection::vec;
use proptest::prelude::*;

use super::encode::encode;
use super::*;

/// A NUL-free string (pgoutput strings are NUL-terminated), leaked so generated messages can
/// borrow it as the decoder's do.
fn name() -> impl Strategy<Value = &'static str> {
    "[^\\x00]{0,12}".prop_map(|s| &*s.leak())
}

fn text() -> impl Strategy<Value = &'static str> {
    any::<String>().prop_map(|s| &*s.leak())
}

fn bytes() -> impl Strategy<Value = &'static [u8]> {
    vec(any::<u8>(), 0..16).prop_map(|b| &*b.leak())
}

fn lsn(range: std::ops::Range<u64>) -> impl Strategy<Value = Lsn> {
    range.prop_map(Lsn)
}

/// Any instant within a few thousand years of 2000, at microsecond precision.
fn timestamp() -> impl Strategy<Value = DateTime<Utc>> {
    (-100_000_000_000_000_000_i64..100_000_000_000_000_000)
        .prop_map(|micros| DateTime::from_timestamp_micros(micros).expect("in chrono's range"))
}

fn column_data() -> impl Strategy<Value = ColumnData<'static>> {
    prop_oneof![
        Just(ColumnData::Null),
        Just(ColumnData::Unchanged),
        text().prop_map(ColumnData::Text),
        bytes().prop_map(ColumnData::Binary),
    ]
}

fn tuple() -> impl Strategy<Value = Vec<ColumnData<'static>>> {
    vec(column_data(), 0..6)
}

fn old_tuple() -> impl Strategy<Value = OldTuple<'static>> {
    prop_oneof![tuple().prop_map(OldTuple::Key), tuple().prop_map(OldTuple::Full)]
}

fn identity() -> impl Strategy<Value = ReplicaIdentity> {
    prop_oneof![
        Just(ReplicaIdentity::Default),
        Just(ReplicaIdentity::Nothing),
        Just(ReplicaIdentity::Full),
        Just(ReplicaIdentity::Index),
    ]
}

fn relation_column() -> impl Strategy<Value = RelationColumn<'static>> {
    (any::<bool>(), name(), any::<u32>(), any::<i32>()).prop_map(|(key, name, type_oid, type_modifier)| {
        RelationColumn {
            key,
            name,
            type_oid,
            type_modifier,
        }
    })
}

/// Every message, with relation oids and LSNs drawn from the given ranges: narrow ones make
/// sequences refer to each other (a commit matching its begin, a change its relation).
fn message(
    oids: std::ops::Range<u32>,
    lsns: std::ops::Range<u64>,
) -> impl Strategy<Value = Message<'static>> {
    prop_oneof![
        (lsn(lsns.clone()), timestamp(), any::<u32>()).prop_map(|(final_lsn, commit_ts, xid)| {
            Message::Begin(Begin {
                final_lsn,
                commit_ts,
                xid,
            })
        }),
        (any::<u8>(), lsn(lsns.clone()), lsn(lsns.clone()), timestamp()).prop_map(
            |(flags, commit_lsn, end_lsn, commit_ts)| {
                Message::Commit(Commit {
                    flags,
                    commit_lsn,
                    end_lsn,
                    commit_ts,
                })
            }
        ),
        (lsn(lsns.clone()), name())
            .prop_map(|(commit_lsn, name)| Message::Origin(Origin { commit_lsn, name })),
        (
            oids.clone(),
            name(),
            name(),
            identity(),
            vec(relation_column(), 0..6)
        )
            .prop_map(|(oid, namespace, name, replica_identity, columns)| {
                Message::Relation(Relation {
                    oid,
                    namespace,
                    name,
                    replica_identity,
                    columns,
                })
            }),
        (any::<u32>(), name(), name())
            .prop_map(|(oid, namespace, name)| { Message::Type(Type { oid, namespace, name }) }),
        (oids.clone(), tuple()).prop_map(|(relation, new)| Message::Insert(Insert { relation, new })),
        (oids.clone(), proptest::option::of(old_tuple()), tuple())
            .prop_map(|(relation, old, new)| Message::Update(Update { relation, old, new })),
        (oids.clone(), old_tuple()).prop_map(|(relation, old)| Message::Delete(Delete { relation, old })),
        (any::<bool>(), any::<bool>(), vec(oids, 0..4)).prop_map(|(cascade, restart_identity, relations)| {
            Message::Truncate(Truncate {
                cascade,
                restart_identity,
                relations,
            })
        }),
        (any::<bool>(), lsn(lsns), name(), bytes()).prop_map(|(transactional, lsn, prefix, content)| {
            Message::Logical(LogicalMessage {
                transactional,
                lsn,
                prefix,
                content,
            })
        }),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
        let _ = Decoder::new().push(&bytes);
    }

    #[test]
    fn bytes_behind_a_valid_tag_never_panic(
        tag in proptest::sample::select(b"BCORYIUDTM".to_vec()),
        rest in vec(any::<u8>(), 0..128),
    ) {
        let mut bytes = vec![tag];
        bytes.extend(rest);
        let _ = decode(&bytes);
    }

    #[test]
    fn encode_then_decode_is_the_identity(message in message(0..u32::MAX, 0..u64::MAX)) {
        let bytes = encode(&message);
        prop_assert_eq!(decode(&bytes), Ok(message));
    }

    #[test]
    fn every_prefix_and_single_byte_change_of_a_valid_message_is_handled(
        message in message(0..u32::MAX, 0..u64::MAX),
        position in any::<proptest::sample::Index>(),
        flip in 1..=255_u8,
    ) {
        let bytes = encode(&message);
        for len in 0..bytes.len() {
            prop_assert!(decode(&bytes[..len]).is_err(), "prefix of {} bytes decoded", len);
        }
        let mut changed = bytes.clone();
        changed[position.index(bytes.len())] ^= flip;
        let _ = decode(&changed);
    }

    #[test]
    fn any_sequence_of_messages_is_assembled_or_refused_without_panicking(
        messages in vec(message(1..4, 0..2), 0..24),
    ) {
        let mut decoder = Decoder::with_limits(TransactionLimits {
            changes: 3,
            bytes: 64,
        });
        for message in &messages {
            match decoder.push(&encode(message)) {
                Ok(Some(Event::Transaction(tx))) => {
                    prop_assert!(tx.changes.len() <= 3);
                }
                Ok(_) => {}
                // An error drops the open transaction; the decoder stays usable.
                Err(_) => prop_assert!(!decoder.in_transaction()),
            }
        }
    }
}

/// Payloads a PostgreSQL 15 server sent for the scenario in `tests/pgoutput.rs` (which checks
/// every row of them); here, the shape of what they decode to, without a server.
const RECORDED: &str = include_str!("../../../tests/fixtures/pgoutput_v1.hex");

#[test]
fn recorded_server_bytes_assemble_into_their_transactions() {
    let mut decoder = Decoder::new();
    let mut events = Vec::new();
    for line in RECORDED.lines().filter(|l| !l.starts_with('#')) {
        let payload = hex::decode(line).expect("fixture lines are hex");
        events.extend(decoder.push(&payload).expect("recorded payloads decode"));
    }
    let shape: Vec<Vec<(&str, Op)>> = events
        .iter()
        .map(|event| match event {
            Event::Transaction(tx) | Event::Chunk(tx) => {
                tx.changes.iter().map(|c| (&*c.table, c.op)).collect()
            }
            Event::Message(_) => Vec::new(),
        })
        .collect();
    use Op::*;
    assert_eq!(
        shape,
        vec![
            vec![("items", Insert), ("items", Insert)],
            vec![("items", Update), ("items", Update), ("items", Delete)],
            vec![("docs", Insert)],
            vec![("docs", Update), ("docs", Delete)],
            vec![],
            vec![("items", Truncate), ("docs", Truncate)],
        ]
    );
    let Event::Transaction(toasted) = &events[1] else {
        panic!("second event is a transaction")
    };
    let Event::Transaction(full) = &events[3] else {
        panic!("fourth event is a transaction")
    };
    // DEFAULT identity: the unsent TOAST value stays unchanged; FULL: filled from the old row.
    let body = |tx: &Transaction| tx.changes[0].new.as_ref().and_then(|r| r.get("body")).cloned();
    assert_eq!(body(toasted), Some(Datum::Unchanged));
    assert_eq!(body(full), Some(Datum::Text("full ".repeat(500))));
    assert!(matches!(&events[4], Event::Message(m) if !m.transactional && m.content == b"loose"));
}
