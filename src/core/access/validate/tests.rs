use serde_json::json;

use super::*;
use crate::core::access::testing::{blog, policy, row};
use crate::core::access::{Access, Action, PermissionRow};
use crate::core::filter::Variables;

fn item(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

/// Create rules for `articles` from one row per `(fields, validation, presets)`.
fn create_rules(rows: &[(&[&str], Value, Value)]) -> Resolved {
    let rows: Vec<PermissionRow> = rows
        .iter()
        .enumerate()
        .map(|(i, (fields, validation, presets))| PermissionRow {
            validation: (!validation.is_null()).then(|| validation.clone()),
            presets: (!presets.is_null()).then(|| presets.clone()),
            ..row(i as u128 + 1, "articles", Action::Create, fields, Value::Null)
        })
        .collect();
    let policies: Vec<_> = (1..=rows.len() as u128).map(policy).collect();
    Access::build(&policies, &rows, None)
        .resolve(blog(), "articles", Action::Create, &Variables::default())
        .unwrap()
        .unwrap()
}

/// The failures of `payload` under one validation rule on `articles`.
fn failures_of(rule: Value, payload: Value) -> Vec<Failure> {
    let rules = create_rules(&[(&["*"], rule, Value::Null)]);
    match rules.prepare_payload(&item(payload), blog()) {
        Ok(_) => Vec::new(),
        Err(AccessError::Validation(failures)) => failures,
        Err(other) => panic!("unexpected {other:?}"),
    }
}

fn passes(rule: Value, payload: Value) -> bool {
    failures_of(rule, payload).is_empty()
}

fn kinds(rule: Value, payload: Value) -> Vec<&'static str> {
    failures_of(rule, payload).iter().map(|f| f.kind).collect()
}

#[test]
fn keys_outside_the_granted_fields_are_refused_like_missing_fields() {
    let rules = create_rules(&[(&["title", "body"], Value::Null, Value::Null)]);
    assert_eq!(
        rules.prepare_payload(&item(json!({"title": "t", "views": 3})), blog()),
        Err(AccessError::Field {
            collection: "articles".into(),
            field: "views".into(),
            path: None
        })
    );
    assert!(
        rules
            .prepare_payload(&item(json!({"title": "t"})), blog())
            .is_ok()
    );
}

#[test]
fn presets_go_under_the_payload() {
    let rules = create_rules(&[
        (&["title"], Value::Null, json!({"status": "draft", "views": 1})),
        (&["status"], Value::Null, json!({"views": 2})),
    ]);
    let prepared = rules
        .prepare_payload(&item(json!({"title": "t", "status": "review"})), blog())
        .unwrap();
    assert_eq!(
        Value::Object(prepared),
        json!({"status": "review", "views": 2, "title": "t"})
    );
}

#[test]
fn presets_are_validated_with_the_payload() {
    let rules = create_rules(&[(&["*"], json!({"views": {"_lt": 5}}), json!({"views": 9}))]);
    assert!(matches!(
        rules.prepare_payload(&Map::new(), blog()),
        Err(AccessError::Validation(_))
    ));
}

#[test]
fn the_item_filter_is_not_applied_to_a_created_payload() {
    // Directus's processPayload reads only `fields`, `validation` and `presets`.
    let rows = [row(
        1,
        "articles",
        Action::Create,
        &["*"],
        json!({"status": {"_eq": "published"}}),
    )];
    let rules = Access::build(&[policy(1)], &rows, None)
        .resolve(blog(), "articles", Action::Create, &Variables::default())
        .unwrap()
        .unwrap();
    assert!(
        rules
            .prepare_payload(&item(json!({"status": "draft"})), blog())
            .is_ok()
    );
}

#[test]
fn absent_keys_pass_so_an_update_is_judged_on_what_it_writes() {
    let rule = json!({"status": {"_in": ["draft", "review"]}, "views": {"_nnull": true}});
    assert!(passes(rule.clone(), json!({"title": "only the title"})));
    assert_eq!(
        kinds(rule, json!({"status": "live", "views": null})),
        vec!["in", "nnull"]
    );
}

#[test]
fn every_rows_validation_must_hold() {
    let rules = create_rules(&[
        (&["*"], json!({"views": {"_gte": 0}}), Value::Null),
        (&["*"], json!({"views": {"_lte": 10}}), Value::Null),
    ]);
    assert!(rules.prepare_payload(&item(json!({"views": 5})), blog()).is_ok());
    assert!(
        rules
            .prepare_payload(&item(json!({"views": 11})), blog())
            .is_err()
    );
    assert!(
        rules
            .prepare_payload(&item(json!({"views": -1})), blog())
            .is_err()
    );
}

