//! The SQL compiler (run on Postgres) and the in-memory evaluator give the same rows for random
//! filters over a fixed data set with nulls, empty strings, LIKE wildcards, dates and relations
//! (M2O from articles to authors, O2M back). A mismatch would mean REST and realtime disagree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{DateTime, Utc};
use directrix::core::filter::{self, Limits};
use directrix::core::schema::SchemaSnapshot;
use directrix::db::items::{self, compile};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};
use sqlx::{PgPool, Row};

const SETUP: &str = r#"
create table authors (id serial primary key, name varchar(50), rating integer);
create table articles (
    id serial primary key, title varchar(100), body text, views integer, score real,
    published boolean, pub_date date, created timestamptz, updated timestamp,
    author integer references authors (id), meta jsonb
);
insert into directrix.fields (collection, field, special) values ('authors', 'articles', '{o2m}');
insert into directrix.relations (many_collection, many_field, one_collection, one_field)
    values ('articles', 'author', 'authors', 'articles');
insert into authors (name, rating) values ('Ann', 5), ('bob', null), ('', 3), (null, 1), ('Ünï', 4);
insert into articles (title, body, views, score, published, pub_date, created, updated, author)
select (array['alpha', 'Alpha', 'al', 'a_b', '50%', 'zeta', '', null])[1 + i % 8],
       (array['long text', 'Alpha beta', null, ''])[1 + i % 4],
       case when i % 7 = 0 then null else (i * 37) % 101 - 5 end,
       case when i % 5 = 0 then null else ((i * 13) % 11) * 0.5 - 2 end,
       case when i % 6 = 0 then null else i % 2 = 0 end,
       date '2023-12-25' + (i * 11 % 200),
       timestamptz '2024-01-01 00:00:00+00' + (i * 7919 % 100000) * interval '5 minutes',
       timestamp '2024-01-01 00:00:00' + (i * 104729 % 50000) * interval '7 minutes',
       case when i % 4 = 0 then null else 1 + i % 5 end
from generate_series(1, 60) i;
update articles set meta = (array[
    '{"color": "red", "size": {"w": 3}, "tags": ["a", "b"]}',
    '{"color": "blue", "size": {"w": "big"}}',
    '{"size": {"w": 10.5}, "tags": []}',
    '{"color": null}',
    null
])[1 + id % 5]::jsonb;
"#;

struct Fixture {
    pool: PgPool,
    snapshot: SchemaSnapshot,
    articles: Vec<(i64, Map<String, Value>)>,
    authors: Vec<(i64, Map<String, Value>)>,
    now: DateTime<Utc>,
}

async fn fixture() -> Fixture {
    let database = common::fresh_database().await;
    let pool = PgPool::connect(&common::database_url(&database)).await.unwrap();
    sqlx::raw_sql(SETUP).execute(&pool).await.unwrap();
    sqlx::query("set time zone 'UTC'").execute(&pool).await.unwrap();
    let snapshot = directrix::db::introspect::load(&pool, "public")
        .await
        .unwrap()
        .snapshot;
    let rows = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query(sql)
                .fetch_all(&pool)
                .await
                .unwrap()
                .into_iter()
                .map(|row| {
                    let Value::Object(map) = row.get::<sqlx::types::Json<Value>, _>(0).0 else {
                        panic!()
                    };
                    (map["id"].as_i64().unwrap(), map)
                })
                .collect::<Vec<_>>()
        }
    };
    let articles = rows(
        "select to_jsonb(a) || jsonb_build_object('author', to_jsonb(au)) \
         from articles a left join authors au on au.id = a.author order by a.id",
    )
    .await;
    let authors = rows(
        "select to_jsonb(au) || jsonb_build_object('articles', coalesce( \
           (select jsonb_agg(to_jsonb(a)) from articles a where a.author = au.id), '[]')) \
         from authors au order by au.id",
    )
    .await;
    let now = DateTime::parse_from_rfc3339("2024-06-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    Fixture {
        pool,
        snapshot,
        articles,
        authors,
        now,
    }
}

