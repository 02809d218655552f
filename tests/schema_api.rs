//! The schema endpoints (`/collections`, `/fields`, `/relations`) over real HTTP, including
//! database-first introspection and refresh after DDL from outside.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::spawn_app;
use serde_json::{Value, json};

fn names(data: &Value, key: &str) -> Vec<String> {
    data.as_array()
        .unwrap()
        .iter()
        .map(|v| v[key].as_str().unwrap().to_string())
        .collect()
}

#[actix_web::test]
async fn create_read_update_delete_a_collection() {
    let app = spawn_app().await;

    // Act: create with an explicit primary key, a string field and meta.
    let created = app
        .post(
            "/collections",
            json!({
                "collection": "articles",
                "meta": {"icon": "article", "note": "News"},
                "schema": {"comment": "all the news"},
                "fields": [
                    {"field": "id", "type": "integer", "schema": {"is_primary_key": true, "has_auto_increment": true}},
                    {"field": "title", "type": "string", "schema": {"is_nullable": false, "default_value": "untitled"},
                     "meta": {"interface": "input", "required": true}}
                ]
            }),
        )
        .await
        .data();

    // Assert: Directus's shape.
    assert_eq!(created["collection"], "articles");
    assert_eq!(created["meta"]["icon"], "article");
    assert_eq!(created["meta"]["collapse"], "open");
    assert_eq!(
        created["schema"],
        json!({"name": "articles", "schema": "public", "comment": "all the news"})
    );

    let listed = app.get("/collections").await.data();
    assert_eq!(names(&listed, "collection"), vec!["articles"]);
    assert_eq!(app.get("/collections/articles").await.data(), created);

    let fields = app.get("/fields/articles").await.data();
    assert_eq!(names(&fields, "field"), vec!["id", "title"]);
    let id = &fields[0];
    assert_eq!(id["type"], "integer");
    assert_eq!(id["schema"]["is_primary_key"], true);
    assert_eq!(id["schema"]["has_auto_increment"], true);
    assert_eq!(id["schema"]["is_nullable"], false);
    let title = &fields[1];
    assert_eq!(title["type"], "string");
    assert_eq!(title["schema"]["data_type"], "character varying");
    assert_eq!(title["schema"]["max_length"], 255);
    assert_eq!(title["schema"]["default_value"], "untitled");
    assert_eq!(title["schema"]["is_nullable"], false);
    assert_eq!(title["meta"]["required"], true);
    assert_eq!(title["meta"]["interface"], "input");

    // Update meta only; the rest of meta stays.
    let updated = app
        .patch("/collections/articles", json!({"meta": {"hidden": true}}))
        .await
        .data();
    assert_eq!(updated["meta"]["hidden"], true);
    assert_eq!(updated["meta"]["icon"], "article");

    // Delete: 204, then gone (403, as Directus answers for anything that does not exist).
    let deleted = app.delete("/collections/articles").await;
    assert_eq!(deleted.status, 204);
    app.get("/collections/articles")
        .await
        .assert_error(403, "FORBIDDEN");
    assert_eq!(app.get("/collections").await.data(), json!([]));
    app.stop().await;
}

#[actix_web::test]
async fn a_collection_without_fields_gets_an_auto_increment_id() {
    let app = spawn_app().await;
    app.post("/collections", json!({"collection": "tags", "schema": {}}))
        .await
        .data();
    let id = app.get("/fields/tags/id").await.data();
    assert_eq!(id["schema"]["is_primary_key"], true);
    assert_eq!(id["schema"]["has_auto_increment"], true);
    assert_eq!(id["meta"]["hidden"], true);
    assert_eq!(id["meta"]["readonly"], true);
    app.stop().await;
}

