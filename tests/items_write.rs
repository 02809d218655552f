//! Item writes over HTTP: create (one and many), update (one, batch, `{keys,data}`,
//! `{query,data}`), delete, singletons; all-or-nothing batches; Directus's validation errors.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestApp, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};

const DATA: &str = r#"
create table authors (id serial primary key, name varchar(50) not null unique);
create table articles (
    id serial primary key, title varchar(20) not null, status varchar(20) not null default 'draft',
    views integer, tags text, secret varchar(255), created timestamptz, meta jsonb,
    author integer references authors (id)
);
create table settings (id serial primary key, site varchar(50) default 'My site', theme varchar(10));
create table notes (id uuid primary key, body text);
insert into directrix.fields (collection, field, special) values
    ('articles', 'tags', '{cast-csv}'), ('articles', 'secret', '{hash}'), ('articles', 'created', '{date-created}'),
    ('notes', 'id', '{uuid}');
insert into directrix.collections (collection, singleton) values ('settings', true);
insert into directrix.fields (collection, field, special) values ('authors', 'articles', '{o2m}');
insert into directrix.relations (many_collection, many_field, one_collection, one_field)
    values ('articles', 'author', 'authors', 'articles');
insert into authors (name) values ('Ann'), ('Bob');
"#;

async fn app() -> TestApp {
    let app = spawn_app().await;
    app.sql(DATA).await;
    app.eventually("schema", || async {
        app.get("/collections/notes").await.status == 200
    })
    .await;
    app.eventually("meta", || async {
        app.get("/fields/notes/id").await.data()["meta"]["special"] == json!(["uuid"])
    })
    .await;
    app
}