fn one_of(values: Vec<Value>) -> proptest::sample::Select<Value> {
    proptest::sample::select(values)
}

/// A condition on one field of `articles` or `authors`: `{field: {op: value}}`.
fn condition(collection: &'static str) -> BoxedStrategy<Value> {
    let strings = || {
        one_of(vec![
            json!("a%"),
            json!("alpha"),
            json!("Alpha"),
            json!("al"),
            json!("a_b"),
            json!("50%"),
            json!("zeta"),
            json!("ü"),
            Value::Null,
        ])
    };
    let ints = || {
        one_of(vec![
            json!(-1),
            json!(0),
            json!(1),
            json!(5),
            json!(10),
            json!(60),
            json!("5"),
            Value::Null,
        ])
    };
    let text_ops = one_of(
        [
            "_eq",
            "_neq",
            "_contains",
            "_ncontains",
            "_icontains",
            "_nicontains",
            "_starts_with",
            "_istarts_with",
            "_nstarts_with",
            "_nistarts_with",
            "_ends_with",
            "_iends_with",
            "_nends_with",
            "_niends_with",
        ]
        .iter()
        .map(|s| json!(s))
        .collect(),
    );
    let cmp_ops = one_of(
        ["_eq", "_neq", "_lt", "_lte", "_gt", "_gte"]
            .iter()
            .map(|s| json!(s))
            .collect(),
    );
    let flag_ops = one_of(
        ["_null", "_nnull", "_empty", "_nempty"]
            .iter()
            .map(|s| json!(s))
            .collect(),
    );
    let name_field = if collection == "articles" { "title" } else { "name" };
    let number_field = if collection == "articles" {
        "views"
    } else {
        "rating"
    };
    let text =
        (Just(name_field), text_ops, strings()).prop_filter_map("text ops need a value", |(f, op, v)| {
            let op = op.as_str().unwrap().to_string();
            (v.is_string() || op == "_eq" || op == "_neq").then(|| json!({ f: { op: v } }))
        });
    let flag = (Just(name_field), flag_ops, any::<bool>())
        .prop_map(|(f, op, b)| json!({ f: { op.as_str().unwrap(): b } }));
    let numeric = (Just(number_field), cmp_ops.clone(), ints()).prop_filter_map(
        "ordering needs a value",
        |(f, op, v)| {
            let op = op.as_str().unwrap().to_string();
            (!v.is_null() || op == "_eq" || op == "_neq").then(|| json!({ f: { op: v } }))
        },
    );
    let list = (
        Just(number_field),
        one_of(vec![json!("_in"), json!("_nin")]),
        proptest::collection::vec(ints(), 1..4),
    )
        .prop_map(|(f, op, v)| json!({ f: { op.as_str().unwrap(): v } }));
    let between = (
        Just(number_field),
        one_of(vec![json!("_between"), json!("_nbetween")]),
        -5i64..30,
        0i64..40,
    )
        .prop_map(|(f, op, a, b)| json!({ f: { op.as_str().unwrap(): [a, a + b] } }));
    if collection == "authors" {
        return prop_oneof![text, flag, numeric, list, between].boxed();
    }
    let floats = (
        cmp_ops.clone(),
        one_of(vec![json!(-2), json!(0.5), json!(1.5), json!("3"), Value::Null]),
    )
        .prop_filter_map("ordering needs a value", |(op, v)| {
            let op = op.as_str().unwrap().to_string();
            (!v.is_null() || op == "_eq" || op == "_neq").then(|| json!({ "score": { op: v } }))
        });
    let booleans = (
        one_of(vec![json!("_eq"), json!("_neq")]),
        one_of(vec![json!(true), json!(false), json!("true"), Value::Null]),
    )
        .prop_map(|(op, v)| json!({ "published": { op.as_str().unwrap(): v } }));
    let dates = (
        cmp_ops.clone(),
        one_of(vec![
            json!("2024-01-01"),
            json!("2024-03-15"),
            json!("2024-07-01"),
        ]),
    )
        .prop_map(|(op, v)| json!({ "pub_date": { op.as_str().unwrap(): v } }));
    let stamps = (
        cmp_ops.clone(),
        one_of(vec![
            json!("2024-01-15T00:00:00Z"),
            json!("2024-03-01T12:30:00+02:00"),
            json!("$NOW"),
            json!("$NOW(-5 months)"),
        ]),
    )
        .prop_map(|(op, v)| json!({ "created": { op.as_str().unwrap(): v } }));
    let local = (
        cmp_ops.clone(),
        one_of(vec![json!("2024-01-10T00:00:00"), json!("2024-02-20 08:00:00")]),
    )
        .prop_map(|(op, v)| json!({ "updated": { op.as_str().unwrap(): v } }));
    let functions = (
        one_of(vec![
            json!("year(pub_date)"),
            json!("month(pub_date)"),
            json!("weekday(created)"),
            json!("hour(updated)"),
            json!("day(created)"),
            json!("week(pub_date)"),
        ]),
        cmp_ops,
        0i64..30,
    )
        .prop_map(|(f, op, v)| json!({ f.as_str().unwrap(): { op.as_str().unwrap(): v } }));
    let author = condition("authors").prop_map(|c| json!({ "author": c }));
    let author_key =
        (one_of(vec![json!("_eq"), json!("_null"), json!("_in")]), 1i64..6).prop_map(|(op, v)| {
            match op.as_str().unwrap() {
                "_null" => json!({ "author": { "_null": v % 2 == 0 } }),
                "_in" => json!({ "author": { "_in": [v, v + 1] } }),
                _ => json!({ "author": { "_eq": v } }),
            }
        });
    let json_paths = (
        one_of(vec![json!("color"), json!("size.w"), json!("tags[0]")]),
        one_of(vec![
            json!("_eq"),
            json!("_neq"),
            json!("_null"),
            json!("_nnull"),
            json!("_gt"),
            json!("_lt"),
        ]),
        one_of(vec![
            json!("red"),
            json!("blue"),
            json!("a"),
            json!(3),
            json!(10.5),
            json!(true),
        ]),
    )
        .prop_filter_map("ordering on text is not offered", |(path, op, v)| {
            let op = op.as_str().unwrap().to_string();
            let value = if op == "_null" || op == "_nnull" {
                json!(true)
            } else {
                v
            };
            if (op == "_gt" || op == "_lt") && !value.is_number() {
                return None;
            }
            Some(json!({ "meta": { "_json": { path.as_str().unwrap(): { op: value } } } }))
        });
    prop_oneof![
        text, flag, numeric, list, between, floats, booleans, dates, stamps, local, functions, author,
        author_key, json_paths
    ]
    .boxed()
}