#[actix_web::test]
async fn a_collection_with_null_schema_is_a_folder() {
    let app = spawn_app().await;
    let folder = app
        .post(
            "/collections",
            json!({"collection": "content", "schema": null, "meta": {"icon": "folder"}}),
        )
        .await
        .data();
    assert_eq!(folder["schema"], Value::Null);
    assert_eq!(folder["meta"]["icon"], "folder");
    // A folder has no table, so collection-scoped field routes refuse it, as in Directus.
    app.post("/fields/content", json!({"field": "x", "type": "string"}))
        .await
        .assert_error(403, "FORBIDDEN");
    // PATCH with meta on a new name also makes a folder; its meta then updates in place.
    let made = app
        .patch("/collections/group2", json!({"meta": {"icon": "folder_open"}}))
        .await
        .data();
    assert_eq!(made["schema"], Value::Null);
    let changed = app
        .patch("/collections/group2", json!({"meta": {"note": "n"}}))
        .await
        .data();
    assert_eq!(
        (changed["meta"]["icon"].clone(), changed["meta"]["note"].clone()),
        (json!("folder_open"), json!("n"))
    );
    assert_eq!(app.delete("/collections/group2").await.status, 204);
    app.get("/collections/group2")
        .await
        .assert_error(403, "FORBIDDEN");
    app.stop().await;
}

#[actix_web::test]
async fn uuid_and_string_primary_keys_are_supported() {
    let app = spawn_app().await;
    app.post(
        "/collections",
        json!({"collection": "people", "schema": {},
               "fields": [{"field": "id", "type": "uuid", "schema": {"is_primary_key": true}, "meta": {"special": ["uuid"]}}]}),
    )
    .await
    .data();
    app.post(
        "/collections",
        json!({"collection": "countries", "schema": {},
               "fields": [{"field": "code", "type": "string", "schema": {"is_primary_key": true, "max_length": 2}}]}),
    )
    .await
    .data();
    let people_id = app.get("/fields/people/id").await.data();
    assert_eq!(people_id["type"], "uuid");
    assert_eq!(people_id["schema"]["is_primary_key"], true);
    let code = app.get("/fields/countries/code").await.data();
    assert_eq!(code["type"], "string");
    assert_eq!(code["schema"]["max_length"], 2);
    // Rows written from outside get a generated uuid key.
    app.sql("insert into people default values").await;
    app.stop().await;
}

#[actix_web::test]
async fn every_directus_type_maps_to_a_column_and_back() {
    let app = spawn_app().await;
    app.post(
        "/collections",
        json!({"collection": "kitchen_sink", "schema": {}}),
    )
    .await
    .data();
    let cases = [
        ("string", json!("a"), "character varying"),
        ("text", json!("long"), "text"),
        ("integer", json!(7), "integer"),
        ("bigInteger", json!(9_007_199_254_740_993_i64), "bigint"),
        ("float", json!(1.5), "real"),
        ("decimal", json!(12.25), "numeric"),
        ("boolean", json!(true), "boolean"),
        ("json", json!({"a": [1, 2]}), "jsonb"),
        ("uuid", json!("00000000-0000-0000-0000-000000000001"), "uuid"),
        ("date", json!("2024-01-02"), "date"),
        ("time", json!("12:34:56"), "time without time zone"),
        (
            "dateTime",
            json!("2024-01-02 03:04:05"),
            "timestamp without time zone",
        ),
        ("timestamp", json!("$now"), "timestamp with time zone"),
        ("csv", json!("a,b"), "text"),
        ("hash", Value::Null, "character varying"),
    ];
    for (i, (field_type, default, data_type)) in cases.iter().enumerate() {
        let name = format!("f{i}");
        let created = app
            .post(
                "/fields/kitchen_sink",
                json!({"field": name, "type": field_type, "schema": {"default_value": default}}),
            )
            .await
            .data();
        assert_eq!(created["type"], *field_type, "{field_type}");
        assert_eq!(created["schema"]["data_type"], *data_type, "{field_type}");
        if *field_type != "timestamp" && *field_type != "json" && *field_type != "decimal" {
            assert_eq!(created["schema"]["default_value"], *default, "{field_type}");
        }
    }
    let decimal = app.get("/fields/kitchen_sink/f5").await.data();
    assert_eq!(
        (
            decimal["schema"]["numeric_precision"].clone(),
            decimal["schema"]["numeric_scale"].clone()
        ),
        (json!(10), json!(5))
    );
    let alias = app
        .post(
            "/fields/kitchen_sink",
            json!({"field": "notice", "type": "alias", "meta": {"special": ["alias", "no-data"]}}),
        )
        .await
        .data();
    assert_eq!(alias["type"], "alias");
    assert_eq!(alias["schema"], Value::Null);
    // A row can be written with all the defaults.
    app.sql("insert into kitchen_sink default values").await;
    app.stop().await;
}

