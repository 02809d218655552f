use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::core::pgoutput::Lsn;
use crate::core::realtime::shape::EventKind;

/// What Directus sends for `text`, in the terms of `golden.json`: the reply text, or `AUTH`
/// (a valid auth message), `SILENT` (dropped), `CUSTOM` (no handler), `OK` (valid).
fn simulate(text: &str) -> String {
    match parse(text) {
        Ok(ClientMessage::Auth(_)) => "AUTH".into(),
        Ok(ClientMessage::Ping { uid }) => pong(uid.as_ref()),
        Ok(ClientMessage::Pong { .. } | ClientMessage::Custom { .. }) => "CUSTOM".into(),
        Ok(_) => "OK".into(),
        Err(err) => err.reply().unwrap_or_else(|| "SILENT".into()),
    }
}

/// Replies recorded from Directus's own code: `@directus/api` 34.0.1's schemas and
/// `WebSocketError`, zod 4.1.12 and zod-validation-error 4.0.2 run under Node.
#[test]
fn replies_match_directus() {
    let cases: Vec<(String, String)> = serde_json::from_str(include_str!("golden.json")).unwrap();
    assert!(cases.len() > 50);
    for (input, expected) in cases {
        assert_eq!(simulate(&input), expected, "input: {input}");
    }
}

