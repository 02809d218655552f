//! One hand-built payload per message type, laid out field by field as in the Postgres docs,
//! and the ways a payload can be malformed.

use chrono::{TimeZone, Utc};

use super::*;

/// 2024-03-15 10:30:00.123456 UTC as Postgres sends it: µs since 2000-01-01.
const TS_MICROS: i64 = 763_813_800_123_456;

fn ts() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 15, 10, 30, 0).unwrap() + chrono::Duration::microseconds(123_456)
}

fn be16(n: i16) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}
fn be32(n: i32) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}
fn be64(n: u64) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

#[test]
fn begin_carries_final_lsn_commit_time_and_xid() {
    let bytes = [
        vec![b'B'],
        be64(0x0000_0001_0000_00A0),
        TS_MICROS.to_be_bytes().to_vec(),
        be32(740),
    ]
    .concat();
    assert_eq!(
        decode(&bytes).unwrap(),
        Message::Begin(Begin {
            final_lsn: Lsn(0x1_0000_00A0),
            commit_ts: ts(),
            xid: 740,
        })
    );
}

#[test]
fn commit_carries_flags_lsns_and_time() {
    let bytes = [
        vec![b'C', 0],
        be64(0x1_0000_00A0),
        be64(0x1_0000_00D0),
        TS_MICROS.to_be_bytes().to_vec(),
    ]
    .concat();
    assert_eq!(
        decode(&bytes).unwrap(),
        Message::Commit(Commit {
            flags: 0,
            commit_lsn: Lsn(0x1_0000_00A0),
            end_lsn: Lsn(0x1_0000_00D0),
            commit_ts: ts(),
        })
    );
}

#[test]
fn commit_timestamps_before_2000_are_negative() {
    let bytes = [vec![b'C', 0], be64(1), be64(2), (-1_i64).to_be_bytes().to_vec()].concat();
    let Message::Commit(commit) = decode(&bytes).unwrap() else {
        panic!("not a commit")
    };
    assert_eq!(commit.commit_ts.to_rfc3339(), "1999-12-31T23:59:59.999999+00:00");
}

#[test]
fn origin_carries_lsn_and_name() {
    let bytes = [vec![b'O'], be64(42), b"node_a\0".to_vec()].concat();
    assert_eq!(
        decode(&bytes).unwrap(),
        Message::Origin(Origin {
            commit_lsn: Lsn(42),
            name: "node_a"
        })
    );
}

#[test]
fn relation_lists_columns_with_key_flag_type_and_typmod() {
    let bytes = [
        vec![b'R'],
        be32(16386),
        b"public\0items\0".to_vec(),
        vec![b'd'],
        be16(2),
        vec![1],
        b"id\0".to_vec(),
        be32(20),
        be32(-1),
        vec![0],
        b"title\0".to_vec(),
        be32(1043),
        be32(104),
    ]
    .concat();
    assert_eq!(
        decode(&bytes).unwrap(),
        Message::Relation(Relation {
            oid: 16386,
            namespace: "public",
            name: "items",
            replica_identity: ReplicaIdentity::Default,
            columns: vec![
                RelationColumn {
                    key: true,
                    name: "id",
                    type_oid: 20,
                    type_modifier: -1
                },
                RelationColumn {
                    key: false,
                    name: "title",
                    type_oid: 1043,
                    type_modifier: 104
                },
            ],
        })
    );
}

#[test]
fn type_carries_oid_namespace_and_name() {
    let bytes = [vec![b'Y'], be32(16390), b"public\0mood\0".to_vec()].concat();
    assert_eq!(
        decode(&bytes).unwrap(),
        Message::Type(Type {
            oid: 16390,
            namespace: "public",
            name: "mood"
        })
    );
}

#[test]
fn insert_carries_every_column_kind() {
    let bytes = [
        vec![b'I'],
        be32(16386),
        vec![b'N'],
        be16(4),
        vec![b't'],
        be32(2),
        b"42".to_vec(),
        vec![b'n', b'u', b'b'],
        be32(3),
        vec![0, 1, 2],
    ]
    .concat();
    assert_eq!(
        decode(&bytes).unwrap(),
        Message::Insert(Insert {
            relation: 16386,
            new: vec![
                ColumnData::Text("42"),
                ColumnData::Null,
                ColumnData::Unchanged,
                ColumnData::Binary(&[0, 1, 2]),
            ],
        })
    );
}

#[test]
fn update_with_no_old_tuple() {
    let bytes = [vec![b'U'], be32(7), vec![b'N'], be16(1), vec![b'n']].concat();
    assert_eq!(
        decode(&bytes).unwrap(),
        Message::Update(Update {
            relation: 7,
            old: None,
            new: vec![ColumnData::Null],
        })
    );
}

