//! The socket's `items` message and REST answer alike, because both call the items service: one
//! user's permission matrix (rows and fields it may read, presets, fields it may not write, rows
//! it may not update, actions it lacks) asked both ways, compared case by case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/realtime.rs"]
mod realtime;

use reqwest::Method;
use serde_json::{Value, json};

const READER: &str = "00000000-0000-4000-8000-0000000000c1";
const POLICY: &str = "00000000-0000-4000-8000-0000000000c2";
const READER_TOKEN: &str = "socket-reader-token-0123456789";

/// One case, as REST sends it and as the socket's `items` message carries it.
struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    body: Option<Value>,
    message: Value,
}

fn case(name: &'static str, method: Method, path: &'static str, body: Option<Value>, message: Value) -> Case {
    Case {
        name,
        method,
        path,
        body,
        message,
    }
}

/// A REST answer or a socket reply as `Ok(data)` or `Err(code)`; created keys left out.
fn outcome(status_ok: bool, body: &Value, created: bool) -> Result<Value, String> {
    if !status_ok {
        let code = body["errors"][0]["extensions"]["code"]
            .as_str()
            .or_else(|| body["error"]["code"].as_str())
            .unwrap_or_default();
        return Err(code.to_string());
    }
    let mut data = body.get("data").cloned().unwrap_or(Value::Null);
    if created && let Some(object) = data.as_object_mut() {
        object.remove("id");
    }
    Ok(data)
}

#[actix_web::test]
async fn the_socket_items_message_answers_exactly_as_rest_for_one_users_permissions() {
    let rt = realtime::spawn(|_| {}).await;
    let digest = directrix::core::password::token_digest(READER_TOKEN);
    rt.sql(&format!(
        r#"
        create table orders (id serial primary key, label varchar(10) not null, status text not null default 'draft');
        create table lines (id serial primary key, sku varchar(5) not null);
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
    rt.eventually("schema", || async { rt.get("/items/lines").await.status == 200 })
        .await;
    let items = |rest: Value| {
        let mut message = json!({"type": "items", "uid": "case"});
        for (k, v) in rest.as_object().unwrap() {
            message[k] = v.clone();
        }
        message
    };
    let cases = [
        case(
            "list: only open rows, only granted fields",
            Method::GET,
            "/items/orders?sort=id",
            None,
            items(json!({"collection": "orders", "action": "read", "query": {"sort": ["id"]}})),
        ),
        case(
            "a hidden row by key",
            Method::GET,
            "/items/orders/2",
            None,
            items(json!({"collection": "orders", "action": "read", "id": 2})),
        ),
        case(
            "a visible row by key",
            Method::GET,
            "/items/orders/1",
            None,
            items(json!({"collection": "orders", "action": "read", "id": 1})),
        ),
        case(
            "a filter on an ungranted field",
            Method::GET,
            "/items/orders?filter[status][_eq]=draft",
            None,
            items(
                json!({"collection": "orders", "action": "read", "query": {"filter": {"status": {"_eq": "draft"}}}}),
            ),
        ),
        case(
            "a collection without rights",
            Method::GET,
            "/items/lines",
            None,
            items(json!({"collection": "lines", "action": "read"})),
        ),
        case(
            "a collection that does not exist",
            Method::GET,
            "/items/nowhere",
            None,
            items(json!({"collection": "nowhere", "action": "read"})),
        ),
        case(
            "create with a preset",
            Method::POST,
            "/items/orders",
            Some(json!({"label": "new"})),
            items(json!({"collection": "orders", "action": "create", "data": {"label": "new"}})),
        ),
        case(
            "create writing an ungranted field",
            Method::POST,
            "/items/orders",
            Some(json!({"label": "x", "status": "draft"})),
            items(
                json!({"collection": "orders", "action": "create", "data": {"label": "x", "status": "draft"}}),
            ),
        ),
        case(
            "create breaking a column's length",
            Method::POST,
            "/items/orders",
            Some(json!({"label": "far too long"})),
            items(json!({"collection": "orders", "action": "create", "data": {"label": "far too long"}})),
        ),
        case(
            "update of a hidden row",
            Method::PATCH,
            "/items/orders/2",
            Some(json!({"label": "y"})),
            items(json!({"collection": "orders", "action": "update", "id": 2, "data": {"label": "y"}})),
        ),
        case(
            "update of a visible row",
            Method::PATCH,
            "/items/orders/1",
            Some(json!({"label": "z"})),
            items(json!({"collection": "orders", "action": "update", "id": 1, "data": {"label": "z"}})),
        ),
        case(
            "delete without the right",
            Method::DELETE,
            "/items/orders/1",
            None,
            items(json!({"collection": "orders", "action": "delete", "id": 1})),
        ),
    ];
    let mut socket = realtime::ws(&rt).await;
    socket.auth_token(READER_TOKEN).await;
    let reset = "delete from orders where id > 2; update orders set label = case id when 1 then 'open one' else 'draft one' end";
    let mut answered = 0;
    for case in cases {
        rt.sql(reset).await;
        let created = case.method == Method::POST;
        let reply = rt
            .send(
                case.method.clone(),
                case.path,
                case.body.clone(),
                Some(READER_TOKEN),
            )
            .await;
        let body: Value = if reply.text.is_empty() {
            Value::Null
        } else {
            reply.json()
        };
        let rest = outcome(reply.status.is_success(), &body, created);
        rt.sql(reset).await;
        socket.send(case.message.clone()).await;
        let message = socket.recv().await;
        assert_eq!(message["type"], "items", "{}: {message}", case.name);
        let through_socket = outcome(message.get("status") != Some(&json!("error")), &message, created);
        assert_eq!(through_socket, rest, "{}", case.name);
        if rest.is_ok() {
            answered += 1;
        }
    }
    assert_eq!(answered, 4, "the matrix holds both answers and refusals");
    rt.finish().await;
}
