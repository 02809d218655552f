use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;
use crate::core::access::testing::blog;
use crate::core::filter::Variables;
use crate::core::query::{self, Settings};

fn query(params: Value) -> Query {
    let params = params.as_object().cloned().unwrap_or_default();
    query::parse(
        &params,
        blog(),
        "articles",
        Variables::default(),
        Settings::default(),
    )
    .unwrap()
}

fn filter(value: Value) -> Filter {
    query(json!({ "filter": value.to_string() })).filter.unwrap()
}

fn shape(params: Value, rules: Option<RowRules>) -> Shape {
    Shape::compile(
        Arc::new(blog().clone()),
        "articles",
        None,
        None,
        &query(params),
        rules,
    )
}

fn row(value: Value) -> Option<Map<String, Value>> {
    value.as_object().cloned()
}

fn change(op: RowOp, old: Value, new: Value) -> RowChange {
    let key = new
        .get("id")
        .or_else(|| old.get("id"))
        .cloned()
        .unwrap_or(Value::Null);
    RowChange {
        collection: "articles".into(),
        op,
        key,
        old: row(old),
        new: row(new),
    }
}

fn published() -> Shape {
    shape(
        json!({"fields": "id,title", "filter": r#"{"status":{"_eq":"published"}}"#}),
        None,
    )
}

#[test]
fn inserts_are_filtered_and_projected() {
    let shape = published();
    assert_eq!(
        shape.projection,
        Projection::Columns(vec![("id".into(), "id".into()), ("title".into(), "title".into())])
    );
    let insert = change(
        RowOp::Insert,
        Value::Null,
        json!({"id": 1, "title": "a", "status": "published", "views": 3}),
    );
    assert_eq!(
        shape.classify(&insert),
        Outcome::Emit(EventKind::Create, row(json!({"id": 1, "title": "a"})))
    );
    let draft = change(
        RowOp::Insert,
        Value::Null,
        json!({"id": 2, "title": "b", "status": "draft"}),
    );
    assert_eq!(shape.classify(&draft), Outcome::Skip);
}

#[test]
fn updates_enter_stay_and_leave() {
    let shape = published();
    let pub_row = json!({"id": 1, "title": "a", "status": "published"});
    let draft_row = json!({"id": 1, "title": "a", "status": "draft"});
    let enter = change(RowOp::Update, draft_row.clone(), pub_row.clone());
    assert!(matches!(
        shape.classify(&enter),
        Outcome::Emit(EventKind::Create, Some(_))
    ));
    let stay = change(RowOp::Update, pub_row.clone(), pub_row.clone());
    assert!(matches!(
        shape.classify(&stay),
        Outcome::Emit(EventKind::Update, Some(_))
    ));
    let leave = change(RowOp::Update, pub_row.clone(), draft_row.clone());
    assert_eq!(shape.classify(&leave), Outcome::Emit(EventKind::Delete, None));
    let outside = change(RowOp::Update, draft_row.clone(), draft_row.clone());
    assert_eq!(shape.classify(&outside), Outcome::Skip);
    // Without the old row (no REPLICA IDENTITY FULL) an admitted row is an update.
    let unknown = change(RowOp::Update, Value::Null, pub_row);
    assert!(matches!(
        shape.classify(&unknown),
        Outcome::Emit(EventKind::Update, Some(_))
    ));
}

#[test]
fn deletes_are_checked_against_the_old_row() {
    let filtered = published();
    let visible = change(
        RowOp::Delete,
        json!({"id": 1, "status": "published"}),
        Value::Null,
    );
    assert_eq!(
        filtered.classify(&visible),
        Outcome::Emit(EventKind::Delete, None)
    );
    let hidden = change(RowOp::Delete, json!({"id": 1, "status": "draft"}), Value::Null);
    assert_eq!(filtered.classify(&hidden), Outcome::Skip);
    // A key-only old row can't prove the row was visible: nothing leaks.
    let key_only = change(RowOp::Delete, json!({"id": 1}), Value::Null);
    assert_eq!(filtered.classify(&key_only), Outcome::Skip);
    // An unfiltered subscription gets every delete, key-only or not.
    let all = shape(json!({"fields": "id"}), None);
    assert_eq!(all.classify(&key_only), Outcome::Emit(EventKind::Delete, None));
}

#[test]
fn permission_rules_apply_like_filters_and_hide_conditional_fields() {
    let mut conditional = BTreeMap::new();
    conditional.insert("title".to_string(), filter(json!({"views": {"_gt": 10}})));
    let rules = RowRules {
        rows: Some(filter(json!({"status": {"_neq": "archived"}}))),
        conditional,
    };
    let ruled = shape(json!({"fields": "id,title"}), Some(rules));
    let archived = change(
        RowOp::Insert,
        Value::Null,
        json!({"id": 1, "title": "x", "status": "archived", "views": 50}),
    );
    assert_eq!(ruled.classify(&archived), Outcome::Skip);
    let quiet = change(
        RowOp::Insert,
        Value::Null,
        json!({"id": 2, "title": "x", "status": "draft", "views": 1}),
    );
    assert_eq!(
        ruled.classify(&quiet),
        Outcome::Emit(EventKind::Create, row(json!({"id": 2, "title": null})))
    );
    let loud = change(
        RowOp::Insert,
        Value::Null,
        json!({"id": 3, "title": "x", "status": "draft", "views": 11}),
    );
    assert_eq!(
        ruled.classify(&loud),
        Outcome::Emit(EventKind::Create, row(json!({"id": 3, "title": "x"})))
    );
}

#[test]
fn event_and_item_narrow() {
    let base = query(json!({"fields": "id"}));
    let creates = Shape::compile(
        Arc::new(blog().clone()),
        "articles",
        Some(EventKind::Create),
        None,
        &base,
        None,
    );
    let insert = change(RowOp::Insert, Value::Null, json!({"id": 1}));
    let delete = change(RowOp::Delete, json!({"id": 1}), Value::Null);
    assert!(matches!(
        creates.classify(&insert),
        Outcome::Emit(EventKind::Create, _)
    ));
    assert_eq!(creates.classify(&delete), Outcome::Skip);
    let one = Shape::compile(
        Arc::new(blog().clone()),
        "articles",
        None,
        Some("2".into()),
        &base,
        None,
    );
    assert_eq!(one.classify(&insert), Outcome::Skip);
    let two = change(RowOp::Insert, Value::Null, json!({"id": 2}));
    assert!(matches!(one.classify(&two), Outcome::Emit(EventKind::Create, _)));
}

#[test]
fn relational_shapes_reread() {
    let expanded = shape(json!({"fields": "id,author.name"}), None);
    assert!(expanded.rereads());
    let insert = change(RowOp::Insert, Value::Null, json!({"id": 1, "author": 2}));
    assert_eq!(
        expanded.classify(&insert),
        Outcome::Reread {
            found: EventKind::Create,
            missing: None
        }
    );
    let related = shape(
        json!({"fields": "id", "filter": r#"{"author":{"name":{"_eq":"x"}}}"#}),
        None,
    );
    assert!(related.rereads());
    let update = change(
        RowOp::Update,
        json!({"id": 1, "author": 2}),
        json!({"id": 1, "author": 3}),
    );
    // Whether the row was in the view before is the database's to say, from the old row.
    assert_eq!(related.classify(&update), Outcome::Recheck { deleted: false });
    let delete = change(RowOp::Delete, json!({"id": 1, "author": 2}), Value::Null);
    assert_eq!(related.classify(&delete), Outcome::Recheck { deleted: true });
    // Without the old row's foreign key (no REPLICA IDENTITY FULL) nothing can vouch for a
    // deleted row, and an update is read again as an update.
    let key_only = change(RowOp::Delete, json!({"id": 1}), Value::Null);
    assert_eq!(related.classify(&key_only), Outcome::Skip);
    let no_old = change(RowOp::Update, Value::Null, json!({"id": 1, "author": 3}));
    assert_eq!(
        related.classify(&no_old),
        Outcome::Reread {
            found: EventKind::Update,
            missing: None
        }
    );
    // An `event: create` subscription has no use for deletes.
    let creates = Shape::compile(
        Arc::new(blog().clone()),
        "articles",
        Some(EventKind::Create),
        None,
        &query(json!({"fields": "id", "filter": r#"{"author":{"name":{"_eq":"x"}}}"#})),
        None,
    );
    assert_eq!(creates.classify(&delete), Outcome::Skip);
    assert_eq!(creates.classify(&update), Outcome::Recheck { deleted: false });
}

#[test]
fn equal_subscriptions_share_a_key() {
    assert_eq!(published().key(), published().key());
    assert_ne!(published().key(), shape(json!({"fields": "id"}), None).key());
}

proptest! {
    /// Enter/leave agrees with evaluating the filter on both rows: the subscriber's view after
    /// applying the event equals the filter's verdict on the new row.
    #[test]
    fn view_follows_the_filter(old_status in 0usize..3, new_status in 0usize..3, had_old in any::<bool>()) {
        let statuses = ["published", "draft", "archived"];
        let shape = published();
        let old = json!({"id": 1, "title": "t", "status": statuses[old_status]});
        let new = json!({"id": 1, "title": "t", "status": statuses[new_status]});
        let update = change(RowOp::Update, if had_old { old } else { Value::Null }, new);
        let before = old_status == 0;
        let after = new_status == 0;
        let outcome = shape.classify(&update);
        match outcome {
            Outcome::Emit(EventKind::Create, Some(_)) => prop_assert!(after && had_old && !before),
            Outcome::Emit(EventKind::Update, Some(_)) => prop_assert!(after && (before || !had_old)),
            Outcome::Emit(EventKind::Delete, None) => prop_assert!(before && !after && had_old),
            Outcome::Skip => prop_assert!(!after && (!before || !had_old)),
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}

/// A subscription's query from a few options: fields (plain, relational, O2M with `deep`),
/// `search` and a filter.
fn subscription_params(fields: usize, search: usize, filter: usize, deep: usize) -> Value {
    let fields = [
        "id,title",
        "id,title,author.name",
        "*",
        "id,comments.body",
        "id,author.*",
    ][fields];
    let mut params = json!({ "fields": fields });
    if let Some(term) = [None, Some("alpha"), Some("beta")][search] {
        params["search"] = json!(term);
    }
    if let Some(f) = [
        None,
        Some(r#"{"status":{"_eq":"published"}}"#),
        Some(r#"{"author":{"name":{"_eq":"ann"}}}"#),
    ][filter]
    {
        params["filter"] = json!(f);
    }
    if fields.contains("comments") && deep > 0 {
        params["deep"] = json!({"comments": {"_limit": deep}});
    }
    params
}

proptest! {
    /// Two subscriptions of one reader share a group only when everything a member receives
    /// from it is the same: the classification (shape) and, for re-reading shapes, the query the
    /// group reads with. (Random pairs; the read side of the property runs end to end in
    /// `tests/realtime_ws.rs`.)
    #[test]
    fn a_group_key_covers_everything_its_reads_use(
        a in (0usize..5, 0usize..3, 0usize..3, 0usize..3),
        b in (0usize..5, 0usize..3, 0usize..3, 0usize..3),
    ) {
        let (qa, qb) = (query(subscription_params(a.0, a.1, a.2, a.3)), query(subscription_params(b.0, b.1, b.2, b.3)));
        let compile = |q: &Query| Shape::compile(Arc::new(blog().clone()), "articles", None, None, q, None);
        let (sa, sb) = (compile(&qa), compile(&qb));
        if sa.group_key(&qa) == sb.group_key(&qb) {
            prop_assert_eq!(sa.key(), sb.key());
            if sa.rereads() {
                prop_assert_eq!(format!("{:?}", qa.fields), format!("{:?}", qb.fields));
                prop_assert_eq!(&qa.search, &qb.search);
                prop_assert_eq!(format!("{:?}", qa.filter), format!("{:?}", qb.filter));
            }
        }
    }
}
