//! Activity and revisions, as Directus writes them: one activity row per item per action in
//! the same transaction as the change, revisions for creates and updates (`data` and `delta`
//! as Directus fills them), nested writes linked by `parent`, the collection's
//! `accountability` setting, login rows, `/activity` and `/revisions` read-only with Directus's
//! permission rules, and `POST /utils/revert/:revision`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{TestApp, fresh_database, spawn_app_with, test_config};
use reqwest::Method;
use serde_json::{Value, json};

const EDITOR: &str = "00000000-0000-4000-8000-0000000000a1";
const POLICY: &str = "00000000-0000-4000-8000-0000000000a2";

const DATA: &str = r#"
create table authors (id serial primary key, name varchar(20) not null);
create table articles (
    id serial primary key, title varchar(20) not null, views integer, secret varchar(255),
    author integer references authors (id)
);
create table quiet (id serial primary key, name text);
create table counted (id serial primary key, name text);
insert into directrix.fields (collection, field, special) values
    ('articles', 'secret', '{hash}'), ('authors', 'articles', '{o2m}');
insert into directrix.relations (many_collection, many_field, one_collection, one_field)
    values ('articles', 'author', 'authors', 'articles');
insert into directrix.collections (collection, accountability) values ('quiet', null), ('counted', 'activity');
"#;

async fn app() -> (TestApp, String) {
    let mut config = test_config(&fresh_database().await);
    config.auth.login_stall = Duration::from_millis(1);
    config.rate_limits.auth.enabled = false;
    let app = spawn_app_with(config).await;
    app.sql(DATA).await;
    let hash = directrix::core::password::hash("editor-pw").unwrap();
    app.sql(&format!(
        r#"
        insert into directrix.policies (id, name, app_access) values ('{POLICY}', 'Editing', true);
        insert into directrix.users (id, email, password) values ('{EDITOR}', 'editor@example.com', '{hash}');
        insert into directrix.access ("user", policy) values ('{EDITOR}', '{POLICY}');
        insert into directrix.permissions (policy, collection, action, fields) values
            ('{POLICY}', 'articles', 'read', '*'), ('{POLICY}', 'articles', 'create', '*'),
            ('{POLICY}', 'articles', 'update', 'title');
        "#
    ))
    .await;
    app.eventually("schema", || async {
        app.get("/items/counted").await.status == 200 && app.get("/activity").await.status == 200
    })
    .await;
    let login = app
        .send(
            Method::POST,
            "/auth/login",
            Some(json!({"email": "editor@example.com", "password": "editor-pw"})),
            None,
        )
        .await
        .data();
    (app, login["access_token"].as_str().unwrap().to_string())
}

/// Every activity row, oldest first, without ids and timestamps.
async fn activity(app: &TestApp) -> Vec<Value> {
    let rows = app
        .get("/activity?sort=id&fields=action,user,collection,item,ip,user_agent,origin&limit=-1")
        .await
        .data();
    rows.as_array().unwrap().clone()
}

async fn revisions(app: &TestApp) -> Vec<Value> {
    let rows = app
        .get("/revisions?sort=id&fields=id,activity.action,collection,item,data,delta,parent&limit=-1")
        .await
        .data();
    rows.as_array().unwrap().clone()
}

#[actix_web::test]
async fn creates_updates_and_deletes_write_directus_activity_and_revisions() {
    let (app, _) = app().await;
    // Arrange: the admin's login itself is activity.
    let before = activity(&app).await.len();

    // Act
    let created = app
        .post(
            "/items/articles",
            json!({"title": "One", "views": 1, "secret": "pw"}),
        )
        .await
        .data();
    let id = created["id"].to_string();
    app.patch(&format!("/items/articles/{id}"), json!({"views": 2}))
        .await;
    app.delete(&format!("/items/articles/{id}")).await;

    // Assert
    let rows = activity(&app).await;
    let rows = &rows[before..];
    let actions: Vec<&str> = rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["create", "update", "delete"]);
    for row in rows {
        assert_eq!(row["collection"], "articles");
        assert_eq!(row["item"], id);
        assert_eq!(row["ip"], "127.0.0.1");
        assert!(row["user"].is_string(), "the admin's id: {row}");
    }
    let revisions = revisions(&app).await;
    assert_eq!(revisions.len(), 2, "deletes write no revision: {revisions:?}");
    let (create, update) = (&revisions[0], &revisions[1]);
    assert_eq!(create["activity"]["action"], "create");
    assert_eq!(
        create["data"],
        json!({"title": "One", "views": 1, "secret": "**********"})
    );
    assert_eq!(create["delta"], create["data"], "a create's data is its delta");
    assert_eq!(update["activity"]["action"], "update");
    assert_eq!(update["delta"], json!({"views": 2}));
    assert_eq!(
        update["data"],
        json!({"id": created["id"], "title": "One", "views": 2, "secret": "**********"}),
        "an update's data is the item after the write, without relational fields"
    );
}

