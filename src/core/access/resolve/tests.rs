use serde_json::json;

use super::*;
use crate::core::access::testing::{blog, policy, row};
use crate::core::access::{Access, PermissionRow};

const USER: &str = "9d6a3c8e-5d1f-4f5e-9a57-2b1a4c1e0f01";

fn vars() -> Variables {
    Variables {
        user: Some(USER.into()),
        ..Variables::default()
    }
}

/// Resolves `rows` (all of policy 1 unless they say otherwise) for reading `articles`.
fn resolve(rows: &[PermissionRow], action: Action) -> Option<Resolved> {
    let policies = [policy(1), policy(2), policy(3)];
    Access::build(&policies, rows, None)
        .resolve(blog(), "articles", action, &vars())
        .unwrap()
}

fn read(rows: &[PermissionRow]) -> Resolved {
    resolve(rows, Action::Read).unwrap()
}

fn parsed(value: Value) -> Filter {
    filter::parse(&value, blog(), "articles", vars(), Limits::default()).unwrap()
}

fn item(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

#[test]
fn one_rule_with_a_filter_needs_no_cases() {
    let rules = read(&[row(
        1,
        "articles",
        Action::Read,
        &["id", "title"],
        json!({"status": {"_eq": "published"}}),
    )]);
    assert_eq!(
        rules.row_filter(),
        Some(&parsed(json!({"status": {"_eq": "published"}})))
    );
    assert_eq!(rules.field_condition("title"), Visibility::Always);
    assert_eq!(rules.field_condition("body"), Visibility::Never);
    assert!(rules.can("id") && !rules.can("body"));
}

#[test]
fn a_rule_without_a_filter_admits_every_item() {
    for filter in [Value::Null, json!({})] {
        let rules = read(&[row(1, "articles", Action::Read, &["*"], filter)]);
        assert_eq!(rules.row_filter(), None);
        assert_eq!(rules.field_condition("body"), Visibility::Always);
    }
}

#[test]
fn item_rules_of_several_policies_are_ored() {
    let published = json!({"status": {"_eq": "published"}});
    let own = json!({"owner": {"_eq": "$CURRENT_USER"}});
    let rules = read(&[
        row(1, "articles", Action::Read, &["id", "title"], published.clone()),
        row(2, "articles", Action::Read, &["*"], own.clone()),
    ]);
    assert_eq!(
        rules.row_filter(),
        Some(&Filter::Or(vec![parsed(published), parsed(own.clone())]))
    );
    // Both grant `title` (one through `*`): the row filter already says where it shows.
    assert_eq!(rules.field_condition("title"), Visibility::Always);
    // Only the owner rule grants `body`: it reads as null in other published articles.
    assert_eq!(
        rules.field_condition("body"),
        Visibility::When(Box::new(parsed(own)))
    );
}

#[test]
fn fields_of_an_unfiltered_rule_show_everywhere_and_the_rest_by_case() {
    let own = json!({"owner": {"_eq": "$CURRENT_USER"}});
    let rules = read(&[
        row(1, "articles", Action::Read, &["id", "title"], Value::Null),
        row(2, "articles", Action::Read, &["*"], own.clone()),
    ]);
    assert_eq!(rules.row_filter(), None);
    assert_eq!(rules.field_condition("title"), Visibility::Always);
    assert_eq!(
        rules.field_condition("views"),
        Visibility::When(Box::new(parsed(own)))
    );
}

#[test]
fn rows_with_the_same_filter_merge_into_one_case() {
    let published = json!({"status": {"_eq": "published"}});
    let rules = read(&[
        row(1, "articles", Action::Read, &["id"], published.clone()),
        row(2, "articles", Action::Read, &["title"], published.clone()),
    ]);
    assert_eq!(rules.rules().len(), 1);
    assert_eq!(rules.row_filter(), Some(&parsed(published)));
    assert_eq!(rules.field_condition("title"), Visibility::Always);
    assert_eq!(rules.field_condition("id"), Visibility::Always);
}

#[test]
fn field_lists_follow_directus_storage() {
    let none = PermissionRow {
        fields: None,
        ..row(1, "articles", Action::Read, &[], Value::Null)
    };
    assert_eq!(
        read(std::slice::from_ref(&none)).fields(),
        &FieldSet::Only(BTreeSet::new())
    );
    let spaced = read(&[row(
        1,
        "articles",
        Action::Read,
        &[" id ", "", "title"],
        Value::Null,
    )]);
    assert!(spaced.can("id") && spaced.can("title") && !spaced.can(""));
    let star = read(&[row(1, "articles", Action::Read, &["id", "*"], Value::Null)]);
    assert_eq!(star.fields(), &FieldSet::All);
}

#[test]
fn the_row_filter_for_a_selection_skips_cases_granting_none_of_it() {
    let published = json!({"status": {"_eq": "published"}});
    let own = json!({"owner": {"_eq": "$CURRENT_USER"}});
    let rules = read(&[
        row(1, "articles", Action::Read, &["id", "title"], published.clone()),
        row(2, "articles", Action::Read, &["body"], own.clone()),
    ]);
    assert_eq!(rules.row_filter_for(&["title"]), Some(parsed(published.clone())));
    assert_eq!(rules.row_filter_for(&["body"]), Some(parsed(own.clone())));
    assert_eq!(
        rules.row_filter_for(&["title", "body"]),
        Some(Filter::Or(vec![parsed(published), parsed(own)]))
    );
    assert_eq!(rules.row_filter_for(&[]), rules.row_filter().cloned());
    assert_eq!(
        rules.row_filter_for(&["views"]),
        Some(Filter::Or(Vec::new())),
        "matches nothing"
    );
}

#[test]
fn an_update_needs_each_written_fields_case_on_every_item() {
    let published = json!({"status": {"_eq": "published"}});
    let own = json!({"owner": {"_eq": "$CURRENT_USER"}});
    let rules = resolve(
        &[
            row(1, "articles", Action::Update, &["title"], published.clone()),
            row(2, "articles", Action::Update, &["title", "body"], own.clone()),
        ],
        Action::Update,
    )
    .unwrap();
    let both = Filter::Or(vec![parsed(published), parsed(own.clone())]);
    assert_eq!(rules.write_condition(["title"]), Ok(Some(both.clone())));
    assert_eq!(
        rules.write_condition(["title", "body"]),
        Ok(Some(Filter::And(vec![both, parsed(own)])))
    );
    assert_eq!(
        rules.write_condition(["views"]),
        Err(AccessError::Field {
            collection: "articles".into(),
            field: "views".into(),
            path: None
        })
    );
    let open = resolve(
        &[row(1, "articles", Action::Update, &["*"], Value::Null)],
        Action::Update,
    )
    .unwrap();
    assert_eq!(open.write_condition(["title"]), Ok(None));
}

#[test]
fn dynamic_variables_are_resolved_in_rules() {
    let rules = read(&[row(
        1,
        "articles",
        Action::Read,
        &["*"],
        json!({"owner": {"_in": ["$CURRENT_USER"]}}),
    )]);
    let yours = item(json!({"owner": USER}));
    let theirs = item(json!({"owner": "00000000-0000-0000-0000-000000000001"}));
    assert!(rules.admits(&yours, blog()));
    assert!(!rules.admits(&theirs, blog()));
}

#[test]
fn a_broken_rule_fails_closed_as_a_server_error() {
    let rows = [row(
        1,
        "articles",
        Action::Read,
        &["*"],
        json!({"gone": {"_eq": 1}}),
    )];
    let access = Access::build(&[policy(1)], &rows, None);
    let err = access
        .resolve(blog(), "articles", Action::Read, &vars())
        .unwrap_err();
    assert!(matches!(err, AccessError::InvalidRule { .. }));
    let err = crate::error::Error::from(err);
    assert_eq!(err.code(), "INTERNAL_SERVER_ERROR");
    assert!(
        !err.envelope().to_string().contains("gone"),
        "the rule is not shown"
    );
    let not_object = [row(1, "articles", Action::Read, &["*"], json!([1]))];
    let access = Access::build(&[policy(1)], &not_object, None);
    assert!(access.resolve(blog(), "articles", Action::Read, &vars()).is_err());
}

#[test]
fn presets_merge_in_row_order_with_variables_substituted() {
    let mut first = row(1, "articles", Action::Create, &["*"], Value::Null);
    first.presets = Some(json!({"status": "draft", "views": 0, "owner": "$CURRENT_USER"}));
    let mut second = row(2, "articles", Action::Create, &["*"], Value::Null);
    second.presets = Some(
        json!({"status": "review", "body": "null", "published": "$NOW(+1 day)",
        "title": ["true", {"deep": "false"}]}),
    );
    let mut third = row(3, "articles", Action::Create, &["*"], Value::Null);
    third.presets = Some(json!("not an object"));
    let rules = resolve(&[first, second, third], Action::Create).unwrap();
    assert_eq!(
        Value::Object(rules.presets().clone()),
        json!({"status": "review", "views": 0, "owner": USER, "body": null,
            "published": "1970-01-02T00:00:00.000Z", "title": [true, {"deep": false}]})
    );
}

#[test]
fn validation_rules_of_every_row_are_kept_once() {
    let mut first = row(1, "articles", Action::Create, &["*"], Value::Null);
    first.validation = Some(json!({"views": {"_gte": 0}}));
    let mut second = row(2, "articles", Action::Create, &["*"], Value::Null);
    second.validation = Some(json!({"views": {"_gte": 0}}));
    let mut third = row(3, "articles", Action::Create, &["*"], Value::Null);
    third.validation = Some(json!({}));
    let rules = resolve(&[first, second, third], Action::Create).unwrap();
    assert_eq!(rules.validation(), &[parsed(json!({"views": {"_gte": 0}}))]);
}

#[test]
fn masking_hides_ungranted_keys_and_nulls_fields_outside_their_case() {
    let rules = read(&[
        row(
            1,
            "articles",
            Action::Read,
            &["id", "title"],
            json!({"status": {"_eq": "published"}}),
        ),
        row(
            2,
            "articles",
            Action::Read,
            &["id", "body", "status"],
            json!({"views": {"_gt": 10}}),
        ),
    ]);
    let mut popular_draft = item(json!({"id": 1, "title": "t", "body": "b", "status": "draft", "views": 50}));
    assert!(rules.admits(&popular_draft, blog()));
    rules.mask(&mut popular_draft, blog());
    assert_eq!(
        Value::Object(popular_draft),
        json!({"id": 1, "title": null, "body": "b", "status": "draft"})
    );
    let mut quiet_published =
        item(json!({"id": 2, "title": "t", "body": "b", "status": "published", "views": 1}));
    rules.mask(&mut quiet_published, blog());
    assert_eq!(
        Value::Object(quiet_published),
        json!({"id": 2, "title": "t", "body": null, "status": null})
    );
    let quiet_draft = item(json!({"id": 3, "status": "draft", "views": 1}));
    assert!(!rules.admits(&quiet_draft, blog()));
}

mod brute_force {
    //! The resolution agrees with the definition: a field of an item is visible exactly when
    //! some permission row grants the field and its item filter matches the item.

    use super::*;
    use proptest::prelude::*;

    const FIELDS: [&str; 4] = ["id", "title", "status", "views"];

    fn arb_filter() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            Just(json!({})),
            prop_oneof![Just("a"), Just("b")].prop_map(|s| json!({"status": {"_eq": s}})),
            (0i64..4).prop_map(|n| json!({"views": {"_gt": n}})),
            any::<bool>().prop_map(|b| json!({"title": {"_null": b}})),
            prop_oneof![Just("a"), Just("b")].prop_map(|s| json!({"status": {"_neq": s}})),
        ];
        leaf.prop_recursive(2, 6, 3, |inner| {
            (
                prop_oneof![Just("_and"), Just("_or")],
                prop::collection::vec(inner, 1..3),
            )
                .prop_map(|(op, children)| {
                    // `null` is not a filter inside a group: use `{}` there.
                    let children: Vec<Value> = children
                        .into_iter()
                        .map(|c| if c.is_null() { json!({}) } else { c })
                        .collect();
                    json!({ op: children })
                })
        })
    }

    fn arb_fields() -> impl Strategy<Value = Vec<String>> {
        prop_oneof![
            1 => Just(vec!["*".to_string()]),
            4 => prop::sample::subsequence(FIELDS.to_vec(), 0..=FIELDS.len())
                .prop_map(|f| f.into_iter().map(String::from).collect()),
        ]
    }

    fn arb_rows() -> impl Strategy<Value = Vec<PermissionRow>> {
        prop::collection::vec((1u128..4, arb_fields(), arb_filter()), 1..5).prop_map(|rows| {
            rows.into_iter()
                .map(|(policy, fields, filter)| PermissionRow {
                    fields: Some(fields),
                    permissions: Some(filter),
                    ..row(policy, "articles", Action::Read, &[], Value::Null)
                })
                .collect()
        })
    }

    fn arb_item() -> impl Strategy<Value = Map<String, Value>> {
        (
            1i64..100,
            prop::option::of(Just("x")),
            prop::option::of(prop_oneof![Just("a"), Just("b"), Just("c")]),
            prop::option::of(0i64..5),
        )
            .prop_map(|(id, title, status, views)| {
                item(json!({"id": id, "title": title, "status": status, "views": views}))
            })
    }

    /// The definition, row by row, with the in-memory evaluator.
    struct Definition(Vec<(Vec<String>, Option<Filter>)>);

    impl Definition {
        fn new(rows: &[PermissionRow]) -> Definition {
            Definition(
                rows.iter()
                    .map(|r| {
                        let filter = match &r.permissions {
                            None | Some(Value::Null) => None,
                            Some(Value::Object(map)) if map.is_empty() => None,
                            Some(rule) => Some(parsed(rule.clone())),
                        };
                        (r.fields.clone().unwrap_or_default(), filter)
                    })
                    .collect(),
            )
        }

        fn grants(&self, field: &str, item: &Map<String, Value>) -> bool {
            self.0.iter().any(|(fields, filter)| {
                fields.iter().any(|f| f == "*" || f == field)
                    && filter
                        .as_ref()
                        .is_none_or(|f| eval::matches(f, item, blog(), "articles"))
            })
        }
    }

    fn visible(rules: &Resolved, field: &str, item: &Map<String, Value>) -> bool {
        rules.admits(item, blog())
            && match rules.field_condition(field) {
                Visibility::Always => true,
                Visibility::When(filter) => eval::matches(&filter, item, blog(), "articles"),
                Visibility::Never => false,
            }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn field_visibility_matches_the_definition(rows in arb_rows(), items in prop::collection::vec(arb_item(), 1..6)) {
            let rules = read(&rows);
            let definition = Definition::new(&rows);
            for item in &items {
                for field in FIELDS {
                    prop_assert_eq!(
                        visible(&rules, field, item),
                        definition.grants(field, item),
                        "field {} of {:?} under {:?}", field, item, rows
                    );
                }
                // Masking shows exactly the visible fields, unchanged.
                if rules.admits(item, blog()) {
                    let mut masked = item.clone();
                    rules.mask(&mut masked, blog());
                    for field in FIELDS {
                        if visible(&rules, field, item) {
                            prop_assert_eq!(masked.get(field), item.get(field));
                        } else {
                            prop_assert!(masked.get(field).is_none_or(Value::is_null));
                        }
                    }
                }
            }
        }

        #[test]
        fn a_narrowed_row_filter_keeps_every_item_with_a_visible_requested_field(
            rows in arb_rows(),
            items in prop::collection::vec(arb_item(), 1..6),
            requested in prop::sample::subsequence(FIELDS.to_vec(), 1..=FIELDS.len()),
        ) {
            let rules = read(&rows);
            let definition = Definition::new(&rows);
            let narrowed = rules.row_filter_for(&requested);
            for item in &items {
                let kept = narrowed.as_ref().is_none_or(|f| eval::matches(f, item, blog(), "articles"));
                let any_visible = requested.iter().any(|f| definition.grants(f, item));
                prop_assert!(!any_visible || kept, "an item with a visible field was dropped");
                prop_assert!(!kept || rules.admits(item, blog()), "narrowing admitted more");
            }
        }

        #[test]
        fn an_update_condition_admits_exactly_the_items_where_every_written_field_is_granted(
            rows in arb_rows(),
            items in prop::collection::vec(arb_item(), 1..6),
            written in prop::sample::subsequence(FIELDS.to_vec(), 0..=FIELDS.len()),
        ) {
            let rows: Vec<PermissionRow> = rows
                .into_iter()
                .map(|r| PermissionRow { action: Action::Update, ..r })
                .collect();
            let rules = resolve(&rows, Action::Update).unwrap();
            let definition = Definition::new(&rows);
            match rules.write_condition(written.iter().copied()) {
                Err(_) => prop_assert!(written.iter().any(|f| !rules.can(f))),
                Ok(condition) => {
                    for item in &items {
                        let allowed = condition.as_ref().is_none_or(|c| eval::matches(c, item, blog(), "articles"));
                        let expected = rules.admits(item, blog())
                            && written.iter().all(|f| definition.grants(f, item));
                        prop_assert_eq!(allowed, expected);
                    }
                }
            }
        }
    }
}
