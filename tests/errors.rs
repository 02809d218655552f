//! Bad input of every kind gets the Directus error envelope with the right status and code —
//! never a 500, never SQL built from client text.

#![allow(clippy::unwrap_used)]

mod common;

use common::spawn_app;
use reqwest::Method;
use serde_json::json;

#[actix_web::test]
async fn malformed_and_misshapen_bodies_are_invalid_payload() {
    let app = spawn_app().await;
    // 1. Not JSON at all.
    app.send_raw(Method::POST, "/collections", "{\"collection\": ")
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    // 2. JSON of the wrong shape.
    app.post("/collections", json!([1, 2, 3]))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    // 3. A required key missing.
    let missing = app.post("/collections", json!({"schema": {}})).await;
    missing.assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(
        missing.json()["errors"][0]["extensions"]["reason"],
        "\"collection\" is required"
    );
    // 4. A key of the wrong type.
    app.post("/collections", json!({"collection": 42, "schema": {}}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    // 5. An unknown meta key (meta keys are columns; nothing unknown reaches SQL).
    app.post("/collections", json!({"collection": "a", "meta": {"drop": true}}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    // 6. A meta value of the wrong type.
    app.post(
        "/collections",
        json!({"collection": "a", "meta": {"hidden": "yes"}}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    app.stop().await;
}

#[actix_web::test]
async fn unknown_routes_methods_and_collections() {
    let app = spawn_app().await;
    // 7. Unknown path.
    let res = app.get("/nope").await;
    res.assert_error(404, "ROUTE_NOT_FOUND");
    assert_eq!(res.json()["errors"][0]["message"], "Route /nope doesn't exist.");
    // 8. Known path, unserved method (Directus answers as for an unknown route).
    app.request(Method::PUT, "/collections", Some(json!({})))
        .await
        .assert_error(404, "ROUTE_NOT_FOUND");
    // 9. Unknown collection, field and relation: FORBIDDEN, so existence is not revealed.
    app.get("/collections/ghost").await.assert_error(403, "FORBIDDEN");
    app.get("/fields/ghost").await.assert_error(403, "FORBIDDEN");
    app.get("/fields/ghost/id").await.assert_error(403, "FORBIDDEN");
    app.get("/relations/ghost/id")
        .await
        .assert_error(403, "FORBIDDEN");
    let scoped = app.get("/fields/ghost").await;
    assert_eq!(
        scoped.json()["errors"][0]["message"],
        "You don't have permission to access collection \"ghost\" or it does not exist. Queried in root."
    );
    assert_eq!(
        scoped.json()["errors"][0]["extensions"]["reason"],
        scoped.json()["errors"][0]["message"]
    );
    app.get("/relations/ghost").await.assert_error(403, "FORBIDDEN");
    app.patch("/relations/ghost/x", json!({}))
        .await
        .assert_error(403, "FORBIDDEN");
    // A PATCH without meta on an unknown name changes nothing: 204, as Directus answers.
    assert_eq!(
        app.patch("/collections/ghost", json!({"schema": {}}))
            .await
            .status,
        204
    );
    app.get("/collections/ghost").await.assert_error(403, "FORBIDDEN");
    app.delete("/collections/ghost")
        .await
        .assert_error(403, "FORBIDDEN");
    app.post("/fields/ghost", json!({"field": "a", "type": "string"}))
        .await
        .assert_error(403, "FORBIDDEN");
    app.stop().await;
}

#[actix_web::test]
async fn hostile_and_invalid_names_never_reach_sql() {
    let app = spawn_app().await;
    app.post("/collections", json!({"collection": "x", "schema": {}}))
        .await
        .data();
    // 10. An injection attempt as a collection name.
    let res = app
        .post(
            "/collections",
            json!({"collection": "\"; drop table x; --", "schema": {}}),
        )
        .await;
    res.assert_error(400, "INVALID_PAYLOAD");
    // ... and as a field name and a path segment.
    app.post(
        "/fields/x",
        json!({"field": "a\"; drop table x; --", "type": "string"}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    app.get("/collections/x%22%3B%20drop%20table%20x%3B%20--")
        .await
        .assert_error(403, "FORBIDDEN");
    assert_eq!(app.get("/collections/x").await.status, 200, "table x survived");
    // 11. Reserved prefixes.
    app.post(
        "/collections",
        json!({"collection": "directus_users", "schema": {}}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    // 12. Oversized and NUL-carrying names.
    app.post(
        "/collections",
        json!({"collection": "a".repeat(10_000), "schema": {}}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    app.post("/fields/x", json!({"field": "a\u{0}b", "type": "string"}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    app.stop().await;
}

#[actix_web::test]
async fn duplicates_bad_types_and_bad_defaults() {
    let app = spawn_app().await;
    app.post("/collections", json!({"collection": "items", "schema": {}}))
        .await
        .data();
    // 13. Duplicate collection.
    let dup = app
        .post("/collections", json!({"collection": "items", "schema": {}}))
        .await;
    dup.assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(
        dup.json()["errors"][0]["extensions"]["reason"],
        "Collection \"items\" already exists"
    );
    // ... also when the table exists but is not served (no primary key).
    app.sql("create table loose (a int)").await;
    app.post("/collections", json!({"collection": "loose", "schema": {}}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    // 14. Duplicate field.
    app.post("/fields/items", json!({"field": "id", "type": "integer"}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    // 15. Unsupported field type.
    app.post("/fields/items", json!({"field": "a", "type": "varchar(9)"}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    // 16. A default of the wrong type, and one Postgres rejects.
    app.post(
        "/fields/items",
        json!({"field": "n", "type": "integer", "schema": {"default_value": "many"}}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    app.post(
        "/fields/items",
        json!({"field": "d", "type": "date", "schema": {"default_value": "not a date"}}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    // 17. The primary key can't be deleted.
    app.delete("/fields/items/id")
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    app.stop().await;
}

#[actix_web::test]
async fn postgres_constraint_failures_map_to_directus_codes() {
    let app = spawn_app().await;
    app.post("/collections", json!({"collection": "people", "schema": {}}))
        .await
        .data();
    app.post("/collections", json!({"collection": "pets", "schema": {}}))
        .await
        .data();
    app.post("/fields/people", json!({"field": "email", "type": "string"}))
        .await
        .data();
    app.post(
        "/fields/people",
        json!({"field": "nick", "type": "string", "schema": {"max_length": 20}}),
    )
    .await
    .data();
    app.post("/fields/pets", json!({"field": "owner", "type": "integer"}))
        .await
        .data();
    app.sql(
        "insert into people (email, nick) values ('a@x', 'longer than five'), ('a@x', null); \
             insert into pets (owner) values (99)",
    )
    .await;

    // 18. Unique over duplicate data.
    let unique = app
        .patch("/fields/people/email", json!({"schema": {"is_unique": true}}))
        .await;
    unique.assert_error(400, "RECORD_NOT_UNIQUE");
    assert_eq!(unique.json()["errors"][0]["extensions"]["collection"], "people");
    // 19. A foreign key over rows that point nowhere.
    let fk = app
        .post(
            "/relations",
            json!({"collection": "pets", "field": "owner", "related_collection": "people"}),
        )
        .await;
    fk.assert_error(400, "INVALID_FOREIGN_KEY");
    assert_eq!(fk.json()["errors"][0]["extensions"]["field"], "owner");
    // 20. NOT NULL over existing nulls, and a new NOT NULL column without default on a full table.
    let nulls = app
        .patch("/fields/people/nick", json!({"schema": {"is_nullable": false}}))
        .await;
    nulls.assert_error(400, "CONTAINS_NULL_VALUES");
    assert_eq!(nulls.json()["errors"][0]["extensions"]["field"], "nick");
    app.post(
        "/fields/people",
        json!({"field": "age", "type": "integer", "schema": {"is_nullable": false}}),
    )
    .await
    .assert_error(400, "CONTAINS_NULL_VALUES");
    // 21. Shrinking a string below existing data: refused, never truncated.
    let shrunk = app
        .patch("/fields/people/nick", json!({"schema": {"max_length": 5}}))
        .await;
    shrunk.assert_error(400, "VALUE_TOO_LONG");
    assert_eq!(
        shrunk.json()["errors"][0]["extensions"],
        json!({"code": "VALUE_TOO_LONG", "collection": "people", "field": "nick"})
    );
    // 22. A type change the data can't survive.
    app.patch("/fields/people/email", json!({"type": "integer"}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    // Nothing above changed the data.
    let nick = app.get("/fields/people/nick").await.data();
    assert_eq!(nick["schema"]["max_length"], 20);
    assert_eq!(nick["schema"]["is_nullable"], true);
    assert_eq!(app.get("/fields/people/email").await.data()["type"], "string");
    app.stop().await;
}

#[actix_web::test]
async fn bad_relations_are_refused() {
    let app = spawn_app().await;
    app.post("/collections", json!({"collection": "a", "schema": {}}))
        .await
        .data();
    app.post("/fields/a", json!({"field": "b_id", "type": "integer"}))
        .await
        .data();
    app.post("/fields/a", json!({"field": "label", "type": "string"}))
        .await
        .data();
    app.post("/collections", json!({"collection": "b", "schema": {}}))
        .await
        .data();
    // 23. Unknown related collection, unknown field, bad action.
    app.post(
        "/relations",
        json!({"collection": "a", "field": "b_id", "related_collection": "zzz"}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    app.post(
        "/relations",
        json!({"collection": "a", "field": "zzz", "related_collection": "b"}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    app.post(
        "/relations",
        json!({"collection": "a", "field": "b_id", "related_collection": "b",
                                   "schema": {"on_delete": "DROP TABLE b"}}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    // 24. A key column of the wrong type.
    app.post(
        "/relations",
        json!({"collection": "a", "field": "label", "related_collection": "b"}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    // 25. Relations that do not exist can't be changed or deleted; the reasons name what is missing.
    let none = app.patch("/relations/a/b_id", json!({"meta": {}})).await;
    none.assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(
        none.json()["errors"][0]["extensions"]["reason"],
        "Field \"b_id\" in collection \"a\" doesn't have a relationship"
    );
    app.delete("/relations/a/nope")
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    // The primary key can't hold a relation.
    app.post(
        "/relations",
        json!({"collection": "a", "field": "id", "related_collection": "b"}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    // 26. A second relation on the same field.
    app.post(
        "/relations",
        json!({"collection": "a", "field": "b_id", "related_collection": "b"}),
    )
    .await
    .data();
    app.post(
        "/relations",
        json!({"collection": "a", "field": "b_id", "related_collection": "b"}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    app.stop().await;
}

#[actix_web::test]
async fn dropping_a_table_a_view_depends_on_is_refused() {
    let app = spawn_app().await;
    app.post("/collections", json!({"collection": "base", "schema": {}}))
        .await
        .data();
    app.sql("create view base_view as select id from base").await;
    // 27. The view would silently disappear with CASCADE; we refuse instead.
    app.delete("/collections/base")
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(app.get("/collections/base").await.status, 200);
    app.stop().await;
}

#[actix_web::test]
async fn authentication_errors() {
    let app = spawn_app().await;
    // 28. No token on an admin route.
    app.send(Method::GET, "/collections", None, None)
        .await
        .assert_error(403, "FORBIDDEN");
    // 29. A token nobody has.
    app.send(Method::GET, "/collections", None, Some("not-a-token"))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    // 30. A non-bearer Authorization header is ignored, as Directus's extract-token does: the
    // caller is the public, which may not read collections.
    let res = app
        .client
        .get(format!("{}/collections", app.base))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // The token also works as ?access_token=, as in Directus.
    let res = app
        .client
        .get(format!(
            "{}/collections?access_token={}",
            app.base,
            common::ADMIN_TOKEN
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.stop().await;
}

#[actix_web::test]
async fn bodies_over_max_payload_size_are_content_too_large() {
    let app = spawn_app().await;
    // 31. A 2 MB body against the default 1 MB limit.
    let big = format!(
        "{{\"collection\":\"big\",\"meta\":{{\"note\":\"{}\"}}}}",
        "x".repeat(2 * 1024 * 1024)
    );
    app.send_raw(Method::POST, "/collections", big)
        .await
        .assert_error(413, "CONTENT_TOO_LARGE");
    app.stop().await;
}

/// Sends `body` with a content type of our choosing (or none), as the admin.
async fn send_typed(
    app: &common::TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> common::Reply {
    let mut req = app
        .client
        .request(method, format!("{}{}", app.base, path))
        .bearer_auth(common::ADMIN_TOKEN)
        .body(body.to_string());
    if let Some(content_type) = content_type {
        req = req.header("content-type", content_type);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    common::Reply {
        status,
        headers,
        text,
    }
}

#[actix_web::test]
async fn nul_bytes_are_refused_before_sql() {
    let app = spawn_app().await;
    app.sql("create table notes (id serial primary key, body text, meta json)")
        .await;
    app.eventually("notes is served", || async {
        app.get("/items/notes").await.status == 200
    })
    .await;
    for path in [
        "/items/notes?search=a%00",
        "/items/notes?alias[a%00b]=body&fields=a%00b",
        "/items/notes?fields=json(meta,a%00b)",
        "/items/notes?filter[body][_eq]=a%00",
        "/items/notes?sort=body%00",
        "/items/notes/1%00",
    ] {
        let reply = app.get(path).await;
        assert!(
            reply.status == 400 || reply.status == 403,
            "{path}: {} {}",
            reply.status,
            reply.text
        );
        assert!(
            ["INVALID_QUERY", "FORBIDDEN"].contains(&reply.code().as_str()),
            "{path}: {}",
            reply.text
        );
    }
    app.get("/items/notes?search=a%00")
        .await
        .assert_error(400, "INVALID_QUERY");
    // The same through a SEARCH body (a body: its payload is refused).
    app.request(
        Method::from_bytes(b"SEARCH").unwrap(),
        "/items/notes",
        Some(json!({"query": {"search": "a\u{0}"}})),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    // Payloads: a value or a key with NUL.
    app.post("/items/notes", json!({"body": "a\u{0}b"}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    app.post("/items/notes", json!({"meta": {"k\u{0}": 1}}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    app.send(
        Method::POST,
        "/auth/login",
        Some(json!({"email": "a\u{0}@example.com", "password": "x"})),
        None,
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    // Nothing was written.
    assert_eq!(app.get("/items/notes").await.data(), json!([]));
    app.stop().await;
}

#[actix_web::test]
async fn json_bodies_need_a_json_content_type() {
    let app = spawn_app().await;
    app.sql("create table notes (id serial primary key, body text)")
        .await;
    app.eventually("notes is served", || async {
        app.get("/items/notes").await.status == 200
    })
    .await;
    let body = r#"{"body": "hi"}"#;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let reply = send_typed(&app, Method::POST, "/items/notes", content_type, body).await;
        reply.assert_error(415, "UNSUPPORTED_MEDIA_TYPE");
    }
    // JSON, with a charset or as a `+json` type, is read.
    for content_type in [
        "application/json",
        "application/json; charset=utf-8",
        "application/vnd.api+json",
    ] {
        let reply = send_typed(&app, Method::POST, "/items/notes", Some(content_type), body).await;
        assert_eq!(reply.status, 200, "{content_type}: {}", reply.text);
    }
    assert_eq!(app.get("/items/notes").await.data().as_array().unwrap().len(), 3);
    app.stop().await;
}