#[test]
fn or_passes_on_any_branch_and_reports_every_branch_otherwise() {
    let rule = json!({"_or": [{"status": {"_eq": "draft"}}, {"views": {"_gt": 100}}]});
    assert!(passes(rule.clone(), json!({"status": "draft", "views": 1})));
    assert!(passes(rule.clone(), json!({"status": "live", "views": 101})));
    assert_eq!(
        kinds(rule, json!({"status": "live", "views": 1})),
        vec!["eq", "gt"]
    );
}

#[test]
fn null_follows_joi_not_sql() {
    assert!(passes(json!({"status": {"_neq": "x"}}), json!({"status": null})));
    assert!(passes(
        json!({"status": {"_nin": ["x"]}}),
        json!({"status": null})
    ));
    assert!(!passes(json!({"status": {"_eq": "x"}}), json!({"status": null})));
    assert!(!passes(
        json!({"status": {"_in": ["x"]}}),
        json!({"status": null})
    ));
    assert!(!passes(json!({"views": {"_gt": 1}}), json!({"views": null})));
    assert!(!passes(
        json!({"title": {"_contains": "a"}}),
        json!({"title": null})
    ));
    assert!(passes(json!({"title": {"_null": true}}), json!({"title": null})));
    assert_eq!(
        kinds(json!({"title": {"_null": true}}), json!({"title": "t"})),
        vec!["null"]
    );
    assert_eq!(
        kinds(json!({"title": {"_nnull": true}}), json!({"title": null})),
        vec!["nnull"]
    );
    assert_eq!(
        kinds(json!({"title": {"_null": false}}), json!({"title": null})),
        vec!["nnull"]
    );
}

#[test]
fn empty_means_the_empty_string() {
    assert!(passes(json!({"title": {"_empty": true}}), json!({"title": ""})));
    assert_eq!(
        kinds(json!({"title": {"_empty": true}}), json!({"title": null})),
        vec!["empty"]
    );
    assert!(passes(
        json!({"title": {"_nempty": true}}),
        json!({"title": null})
    ));
    assert_eq!(
        kinds(json!({"title": {"_nempty": true}}), json!({"title": ""})),
        vec!["nempty"]
    );
}

#[test]
fn string_tests_are_literal() {
    assert!(passes(
        json!({"title": {"_contains": "ell"}}),
        json!({"title": "hello"})
    ));
    assert!(!passes(
        json!({"title": {"_contains": "h%o"}}),
        json!({"title": "hello"})
    ));
    assert!(passes(
        json!({"title": {"_contains": "h%o"}}),
        json!({"title": "ah%oh"})
    ));
    assert!(passes(
        json!({"title": {"_icontains": "ELL"}}),
        json!({"title": "hello"})
    ));
    assert!(!passes(
        json!({"title": {"_ncontains": "ell"}}),
        json!({"title": "hello"})
    ));
    assert!(passes(
        json!({"title": {"_starts_with": "he"}}),
        json!({"title": "hello"})
    ));
    assert!(!passes(
        json!({"title": {"_starts_with": "h_"}}),
        json!({"title": "hello"})
    ));
    assert!(passes(
        json!({"title": {"_istarts_with": "HE"}}),
        json!({"title": "hello"})
    ));
    assert!(passes(
        json!({"title": {"_nstarts_with": "lo"}}),
        json!({"title": "hello"})
    ));
    assert!(passes(
        json!({"title": {"_ends_with": "lo"}}),
        json!({"title": "hello"})
    ));
    assert!(!passes(
        json!({"title": {"_niends_with": "LO"}}),
        json!({"title": "hello"})
    ));
    assert!(!passes(json!({"title": {"_contains": "1"}}), json!({"title": 1})));
}

#[test]
fn contains_accepts_an_array_with_a_matching_item() {
    assert!(passes(
        json!({"tags": {"_contains": "rust"}}),
        json!({"tags": ["go", "rustacean"]})
    ));
    assert!(!passes(
        json!({"tags": {"_contains": "rust"}}),
        json!({"tags": ["go"]})
    ));
    assert!(passes(
        json!({"tags": {"_ncontains": "rust"}}),
        json!({"tags": ["go"]})
    ));
    assert!(!passes(
        json!({"tags": {"_ncontains": "rust"}}),
        json!({"tags": ["rust"]})
    ));
}