#[test]
fn update_with_key_or_full_old_tuple() {
    for (marker, wrap) in [
        (
            b'K',
            OldTuple::Key as fn(Vec<ColumnData<'static>>) -> OldTuple<'static>,
        ),
        (b'O', OldTuple::Full),
    ] {
        let bytes = [
            vec![b'U'],
            be32(7),
            vec![marker],
            be16(1),
            vec![b't'],
            be32(1),
            b"1".to_vec(),
            vec![b'N'],
            be16(1),
            vec![b't'],
            be32(1),
            b"2".to_vec(),
        ]
        .concat();
        assert_eq!(
            decode(&bytes).unwrap(),
            Message::Update(Update {
                relation: 7,
                old: Some(wrap(vec![ColumnData::Text("1")])),
                new: vec![ColumnData::Text("2")],
            })
        );
    }
}

#[test]
fn update_old_tuple_must_be_followed_by_new() {
    let bytes = [vec![b'U'], be32(7), vec![b'K'], be16(0), vec![b'X'], be16(0)].concat();
    assert_eq!(
        decode(&bytes),
        Err(DecodeError::Unexpected {
            offset: 8,
            expected: "new tuple marker 'N'",
            found: b'X'
        })
    );
}

#[test]
fn delete_carries_key_or_full_old_tuple() {
    let key = [
        vec![b'D'],
        be32(7),
        vec![b'K'],
        be16(2),
        vec![b't'],
        be32(1),
        b"1".to_vec(),
        vec![b'n'],
    ]
    .concat();
    assert_eq!(
        decode(&key).unwrap(),
        Message::Delete(Delete {
            relation: 7,
            old: OldTuple::Key(vec![ColumnData::Text("1"), ColumnData::Null]),
        })
    );
    let full = [vec![b'D'], be32(7), vec![b'O'], be16(1), vec![b'n']].concat();
    assert_eq!(
        decode(&full).unwrap(),
        Message::Delete(Delete {
            relation: 7,
            old: OldTuple::Full(vec![ColumnData::Null]),
        })
    );
    let neither = [vec![b'D'], be32(7), vec![b'N'], be16(0)].concat();
    assert!(matches!(
        decode(&neither),
        Err(DecodeError::Unexpected {
            offset: 5,
            found: b'N',
            ..
        })
    ));
}

#[test]
fn truncate_carries_options_and_relations() {
    let bytes = [vec![b'T'], be32(2), vec![3], be32(7), be32(8)].concat();
    assert_eq!(
        decode(&bytes).unwrap(),
        Message::Truncate(Truncate {
            cascade: true,
            restart_identity: true,
            relations: vec![7, 8],
        })
    );
}

#[test]
fn logical_message_carries_flags_lsn_prefix_and_content() {
    let bytes = [
        vec![b'M', 1],
        be64(99),
        b"directrix\0".to_vec(),
        be32(3),
        b"hi!".to_vec(),
    ]
    .concat();
    assert_eq!(
        decode(&bytes).unwrap(),
        Message::Logical(LogicalMessage {
            transactional: true,
            lsn: Lsn(99),
            prefix: "directrix",
            content: b"hi!",
        })
    );
}

#[test]
fn streamed_and_two_phase_messages_are_refused_by_name() {
    for (tag, what) in [(b'S', "stream start"), (b'c', "stream commit"), (b'P', "prepare")] {
        assert_eq!(
            decode(&[tag, 0, 0, 0, 1]),
            Err(DecodeError::Unsupported {
                tag: char::from(tag),
                what
            })
        );
    }
}

#[test]
fn an_unknown_tag_or_empty_payload_is_an_error() {
    assert_eq!(
        decode(b"Z"),
        Err(DecodeError::Unexpected {
            offset: 0,
            expected: "message tag",
            found: b'Z'
        })
    );
    assert!(matches!(
        decode(b""),
        Err(DecodeError::Truncated { offset: 0, .. })
    ));
}

#[test]
fn every_truncation_of_a_valid_payload_is_an_error() {
    let bytes = [
        vec![b'U'],
        be32(7),
        vec![b'O'],
        be16(2),
        vec![b't'],
        be32(5),
        b"hello".to_vec(),
        vec![b'u', b'N'],
        be16(2),
        vec![b't'],
        be32(5),
        b"world".to_vec(),
        vec![b'n'],
    ]
    .concat();
    decode(&bytes).unwrap();
    for len in 0..bytes.len() {
        assert!(decode(&bytes[..len]).is_err(), "prefix of {len} bytes decoded");
    }
}

#[test]
fn trailing_bytes_after_a_message_are_an_error() {
    let bytes = [vec![b'O'], be64(42), b"a\0x".to_vec()].concat();
    assert_eq!(
        decode(&bytes),
        Err(DecodeError::TrailingBytes { offset: 11, count: 1 })
    );
}

#[test]
fn malformed_markers_are_named() {
    let identity = [vec![b'R'], be32(1), b"s\0t\0".to_vec(), vec![b'x'], be16(0)].concat();
    assert!(matches!(
        decode(&identity),
        Err(DecodeError::Unexpected {
            offset: 9,
            found: b'x',
            ..
        })
    ));
    let kind = [vec![b'I'], be32(1), vec![b'N'], be16(1), vec![b'q']].concat();
    assert!(matches!(
        decode(&kind),
        Err(DecodeError::Unexpected {
            offset: 8,
            expected: "column kind 'n', 'u', 't' or 'b'",
            found: b'q'
        })
    ));
    let negative = [vec![b'I'], be32(1), vec![b'N'], be16(1), vec![b't'], be32(-5)].concat();
    assert!(matches!(
        decode(&negative),
        Err(DecodeError::NegativeLength {
            offset: 9,
            length: -5,
            ..
        })
    ));
    let utf8 = [
        vec![b'I'],
        be32(1),
        vec![b'N'],
        be16(1),
        vec![b't'],
        be32(2),
        vec![b'a', 0xC3],
    ]
    .concat();
    assert!(matches!(
        decode(&utf8),
        Err(DecodeError::InvalidUtf8 { offset: 14, .. })
    ));
}

#[test]
fn out_of_range_timestamps_are_errors_not_panics() {
    let bytes = [vec![b'B'], be64(1), i64::MAX.to_be_bytes().to_vec(), be32(1)].concat();
    assert_eq!(
        decode(&bytes),
        Err(DecodeError::TimestampOutOfRange {
            offset: 9,
            micros: i64::MAX
        })
    );
}