#[actix_web::test]
async fn batches_record_every_item_and_a_failed_batch_records_nothing() {
    let (app, _) = app().await;
    let before = activity(&app).await.len();
    let created = app
        .post("/items/articles", json!([{"title": "A"}, {"title": "B"}]))
        .await
        .data();
    let keys: Vec<Value> = created
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    app.patch("/items/articles", json!({"keys": keys, "data": {"views": 9}}))
        .await;
    app.patch("/items/articles", json!([{"id": keys[0], "title": "A2"}]))
        .await;
    let failed = app
        .post(
            "/items/articles",
            json!([{"title": "C"}, {"title": "far too long for twenty"}]),
        )
        .await;
    failed.assert_error(400, "VALUE_TOO_LONG");
    let rows = activity(&app).await;
    let actions: Vec<(&str, &str)> = rows[before..]
        .iter()
        .map(|r| (r["action"].as_str().unwrap(), r["item"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("create", "1"),
            ("create", "2"),
            ("update", "1"),
            ("update", "2"),
            ("update", "1")
        ]
    );
    assert_eq!(
        revisions(&app).await.len(),
        5,
        "one revision per written item, none for the failed batch"
    );
    assert_eq!(
        app.get("/items/articles").await.data().as_array().unwrap().len(),
        2
    );
}

#[actix_web::test]
async fn nested_writes_record_each_item_with_its_parent_revision() {
    let (app, _) = app().await;
    let author = app
        .post(
            "/items/authors",
            json!({"name": "Ann", "articles": [{"title": "Nested one"}, {"title": "Nested two"}]}),
        )
        .await
        .data();
    let revisions = revisions(&app).await;
    let parent = revisions
        .iter()
        .find(|r| r["collection"] == "authors")
        .expect("the author's revision");
    assert_eq!(parent["item"], author["id"].to_string());
    assert_eq!(
        parent["data"],
        json!({"name": "Ann"}),
        "relational fields are left out"
    );
    let children: Vec<&Value> = revisions
        .iter()
        .filter(|r| r["collection"] == "articles")
        .collect();
    assert_eq!(children.len(), 2, "{revisions:?}");
    for child in children {
        assert_eq!(child["parent"], parent["id"], "{child}");
    }
}

#[actix_web::test]
async fn the_collection_setting_decides_what_is_recorded() {
    let (app, _) = app().await;
    let before = activity(&app).await.len();
    app.post("/items/quiet", json!({"name": "x"})).await;
    app.post("/items/counted", json!({"name": "y"})).await;
    let rows = activity(&app).await;
    let collections: Vec<&str> = rows[before..]
        .iter()
        .map(|r| r["collection"].as_str().unwrap())
        .collect();
    assert_eq!(
        collections,
        ["counted"],
        "`null` records nothing, `activity` records activity"
    );
    assert!(revisions(&app).await.is_empty(), "`activity` keeps no revisions");
    // psql writes are invisible to the API, as in Directus.
    app.sql("insert into articles (title) values ('from psql')").await;
    assert_eq!(activity(&app).await.len(), rows.len());
}

#[actix_web::test]
async fn a_login_is_recorded_and_users_read_only_their_own_activity() {
    let (app, editor) = app().await;
    app.send(
        Method::POST,
        "/items/articles",
        Some(json!({"title": "Mine"})),
        Some(&editor),
    )
    .await;
    app.post("/items/articles", json!({"title": "Admin's"})).await;
    let own = app
        .send(Method::GET, "/activity?sort=id", None, Some(&editor))
        .await
        .data();
    let own: Vec<(String, String)> = own
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().into(),
                r["user"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        own,
        [("login".into(), EDITOR.into()), ("create".into(), EDITOR.into())],
        "an app user reads only its own rows"
    );
    // The user relation is Directus's metadata-only one, and it reads like any M2O.
    let joined = app
        .get("/activity?filter[action][_eq]=login&fields=user.email&limit=1&sort=-id")
        .await
        .data();
    assert_eq!(joined, json!([{"user": {"email": "editor@example.com"}}]));
    // Revisions need a grant; activity and revisions are read-only.
    app.send(Method::GET, "/revisions", None, Some(&editor))
        .await
        .assert_error(403, "FORBIDDEN");
    app.send(Method::GET, "/activity", None, None)
        .await
        .assert_error(403, "FORBIDDEN");
    app.post("/activity", json!({"action": "create"}))
        .await
        .assert_error(404, "ROUTE_NOT_FOUND");
    app.request(Method::DELETE, "/revisions/1", None)
        .await
        .assert_error(404, "ROUTE_NOT_FOUND");
    app.get("/items/directus_activity")
        .await
        .assert_error(403, "FORBIDDEN");
}

#[actix_web::test]
async fn revert_restores_a_revision_as_an_update_by_the_caller() {
    let (app, editor) = app().await;
    let id = app
        .post("/items/articles", json!({"title": "First", "views": 1}))
        .await
        .data()["id"]
        .clone();
    app.patch(
        &format!("/items/articles/{id}"),
        json!({"title": "Second", "views": 5}),
    )
    .await;
    let first = revisions(&app).await[0]["id"].clone();

    let reverted = app
        .request(Method::POST, &format!("/utils/revert/{first}"), None)
        .await;
    assert_eq!(reverted.status, 204, "{}", reverted.text);
    let item = app.get(&format!("/items/articles/{id}")).await.data();
    assert_eq!(
        (item["title"].clone(), item["views"].clone()),
        (json!("First"), json!(1))
    );
    let last = activity(&app).await.last().cloned().unwrap();
    assert_eq!(last["action"], "update", "a revert is recorded as an update");

    // Errors as Directus: unknown or unreadable revisions are FORBIDDEN, one without data is
    // INVALID_PAYLOAD.
    app.request(Method::POST, "/utils/revert/999", None)
        .await
        .assert_error(403, "FORBIDDEN");
    app.request(Method::POST, "/utils/revert/abc", None)
        .await
        .assert_error(403, "FORBIDDEN");
    app.send(
        Method::POST,
        &format!("/utils/revert/{first}"),
        None,
        Some(&editor),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    app.sql("update directrix.revisions set data = null where id = 1")
        .await;
    app.request(Method::POST, "/utils/revert/1", None)
        .await
        .assert_error(400, "INVALID_PAYLOAD");
}