#[test]
fn regex_patterns_may_be_wrapped_in_slashes() {
    assert!(passes(
        json!({"title": {"_regex": "/^[a-z]+$/"}}),
        json!({"title": "abc"})
    ));
    assert!(passes(
        json!({"title": {"_regex": "^[a-z]+$"}}),
        json!({"title": "abc"})
    ));
    assert_eq!(
        kinds(json!({"title": {"_regex": "^[a-z]+$"}}), json!({"title": "ABC"})),
        vec!["regex"]
    );
}

#[test]
fn values_compare_as_their_field_type() {
    assert!(passes(json!({"views": {"_gt": 5}}), json!({"views": "6"})));
    assert!(!passes(json!({"views": {"_gt": 5}}), json!({"views": "abc"})));
    assert!(passes(
        json!({"views": {"_between": [1, 3]}}),
        json!({"views": 3})
    ));
    assert!(!passes(
        json!({"views": {"_nbetween": [1, 3]}}),
        json!({"views": 2})
    ));
    assert!(passes(
        json!({"published": {"_lte": "$NOW"}}),
        json!({"published": "1969-12-31"})
    ));
    assert!(!passes(
        json!({"published": {"_lte": "$NOW"}}),
        json!({"published": "1970-01-02"})
    ));
}

#[test]
fn related_rules_check_nested_objects_and_fail_closed_on_keys() {
    let rule = json!({"author": {"name": {"_eq": "Ann"}}});
    assert!(passes(rule.clone(), json!({"title": "no author written"})));
    assert!(passes(rule.clone(), json!({"author": {"name": "Ann"}})));
    let nested = failures_of(rule.clone(), json!({"author": {"name": "Bob"}}));
    assert_eq!(nested.len(), 1);
    assert_eq!(nested[0].field, "author", "reported under the top-level key");
    assert_eq!(kinds(rule, json!({"author": 7})), vec!["eq"]);
}

#[test]
fn failures_carry_what_directus_shows() {
    let failures = failures_of(
        json!({"status": {"_eq": "draft"}, "views": {"_in": [1, 2]}, "title": {"_contains": "x"}}),
        json!({"status": "live", "views": 3, "title": "abc"}),
    );
    assert_eq!(
        failures,
        vec![
            Failure {
                field: "status".into(),
                kind: "eq",
                expected: Some(json!("draft"))
            },
            Failure {
                field: "views".into(),
                kind: "in",
                expected: Some(json!([1, 2]))
            },
            Failure {
                field: "title".into(),
                kind: "contains",
                expected: Some(json!("x"))
            },
        ]
    );
    assert_eq!(
        failures[0].message(),
        "Validation failed for field \"status\". Value has to be \"draft\"."
    );
    assert_eq!(
        failures[1].message(),
        "Validation failed for field \"views\". Value has to be one of \"1\", \"2\"."
    );
    let envelope = crate::error::Error::from(AccessError::Validation(failures)).envelope();
    assert_eq!(
        envelope["errors"][0]["extensions"],
        json!({"field": "status", "path": [], "type": "eq", "valid": "draft", "code": "FAILED_VALIDATION"})
    );
    assert_eq!(envelope["errors"][2]["extensions"]["substring"], json!("x"));
}

#[test]
fn an_admin_payload_passes_untouched() {
    let rules = Access::administrator()
        .resolve(blog(), "articles", Action::Create, &Variables::default())
        .unwrap()
        .unwrap();
    let payload = item(json!({"anything": 1}));
    assert_eq!(rules.prepare_payload(&payload, blog()), Ok(payload));
}

proptest::proptest! {
    #[test]
    fn validating_arbitrary_payload_values_never_panics(text in ".{0,20}", number in proptest::num::f64::ANY) {
        let rule = json!({"_or": [
            {"title": {"_regex": "^a"}, "views": {"_between": [1, 5]}},
            {"tags": {"_contains": "x"}, "published": {"_gte": "$NOW(-1 year)"}},
            {"author": {"name": {"_nempty": true}}},
        ]});
        for value in [json!(text), json!(number), json!([text, number]), json!({"name": text})] {
            let payload = json!({"title": value, "views": value, "tags": value,
                "published": value, "author": value});
            let _ = failures_of(rule.clone(), payload);
        }
    }
}
