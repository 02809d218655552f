//! Assembly: relation cache, Begin … Commit grouping, old/new/key rows, TOAST merge, limits,
//! and the stream errors.

use chrono::{TimeZone, Utc};

use super::*;
use crate::core::pgoutput::encode::encode;
use crate::core::pgoutput::message::{
    Begin, Commit, Delete, Insert, LogicalMessage, Origin, Relation, RelationColumn, Truncate, Update,
};

const ITEMS: u32 = 16386;

fn begin(xid: u32, lsn: u64) -> Vec<u8> {
    encode(&Message::Begin(Begin {
        final_lsn: Lsn(lsn),
        commit_ts: Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap(),
        xid,
    }))
}

fn commit(lsn: u64) -> Vec<u8> {
    encode(&Message::Commit(Commit {
        flags: 0,
        commit_lsn: Lsn(lsn),
        end_lsn: Lsn(lsn + 0x30),
        commit_ts: Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap(),
    }))
}

/// `public.items (id bigint key, title text, body text)` with the given identity.
fn items(identity: ReplicaIdentity) -> Vec<u8> {
    let full = identity == ReplicaIdentity::Full;
    let column = |name, key, type_oid| RelationColumn {
        key,
        name,
        type_oid,
        type_modifier: -1,
    };
    encode(&Message::Relation(Relation {
        oid: ITEMS,
        namespace: "public",
        name: "items",
        replica_identity: identity,
        columns: vec![
            column("id", true, 20),
            column("title", full, 25),
            column("body", full, 25),
        ],
    }))
}

fn t(s: &str) -> ColumnData<'_> {
    ColumnData::Text(s)
}

fn d(s: &str) -> Datum {
    Datum::Text(s.into())
}

fn row(pairs: &[(&str, Datum)]) -> Row {
    pairs.iter().map(|(n, d)| (*n, d.clone())).collect()
}

/// Pushes every payload; returns the events that came out.
fn run(decoder: &mut Decoder, payloads: &[Vec<u8>]) -> Vec<Event> {
    payloads.iter().filter_map(|p| decoder.push(p).unwrap()).collect()
}

fn only_transaction(events: Vec<Event>) -> Transaction {
    match <[Event; 1]>::try_from(events) {
        Ok([Event::Transaction(tx)]) => tx,
        other => panic!("expected one transaction, got {other:?}"),
    }
}

#[test]
fn a_transaction_comes_out_whole_at_commit() {
    let mut decoder = Decoder::new();
    let insert = encode(&Message::Insert(Insert {
        relation: ITEMS,
        new: vec![t("1"), t("hello"), ColumnData::Null],
    }));
    assert_eq!(decoder.push(&begin(740, 0x100)).unwrap(), None);
    assert!(decoder.in_transaction());
    assert_eq!(decoder.push(&items(ReplicaIdentity::Default)).unwrap(), None);
    assert_eq!(decoder.push(&insert).unwrap(), None);
    let tx = only_transaction(run(&mut decoder, &[commit(0x100)]));
    assert!(!decoder.in_transaction());

    assert_eq!(tx.xid, 740);
    assert_eq!((tx.commit_lsn, tx.end_lsn), (Lsn(0x100), Lsn(0x130)));
    assert_eq!(tx.commit_ts, Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap());
    assert_eq!(
        tx.changes,
        vec![Change {
            schema: "public".into(),
            table: "items".into(),
            relation: ITEMS,
            op: Op::Insert,
            old: None,
            new: Some(row(&[
                ("id", d("1")),
                ("title", d("hello")),
                ("body", Datum::Null)
            ])),
            key: row(&[("id", d("1"))]),
        }]
    );
}

