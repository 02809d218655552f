//! The items service without HTTP: several writes in several collections in one caller
//! transaction (all or nothing), and the same user's permissions through the service as
//! through REST.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestApp, spawn_app};
use directrix::error::Error;
use directrix::service::auth::authenticate_token;
use directrix::service::items::ItemsQuery;
use directrix::service::{Accountability, Client, ItemsService};
use reqwest::Method;
use serde_json::{Value, json};

const READER: &str = "00000000-0000-4000-8000-0000000000b1";
const POLICY: &str = "00000000-0000-4000-8000-0000000000b2";
const READER_TOKEN: &str = "reader-static-token-0123456789";

async fn app() -> TestApp {
    let app = spawn_app().await;
    let digest = directrix::core::password::token_digest(READER_TOKEN);
    app.sql(&format!(
        r#"
        create table orders (id serial primary key, label varchar(10) not null, status text not null default 'draft');
        create table lines (id serial primary key, sku varchar(5) not null, qty integer);
        insert into directrix.policies (id, name) values ('{POLICY}', 'Reading');
        insert into directrix.users (id, email, token) values ('{READER}', 'reader@example.com', '{digest}');
        insert into directrix.access ("user", policy) values ('{READER}', '{POLICY}');
        insert into directrix.permissions (policy, collection, action, permissions, fields, presets) values
            ('{POLICY}', 'orders', 'read', '{{"status": {{"_eq": "open"}}}}', 'id,label', null),
            ('{POLICY}', 'orders', 'create', null, 'label', '{{"status": "open"}}'),
            ('{POLICY}', 'orders', 'update', '{{"status": {{"_eq": "open"}}}}', 'label', null);
        insert into orders (label, status) values ('open one', 'open'), ('draft one', 'draft');
        "#
    ))
    .await;
    app.eventually("schema", || async { app.get("/items/lines").await.status == 200 })
        .await;
    app
}

async fn count(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select count(*) from {table}")))
        .fetch_one(&app.services.pool)
        .await
        .unwrap()
}

async fn admin(app: &TestApp) -> Accountability {
    let (acc, _) = authenticate_token(&app.services, Some(common::ADMIN_TOKEN), &Client::default())
        .await
        .unwrap();
    acc
}

#[actix_web::test]
async fn writes_in_two_collections_in_one_caller_transaction_commit_or_roll_back_together() {
    let app = app().await;
    let acc = admin(&app).await;
    let schema = app.services.schema();

    // The second write fails: neither is written, activity included.
    let activity_before = count(&app, "directrix.activity").await;
    let mut tx = app.services.pool.begin().await.unwrap();
    let order = ItemsService::new(&app.services, "orders", &acc, schema.clone())
        .in_transaction(&mut tx)
        .create_one(json!({"label": "atomic"}))
        .await
        .unwrap();
    let failed = ItemsService::new(&app.services, "lines", &acc, schema.clone())
        .in_transaction(&mut tx)
        .create_one(json!({"sku": "far too long", "qty": 1}))
        .await;
    assert!(matches!(failed, Err(Error::ValueTooLong { .. })), "{failed:?}");
    drop(tx);
    assert_eq!(
        count(&app, "orders").await,
        2,
        "order {order} rolled back with the line"
    );
    assert_eq!(count(&app, "lines").await, 0);
    assert_eq!(count(&app, "directrix.activity").await, activity_before);

    // Both succeed: both are written when the caller commits, and not before.
    let mut tx = app.services.pool.begin().await.unwrap();
    let order = ItemsService::new(&app.services, "orders", &acc, schema.clone())
        .in_transaction(&mut tx)
        .create_one(json!({"label": "atomic"}))
        .await
        .unwrap();
    ItemsService::new(&app.services, "lines", &acc, schema.clone())
        .in_transaction(&mut tx)
        .update_batch(vec![])
        .await
        .unwrap();
    let line = ItemsService::new(&app.services, "lines", &acc, schema.clone())
        .in_transaction(&mut tx)
        .create_one(json!({"sku": "A1", "qty": 2}))
        .await
        .unwrap();
    // Reads on the transaction see its own writes.
    let seen = ItemsService::new(&app.services, "lines", &acc, schema.clone())
        .in_transaction(&mut tx)
        .read_one(&line, &ItemsQuery::fields("sku"))
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&seen).unwrap(),
        json!({"sku": "A1"})
    );
    assert_eq!(
        count(&app, "lines").await,
        0,
        "nothing is visible before the commit"
    );
    tx.commit().await.unwrap();
    assert_eq!(count(&app, "lines").await, 1);
    assert_eq!(count(&app, "orders").await, 3, "order {order} committed");
    assert_eq!(count(&app, "directrix.activity").await, activity_before + 2);
}