#[actix_web::test]
async fn fields_can_be_altered_and_deleted() {
    let app = spawn_app().await;
    app.post("/collections", json!({"collection": "posts", "schema": {}}))
        .await
        .data();
    app.post("/fields/posts", json!({"field": "views", "type": "integer"}))
        .await
        .data();

    let changed = app
        .patch(
            "/fields/posts/views",
            json!({"type": "bigInteger", "schema": {"default_value": 0, "is_nullable": false, "is_unique": true,
                   "comment": "page views"}, "meta": {"note": "count"}}),
        )
        .await
        .data();
    assert_eq!(changed["type"], "bigInteger");
    assert_eq!(changed["schema"]["default_value"], 0);
    assert_eq!(changed["schema"]["is_nullable"], false);
    assert_eq!(changed["schema"]["is_unique"], true);
    assert_eq!(changed["schema"]["comment"], "page views");
    assert_eq!(changed["meta"]["note"], "count");

    // Uniqueness is real.
    app.sql("insert into posts (views) values (1)").await;
    let dup = app
        .post(
            "/fields/posts",
            json!({"field": "slug", "type": "string", "schema": {"is_unique": true}}),
        )
        .await;
    dup.data();
    let unset = app
        .patch("/fields/posts/views", json!({"schema": {"is_unique": false}}))
        .await
        .data();
    assert_eq!(unset["schema"]["is_unique"], false);

    assert_eq!(app.delete("/fields/posts/views").await.status, 204);
    app.get("/fields/posts/views")
        .await
        .assert_error(403, "FORBIDDEN");
    let all = app.get("/fields").await.data();
    assert_eq!(names(&all, "field"), vec!["id", "slug"]);
    app.stop().await;
}