#[test]
fn relations_are_remembered_across_transactions_and_replaced_when_redescribed() {
    let mut decoder = Decoder::new();
    let insert = |v| {
        encode(&Message::Insert(Insert {
            relation: ITEMS,
            new: vec![t(v), t("x"), t("y")],
        }))
    };
    run(
        &mut decoder,
        &[
            begin(1, 0x10),
            items(ReplicaIdentity::Default),
            insert("1"),
            commit(0x10),
        ],
    );
    let tx = only_transaction(run(&mut decoder, &[begin(2, 0x20), insert("2"), commit(0x20)]));
    assert_eq!(tx.changes[0].key, row(&[("id", d("2"))]));

    // After `alter table … rename to posts` Postgres describes the relation again.
    let renamed = encode(&Message::Relation(Relation {
        oid: ITEMS,
        namespace: "public",
        name: "posts",
        replica_identity: ReplicaIdentity::Default,
        columns: vec![RelationColumn {
            key: true,
            name: "id",
            type_oid: 20,
            type_modifier: -1,
        }],
    }));
    let one = encode(&Message::Insert(Insert {
        relation: ITEMS,
        new: vec![t("3")],
    }));
    let tx = only_transaction(run(&mut decoder, &[begin(3, 0x30), renamed, one, commit(0x30)]));
    assert_eq!(&*tx.changes[0].table, "posts");
    assert_eq!(decoder.relation(ITEMS).unwrap().columns.len(), 1);
}

#[test]
fn update_under_default_identity_keeps_unchanged_toast_and_keys_by_new_row() {
    let mut decoder = Decoder::new();
    let update = encode(&Message::Update(Update {
        relation: ITEMS,
        old: None,
        new: vec![t("1"), t("new title"), ColumnData::Unchanged],
    }));
    let tx = only_transaction(run(
        &mut decoder,
        &[
            begin(1, 0x10),
            items(ReplicaIdentity::Default),
            update,
            commit(0x10),
        ],
    ));
    let change = &tx.changes[0];
    assert_eq!(change.op, Op::Update);
    assert_eq!(change.old, None);
    let new = change.new.as_ref().unwrap();
    assert_eq!(new.get("body"), Some(&Datum::Unchanged));
    assert!(new.has_unchanged());
    assert_eq!(change.key, row(&[("id", d("1"))]));
}

#[test]
fn update_changing_the_key_sends_the_old_key_only() {
    let mut decoder = Decoder::new();
    let update = encode(&Message::Update(Update {
        relation: ITEMS,
        // Postgres sends the non-key columns of a key tuple as null.
        old: Some(OldTuple::Key(vec![t("1"), ColumnData::Null, ColumnData::Null])),
        new: vec![t("2"), t("title"), ColumnData::Unchanged],
    }));
    let tx = only_transaction(run(
        &mut decoder,
        &[
            begin(1, 0x10),
            items(ReplicaIdentity::Default),
            update,
            commit(0x10),
        ],
    ));
    let change = &tx.changes[0];
    assert_eq!(change.old, Some(row(&[("id", d("1"))])));
    assert_eq!(change.key, row(&[("id", d("1"))]));
    assert_eq!(change.new.as_ref().unwrap().get("body"), Some(&Datum::Unchanged));
}

#[test]
fn update_under_full_identity_fills_unchanged_toast_from_the_old_row() {
    let mut decoder = Decoder::new();
    let update = encode(&Message::Update(Update {
        relation: ITEMS,
        old: Some(OldTuple::Full(vec![t("1"), t("old title"), t("a long body")])),
        new: vec![t("1"), t("new title"), ColumnData::Unchanged],
    }));
    let tx = only_transaction(run(
        &mut decoder,
        &[begin(1, 0x10), items(ReplicaIdentity::Full), update, commit(0x10)],
    ));
    let change = &tx.changes[0];
    assert_eq!(
        change.new,
        Some(row(&[
            ("id", d("1")),
            ("title", d("new title")),
            ("body", d("a long body"))
        ]))
    );
    // Under FULL every column is the identity.
    assert_eq!(change.key, change.old.clone().unwrap());
}

#[test]
fn delete_keys_by_the_old_row() {
    let mut decoder = Decoder::new();
    let delete = encode(&Message::Delete(Delete {
        relation: ITEMS,
        old: OldTuple::Key(vec![t("9"), ColumnData::Null, ColumnData::Null]),
    }));
    let tx = only_transaction(run(
        &mut decoder,
        &[
            begin(1, 0x10),
            items(ReplicaIdentity::Default),
            delete,
            commit(0x10),
        ],
    ));
    let change = &tx.changes[0];
    assert_eq!((change.op, change.new.as_ref()), (Op::Delete, None));
    assert_eq!(change.old, Some(row(&[("id", d("9"))])));
    assert_eq!(change.key, row(&[("id", d("9"))]));
}