fn tree(collection: &'static str) -> BoxedStrategy<Value> {
    let leaf = if collection == "authors" {
        let o2m = (
            one_of(vec![json!("_some"), json!("_none")]),
            condition("articles"),
        )
            .prop_map(|(q, c)| json!({ "articles": { q.as_str().unwrap(): c } }));
        prop_oneof![3 => condition("authors"), 1 => o2m].boxed()
    } else {
        condition("articles")
    };
    leaf.prop_recursive(3, 12, 3, |inner| {
        (
            one_of(vec![json!("_and"), json!("_or")]),
            proptest::collection::vec(inner, 1..4),
        )
            .prop_map(|(op, children)| json!({ op.as_str().unwrap(): children }))
    })
    .boxed()
}

async fn check(fx: &Fixture, collection: &'static str, raw: &Value) -> Result<(), TestCaseError> {
    let parsed = filter::parse(raw, &fx.snapshot, collection, fx.now, Limits::default());
    let parsed = match parsed {
        Ok(f) => f,
        Err(err) => {
            return Err(TestCaseError::fail(format!(
                "generated filter rejected: {err}: {raw}"
            )));
        }
    };
    let mut sql = compile::Sql::default();
    sql.push(&format!("select id::bigint from public.{collection} t where "));
    compile::filter(&mut sql, &parsed, &fx.snapshot, "public", collection, "t").unwrap();
    sql.push(" order by id");
    let from_sql: Vec<i64> = items::query(&sql)
        .fetch_all(&fx.pool)
        .await
        .map_err(|e| TestCaseError::fail(format!("{e}: {}", sql.text)))?
        .iter()
        .map(|r| r.get::<i64, _>(0))
        .collect();
    let rows = if collection == "articles" {
        &fx.articles
    } else {
        &fx.authors
    };
    let in_memory: Vec<i64> = rows
        .iter()
        .filter(|(_, row)| filter::eval::matches(&parsed, row, &fx.snapshot, collection))
        .map(|(id, _)| *id)
        .collect();
    prop_assert_eq!(from_sql, in_memory, "filter {} → {}", raw, sql.text);
    Ok(())
}