#[actix_web::test]
async fn many_to_one_relation_creates_a_real_foreign_key() {
    let app = spawn_app().await;
    app.post("/collections", json!({"collection": "authors", "schema": {}}))
        .await
        .data();
    app.post("/collections", json!({"collection": "articles", "schema": {}}))
        .await
        .data();
    app.post(
        "/fields/articles",
        json!({"field": "author", "type": "integer", "meta": {"special": ["m2o"]}}),
    )
    .await
    .data();
    app.post(
        "/fields/authors",
        json!({"field": "articles", "type": "alias", "meta": {"special": ["o2m"]}}),
    )
    .await
    .data();

    let relation = app
        .post(
            "/relations",
            json!({"collection": "articles", "field": "author", "related_collection": "authors",
                   "schema": {"on_delete": "SET NULL"}, "meta": {"one_field": "articles"}}),
        )
        .await
        .data();
    assert_eq!(relation["collection"], "articles");
    assert_eq!(relation["field"], "author");
    assert_eq!(relation["related_collection"], "authors");
    assert_eq!(relation["schema"]["constraint_name"], "articles_author_foreign");
    assert_eq!(relation["schema"]["foreign_key_table"], "authors");
    assert_eq!(relation["schema"]["foreign_key_column"], "id");
    assert_eq!(relation["schema"]["on_delete"], "SET NULL");
    assert_eq!(relation["meta"]["many_collection"], "articles");
    assert_eq!(relation["meta"]["one_collection"], "authors");
    assert_eq!(relation["meta"]["one_field"], "articles");
    let author_field = app.get("/fields/articles/author").await.data();
    assert_eq!(author_field["schema"]["foreign_key_table"], "authors");

    // The key is enforced by Postgres, and ON DELETE SET NULL is real.
    app.sql("insert into authors default values; insert into articles (author) values (1)")
        .await;
    app.sql("delete from authors where id = 1").await;

    assert_eq!(app.get("/relations").await.data().as_array().unwrap().len(), 1);
    assert_eq!(
        app.get("/relations/articles")
            .await
            .data()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let patched = app
        .patch(
            "/relations/articles/author",
            json!({"schema": {"on_delete": "CASCADE"}}),
        )
        .await
        .data();
    assert_eq!(patched["schema"]["on_delete"], "CASCADE");

    assert_eq!(app.delete("/relations/articles/author").await.status, 204);
    app.get("/relations/articles/author")
        .await
        .assert_error(403, "FORBIDDEN");
    let author_field = app.get("/fields/articles/author").await.data();
    assert_eq!(author_field["schema"]["foreign_key_table"], Value::Null);
    app.stop().await;
}

#[actix_web::test]
async fn many_to_many_through_a_junction_collection() {
    let app = spawn_app().await;
    for c in ["articles", "tags"] {
        app.post("/collections", json!({"collection": c, "schema": {}}))
            .await
            .data();
    }
    app.post(
        "/collections",
        json!({"collection": "articles_tags", "schema": {}, "meta": {"hidden": true},
        "fields": [
          {"field": "id", "type": "integer", "schema": {"is_primary_key": true, "has_auto_increment": true}},
          {"field": "articles_id", "type": "integer"},
          {"field": "tags_id", "type": "integer"}
        ]}),
    )
    .await
    .data();
    app.post(
        "/fields/articles",
        json!({"field": "tags", "type": "alias", "meta": {"special": ["m2m"]}}),
    )
    .await
    .data();
    app.post(
        "/relations",
        json!({"collection": "articles_tags", "field": "tags_id", "related_collection": "tags",
               "schema": {"on_delete": "CASCADE"}, "meta": {"junction_field": "articles_id"}}),
    )
    .await
    .data();
    app.post(
        "/relations",
        json!({"collection": "articles_tags", "field": "articles_id", "related_collection": "articles",
               "schema": {"on_delete": "CASCADE"}, "meta": {"one_field": "tags", "junction_field": "tags_id"}}),
    )
    .await
    .data();
    let relations = app.get("/relations/articles_tags").await.data();
    assert_eq!(relations.as_array().unwrap().len(), 2);
    assert_eq!(app.get("/fields/articles/tags").await.data()["type"], "alias");

    // Deleting an article cascades through the junction.
    app.sql("insert into articles default values; insert into tags default values; \
             insert into articles_tags (articles_id, tags_id) values (1, 1); delete from articles where id = 1")
        .await;
    // Deleting a related collection drops the foreign keys pointing at it, not the junction.
    assert_eq!(app.delete("/collections/tags").await.status, 204);
    let relations = app.get("/relations/articles_tags").await.data();
    assert_eq!(names(&relations, "field"), vec!["articles_id"]);
    assert_eq!(
        app.get("/collections/articles_tags").await.data()["collection"],
        "articles_tags"
    );
    app.stop().await;
}

#[actix_web::test]
async fn tables_created_in_sql_are_introspected() {
    let app = spawn_app().await;
    app.sql(
        "create table authors (id bigserial primary key, name varchar(80) not null unique, bio text default 'n/a');
         create table books (isbn char(13) primary key, author bigint references authors(id) on delete cascade,
                             price numeric(8,2) default 9.99, tags jsonb, published timestamptz default now(),
                             ts tsvector);
         comment on column books.price is 'in EUR';
         create table no_pk (line text);",
    )
    .await;
    app.eventually("books to appear", || async {
        app.get("/collections/books").await.status == 200
    })
    .await;

    let collections = names(&app.get("/collections").await.data(), "collection");
    assert_eq!(
        collections,
        vec!["authors", "books"],
        "tables without a primary key are not served"
    );

    let id = app.get("/fields/authors/id").await.data();
    assert_eq!(id["type"], "bigInteger");
    assert_eq!(id["schema"]["has_auto_increment"], true);
    let name = app.get("/fields/authors/name").await.data();
    assert_eq!(
        (name["type"].clone(), name["schema"]["max_length"].clone()),
        (json!("string"), json!(80))
    );
    assert_eq!(name["schema"]["is_unique"], true);
    assert_eq!(name["schema"]["is_nullable"], false);
    assert_eq!(
        app.get("/fields/authors/bio").await.data()["schema"]["default_value"],
        "n/a"
    );

    let price = app.get("/fields/books/price").await.data();
    assert_eq!(price["type"], "decimal");
    assert_eq!(price["schema"]["default_value"], 9.99);
    assert_eq!(price["schema"]["numeric_precision"], 8);
    assert_eq!(price["schema"]["comment"], "in EUR");
    assert_eq!(app.get("/fields/books/tags").await.data()["type"], "json");
    assert_eq!(
        app.get("/fields/books/published").await.data()["type"],
        "timestamp"
    );
    assert_eq!(app.get("/fields/books/ts").await.data()["type"], "unknown");

    let relation = app.get("/relations/books/author").await.data();
    assert_eq!(relation["related_collection"], "authors");
    assert_eq!(relation["schema"]["on_delete"], "CASCADE");
    assert_eq!(relation["meta"], Value::Null);

    // Meta can be added to an introspected table.
    let patched = app
        .patch("/collections/books", json!({"meta": {"icon": "book"}}))
        .await
        .data();
    assert_eq!(patched["meta"]["icon"], "book");
    app.stop().await;
}

#[actix_web::test]
async fn ddl_from_outside_refreshes_the_schema_without_a_restart() {
    let app = spawn_app().await;
    app.post("/collections", json!({"collection": "notes", "schema": {}}))
        .await
        .data();

    app.sql("alter table notes add column body text").await;
    app.eventually("the new column", || async {
        app.get("/fields/notes/body").await.status == 200
    })
    .await;

    app.sql("alter table notes rename to memos").await;
    app.eventually("the rename", || async {
        app.get("/collections/memos").await.status == 200
    })
    .await;
    app.get("/collections/notes").await.assert_error(403, "FORBIDDEN");

    app.sql("drop table memos").await;
    app.eventually("the drop", || async {
        app.get("/collections/memos").await.status == 403
    })
    .await;
    app.stop().await;
}

#[actix_web::test]
async fn several_collections_are_created_all_or_nothing() {
    let app = spawn_app().await;
    let created = app
        .post(
            "/collections",
            json!([{"collection": "one", "schema": {}}, {"collection": "two", "schema": {}}]),
        )
        .await
        .data();
    assert_eq!(names(&created, "collection"), vec!["one", "two"]);

    // The second item is invalid: neither is created.
    let res = app
        .post(
            "/collections",
            json!([{"collection": "three", "schema": {}},
                   {"collection": "four", "schema": {}, "fields": [{"field": "x", "type": "nope"}]}]),
        )
        .await;
    res.assert_error(400, "INVALID_PAYLOAD");
    // ... also when Postgres is the one refusing, after the first table was made.
    let res = app
        .post(
            "/collections",
            json!([{"collection": "three", "schema": {}},
                   {"collection": "four", "schema": {},
                    "fields": [{"field": "d", "type": "date", "schema": {"default_value": "not a date"}}]}]),
        )
        .await;
    res.assert_error(400, "INVALID_PAYLOAD");
    app.get("/collections/three").await.assert_error(403, "FORBIDDEN");
    assert_eq!(
        names(&app.get("/collections").await.data(), "collection"),
        vec!["one", "two"]
    );
    app.stop().await;
}

#[actix_web::test]
async fn fields_read_back_as_directus_reports_them() {
    let app = spawn_app().await;
    app.post(
        "/collections",
        json!({"collection": "docs", "schema": {},
        "fields": [
          {"field": "id", "type": "integer", "schema": {"is_primary_key": true, "has_auto_increment": true}},
          {"field": "a", "type": "string", "meta": {"interface": "input"}},
          {"field": "b", "type": "string", "meta": {"interface": "input"}}
        ]}),
    )
    .await
    .data();
    // Serial keys read back as in Directus.
    let id = app.get("/fields/docs/id").await.data();
    assert_eq!(id["schema"]["default_value"], "nextval('docs_id_seq'::regclass)");
    assert_eq!(
        (
            id["schema"]["is_unique"].clone(),
            id["schema"]["is_indexed"].clone()
        ),
        (json!(true), json!(false))
    );
    assert!(
        id["schema"].get("schema").is_none(),
        "Directus's column object has no `schema` key"
    );
    // Field meta gets a sort: array order at creation, then one past the highest.
    assert_eq!(app.get("/fields/docs/a").await.data()["meta"]["sort"], 2);
    assert_eq!(app.get("/fields/docs/b").await.data()["meta"]["sort"], 3);
    let c = app
        .post("/fields/docs", json!({"field": "c", "type": "text", "meta": {}}))
        .await
        .data();
    assert_eq!(c["meta"]["sort"], 4);
    // A plain index reads back as `is_indexed`.
    let indexed = app
        .post(
            "/fields/docs",
            json!({"field": "d", "type": "integer", "schema": {"is_indexed": true}}),
        )
        .await
        .data();
    assert_eq!(
        (
            indexed["schema"]["is_indexed"].clone(),
            indexed["schema"]["is_unique"].clone()
        ),
        (json!(true), json!(false))
    );
    // Deleting a field that does not exist is a no-op 204, as in Directus.
    assert_eq!(app.delete("/fields/docs/never_was").await.status, 204);
    app.stop().await;
}