/// One case: what REST answers and what the service answers for the same user.
struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    body: Option<Value>,
}

#[actix_web::test]
async fn a_users_permissions_apply_through_the_service_as_through_rest() {
    let app = app().await;
    let (reader, _) = authenticate_token(&app.services, Some(READER_TOKEN), &Client::default())
        .await
        .unwrap();
    let cases = [
        Case {
            name: "list: only open rows, only granted fields",
            method: Method::GET,
            path: "/items/orders?sort=id",
            body: None,
        },
        Case {
            name: "a hidden row by key",
            method: Method::GET,
            path: "/items/orders/2",
            body: None,
        },
        Case {
            name: "a visible row by key",
            method: Method::GET,
            path: "/items/orders/1",
            body: None,
        },
        Case {
            name: "a filter on an ungranted field",
            method: Method::GET,
            path: "/items/orders?filter[status][_eq]=draft",
            body: None,
        },
        Case {
            name: "a collection without rights",
            method: Method::GET,
            path: "/items/lines",
            body: None,
        },
        Case {
            name: "create with a preset",
            method: Method::POST,
            path: "/items/orders",
            body: Some(json!({"label": "new"})),
        },
        Case {
            name: "create writing an ungranted field",
            method: Method::POST,
            path: "/items/orders",
            body: Some(json!({"label": "x", "status": "draft"})),
        },
        Case {
            name: "update of a hidden row",
            method: Method::PATCH,
            path: "/items/orders/2",
            body: Some(json!({"label": "y"})),
        },
        Case {
            name: "update of a visible row",
            method: Method::PATCH,
            path: "/items/orders/1",
            body: Some(json!({"label": "z"})),
        },
        Case {
            name: "delete without the right",
            method: Method::DELETE,
            path: "/items/orders/1",
            body: None,
        },
    ];
    for case in cases {
        // REST first; then the same through the service on a clean slate.
        app.sql("delete from orders where id > 2; update orders set label = 'open one' where id = 1")
            .await;
        let rest = app
            .send(
                case.method.clone(),
                case.path,
                case.body.clone(),
                Some(READER_TOKEN),
            )
            .await;
        let rest = if rest.status.is_success() {
            Ok(rest.json().get("data").cloned().unwrap_or(Value::Null))
        } else {
            Err(rest.code())
        };
        app.sql("delete from orders where id > 2; update orders set label = 'open one' where id = 1")
            .await;
        let through = through_service(&app, &reader, &case).await;
        let through = through.map_err(|err| err.code().to_string());
        // Created keys differ between the two runs; compare what the caller sees.
        let strip = |v: Result<Value, String>| {
            v.map(|mut data| {
                if let Some(object) = data.as_object_mut()
                    && case.method == Method::POST
                {
                    object.remove("id");
                }
                data
            })
        };
        if case.name.starts_with("list") {
            assert_eq!(
                rest,
                Ok(json!([{"id": 1, "label": "open one"}])),
                "the case means something"
            );
        }
        if case.name.starts_with("a hidden row") {
            assert_eq!(rest, Err("FORBIDDEN".to_string()));
        }
        assert_eq!(strip(through), strip(rest), "{}", case.name);
    }
}

async fn through_service(app: &TestApp, acc: &Accountability, case: &Case) -> Result<Value, Error> {
    let (path, query) = case.path.split_once('?').unwrap_or((case.path, ""));
    let query = ItemsQuery(directrix::core::query::params::decode(query).unwrap());
    let mut parts = path.trim_start_matches("/items/").splitn(2, '/');
    let collection = parts.next().unwrap();
    let key = parts.next();
    let mut service = ItemsService::new(&app.services, collection, acc, app.services.schema());
    let parse = |text: String| serde_json::from_str::<Value>(&text).unwrap();
    match (case.method.clone(), key) {
        (Method::GET, None) => Ok(parse(service.read_by_query(&query).await?.array())),
        (Method::GET, Some(key)) => Ok(parse(service.read_one(key, &query).await?)),
        (Method::POST, None) => {
            let created = service
                .create_and_read(vec![case.body.clone().unwrap()], false, &query)
                .await?;
            Ok(created.map(parse).unwrap_or(Value::Null))
        }
        (Method::PATCH, Some(key)) => {
            let updated = service
                .update_one_and_read(key, case.body.clone().unwrap(), &query)
                .await?;
            Ok(updated.map(parse).unwrap_or(Value::Null))
        }
        (Method::DELETE, Some(key)) => service.delete_one(key).await.map(|()| Value::Null),
        other => panic!("no such case: {other:?}"),
    }
}