#[test]
fn auth_steps_follow_authenticate_connection() {
    let Ok(ClientMessage::Auth(auth)) =
        parse(r#"{"type":"auth","uid":1,"email":"a@b.co","password":"pw","access_token":"t"}"#)
    else {
        panic!("not auth");
    };
    assert_eq!(auth.uid, Some(json!(1)));
    assert_eq!(
        auth.steps,
        vec![
            AuthStep::Login {
                email: "a@b.co".into(),
                password: "pw".into()
            },
            AuthStep::AccessToken {
                access_token: "t".into()
            },
        ]
    );
    let Ok(ClientMessage::Auth(auth)) =
        parse(r#"{"type":"auth","email":5,"password":"x","refresh_token":"r"}"#)
    else {
        panic!("not auth");
    };
    assert_eq!(
        auth.steps,
        vec![
            AuthStep::Unusable,
            AuthStep::Refresh {
                refresh_token: "r".into()
            }
        ]
    );
}

#[test]
fn subscribe_fields() {
    let text = r#"{"type":"subscribe","uid":5,"collection":"articles","event":"update","item":7,
        "query":{"fields":["id"]},"since":"0/16B3748"}"#;
    let Ok(ClientMessage::Subscribe(sub)) = parse(text) else {
        panic!("not subscribe");
    };
    assert_eq!(sub.collection, "articles");
    assert_eq!(sub.event, Some(EventKind::Update));
    assert_eq!(sub.item, Some(json!(7)));
    assert_eq!(sub.item_key().as_deref(), Some("7"));
    assert_eq!(sub.query, json!({"fields": ["id"]}).as_object().cloned());
    assert_eq!(sub.since, Some(Lsn(0x16B3748)));
    assert_eq!(sub.uid, Some(json!(5)));
    assert_eq!(sub.reply_uid(), Some(json!("5")));
}

#[test]
fn bad_since_is_a_subscribe_error() {
    let err = parse(r#"{"type":"subscribe","collection":"a","since":"yesterday","uid":"s"}"#).unwrap_err();
    assert_eq!(
        err.reply().unwrap(),
        r#"{"type":"subscribe","status":"error","error":{"code":"INVALID_PAYLOAD","message":"Validation error: Invalid input: expected a WAL position like \"0/16B3748\" at \"since\""}}"#
    );
    let err = parse(r#"{"type":"subscribe","collection":"a","since":5}"#).unwrap_err();
    assert!(
        err.message
            .ends_with("expected string, received number at \"since\"")
    );
}

#[test]
fn backpressure_is_chosen_per_subscription() {
    let Ok(ClientMessage::Subscribe(sub)) =
        parse(r#"{"type":"subscribe","collection":"a","backpressure":"resync"}"#)
    else {
        panic!("a subscribe with backpressure parses");
    };
    assert_eq!(sub.backpressure.as_deref(), Some("resync"));
    let err = parse(r#"{"type":"subscribe","collection":"a","backpressure":"drop"}"#).unwrap_err();
    assert_eq!(err.reply_type, "subscribe");
    assert!(err.message.contains("backpressure"), "{}", err.message);
}

#[test]
fn schema_errors_keep_the_uid_for_logs_only() {
    let err = parse(r#"{"type":"subscribe","uid":"s1"}"#).unwrap_err();
    assert_eq!(err.uid.as_deref(), Some(&json!("s1")));
    assert!(!err.reply().unwrap().contains("s1"));
}

#[test]
fn unsubscribe() {
    assert_eq!(
        parse(r#"{"type":"unsubscribe","uid":2}"#),
        Ok(ClientMessage::Unsubscribe { uid: Some(json!(2)) })
    );
    assert_eq!(
        parse(r#"{"type":"unsubscribe"}"#),
        Ok(ClientMessage::Unsubscribe { uid: None })
    );
}

fn items_action(text: &str) -> ItemsAction {
    match parse(text) {
        Ok(ClientMessage::Items(request)) => request.action,
        other => panic!("not items: {other:?}"),
    }
}

#[test]
fn items_targets_follow_javascript_truthiness() {
    let action = items_action(r#"{"type":"items","collection":"a","action":"delete","id":0,"ids":[]}"#);
    assert_eq!(
        action,
        ItemsAction::Delete {
            target: Target::Many(vec![]),
            query: None
        }
    );
    let action = items_action(r#"{"type":"items","collection":"a","action":"delete","id":"","query":"x"}"#);
    assert_eq!(
        action,
        ItemsAction::Delete {
            target: Target::All,
            query: Some(Default::default())
        }
    );
    let action = items_action(r#"{"type":"items","collection":"a","action":"read","id":"k","query":null}"#);
    assert_eq!(
        action,
        ItemsAction::Read {
            target: Target::One(json!("k")),
            query: None
        }
    );
    let action = items_action(r#"{"type":"items","collection":"a","action":"update","data":[{"id":1}]}"#);
    assert_eq!(
        action,
        ItemsAction::Update {
            target: Target::All,
            data: Some(json!([{"id": 1}])),
            query: None
        }
    );
    let action =
        items_action(r#"{"type":"items","collection":"a","action":"create","query":{"fields":["id"]}}"#);
    assert_eq!(
        action,
        ItemsAction::Create {
            data: None,
            query: json!({"fields": ["id"]}).as_object().cloned()
        }
    );
}

#[test]
fn collab_requests() {
    let join = r#"{"type":"collab","action":"join","collection":"a","item":1,"version":null,"color":"red"}"#;
    assert_eq!(
        parse(join),
        Ok(ClientMessage::Collab(CollabRequest::Join(CollabJoin {
            collection: "a".into(),
            item: json!(1),
            version: None,
            color: Some(Color::Red),
            initial_changes: None
        })))
    );
    let update = r#"{"type":"collab","action":"update","room":"r","field":"f"}"#;
    assert_eq!(
        parse(update),
        Ok(ClientMessage::Collab(CollabRequest::Update {
            room: "r".into(),
            field: "f".into(),
            changes: None
        }))
    );
    let update = r#"{"type":"collab","action":"update","room":"r","field":"f","changes":null}"#;
    assert!(matches!(
        parse(update),
        Ok(ClientMessage::Collab(CollabRequest::Update {
            changes: Some(Value::Null),
            ..
        }))
    ));
    let broadcast = r#"{"type":"collab","action":"broadcast","room":"r","data":{"cursor":[1,2]}}"#;
    assert_eq!(
        parse(broadcast),
        Ok(ClientMessage::Collab(CollabRequest::Broadcast {
            room: "r".into(),
            data: json!({"cursor": [1, 2]})
        }))
    );
    let err = parse(r#"{"type":"collab","action":7}"#).unwrap_err();
    assert_eq!(err.action.as_deref(), Some(&json!(7)));
}

#[test]
fn custom_types_pass_through() {
    let Ok(ClientMessage::Custom { kind, uid, message }) = parse(r#"{"type":"presence","uid":"u","x":1}"#)
    else {
        panic!("not custom");
    };
    assert_eq!((kind.as_str(), uid), ("presence", Some(json!("u"))));
    assert_eq!(message["x"], json!(1));
}

#[test]
fn proto_keys_are_dropped_like_parse_json() {
    let Ok(ClientMessage::Custom { message, .. }) =
        parse(r#"{"type":"x","__proto__":{"a":1},"b":{"__proto__":2}}"#)
    else {
        panic!("not custom");
    };
    assert_eq!(Value::Object(message), json!({"type": "x", "b": {}}));
}

#[test]
fn invalid_utf8_is_replaced_not_refused() {
    let mut bytes = br#"{"type":"ping","uid":"a"#.to_vec();
    bytes.push(0xFF);
    bytes.extend_from_slice(br#""}"#);
    assert_eq!(
        parse_bytes(&bytes),
        Ok(ClientMessage::Ping {
            uid: Some(json!("a\u{FFFD}"))
        })
    );
}

#[test]
fn server_messages() {
    assert_eq!(
        auth_ok(Some(&json!(1)), Some("rt")),
        r#"{"type":"auth","status":"ok","uid":1,"refresh_token":"rt"}"#
    );
    assert_eq!(auth_ok(None, None), r#"{"type":"auth","status":"ok"}"#);
    assert_eq!(
        auth_failed(Some(&json!("a"))),
        r#"{"type":"auth","status":"error","error":{"code":"AUTH_FAILED","message":"Authentication failed."},"uid":"a"}"#
    );
    assert_eq!(
        auth_handshake_failed(),
        r#"{"type":"auth","status":"error","error":{"code":"AUTH_FAILED","message":"Authentication handshake failed."}}"#
    );
    assert_eq!(
        token_expired(),
        r#"{"type":"auth","status":"error","error":{"code":"TOKEN_EXPIRED","message":"Token expired."}}"#
    );
    assert_eq!(
        auth_timeout(),
        r#"{"type":"auth","status":"error","error":{"code":"AUTH_TIMEOUT","message":"Authentication timed out."}}"#
    );
    assert_eq!(
        requests_exceeded(850),
        r#"{"type":"server","status":"error","error":{"code":"REQUESTS_EXCEEDED","message":"Too many messages, retry after 850ms."}}"#
    );
    assert_eq!(
        invalid_collection("subscribe", Some(&json!(3))),
        r#"{"type":"subscribe","status":"error","error":{"code":"INVALID_COLLECTION","message":"The provided collection does not exists or is not accessible."},"uid":3}"#
    );
    assert_eq!(
        items_delete_needs_target(None),
        r#"{"type":"items","status":"error","error":{"code":"INVALID_PAYLOAD","message":"Either 'ids', 'id' or 'query' is required for a DELETE request."}}"#
    );
    assert_eq!(ping(), r#"{"type":"ping"}"#);
    assert_eq!(pong(Some(&json!("p"))), r#"{"type":"pong","uid":"p"}"#);
    assert_eq!(
        subscription_init(
            Some(&json!("1")),
            Some(&json!([{"id": 1}])),
            Some(&json!({"total_count": 1}))
        ),
        r#"{"type":"subscription","event":"init","data":[{"id":1}],"meta":{"total_count":1},"uid":"1"}"#
    );
    assert_eq!(
        subscription_init(None, None, None),
        r#"{"type":"subscription","event":"init"}"#
    );
    assert_eq!(
        unsubscribed(Some(&json!(4))),
        r#"{"type":"subscription","event":"unsubscribe","uid":4}"#
    );
    assert_eq!(
        items(Some(&json!("i")), &json!([1, 2]), None),
        r#"{"type":"items","data":[1,2],"uid":"i"}"#
    );
    assert_eq!(
        refetch(RefetchReason::Gap, "a", None, Some(&json!("s"))),
        r#"{"type":"subscription","event":"refetch","reason":"gap","collection":"a","uid":"s"}"#
    );
}

#[test]
fn collab_errors() {
    assert_eq!(
        collab_disabled(Some(&json!("join"))),
        r#"{"action":"error","type":"collab","code":"SERVICE_UNAVAILABLE","trigger":"join","message":"Service \"collab\" is unavailable. Collaborative editing is disabled."}"#
    );
    assert_eq!(
        collab_terminated(),
        r#"{"type":"collab","action":"error","code":"SERVICE_UNAVAILABLE","message":"Collaborative editing is disabled"}"#
    );
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            Just("auth".to_string()),
            Just("subscribe".to_string()),
            Just("items".to_string()),
            Just("collab".to_string()),
            Just("join".to_string()),
            Just("read".to_string()),
            ".{0,8}".prop_map(String::from),
        ]
        .prop_map(Value::String),
    ];
    let keys = prop_oneof![
        Just("type"),
        Just("uid"),
        Just("action"),
        Just("collection"),
        Just("id"),
        Just("ids"),
        Just("room"),
        Just("field"),
        Just("changes"),
        Just("email"),
        Just("password"),
        Just("access_token"),
        Just("item"),
        Just("version"),
        Just("query"),
        Just("event"),
        Just("since"),
    ];
    leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..6).prop_map(|pairs| Value::Object(
                pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

fn arb_uid() -> impl Strategy<Value = Value> {
    prop_oneof![
        ".{0,12}".prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e15f64..1e15).prop_map(Value::from),
    ]
}

/// Every error names the handler to answer as, and every reply is a JSON object with a `type`.
fn check_outcome(outcome: Result<ClientMessage, ProtocolError>) {
    if let Err(err) = outcome {
        assert!(["server", "auth", "subscribe", "items", "collab"].contains(&err.reply_type));
        assert!(!err.message.is_empty());
        if let Some(reply) = err.reply() {
            let value: Value = serde_json::from_str(&reply).unwrap();
            assert_eq!(value["type"].as_str(), Some(err.reply_type));
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_outcome(parse_bytes(&bytes));
    }

    #[test]
    fn arbitrary_json_never_panics(value in arb_json()) {
        check_outcome(parse(&value.to_string()));
    }

    #[test]
    fn uids_come_back_as_sent(uid in arb_uid(), kind in 0..4usize) {
        let text = match kind {
            0 => json!({"type": "ping", "uid": uid}),
            1 => json!({"type": "unsubscribe", "uid": uid}),
            2 => json!({"type": "items", "collection": "a", "action": "read", "uid": uid}),
            _ => json!({"type": "auth", "access_token": "t", "uid": uid}),
        }
        .to_string();
        let echoed = match parse(&text).unwrap() {
            ClientMessage::Ping { uid } | ClientMessage::Unsubscribe { uid } => uid,
            ClientMessage::Items(request) => request.uid,
            ClientMessage::Auth(request) => request.uid,
            other => panic!("{other:?}"),
        };
        let reply: Value = serde_json::from_str(&pong(echoed.as_ref())).unwrap();
        match (&uid, &reply["uid"]) {
            (Value::Number(sent), Value::Number(back)) if sent.is_f64() => {
                // serde_json's default float parser may land one ulp off (its `float_roundtrip`
                // feature is off); JavaScript's doesn't.
                let (sent, back) = (sent.as_f64().unwrap(), back.as_f64().unwrap());
                prop_assert!((sent - back).abs() <= sent.abs() * f64::EPSILON, "{} vs {}", sent, back);
            }
            (sent, back) => prop_assert_eq!(sent, back),
        }
    }
}