#[test]
fn truncate_becomes_one_change_per_table() {
    let mut decoder = Decoder::new();
    let other = encode(&Message::Relation(Relation {
        oid: 99,
        namespace: "app",
        name: "logs",
        replica_identity: ReplicaIdentity::Nothing,
        columns: vec![],
    }));
    let truncate = encode(&Message::Truncate(Truncate {
        cascade: true,
        restart_identity: false,
        relations: vec![ITEMS, 99],
    }));
    let tx = only_transaction(run(
        &mut decoder,
        &[
            begin(1, 0x10),
            items(ReplicaIdentity::Default),
            other,
            truncate,
            commit(0x10),
        ],
    ));
    let tables: Vec<_> = tx
        .changes
        .iter()
        .map(|c| {
            (
                c.op,
                &*c.schema,
                &*c.table,
                c.key.is_empty(),
                c.old.is_none() && c.new.is_none(),
            )
        })
        .collect();
    assert_eq!(
        tables,
        vec![
            (Op::Truncate, "public", "items", true, true),
            (Op::Truncate, "app", "logs", true, true)
        ]
    );
}

#[test]
fn origin_types_and_messages_are_kept() {
    let mut decoder = Decoder::new();
    let origin = encode(&Message::Origin(Origin {
        commit_lsn: Lsn(5),
        name: "upstream",
    }));
    let ty = encode(&Message::Type(crate::core::pgoutput::message::Type {
        oid: 500,
        namespace: "public",
        name: "mood",
    }));
    let message = |transactional| {
        encode(&Message::Logical(LogicalMessage {
            transactional,
            lsn: Lsn(7),
            prefix: "p",
            content: b"c",
        }))
    };
    let events = run(
        &mut decoder,
        &[
            begin(1, 0x10),
            origin,
            ty,
            message(true),
            commit(0x10),
            message(false),
        ],
    );
    let emitted = |transactional| EmittedMessage {
        transactional,
        lsn: Lsn(7),
        prefix: "p".into(),
        content: b"c".to_vec(),
    };
    let [Event::Transaction(tx), Event::Message(loose)] = <[Event; 2]>::try_from(events).unwrap() else {
        panic!("expected a transaction then a message")
    };
    assert_eq!(tx.origin.as_deref(), Some("upstream"));
    assert_eq!(tx.messages, vec![emitted(true)]);
    assert_eq!(loose, emitted(false));
    assert_eq!(decoder.type_name(500), Some(("public", "mood")));
}

#[test]
fn past_the_change_limit_a_transaction_comes_out_in_chunks_with_nothing_left_out() {
    let mut decoder = Decoder::with_limits(TransactionLimits {
        changes: 2,
        bytes: usize::MAX,
    });
    let insert = |id: &'static str| {
        encode(&Message::Insert(Insert {
            relation: ITEMS,
            new: vec![t(id), t("x"), t("y")],
        }))
    };
    let mut payloads = vec![begin(1, 0x10), items(ReplicaIdentity::Default)];
    payloads.extend(["1", "2", "3", "4", "5"].map(insert));
    payloads.push(commit(0x10));
    let events = run(&mut decoder, &payloads);
    let parts: Vec<(bool, usize, Vec<Datum>, u64)> = events
        .iter()
        .map(|event| {
            let (chunk, tx) = match event {
                Event::Chunk(tx) => (true, tx),
                Event::Transaction(tx) => (false, tx),
                Event::Message(_) => panic!("no messages here"),
            };
            let ids = tx
                .changes
                .iter()
                .map(|c| c.key.get("id").cloned().unwrap())
                .collect();
            assert_eq!((tx.xid, tx.commit_lsn), (1, Lsn(0x10)));
            assert_eq!(tx.more, chunk);
            (chunk, tx.first, ids, tx.end_lsn.0)
        })
        .collect();
    assert_eq!(
        parts,
        vec![
            (true, 0, vec![d("1"), d("2")], 0x11),
            (true, 2, vec![d("3"), d("4")], 0x11),
            (false, 4, vec![d("5")], 0x40),
        ]
    );
}