#[test]
fn sql_and_in_memory_evaluation_agree_on_tricky_filters() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fx = rt.block_on(fixture());
    let cases = [
        ("authors", json!({"name": {"_icontains": "ü"}})),
        ("authors", json!({"name": {"_nicontains": "ÜN"}})),
        ("articles", json!({"title": {"_contains": "%"}})),
        ("articles", json!({"title": {"_contains": "_"}})),
        ("articles", json!({"title": {"_neq": "alpha"}})),
        ("articles", json!({"title": {"_nin": ["alpha", null]}})),
        ("articles", json!({"title": {"_contains": "a_"}})),
        ("articles", json!({"title": {"_icontains": "A%B"}})),
        ("articles", json!({"title": {"_eq": "null"}})),
        ("articles", json!({"views": {"_in": "1,2,60"}})),
        ("articles", json!({"title": {"_empty": true}})),
        ("articles", json!({"title": {"_nempty": true}})),
        ("articles", json!({"author": {"name": {"_null": true}}})),
        ("authors", json!({"articles": {"_none": {"views": {"_gt": 50}}}})),
        ("authors", json!({"articles": {"title": {"_eq": "zeta"}}})),
        (
            "articles",
            json!({"created": {"_between": ["2024-01-01T00:00:00Z", "$NOW"]}}),
        ),
        (
            "articles",
            json!({"_or": [{"views": {"_null": true}}, {"views": {"_lt": 0}}]}),
        ),
        ("articles", json!({"meta": {"_json": {"color": {"_eq": "red"}}}})),
        ("articles", json!({"meta": {"_json": {"color": {"_null": true}}}})),
        ("articles", json!({"meta": {"_json": {"size.w": {"_gt": 5}}}})),
        (
            "articles",
            json!({"meta": {"_json": {"size.w": {"_lte": 3}, "color": {"_neq": "blue"}}}}),
        ),
        ("articles", json!({"meta": {"_json": {"tags[1]": {"_eq": "b"}}}})),
        (
            "articles",
            json!({"meta": {"_json": {"size.w": {"_in": [3, 10.5]}}}}),
        ),
        (
            "articles",
            json!({"meta": {"_json": {"color": {"_icontains": "ED"}}}}),
        ),
        ("articles", json!({"meta": {"_null": true}})),
        ("authors", json!({"count(articles)": {"_gt": 10}})),
        ("authors", json!({"count(articles)": {"_eq": 0}})),
        ("articles", json!({"count(meta)": {"_null": true}})),
    ];
    for (collection, raw) in cases {
        rt.block_on(check(&fx, collection, &raw))
            .unwrap_or_else(|e| panic!("{raw}: {e}"));
    }
}

#[test]
fn sql_and_in_memory_evaluation_agree_on_random_filters() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fx = rt.block_on(fixture());
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    for collection in ["articles", "authors"] {
        runner
            .run(&tree(collection), |raw| rt.block_on(check(&fx, collection, &raw)))
            .unwrap_or_else(|err| panic!("{collection}: {err}"));
    }
}