#[actix_web::test]
async fn create_one_and_many_returns_the_items_read_back() {
    let app = app().await;
    let one = app
        .post(
            "/items/articles",
            json!({"title": "Hi", "views": 3, "tags": ["a", "b"], "secret": "pw",
                                        "meta": {"x": [1]}, "author": 1, "unknown": "dropped"}),
        )
        .await
        .data();
    assert_eq!(one["id"], 1);
    assert_eq!(one["status"], "draft", "the column default applies");
    assert_eq!(one["tags"], json!(["a", "b"]));
    assert_eq!(one["secret"], "**********");
    assert_eq!(one["meta"], json!({"x": [1]}));
    assert!(
        one["created"].as_str().unwrap().ends_with('Z'),
        "date-created is set"
    );
    assert!(one.get("unknown").is_none());
    let many = app
        .post(
            "/items/articles?fields=id,title",
            json!([{"title": "A"}, {"title": "B", "status": "published"}]),
        )
        .await
        .data();
    assert_eq!(many, json!([{"id": 2, "title": "A"}, {"id": 3, "title": "B"}]));
    let note = app.post("/items/notes", json!({"body": "x"})).await.data();
    assert_eq!(
        note["id"].as_str().unwrap().len(),
        36,
        "uuid special generates the key"
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_failing_item_rolls_back_the_whole_batch() {
    let app = app().await;
    let res = app
        .post(
            "/items/articles",
            json!([{"title": "ok"}, {"title": "this title is far too long"}]),
        )
        .await;
    res.assert_error(400, "VALUE_TOO_LONG");
    assert_eq!(
        res.json()["errors"][0]["extensions"],
        json!({"code": "VALUE_TOO_LONG", "collection": "articles", "field": "title"}),
        "the error names the field"
    );
    let res = app
        .post(
            "/items/articles",
            json!([{"title": "ok"}, {"title": "x", "author": 99}]),
        )
        .await;
    res.assert_error(400, "INVALID_FOREIGN_KEY");
    let res = app
        .post("/items/authors", json!([{"name": "Cy"}, {"name": "Ann"}]))
        .await;
    res.assert_error(400, "RECORD_NOT_UNIQUE");
    assert_eq!(res.json()["errors"][0]["extensions"]["field"], "name");
    assert_eq!(
        app.get("/items/articles").await.data(),
        json!([]),
        "nothing was written"
    );
    assert_eq!(
        app.get("/items/authors?meta=total_count").await.json()["meta"]["total_count"],
        2
    );
    app.stop().await;
}

#[actix_web::test]
async fn missing_required_fields_fail_validation() {
    let app = app().await;
    let res = app.post("/items/articles", json!({"views": 1})).await;
    res.assert_error(400, "FAILED_VALIDATION");
    let error = &res.json()["errors"][0];
    assert_eq!(
        error["message"],
        "Validation failed for field \"title\". Value is required."
    );
    assert_eq!(
        error["extensions"],
        json!({"field": "title", "path": [], "type": "required", "code": "FAILED_VALIDATION"})
    );
    let null = app.post("/items/articles", json!({"title": null})).await;
    assert_eq!(null.json()["errors"][0]["extensions"]["type"], "nnull");
    app.post("/items/articles", json!({"title": "x", "views": "many"}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    app.post("/items/articles", json!("not an object"))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    app.stop().await;
}

#[actix_web::test]
async fn updates_by_id_batch_keys_and_query() {
    let app = app().await;
    app.post(
        "/items/articles",
        json!([{"title": "a"}, {"title": "b"}, {"title": "c"}]),
    )
    .await
    .data();
    let one = app.patch("/items/articles/1", json!({"views": 10})).await.data();
    assert_eq!((one["id"].clone(), one["views"].clone()), (json!(1), json!(10)));
    let batch = app
        .patch(
            "/items/articles?fields=id,title",
            json!([{"id": 2, "title": "B"}, {"id": 3, "title": "C"}]),
        )
        .await
        .data();
    assert_eq!(batch, json!([{"id": 2, "title": "B"}, {"id": 3, "title": "C"}]));
    let keys = app
        .patch(
            "/items/articles?fields=id,status",
            json!({"keys": [1, 2], "data": {"status": "published"}}),
        )
        .await
        .data();
    assert_eq!(
        keys,
        json!([{"id": 1, "status": "published"}, {"id": 2, "status": "published"}])
    );
    let by_query = app
        .patch(
            "/items/articles?fields=id,views",
            json!({"query": {"filter": {"status": {"_eq": "draft"}}}, "data": {"views": 7}}),
        )
        .await
        .data();
    assert_eq!(by_query, json!([{"id": 3, "views": 7}]));
    // A batch item without its key, and malformed batch bodies.
    app.patch("/items/articles", json!([{"title": "x"}]))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    let res = app.patch("/items/articles", json!({"keys": [1]})).await;
    assert_eq!(
        res.json()["errors"][0]["message"],
        "Invalid payload. \"data\" is required."
    );
    let res = app.patch("/items/articles", json!({"data": {}})).await;
    assert_eq!(
        res.json()["errors"][0]["extensions"]["reason"],
        "\"value\" must contain at least one of [query, keys]"
    );
    // Updating a key that does not exist: 204, as Directus answers an admin.
    assert_eq!(
        app.patch("/items/articles/999", json!({"views": 1})).await.status,
        204
    );
    app.stop().await;
}

#[actix_web::test]
async fn deletes_by_id_keys_and_query() {
    let app = app().await;
    app.post(
        "/items/articles",
        json!([{"title": "a"}, {"title": "b"}, {"title": "c"}, {"title": "d"}]),
    )
    .await
    .data();
    assert_eq!(app.delete("/items/articles/1").await.status, 204);
    assert_eq!(
        app.request(Method::DELETE, "/items/articles", Some(json!([2])))
            .await
            .status,
        204
    );
    assert_eq!(
        app.request(Method::DELETE, "/items/articles", Some(json!({"keys": [3]})))
            .await
            .status,
        204
    );
    let by_query = app
        .request(
            Method::DELETE,
            "/items/articles",
            Some(json!({"query": {"filter": {"title": {"_eq": "d"}}}})),
        )
        .await;
    assert_eq!(by_query.status, 204);
    assert_eq!(app.get("/items/articles").await.data(), json!([]));
    app.request(Method::DELETE, "/items/articles", Some(json!({})))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    app.delete("/items/articles/abc")
        .await
        .assert_error(403, "FORBIDDEN");
    app.stop().await;
}

#[actix_web::test]
async fn singletons_read_and_upsert_one_object() {
    let app = app().await;
    let empty = app.get("/items/settings").await.data();
    assert_eq!(empty, json!({"id": null, "site": "My site"}));
    let saved = app
        .patch("/items/settings", json!({"theme": "dark"}))
        .await
        .data();
    assert_eq!(
        (saved["site"].clone(), saved["theme"].clone()),
        (json!("My site"), json!("dark"))
    );
    let again = app
        .patch("/items/settings", json!({"site": "Other"}))
        .await
        .data();
    assert_eq!(again["id"], saved["id"], "the same row is updated");
    assert_eq!(app.get("/items/settings").await.data()["site"], "Other");
    app.post("/items/settings", json!({}))
        .await
        .assert_error(404, "ROUTE_NOT_FOUND");
    let _: Value = app.get("/items/settings").await.data();
    app.stop().await;
}

#[actix_web::test]
async fn max_batch_mutation_caps_one_write() {
    let database = common::fresh_database().await;
    let mut config = common::test_config(&database);
    config.max_batch_mutation = Some(2);
    let app = common::spawn_app_with(config).await;
    app.sql(DATA).await;
    app.eventually("schema", || async {
        app.get("/collections/articles").await.status == 200
    })
    .await;
    let res = app
        .post(
            "/items/articles",
            json!([{"title": "a"}, {"title": "b"}, {"title": "c"}]),
        )
        .await;
    res.assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(
        res.json()["errors"][0]["message"],
        "Invalid payload. Exceeded max batch mutation limit of 2."
    );
    app.post("/items/articles", json!([{"title": "a"}, {"title": "b"}]))
        .await
        .data();
    app.request(Method::DELETE, "/items/articles", Some(json!([1, 2, 3])))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    app.stop().await;
}

#[actix_web::test]
async fn json_function_reads_a_path_inside_a_json_field() {
    let app = app().await;
    app.post(
        "/items/articles",
        json!({"title": "j", "meta": {"x": [1, {"deep": "yes"}], "y": null}}),
    )
    .await
    .data();
    let data = app
        .get("/items/articles/1?fields=id,json(meta, x[1].deep),json(meta, x[0]),json(meta, nope)")
        .await
        .data();
    assert_eq!(
        data,
        json!({"id": 1, "meta_x_1_deep_json": "yes", "meta_x_0_json": 1, "meta_nope_json": null})
    );
    // A path with brackets goes in a JSON filter; the bracket syntax can't nest them.
    let filtered = app
        .get("/items/articles?fields=id&filter=%7B%22meta%22%3A%7B%22_json%22%3A%7B%22x%5B0%5D%22%3A%7B%22_eq%22%3A1%7D%7D%7D%7D")
        .await
        .data();
    assert_eq!(filtered, json!([{"id": 1}]));
    app.get("/items/articles?fields=json(title, a)")
        .await
        .assert_error(400, "INVALID_QUERY");
    app.stop().await;
}

#[actix_web::test]
async fn nested_creates_write_related_items_in_one_transaction() {
    let app = app().await;
    app.eventually("o2m alias", || async {
        app.get("/fields/authors/articles").await.status == 200
    })
    .await;
    // M2O: the related author is created first and linked.
    let article = app
        .post(
            "/items/articles?fields=id,title,author.name",
            json!({"title": "With author", "author": {"name": "Cy"}}),
        )
        .await
        .data();
    assert_eq!(
        article,
        json!({"id": 1, "title": "With author", "author": {"name": "Cy"}})
    );
    // O2M: new children are created pointing at the new item; existing keys are linked.
    let author = app
        .post(
            "/items/authors?fields=name,articles.title",
            json!({"name": "Dee", "articles": [{"title": "One"}, {"title": "Two"}, 1]}),
        )
        .await
        .data();
    assert_eq!(
        author,
        json!({"name": "Dee", "articles": [{"title": "With author"}, {"title": "One"}, {"title": "Two"}]})
    );
    // A failing child rolls back the parent too.
    let res = app
        .post(
            "/items/authors",
            json!({"name": "Eve", "articles": [{"title": "this title is far too long"}]}),
        )
        .await;
    res.assert_error(400, "VALUE_TOO_LONG");
    assert_eq!(
        app.get("/items/authors?filter[name][_eq]=Eve").await.data(),
        json!([])
    );
    // On update the array is the whole set: children left out are unlinked (nullify).
    let dee = app
        .get("/items/authors?filter[name][_eq]=Dee&fields=id")
        .await
        .data()[0]["id"]
        .clone();
    let kept = app
        .patch(
            &format!("/items/authors/{dee}?fields=articles"),
            json!({"articles": [2]}),
        )
        .await
        .data();
    assert_eq!(kept, json!({"articles": [2]}));
    assert_eq!(
        app.get("/items/articles/1?fields=author").await.data(),
        json!({"author": null})
    );
    // The detailed form changes only what it names.
    let detailed = app
        .patch(
            &format!("/items/authors/{dee}?fields=articles.title"),
            json!({"articles": {"create": [{"title": "Neu"}], "update": [{"id": 1, "title": "Back"}], "delete": [2]}}),
        )
        .await
        .data();
    assert_eq!(
        detailed,
        json!({"articles": [{"title": "Back"}, {"title": "Neu"}]})
    );
    app.patch(
        &format!("/items/authors/{dee}"),
        json!({"articles": {"nope": []}}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    app.stop().await;
}

#[actix_web::test]
async fn a_create_with_a_malformed_read_back_query_writes_nothing() {
    let app = app().await;
    app.post("/items/articles?limit=many", json!({"title": "Never"}))
        .await
        .assert_error(400, "INVALID_QUERY");
    let rows = app.get("/items/articles?filter[title][_eq]=Never").await.data();
    assert_eq!(rows, json!([]), "the refused request wrote nothing");
}