#[test]
fn past_the_byte_limit_a_transaction_comes_out_in_chunks() {
    // Each insert holds 3 + 3 + 3 text bytes in its new row and 3 in its key.
    let mut decoder = Decoder::with_limits(TransactionLimits {
        changes: usize::MAX,
        bytes: 30,
    });
    let insert = |body| {
        encode(&Message::Insert(Insert {
            relation: ITEMS,
            new: vec![t("100"), t("abc"), t(body)],
        }))
    };
    let events = run(
        &mut decoder,
        &[
            begin(1, 0x10),
            items(ReplicaIdentity::Default),
            insert("def"),
            insert("a much longer body"),
            insert(""),
            commit(0x10),
        ],
    );
    let sizes: Vec<(bool, usize)> = events
        .iter()
        .map(|event| match event {
            Event::Chunk(tx) => (true, tx.changes.len()),
            Event::Transaction(tx) => (false, tx.changes.len()),
            Event::Message(_) => panic!("no messages here"),
        })
        .collect();
    // A change larger than the whole budget still goes through, alone.
    assert_eq!(sizes, vec![(true, 1), (true, 1), (false, 1)]);
    // The budget is per transaction.
    let tx = only_transaction(run(&mut decoder, &[begin(2, 0x20), insert("def"), commit(0x20)]));
    assert_eq!((tx.changes.len(), tx.first, tx.more), (1, 0, false));
}

#[test]
fn a_change_for_an_undescribed_relation_is_an_error_and_drops_the_transaction() {
    let mut decoder = Decoder::new();
    decoder.push(&begin(1, 0x10)).unwrap();
    let insert = encode(&Message::Insert(Insert {
        relation: 404,
        new: vec![],
    }));
    assert_eq!(
        decoder.push(&insert),
        Err(StreamError::UnknownRelation { oid: 404 })
    );
    assert!(!decoder.in_transaction());
}

#[test]
fn out_of_order_stream_messages_are_errors() {
    let mut decoder = Decoder::new();
    assert_eq!(
        decoder.push(&commit(0x10)),
        Err(StreamError::OutsideTransaction { what: "commit" })
    );
    decoder.push(&items(ReplicaIdentity::Default)).unwrap();
    let insert = encode(&Message::Insert(Insert {
        relation: ITEMS,
        new: vec![t("1"), t("x"), t("y")],
    }));
    assert_eq!(
        decoder.push(&insert),
        Err(StreamError::OutsideTransaction { what: "change" })
    );
    decoder.push(&begin(1, 0x10)).unwrap();
    assert_eq!(
        decoder.push(&begin(2, 0x20)),
        Err(StreamError::NestedBegin { xid: 2, open: 1 })
    );
    decoder.push(&begin(3, 0x30)).unwrap();
    assert_eq!(
        decoder.push(&commit(0x40)),
        Err(StreamError::CommitLsn {
            begin: Lsn(0x30),
            commit: Lsn(0x40)
        })
    );
}

#[test]
fn tuples_must_match_their_relation_and_be_text() {
    let mut decoder = Decoder::new();
    run(&mut decoder, &[items(ReplicaIdentity::Default), begin(1, 0x10)]);
    let short = encode(&Message::Insert(Insert {
        relation: ITEMS,
        new: vec![t("1")],
    }));
    assert_eq!(
        decoder.push(&short),
        Err(StreamError::ColumnCount {
            oid: ITEMS,
            expected: 3,
            found: 1
        })
    );
    decoder.push(&begin(2, 0x20)).unwrap();
    let binary = encode(&Message::Insert(Insert {
        relation: ITEMS,
        new: vec![t("1"), ColumnData::Binary(b"x"), ColumnData::Null],
    }));
    assert_eq!(
        decoder.push(&binary),
        Err(StreamError::BinaryValue {
            oid: ITEMS,
            column: "title".into()
        })
    );
    assert!(matches!(decoder.push(b"\x00"), Err(StreamError::Decode(_))));
}
