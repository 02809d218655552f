use serde_json::{Value, json};

use super::*;
use crate::core::access::testing::{blog, policy, row};
use crate::core::access::{Access, Action, PermissionRow};
use crate::core::filter::Variables;
use crate::core::query::{self, Settings, fields, params};

/// Articles (no `body`, `views`, `owner`), authors (no `email`, `secret`); comments only when
/// `with_comments`.
fn rows(with_comments: bool) -> Vec<PermissionRow> {
    let mut rows = vec![
        row(
            1,
            "articles",
            Action::Read,
            &["id", "title", "status", "author", "comments", "published", "tags"],
            Value::Null,
        ),
        row(
            1,
            "authors",
            Action::Read,
            &["id", "name", "articles"],
            Value::Null,
        ),
    ];
    if with_comments {
        rows.push(row(1, "comments", Action::Read, &["id", "body"], Value::Null));
    }
    rows
}

fn parse(query: &str) -> (Query, Vec<String>) {
    let params = params::decode(query).unwrap();
    let requested = match params.get("fields") {
        Some(Value::String(s)) => fields::split(s),
        _ => vec!["*".to_string()],
    };
    let parsed = query::parse(
        &params,
        blog(),
        "articles",
        Variables::default(),
        Settings::default(),
    )
    .unwrap();
    (parsed, requested)
}

fn check_with(rows: &[PermissionRow], query: &str) -> Result<(), AccessError> {
    let access = Access::build(&[policy(1)], rows, None);
    let vars = Variables::default();
    let (parsed, _) = parse(query);
    check_query(&parsed, blog(), "articles", &access.reader(blog(), &vars))
}

fn check(query: &str) -> Result<(), AccessError> {
    check_with(&rows(true), query)
}

fn field<T>(collection: &str, field: &str, path: Option<&str>) -> Result<T, AccessError> {
    Err(AccessError::Field {
        collection: collection.into(),
        field: field.into(),
        path: path.map(String::from),
    })
}

#[test]
fn a_collection_without_read_rules_is_forbidden() {
    assert_eq!(check_with(&[], "fields=id"), Err(AccessError::Forbidden));
}

#[test]
fn selected_fields_must_be_granted() {
    assert_eq!(check("fields=id,title"), Ok(()));
    assert_eq!(check("fields=id,body"), field("articles", "body", None));
    assert_eq!(check("fields=year(published)"), Ok(()));
    assert_eq!(
        check("fields=id&alias[b]=body&fields=b"),
        field("articles", "body", None)
    );
}

#[test]
fn nested_selections_are_checked_in_their_collection_with_their_path() {
    assert_eq!(check("fields=author.name"), Ok(()));
    assert_eq!(
        check("fields=author.secret"),
        field("authors", "secret", Some("author"))
    );
    assert_eq!(
        check("fields=author.articles.body"),
        field("articles", "body", Some("author.articles"))
    );
    assert_eq!(check("fields=comments.body"), Ok(()));
    assert_eq!(
        check_with(&rows(false), "fields=comments.body"),
        Err(AccessError::Forbidden),
        "a relation into an unreadable collection"
    );
}

#[test]
fn a_bare_o2m_field_reads_the_related_keys() {
    assert_eq!(check("fields=comments"), Ok(()));
    assert_eq!(
        check_with(&rows(false), "fields=comments"),
        Err(AccessError::Forbidden)
    );
    let no_key = vec![
        rows(false)[0].clone(),
        row(1, "comments", Action::Read, &["body"], Value::Null),
    ];
    assert_eq!(
        check_with(&no_key, "fields=comments"),
        field("comments", "id", Some("comments"))
    );
}

#[test]
fn counting_related_items_needs_their_collection() {
    assert_eq!(check("fields=count(comments)"), Ok(()));
    assert_eq!(
        check_with(&rows(false), "fields=count(comments)"),
        Err(AccessError::Forbidden)
    );
}

#[test]
fn filters_are_checked_through_relations_and_quantifiers() {
    assert_eq!(check("fields=id&filter[title][_eq]=a"), Ok(()));
    assert_eq!(
        check("fields=id&filter[views][_gt]=1"),
        field("articles", "views", None)
    );
    assert_eq!(
        check("fields=id&filter[_or][0][title][_eq]=a&filter[_or][1][body][_eq]=b"),
        field("articles", "body", None)
    );
    assert_eq!(
        check("fields=id&filter[author][secret][_eq]=x"),
        field("authors", "secret", Some("author"))
    );
    assert_eq!(check("fields=id&filter[comments][_some][body][_eq]=x"), Ok(()));
    assert_eq!(
        check("fields=id&filter[comments][_none][article][_eq]=1"),
        field("comments", "article", Some("comments"))
    );
    assert_eq!(
        check_with(&rows(false), "fields=id&filter[comments][_some][body][_eq]=x"),
        Err(AccessError::Forbidden)
    );
}

#[test]
fn sorts_are_checked_along_their_hops() {
    assert_eq!(check("fields=id&sort=-title"), Ok(()));
    assert_eq!(check("fields=id&sort=views"), field("articles", "views", None));
    assert_eq!(check("fields=id&sort=author.name"), Ok(()));
    assert_eq!(
        check("fields=id&sort=author.email"),
        field("authors", "email", Some("author"))
    );
}

#[test]
fn the_servers_default_order_is_not_the_callers() {
    // Only `title` is granted: the default sort by the hidden key is still applied.
    let rows = [row(1, "articles", Action::Read, &["title"], Value::Null)];
    assert_eq!(check_with(&rows, "fields=title"), Ok(()));
    assert_eq!(
        check_with(&rows, "fields=title&sort=-id"),
        field("articles", "id", None)
    );
}

