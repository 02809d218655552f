//! The permission matrix: public, an editor whose policy reads and updates only their own
//! articles (`author = $CURRENT_USER`) with a field list, and the admin — across reads, query
//! parameters, relations, counts and batch writes. Also the system collections behind
//! `/users`, `/roles`, `/policies`, `/permissions`, `/access`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, fresh_database, spawn_app_with, test_config};
use reqwest::Method;
use serde_json::{Value, json};

const EDITOR: &str = "00000000-0000-4000-8000-00000000000e";
const OTHER: &str = "00000000-0000-4000-8000-00000000000f";
const EDITOR_ROLE: &str = "00000000-0000-4000-8000-0000000000e1";
const EDITOR_POLICY: &str = "00000000-0000-4000-8000-0000000000e2";

struct World {
    app: TestApp,
    editor: String,
}

async fn world() -> World {
    let mut config = test_config(&fresh_database().await);
    config.auth.login_stall = Duration::from_millis(1);
    config.rate_limits.auth.enabled = false;
    let app = spawn_app_with(config).await;
    let hash = directrix::core::password::hash("editor-pw").unwrap();
    app.sql(&format!(
        r#"
        create table articles (
            id serial primary key,
            title text,
            status text not null default 'draft',
            secret text,
            author uuid references directrix.users (id)
        );
        create table comments (
            id serial primary key,
            body text,
            article integer references articles (id)
        );
        insert into directrix.roles (id, name) values ('{EDITOR_ROLE}', 'Editor');
        insert into directrix.policies (id, name, app_access) values ('{EDITOR_POLICY}', 'Editing', true);
        insert into directrix.access (role, policy) values ('{EDITOR_ROLE}', '{EDITOR_POLICY}');
        insert into directrix.users (id, email, password, role) values
            ('{EDITOR}', 'editor@example.com', '{hash}', '{EDITOR_ROLE}'),
            ('{OTHER}', 'other@example.com', '{hash}', '{EDITOR_ROLE}');
        insert into directrix.permissions (policy, collection, action, permissions, validation, presets, fields) values
            ('{EDITOR_POLICY}', 'articles', 'read', '{{"author": {{"_eq": "$CURRENT_USER"}}}}', null, null,
             'id,title,status,secret,author'),
            ('{EDITOR_POLICY}', 'articles', 'create', null, '{{"title": {{"_nnull": true}}}}',
             '{{"status": "draft", "author": "$CURRENT_USER"}}', 'title,status,author'),
            ('{EDITOR_POLICY}', 'articles', 'update', '{{"author": {{"_eq": "$CURRENT_USER"}}}}', null, null,
             'title'),
            ('{EDITOR_POLICY}', 'comments', 'read', null, null, null, '*');
        insert into directrix.permissions (policy, collection, action, permissions, fields)
            select a.policy, 'articles', 'read', '{{"status": {{"_eq": "published"}}}}', 'id,title,status'
            from directrix.access a where a.role is null and a."user" is null;
        insert into articles (title, status, secret, author) values
            ('Mine, published', 'published', 's1', '{EDITOR}'),
            ('Mine, draft', 'draft', 's2', '{EDITOR}'),
            ('Theirs, published', 'published', 's3', '{OTHER}'),
            ('Theirs, draft', 'draft', 's4', '{OTHER}');
        insert into comments (body, article) values ('on mine', 1), ('on theirs', 3);
        insert into directrix.relations (many_collection, many_field, one_collection, one_field)
            values ('comments', 'article', 'articles', 'comments');
        insert into directrix.fields (collection, field, special) values ('articles', 'comments', '{{o2m}}');
        "#
    ))
    .await;
    // The snapshot must see the new tables before the first request.
    app.eventually("tables in the snapshot", || async {
        app.get("/items/comments").await.status == 200
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
    let editor = login["access_token"].as_str().unwrap().to_string();
    World { app, editor }
}

impl World {
    async fn public(&self, path: &str) -> common::Reply {
        self.app.send(Method::GET, path, None, None).await
    }

    async fn editor(&self, method: Method, path: &str, body: Option<Value>) -> common::Reply {
        self.app.send(method, path, body, Some(&self.editor)).await
    }
}

fn titles(data: &Value) -> Vec<String> {
    let mut titles: Vec<String> = data
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["title"].as_str().unwrap_or_default().to_string())
        .collect();
    titles.sort();
    titles
}

#[actix_web::test]
async fn reads_show_exactly_the_permitted_rows_and_fields() {
    let w = world().await;
    // Public: published rows, three fields; `*` narrows silently.
    let public = w.public("/items/articles?sort=id").await.data();
    assert_eq!(titles(&public), ["Mine, published", "Theirs, published"]);
    let keys: Vec<&String> = public[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["id", "title", "status"]);
    // Editor: own rows only, with the fields of the editor's list.
    let editor = w.editor(Method::GET, "/items/articles", None).await.data();
    assert_eq!(titles(&editor), ["Mine, draft", "Mine, published"]);
    assert!(editor[0]["secret"].is_string());
    // Admin: everything.
    assert_eq!(
        w.app
            .get("/items/articles")
            .await
            .data()
            .as_array()
            .unwrap()
            .len(),
        4
    );
    // Someone else's article by id: as if it did not exist.
    w.editor(Method::GET, "/items/articles/3", None)
        .await
        .assert_error(403, "FORBIDDEN");
    w.public("/items/articles/2").await.assert_error(403, "FORBIDDEN");
    assert_eq!(
        w.public("/items/articles/1").await.data()["title"],
        "Mine, published"
    );
    // Collections without any permission.
    w.public("/items/comments").await.assert_error(403, "FORBIDDEN");
    w.app.stop().await;
}

#[actix_web::test]
async fn no_query_parameter_reaches_an_unreadable_field() {
    let w = world().await;
    for path in [
        "/items/articles?fields=secret",
        "/items/articles?fields=id,secret",
        "/items/articles?filter[secret][_eq]=s1",
        "/items/articles?filter[_or][0][secret][_nnull]=true",
        "/items/articles?sort=secret",
        "/items/articles?aggregate[max]=secret",
        "/items/articles?aggregate[count]=author",
        "/items/articles?groupBy[]=author",
        "/items/articles?fields=author.email",
    ] {
        let reply = w.public(path).await;
        reply.assert_error(403, "FORBIDDEN");
    }
    // Search looks only in readable fields: the secret is not found through it.
    let found = w.public("/items/articles?search=s1").await.data();
    assert_eq!(found, json!([]));
    let found = w.public("/items/articles?search=published").await.data();
    assert_eq!(titles(&found), ["Mine, published", "Theirs, published"]);
    // Counts count what the caller may see.
    let meta = w
        .public("/items/articles?meta=*&filter[title][_contains]=Mine")
        .await
        .json();
    assert_eq!(meta["meta"], json!({"total_count": 2, "filter_count": 1}));
    let agg = w.public("/items/articles?aggregate[count]=*").await.data();
    assert_eq!(agg, json!([{"count": "2"}]));
    let grouped = w
        .editor(
            Method::GET,
            "/items/articles?aggregate[count]=*&groupBy[]=status&sort=status",
            None,
        )
        .await
        .data();
    assert_eq!(
        grouped,
        json!([{"status": "draft", "count": "1"}, {"status": "published", "count": "1"}])
    );
    // Relations: the editor may read comments, and through them only their own articles.
    let comments = w
        .editor(
            Method::GET,
            "/items/comments?fields=body,article.title&sort=id",
            None,
        )
        .await
        .data();
    assert_eq!(comments[0]["article"]["title"], "Mine, published");
    assert_eq!(
        comments[1]["article"],
        Value::Null,
        "a related row the editor may not read"
    );
    // A filter through a relation sees only related rows the caller may read, so it cannot
    // probe values of someone else's article.
    let probe = w
        .editor(
            Method::GET,
            "/items/comments?filter[article][secret][_eq]=s3",
            None,
        )
        .await
        .data();
    assert_eq!(probe, json!([]));
    let own = w
        .editor(
            Method::GET,
            "/items/comments?filter[article][secret][_eq]=s1&fields=body",
            None,
        )
        .await
        .data();
    assert_eq!(own, json!([{"body": "on mine"}]));
    // Users behind the articles: an app-access policy reads its own user only (Directus's
    // minimal app permissions), so the editor's own articles show the editor's email.
    let authors = w
        .editor(Method::GET, "/items/articles?fields=author.email", None)
        .await
        .data();
    assert_eq!(
        authors,
        json!([{"author": {"email": "editor@example.com"}}, {"author": {"email": "editor@example.com"}}])
    );
    w.editor(Method::GET, "/items/articles?fields=author.token", None)
        .await
        .assert_error(403, "FORBIDDEN");
    w.app.stop().await;
}

#[actix_web::test]
async fn writes_follow_presets_validation_and_item_rules() {
    let w = world().await;
    let created = w
        .editor(Method::POST, "/items/articles", Some(json!({"title": "New"})))
        .await
        .data();
    assert_eq!(created["status"], "draft", "preset");
    assert_eq!(created["author"], EDITOR, "preset from $CURRENT_USER");
    let invalid = w
        .editor(Method::POST, "/items/articles", Some(json!({"title": null})))
        .await;
    invalid.assert_error(400, "FAILED_VALIDATION");
    // A field outside the create list.
    w.editor(
        Method::POST,
        "/items/articles",
        Some(json!({"title": "x", "secret": "y"})),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    // A batch with one item the editor may not update: nothing is written.
    let batch = w
        .editor(
            Method::PATCH,
            "/items/articles",
            Some(json!([{"id": 1, "title": "changed"}, {"id": 3, "title": "changed"}])),
        )
        .await;
    batch.assert_error(403, "FORBIDDEN");
    let titles_now = titles(&w.app.get("/items/articles").await.data());
    assert!(!titles_now.contains(&"changed".to_string()), "{titles_now:?}");
    // Own item: allowed.
    let updated = w
        .editor(
            Method::PATCH,
            "/items/articles/1",
            Some(json!({"title": "Mine, renamed"})),
        )
        .await
        .data();
    assert_eq!(updated["title"], "Mine, renamed");
    // A field outside the update list, and someone else's item.
    w.editor(
        Method::PATCH,
        "/items/articles/1",
        Some(json!({"status": "published"})),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    w.editor(Method::PATCH, "/items/articles/3", Some(json!({"title": "x"})))
        .await
        .assert_error(403, "FORBIDDEN");
    // No delete permission at all.
    w.editor(Method::DELETE, "/items/articles/1", None)
        .await
        .assert_error(403, "FORBIDDEN");
    let public_post = w
        .app
        .send(
            Method::POST,
            "/items/articles",
            Some(json!({"title": "anon"})),
            None,
        )
        .await;
    public_post.assert_error(403, "FORBIDDEN");
    assert_eq!(
        w.app
            .get("/items/articles")
            .await
            .data()
            .as_array()
            .unwrap()
            .len(),
        5
    );
    w.app.stop().await;
}

#[actix_web::test]
async fn permission_changes_apply_at_once() {
    let w = world().await;
    assert_eq!(
        w.editor(Method::GET, "/items/articles", None)
            .await
            .data()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    w.app
        .sql(&format!(
            "update directrix.permissions set permissions = null where policy = '{EDITOR_POLICY}' and action = 'read' and collection = 'articles'"
        ))
        .await;
    w.app
        .eventually("the widened rule applies", || async {
            w.editor(Method::GET, "/items/articles", None)
                .await
                .data()
                .as_array()
                .unwrap()
                .len()
                == 4
        })
        .await;
    w.app.stop().await;
}

#[actix_web::test]
async fn system_collections_use_the_same_engine() {
    let w = world().await;
    // Admin: the whole query language on users, roles, policies, permissions and access.
    let users = w
        .app
        .get("/users?fields=email,role.name&filter[email][_ends_with]=@example.com&sort=email")
        .await
        .data();
    let emails: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, [ADMIN_EMAIL, "editor@example.com", "other@example.com"]);
    assert_eq!(users[1]["role"]["name"], "Editor");
    let me = w.app.get("/users/me?fields=email,password,token").await.data();
    assert_eq!(me["email"], ADMIN_EMAIL);
    assert_eq!(me["password"], "**********", "hashes never leave the server");
    assert_eq!(me["token"], "**********");
    assert!(w.app.get("/roles").await.data().as_array().unwrap().len() >= 2);
    assert!(!w.app.get("/policies").await.data().as_array().unwrap().is_empty());
    assert!(!w.app.get("/access").await.data().as_array().unwrap().is_empty());
    let rows = w
        .app
        .get(&format!("/permissions?filter[policy][_eq]={EDITOR_POLICY}"))
        .await
        .data();
    assert_eq!(rows.as_array().unwrap().len(), 4);
    // With app access, a user reads their own row and roles, nothing more.
    let visible = w.editor(Method::GET, "/users?fields=email", None).await.data();
    assert_eq!(visible, json!([{"email": "editor@example.com"}]));
    assert_eq!(
        w.editor(Method::GET, "/users/me?fields=email", None).await.data(),
        json!({"email": "editor@example.com"})
    );
    w.editor(Method::GET, &format!("/users/{OTHER}"), None)
        .await
        .assert_error(403, "FORBIDDEN");
    let roles = w.editor(Method::GET, "/roles?fields=name", None).await.data();
    assert_eq!(roles, json!([{"name": "Editor"}]));
    // Without app access and without a permission on users, /users/me still gives the id.
    w.app
        .sql(&format!(
            "update directrix.policies set app_access = false where id = '{EDITOR_POLICY}'"
        ))
        .await;
    w.app
        .eventually("app access removed", || async {
            w.editor(Method::GET, "/users/me", None).await.json()["data"] == json!({"id": EDITOR})
        })
        .await;
    w.editor(Method::GET, "/users", None)
        .await
        .assert_error(403, "FORBIDDEN");
    w.public("/users/me")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    // A user created through /users logs in with the password given; a static token set
    // through /users authenticates.
    let created = w
        .app
        .post(
            "/users",
            json!({"email": "new@example.com", "password": "new-pw", "role": EDITOR_ROLE, "token": "new-static-token"}),
        )
        .await
        .data();
    assert_eq!(created["password"], "**********");
    let login = w
        .app
        .send(
            Method::POST,
            "/auth/login",
            Some(json!({"email": "new@example.com", "password": "new-pw"})),
            None,
        )
        .await;
    assert!(login.data()["access_token"].is_string());
    let mine = w
        .app
        .send(Method::GET, "/users/me", None, Some("new-static-token"))
        .await
        .data();
    assert_eq!(mine["id"], created["id"]);
    // The schema API keeps to user collections.
    let collections = w.app.get("/collections").await.data();
    assert!(
        collections
            .as_array()
            .unwrap()
            .iter()
            .all(|c| !c["collection"].as_str().unwrap().starts_with("directus_"))
    );
    w.app
        .delete("/collections/directus_users")
        .await
        .assert_error(403, "FORBIDDEN");
    // And admin login still works.
    let admin = w
        .app
        .send(
            Method::POST,
            "/auth/login",
            Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
            None,
        )
        .await;
    assert_eq!(admin.status, 200);
    w.app.stop().await;
}

#[actix_web::test]
async fn system_collections_have_directus_alias_fields() {
    let w = world().await;
    let roles = w
        .app
        .get(&format!(
            "/roles/{EDITOR_ROLE}?fields=name,users.email,policies.policy.name"
        ))
        .await
        .data();
    let mut emails: Vec<&str> = roles["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    emails.sort();
    assert_eq!(emails, ["editor@example.com", "other@example.com"]);
    assert_eq!(roles["policies"][0]["policy"]["name"], "Editing");
    let policy = w
        .app
        .get(&format!(
            "/policies/{EDITOR_POLICY}?fields=name,permissions.collection,permissions.action"
        ))
        .await
        .data();
    assert_eq!(policy["permissions"].as_array().unwrap().len(), 4);
    w.app.stop().await;
}

#[actix_web::test]
async fn ip_allow_lists_drop_policies_for_other_addresses() {
    let w = world().await;
    w.app
        .patch(
            &format!("/policies/{EDITOR_POLICY}"),
            json!({"ip_access": ["10.0.0.0/8", "192.168.1.1"]}),
        )
        .await
        .data();
    w.app
        .eventually("the policy is dropped for 127.0.0.1", || async {
            w.editor(Method::GET, "/items/articles", None).await.status == 403
        })
        .await;
    let policy = w
        .app
        .get(&format!("/policies/{EDITOR_POLICY}?fields=ip_access"))
        .await
        .data();
    assert_eq!(policy["ip_access"], json!(["10.0.0.0/8", "192.168.1.1"]));
    w.app
        .patch(
            &format!("/policies/{EDITOR_POLICY}"),
            json!({"ip_access": "127.0.0.0/8"}),
        )
        .await
        .data();
    w.app
        .eventually("the policy applies again", || async {
            w.editor(Method::GET, "/items/articles", None).await.status == 200
        })
        .await;
    w.app.stop().await;
}

#[actix_web::test]
async fn policies_add_up_across_roles_users_and_parents() {
    let w = world().await;
    // A second policy attached to the editor directly: every article, but only id and title.
    // Where the two policies disagree, a field shows only in rows its own rule admits.
    w.app
        .sql(&format!(
            r#"insert into directrix.policies (id, name) values ('00000000-0000-4000-8000-0000000000d1', 'Titles');
               insert into directrix.access ("user", policy) values ('{EDITOR}', '00000000-0000-4000-8000-0000000000d1');
               insert into directrix.permissions (policy, collection, action, fields)
               values ('00000000-0000-4000-8000-0000000000d1', 'articles', 'read', 'id,title');"#
        ))
        .await;
    w.app
        .eventually("the second policy applies", || async {
            w.editor(Method::GET, "/items/articles", None).await.json()["data"]
                .as_array()
                .is_some_and(|rows| rows.len() == 4)
        })
        .await;
    let rows = w
        .editor(
            Method::GET,
            "/items/articles?fields=id,title,secret&sort=id",
            None,
        )
        .await
        .data();
    let secrets: Vec<&Value> = rows.as_array().unwrap().iter().map(|r| &r["secret"]).collect();
    assert_eq!(secrets, [&json!("s1"), &json!("s2"), &Value::Null, &Value::Null]);
    // The hidden values cannot be searched or counted either.
    assert_eq!(
        w.editor(Method::GET, "/items/articles?search=s3", None)
            .await
            .data(),
        json!([])
    );
    let counted = w
        .editor(Method::GET, "/items/articles?aggregate[count]=secret", None)
        .await
        .data();
    assert_eq!(counted, json!([{"count": {"secret": "2"}}]));
    // A role nested under the editor role inherits its policies.
    let hash = directrix::core::password::hash("child-pw").unwrap();
    w.app
        .sql(&format!(
            r#"insert into directrix.roles (id, name, parent) values ('00000000-0000-4000-8000-0000000000c1', 'Junior', '{EDITOR_ROLE}');
               insert into directrix.users (id, email, password, role) values
                 ('00000000-0000-4000-8000-0000000000c2', 'junior@example.com', '{hash}', '00000000-0000-4000-8000-0000000000c1');
               insert into articles (title, status, secret, author) values ('Junior''s', 'draft', 's5', '00000000-0000-4000-8000-0000000000c2');"#
        ))
        .await;
    let junior = w
        .app
        .send(
            Method::POST,
            "/auth/login",
            Some(json!({"email": "junior@example.com", "password": "child-pw"})),
            None,
        )
        .await
        .data();
    let token = junior["access_token"].as_str().unwrap();
    let theirs = w
        .app
        .send(Method::GET, "/items/articles?fields=title", None, Some(token))
        .await
        .data();
    assert_eq!(theirs, json!([{"title": "Junior's"}]));
    // Updating one's own user needs an update permission on directus_users, as in Directus.
    w.editor(Method::PATCH, "/users/me", Some(json!({"first_name": "Ed"})))
        .await
        .assert_error(403, "FORBIDDEN");
    let me = w
        .app
        .patch("/users/me", json!({"first_name": "Admin"}))
        .await
        .data();
    assert_eq!(me["first_name"], "Admin");
    w.app.stop().await;
}

#[actix_web::test]
async fn counts_of_related_rows_count_only_readable_ones() {
    let w = world().await;
    w.app
        .sql(&format!(
            r#"insert into comments (body, article) values ('hidden note', 2);
               update directrix.permissions set permissions = '{{"body": {{"_eq": "on mine"}}}}'
               where policy = '{EDITOR_POLICY}' and collection = 'comments';
               update directrix.permissions set fields = 'id,title,status,secret,author,comments'
               where policy = '{EDITOR_POLICY}' and collection = 'articles' and action = 'read';"#
        ))
        .await;
    w.app
        .eventually("the comment rule applies", || async {
            w.editor(Method::GET, "/items/comments", None).await.json()["data"]
                .as_array()
                .is_some_and(|rows| rows.len() == 1)
        })
        .await;
    let counted = w
        .editor(
            Method::GET,
            "/items/articles?fields=title,count(comments)&sort=id",
            None,
        )
        .await
        .data();
    assert_eq!(
        counted,
        json!([{"title": "Mine, published", "comments_count": "1"}, {"title": "Mine, draft", "comments_count": "0"}])
    );
    let filtered = w
        .editor(
            Method::GET,
            "/items/articles?fields=title&filter[count(comments)][_gt]=0",
            None,
        )
        .await
        .data();
    assert_eq!(filtered, json!([{"title": "Mine, published"}]));
    // The admin counts everything.
    let all = w
        .app
        .get("/items/articles?fields=title&filter[count(comments)][_gt]=0&sort=id")
        .await
        .data();
    assert_eq!(all.as_array().unwrap().len(), 3);
    w.app.stop().await;
}

#[actix_web::test]
async fn deletes_follow_the_delete_rule() {
    let w = world().await;
    w.app
        .sql(&format!(
            r#"insert into directrix.permissions (policy, collection, action, permissions)
               values ('{EDITOR_POLICY}', 'articles', 'delete', '{{"author": {{"_eq": "$CURRENT_USER"}}}}');"#
        ))
        .await;
    w.app
        .eventually("the delete rule applies", || async {
            w.editor(Method::DELETE, "/items/articles/3", None).await.code() == "FORBIDDEN"
                && w.editor(Method::DELETE, "/items/articles/2", None).await.status == 204
        })
        .await;
    // A batch naming one item the editor may not delete deletes nothing.
    w.editor(Method::DELETE, "/items/articles", Some(json!([1, 4])))
        .await
        .assert_error(403, "FORBIDDEN");
    let left = titles(&w.app.get("/items/articles").await.data());
    assert_eq!(left, ["Mine, published", "Theirs, draft", "Theirs, published"]);
    w.app.stop().await;
}

/// The ids of `data`'s rows, in order.
fn ids(data: &Value) -> Vec<i64> {
    data.as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].as_i64().unwrap())
        .collect()
}

#[actix_web::test]
async fn relational_sorts_order_hidden_related_rows_as_null() {
    let w = world().await;
    // Comments 2 and 3 are on the other user's articles (3 "Theirs, published", 4 "Theirs,
    // draft"), which the editor may not read; their titles sort 4 before 3. Comments 4 and 5
    // sit on the editor's own article and cite those hidden articles.
    w.app
        .sql(
            r#"alter table comments add column cited integer references articles (id);
               insert into directrix.relations (many_collection, many_field, one_collection)
                   values ('comments', 'cited', 'articles');
               insert into comments (body, article) values ('on their draft', 4);
               insert into comments (body, article, cited) values ('cites 3', 1, 3), ('cites 4', 1, 4);"#,
        )
        .await;
    w.app
        .sql(&format!(
            r#"update directrix.permissions set fields = 'id,title,status,secret,author,comments'
               where policy = '{EDITOR_POLICY}' and collection = 'articles' and action = 'read';"#
        ))
        .await;
    w.app
        .eventually("the new relation is in the snapshot", || async {
            w.app.get("/items/comments?sort=cited.title").await.status == 200
                && w.editor(Method::GET, "/items/articles/1?fields=comments.id", None)
                    .await
                    .status
                    == 200
        })
        .await;
    // Arrange the order a leak would show: the hidden titles decide it unless they are null.
    let sorted = w
        .editor(
            Method::GET,
            "/items/comments?sort=article.title,id&fields=id",
            None,
        )
        .await
        .data();
    // "Mine, published" holds comments 1, 4, 5; the hidden ones follow as nulls, by id.
    assert_eq!(ids(&sorted), [1, 4, 5, 2, 3]);
    let descending = w
        .editor(
            Method::GET,
            "/items/comments?sort=-article.title,id&fields=id",
            None,
        )
        .await
        .data();
    // Descending puts nulls first (Postgres), still by id among them.
    assert_eq!(ids(&descending), [2, 3, 1, 4, 5]);
    // The admin sees the real order.
    let admin = w
        .app
        .get("/items/comments?sort=article.title,id&fields=id")
        .await
        .data();
    assert_eq!(ids(&admin), [1, 4, 5, 3, 2]);

    // `deep._sort` on an O2M: the editor's article's comments by the cited (hidden) titles.
    let deep = w
        .editor(
            Method::GET,
            "/items/articles/1?fields=id,comments.id&deep[comments][_sort]=cited.title,id&deep[comments][_filter][cited][_nnull]=true",
            None,
        )
        .await
        .data();
    assert_eq!(deep["comments"], json!([{"id": 4}, {"id": 5}]));
    let deep_admin = w
        .app
        .get("/items/articles/1?fields=id,comments.id&deep[comments][_sort]=cited.title,id&deep[comments][_filter][cited][_nnull]=true")
        .await
        .data();
    assert_eq!(deep_admin["comments"], json!([{"id": 5}, {"id": 4}]));

    // Grouped aggregates order by the same expression.
    let grouped = w
        .editor(
            Method::GET,
            "/items/comments?aggregate[count]=*&groupBy[]=article&sort=article.title,article",
            None,
        )
        .await
        .data();
    let articles: Vec<i64> = grouped
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["article"].as_i64().unwrap())
        .collect();
    assert_eq!(articles, [1, 3, 4]);

    // A sort on a related field the caller may not read is refused, as a filter is.
    w.app
        .sql(
            r#"insert into directrix.permissions (policy, collection, action, fields)
               select a.policy, 'comments', 'read', '*'
               from directrix.access a where a.role is null and a."user" is null;"#,
        )
        .await;
    w.app
        .eventually("the public reads comments", || async {
            w.public("/items/comments").await.status == 200
        })
        .await;
    w.public("/items/comments?sort=article.secret")
        .await
        .assert_error(403, "FORBIDDEN");
    // The public reads published articles only: comment 3's draft title sorts as null.
    let public = w
        .public("/items/comments?sort=article.title,id&fields=id")
        .await
        .data();
    assert_eq!(ids(&public), [1, 4, 5, 2, 3]);
    w.app.stop().await;
}

#[actix_web::test]
async fn hashed_and_concealed_fields_cannot_order_or_group() {
    let w = world().await;
    for path in [
        "/users?sort=token",
        "/users?sort=-password",
        "/users?sort=tfa_secret",
        "/items/articles?sort=author.token",
        "/users?aggregate[max]=token",
        "/users?aggregate[countDistinct]=password",
        "/users?groupBy[]=token",
    ] {
        w.app.get(path).await.assert_error(400, "INVALID_QUERY");
    }
    // Counting rows that hold one is a null check, which these fields allow.
    let counted = w.app.get("/users?aggregate[count]=token").await.data();
    assert_eq!(counted, json!([{"count": {"token": "1"}}]));
    w.app.stop().await;
}

#[actix_web::test]
async fn access_changes_through_the_api_apply_to_the_very_next_request() {
    let w = world().await;
    let admin_role: String = w.app.get("/users/me?fields=role").await.data()["role"]
        .as_str()
        .unwrap()
        .to_string();
    // The notification that also clears the cache arrives a moment after the commit, and
    // usually before the next request. Without it, only the request itself can have cleared
    // the cache: the triggers go, for this database, so the test sees that alone.
    w.app
        .sql(
            "drop trigger users_changed on directrix.users; \
             drop trigger users_updated on directrix.users; \
             drop trigger permissions_changed on directrix.permissions",
        )
        .await;
    for i in 0..3 {
        let token = format!("static-token-of-admin-{i}-0123456789");
        let user = w
            .app
            .post(
                "/users",
                json!({"email": format!("admin{i}@example.com"), "role": admin_role, "token": token}),
            )
            .await
            .data();
        let me = w.app.send(Method::GET, "/users/me", None, Some(&token)).await;
        assert_eq!(me.status, 200, "the token works and is cached: {}", me.text);
        let path = format!("/users/{}", user["id"].as_str().unwrap());
        assert_eq!(w.app.delete(&path).await.status, 204);
        w.app
            .send(Method::GET, "/users/me", None, Some(&token))
            .await
            .assert_error(401, "INVALID_CREDENTIALS");
    }
    // A permission taken away: the editor's next write is refused.
    for i in 0..3 {
        let granted = w
            .app
            .post(
                "/permissions",
                json!({"policy": EDITOR_POLICY, "collection": "comments", "action": "create", "fields": ["*"]}),
            )
            .await
            .data();
        let created = w
            .editor(
                Method::POST,
                "/items/comments",
                Some(json!({"body": format!("c{i}")})),
            )
            .await;
        assert_eq!(created.status, 200, "{}", created.text);
        let path = format!("/permissions/{}", granted["id"]);
        assert_eq!(w.app.delete(&path).await.status, 204);
        w.editor(Method::POST, "/items/comments", Some(json!({"body": "late"})))
            .await
            .assert_error(403, "FORBIDDEN");
    }
    w.app.stop().await;
}

#[actix_web::test]
async fn deleted_fields_and_collections_take_their_permissions_with_them() {
    let w = world().await;
    w.app
        .post("/fields/articles", json!({"field": "tmpf", "type": "string"}))
        .await
        .data();
    w.app
        .sql(&format!(
            r#"update directrix.permissions set fields = fields || ',tmpf'
                   where policy = '{EDITOR_POLICY}' and collection = 'articles' and action = 'read';
               update directrix.permissions set
                   fields = fields || ',tmpf',
                   presets = '{{"status": "draft", "author": "$CURRENT_USER", "tmpf": "x"}}',
                   validation = '{{"_and": [{{"tmpf": {{"_eq": "x"}}}}, {{"title": {{"_nnull": true}}}}]}}'
                   where policy = '{EDITOR_POLICY}' and collection = 'articles' and action = 'create';"#
        ))
        .await;
    w.app
        .eventually("the editor reads tmpf", || async {
            w.editor(Method::GET, "/items/articles?fields=tmpf", None)
                .await
                .status
                == 200
        })
        .await;
    let rules = |action: &'static str| {
        let app = &w.app;
        async move {
            app.get(&format!(
                "/permissions?filter[policy][_eq]={EDITOR_POLICY}&filter[collection][_eq]=articles&filter[action][_eq]={action}"
            ))
            .await
            .data()[0]
                .clone()
        }
    };

    // Deleted through the API: in the same transaction, before the 204.
    assert_eq!(w.app.delete("/fields/articles/tmpf").await.status, 204);
    let read = rules("read").await;
    assert_eq!(
        read["fields"],
        json!(["id", "title", "status", "secret", "author"])
    );
    let create = rules("create").await;
    assert_eq!(create["fields"], json!(["title", "status", "author"]));
    assert_eq!(
        create["presets"],
        json!({"status": "draft", "author": "$CURRENT_USER"})
    );
    assert_eq!(
        create["validation"],
        json!({"_and": [{"title": {"_nnull": true}}]})
    );
    // A new field under the old name is not readable.
    w.app
        .post("/fields/articles", json!({"field": "tmpf", "type": "string"}))
        .await
        .data();
    w.editor(Method::GET, "/items/articles?fields=tmpf", None)
        .await
        .assert_error(403, "FORBIDDEN");

    // Dropped with SQL (the event trigger): the same, in the DROP's own transaction.
    w.app
        .sql(&format!(
            r#"update directrix.permissions set fields = fields || ',tmpf'
                   where policy = '{EDITOR_POLICY}' and collection = 'articles' and action = 'read';
               alter table articles drop column tmpf;
               alter table articles add column tmpf text;"#
        ))
        .await;
    assert!(
        !rules("read").await["fields"]
            .as_array()
            .unwrap()
            .contains(&json!("tmpf"))
    );

    // A deleted collection's permissions go; a new one of that name starts with none.
    assert_eq!(w.app.delete("/collections/comments").await.status, 204);
    let left = w
        .app
        .get("/permissions?filter[collection][_eq]=comments")
        .await
        .data();
    assert_eq!(left, json!([]));
    w.app
        .post(
            "/collections",
            json!({"collection": "comments", "schema": {}, "fields": [{"field": "body", "type": "string"}]}),
        )
        .await
        .data();
    w.editor(Method::GET, "/items/comments", None)
        .await
        .assert_error(403, "FORBIDDEN");
    // And dropped with SQL.
    w.app
        .sql(&format!(
            r#"insert into directrix.permissions (policy, collection, action, fields)
                   values ('{EDITOR_POLICY}', 'comments', 'read', '*');
               drop table comments;"#
        ))
        .await;
    let left = w
        .app
        .get("/permissions?filter[collection][_eq]=comments")
        .await
        .data();
    assert_eq!(left, json!([]));
    w.app.stop().await;
}

#[actix_web::test]
async fn a_batch_update_needs_no_update_right_on_the_key() {
    let w = world().await;
    // The editor may update `title` only; the key names the items, it is not written.
    let updated = w
        .editor(
            Method::PATCH,
            "/items/articles?fields=id,title",
            Some(json!([{"id": 1, "title": "renamed 1"}, {"id": 2, "title": "renamed 2"}])),
        )
        .await
        .data();
    assert_eq!(
        updated,
        json!([{"id": 1, "title": "renamed 1"}, {"id": 2, "title": "renamed 2"}])
    );
    // Someone else's item in the batch still refuses the whole batch.
    w.editor(
        Method::PATCH,
        "/items/articles",
        Some(json!([{"id": 1, "title": "again"}, {"id": 3, "title": "theirs"}])),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    // And a field outside the update fields is refused.
    w.editor(
        Method::PATCH,
        "/items/articles",
        Some(json!([{"id": 1, "status": "published"}])),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    assert_eq!(w.app.get("/items/articles/1").await.data()["title"], "renamed 1");
    w.app.stop().await;
}