#[test]
fn aggregates_and_groups_are_checked() {
    // `fields` defaults to `*`, which `narrow_wildcards` shrinks first.
    assert_eq!(narrowed(&rows(true), "aggregate[count]=*").map(|_| ()), Ok(()));
    assert_eq!(check("fields=id&aggregate[max]=title&groupBy=status"), Ok(()));
    assert_eq!(
        check("fields=id&aggregate[max]=views"),
        field("articles", "views", None)
    );
    assert_eq!(
        check("fields=id&aggregate[countDistinct]=body&groupBy=status"),
        field("articles", "body", None)
    );
    assert_eq!(
        check("fields=id&aggregate[count]=*&groupBy=owner"),
        field("articles", "owner", None)
    );
}

#[test]
fn deep_queries_are_checked_in_the_related_collection() {
    assert_eq!(
        check("fields=comments.id&deep[comments][_filter][body][_eq]=x"),
        Ok(())
    );
    let hidden_body = vec![
        rows(false)[0].clone(),
        rows(false)[1].clone(),
        row(1, "comments", Action::Read, &["id"], Value::Null),
    ];
    assert_eq!(
        check_with(
            &hidden_body,
            "fields=comments.id&deep[comments][_filter][body][_eq]=x"
        ),
        field("comments", "body", Some("comments"))
    );
    assert_eq!(
        check_with(&hidden_body, "fields=comments.id&deep[comments][_sort]=-body"),
        field("comments", "body", Some("comments"))
    );
    assert_eq!(
        check("fields=author.name&deep[author][_filter][secret][_null]=true"),
        field("authors", "secret", Some("author"))
    );
}

#[test]
fn a_forbidden_field_reads_like_a_missing_one() {
    let forbidden = crate::error::Error::from(check("fields=author.secret").unwrap_err());
    let params = params::decode("fields=author.nope").unwrap();
    let missing = crate::error::Error::from(
        query::parse(
            &params,
            blog(),
            "articles",
            Variables::default(),
            Settings::default(),
        )
        .unwrap_err(),
    );
    assert_eq!(
        forbidden.to_string(),
        "You don't have permission to access field \"secret\" in collection \"authors\" or it does not exist. Queried in \"author\"."
    );
    assert_eq!(
        missing.to_string().replace("nope", "secret"),
        forbidden.to_string()
    );
    assert_eq!(
        forbidden.envelope().to_string().replace("secret", "nope"),
        missing.envelope().to_string()
    );
}

/// Narrows the parsed query's selection, then checks it; returns the selected keys.
fn narrowed(rows: &[PermissionRow], query: &str) -> Result<Value, AccessError> {
    let access = Access::build(&[policy(1)], rows, None);
    let vars = Variables::default();
    let reader = access.reader(blog(), &vars);
    let (mut parsed, requested) = parse(query);
    narrow_wildcards(&mut parsed.fields, &requested, "articles", &reader)?;
    check_query(&parsed, blog(), "articles", &reader)?;
    Ok(keys(&parsed.fields))
}

/// The selection as nested keys: `["id", {"author": ["name"]}]`.
fn keys(selections: &[Selection]) -> Value {
    Value::Array(
        selections
            .iter()
            .map(|s| match s {
                Selection::ManyToOne { field, children, .. }
                | Selection::OneToMany {
                    field,
                    children: Some(children),
                    ..
                } => json!({ field.as_str(): keys(children) }),
                other => json!(other.key()),
            })
            .collect(),
    )
}

#[test]
fn a_wildcard_expands_to_granted_fields_only() {
    assert_eq!(
        narrowed(&rows(true), "fields=*"),
        Ok(json!([
            "id",
            "title",
            "status",
            "author",
            "published",
            "tags",
            "comments"
        ]))
    );
    assert_eq!(
        narrowed(&rows(true), "fields=author.*"),
        Ok(json!([{"author": ["id", "name", "articles"]}]))
    );
}

#[test]
fn an_explicit_field_is_kept_so_the_check_refuses_it() {
    assert_eq!(
        narrowed(&rows(true), "fields=*,body"),
        field("articles", "body", None)
    );
    assert_eq!(
        narrowed(&rows(true), "fields=author.secret,*"),
        field("authors", "secret", Some("author"))
    );
}

#[test]
fn a_wildcard_drops_relations_into_unreadable_collections() {
    // `*.*` here selects the relations only (`query::fields`), so the root `*` is added.
    assert_eq!(
        narrowed(&rows(false), "fields=*,*.*"),
        Ok(json!(["id", "title", "status", {"author": ["id", "name", "articles"]}, "published", "tags"]))
    );
    // The bare O2M alias from `*` needs the related keys.
    assert_eq!(
        narrowed(&rows(false), "fields=*"),
        Ok(json!(["id", "title", "status", "author", "published", "tags"]))
    );
    assert_eq!(
        narrowed(&rows(false), "fields=comments.*"),
        Err(AccessError::Forbidden)
    );
}

#[test]
fn a_wildcard_under_a_hidden_relation_field_is_dropped() {
    let rows = vec![
        row(1, "articles", Action::Read, &["id", "title"], Value::Null),
        row(1, "authors", Action::Read, &["*"], Value::Null),
    ];
    assert_eq!(narrowed(&rows, "fields=*,*.*"), Ok(json!(["id", "title"])));
    assert_eq!(
        narrowed(&rows, "fields=author.*"),
        field("articles", "author", None)
    );
}
