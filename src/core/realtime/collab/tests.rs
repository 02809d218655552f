use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

const A: ConnId = ConnId(1);
const B: ConnId = ConnId(2);
const C: ConnId = ConnId(3);

fn everything(_: ConnId, _: &str) -> bool {
    true
}

fn open() -> Access<'static> {
    Access {
        read: &everything,
        edit: &everything,
    }
}

fn join_item(item: Value) -> Join {
    Join {
        collection: "articles".into(),
        item,
        version: None,
        color: None,
        initial_changes: None,
    }
}

fn room1() -> String {
    room_uid("articles", &json!(1), None)
}

/// Rooms with A and B in `articles/1`, their join traffic drained.
fn pair() -> Rooms {
    let mut rooms = Rooms::new();
    rooms.join(A, Some("ua"), join_item(json!(1)), &open()).unwrap();
    rooms.join(B, Some("ub"), join_item(json!(1)), &open()).unwrap();
    rooms
}

fn parsed(out: &[Outgoing]) -> Vec<(ConnId, Value)> {
    out.iter()
        .map(|o| (o.to, serde_json::from_str(&o.text).unwrap()))
        .collect()
}

#[test]
fn room_uids_match_directus() {
    // Hashes computed with Node's crypto over Directus's `[collection, item, version].join('-')`.
    assert_eq!(
        room_uid("articles", &json!(1), None),
        "80e99b1082822076e354b977afef392ba34d93eb171a3f07e762f5aa3a211b1e"
    );
    assert_eq!(
        room_uid("articles", &Value::Null, None),
        "60f8afb0bd4ea7da890d67c7b9691ed6a220f20e922546fa2e52f10f9f33a9c2"
    );
    assert_eq!(
        room_uid("articles", &json!("abc"), Some("v1")),
        "135e7c6f8cef315bba58520529f9f2e4c24a3b69054b0e6226e8a47b1c278be4"
    );
    assert_eq!(room_uid("articles", &json!("1"), None), room1());
}

#[test]
fn first_join_creates_the_room_and_sends_init() {
    let mut rooms = Rooms::new();
    let mut join = join_item(json!(1));
    join.color = Some(Color::Red);
    join.initial_changes = json!({"title": "draft"}).as_object().cloned();
    let out = rooms.join(A, Some("ua"), join, &open()).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to, A);
    assert_eq!(
        out[0].text,
        format!(
            concat!(
                r#"{{"action":"init","collection":"articles","item":1,"version":null,"changes":{{"title":"draft"}},"#,
                r#""focuses":{{}},"connection":"1","users":[{{"user":"ua","connection":"1","color":"red"}}],"#,
                r#""type":"collab","room":"{}","order":0}}"#
            ),
            room1()
        )
    );
    assert_eq!(rooms.len(), 1);
}

#[test]
fn second_join_is_announced_to_the_others() {
    let mut rooms = Rooms::new();
    let mut join = join_item(json!(1));
    join.color = Some(Color::Blue);
    rooms.join(A, Some("ua"), join.clone(), &open()).unwrap();
    let out = parsed(&rooms.join(B, Some("ub"), join, &open()).unwrap());
    assert_eq!(out.len(), 2);
    let (to, announce) = &out[0];
    assert_eq!(*to, A);
    // Blue is taken, so B gets another color.
    let color = announce["color"].as_str().unwrap();
    assert_ne!(color, "blue");
    assert_eq!(
        out[0].1,
        json!({"action": "join", "user": "ub", "connection": "2", "color": color,
               "type": "collab", "room": room1(), "order": 1})
    );
    let (to, init) = &out[1];
    assert_eq!(*to, B);
    assert_eq!(init["users"].as_array().unwrap().len(), 2);
    assert_eq!(init["order"], json!(0));
    // Joining again re-sends init but announces nothing.
    let again = parsed(&rooms.join(B, Some("ub"), join_item(json!(1)), &open()).unwrap());
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1["action"], json!("init"));
    assert_eq!(again[0].1["order"], json!(1));
}

#[test]
fn colors_stay_distinct_until_all_are_used() {
    let mut rooms = Rooms::new();
    for n in 0..7 {
        rooms
            .join(ConnId(n), Some("same-user"), join_item(json!(1)), &open())
            .unwrap();
    }
    let room = rooms.room(&room1()).unwrap();
    let mut colors: Vec<&str> = room.members.iter().map(|m| m.color.as_str()).collect();
    colors.sort();
    colors.dedup();
    assert_eq!(colors.len(), 7);
    rooms.join(ConnId(8), None, join_item(json!(1)), &open()).unwrap();
}

#[test]
fn initial_changes_need_edit_permission() {
    let mut rooms = Rooms::new();
    let no_secret = |_: ConnId, f: &str| f != "secret";
    let access = Access {
        read: &everything,
        edit: &no_secret,
    };
    let mut join = join_item(json!(1));
    join.initial_changes = json!({"secret": 1}).as_object().cloned();
    assert_eq!(
        rooms.join(A, None, join, &access),
        Err(CollabError::NoFieldPermission {
            verb: "update",
            field: "secret".into()
        })
    );
    assert!(rooms.is_empty());
}

#[test]
fn focus_locks_a_field_against_others() {
    let mut rooms = pair();
    let room = room1();
    let out = parsed(&rooms.focus(A, &room, Some("title"), &open()).unwrap());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, B);
    assert_eq!(
        out[0].1,
        json!({"action": "focus", "connection": "1", "field": "title", "type": "collab", "room": room, "order": 1})
    );
    let err = rooms.focus(B, &room, Some("title"), &open()).unwrap_err();
    assert_eq!(
        err,
        CollabError::FieldLocked {
            field: "title".into()
        }
    );
    assert_eq!(
        err.reply("focus"),
        r#"{"action":"error","type":"collab","code":"FORBIDDEN","trigger":"focus","message":"Field title is already focused by another user"}"#
    );
    // Focusing elsewhere moves A's lock; B can then take the field.
    rooms.focus(A, &room, Some("body"), &open()).unwrap();
    rooms.focus(B, &room, Some("title"), &open()).unwrap();
    // Release.
    let out = parsed(&rooms.focus(B, &room, None, &open()).unwrap());
    assert_eq!(out[0].1["field"], Value::Null);
    rooms.check_invariants();
}

#[test]
fn focus_is_hidden_from_members_who_cannot_read_the_field() {
    let mut rooms = pair();
    let b_blind = |conn: ConnId, f: &str| !(conn == B && f == "salary");
    let access = Access {
        read: &b_blind,
        edit: &everything,
    };
    assert!(
        rooms
            .focus(A, &room1(), Some("salary"), &access)
            .unwrap()
            .is_empty()
    );
    // The release is hidden too.
    assert!(rooms.focus(A, &room1(), None, &access).unwrap().is_empty());
}

#[test]
fn focus_needs_edit_permission_and_membership() {
    let mut rooms = pair();
    let nothing = |_: ConnId, _: &str| false;
    let access = Access {
        read: &everything,
        edit: &nothing,
    };
    assert_eq!(
        rooms
            .focus(A, &room1(), Some("title"), &access)
            .unwrap_err()
            .to_string(),
        "No permission to focus on field title or field does not exist"
    );
    assert_eq!(
        rooms
            .focus(C, &room1(), Some("title"), &open())
            .unwrap_err()
            .to_string(),
        format!("No access to room {} or room does not exist", room1())
    );
    assert!(rooms.focus(A, "nope", None, &open()).is_err());
}

#[test]
fn update_takes_the_lock_and_relays_to_readers() {
    let mut rooms = pair();
    rooms.join(C, Some("uc"), join_item(json!(1)), &open()).unwrap();
    let c_blind = |conn: ConnId, f: &str| !(conn == C && f == "title");
    let access = Access {
        read: &c_blind,
        edit: &everything,
    };
    let room = room1();
    let out = parsed(
        &rooms
            .update(A, &room, "title", Some(json!("Hi")), &access)
            .unwrap(),
    );
    let actions: Vec<(ConnId, &str)> = out
        .iter()
        .map(|(to, v)| (*to, v["action"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, vec![(B, "focus"), (B, "update")]);
    assert_eq!(
        out[1].1,
        json!({"action": "update", "field": "title", "changes": "Hi", "type": "collab", "room": room, "order": 3})
    );
    assert_eq!(rooms.room(&room).unwrap().changes["title"], json!("Hi"));
    // Already focused: no second focus message.
    let out = parsed(
        &rooms
            .update(A, &room, "title", Some(json!("Hey")), &open())
            .unwrap(),
    );
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|(_, v)| v["action"] == json!("update")));
}

#[test]
fn update_of_a_field_locked_by_another_is_refused() {
    let mut rooms = pair();
    let room = room1();
    rooms.focus(A, &room, Some("title"), &open()).unwrap();
    let err = rooms
        .update(B, &room, "title", Some(json!("x")), &open())
        .unwrap_err();
    assert_eq!(
        err.reply("update"),
        r#"{"action":"error","type":"collab","code":"FORBIDDEN","trigger":"update","message":"Cannot update field title without focusing on it first"}"#
    );
    let err = rooms.update(B, &room, "title", None, &open()).unwrap_err();
    assert_eq!(
        err,
        CollabError::FieldLocked {
            field: "title".into()
        }
    );
    assert!(!rooms.room(&room).unwrap().changes.contains_key("title"));
}

#[test]
fn update_without_changes_discards_the_field() {
    let mut rooms = pair();
    let room = room1();
    rooms
        .update(A, &room, "title", Some(json!("x")), &open())
        .unwrap();
    let out = parsed(&rooms.update(A, &room, "title", None, &open()).unwrap());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, B);
    assert_eq!(out[0].1["action"], json!("discard"));
    assert_eq!(out[0].1["fields"], json!(["title"]));
    assert!(rooms.room(&room).unwrap().changes.is_empty());
}

#[test]
fn update_needs_edit_permission() {
    let mut rooms = pair();
    let nothing = |_: ConnId, _: &str| false;
    let access = Access {
        read: &everything,
        edit: &nothing,
    };
    assert_eq!(
        rooms
            .update(A, &room1(), "title", Some(json!(1)), &access)
            .unwrap_err()
            .to_string(),
        "No permission to update field title or field does not exist"
    );
}

#[test]
fn update_all_skips_locked_fields() {
    let mut rooms = pair();
    let room = room1();
    rooms.focus(B, &room, Some("title"), &open()).unwrap();
    let changes = json!({"title": "x", "body": "y"}).as_object().cloned();
    let out = parsed(&rooms.update_all(A, &room, changes, &open()).unwrap());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1["field"], json!("body"));
    assert!(!rooms.room(&room).unwrap().changes.contains_key("title"));
    // Empty changes are a no-op, even outside the room (Directus checks them first).
    assert_eq!(rooms.update_all(C, "nope", None, &open()), Ok(vec![]));
    assert!(
        rooms
            .update_all(C, &room, json!({"a": 1}).as_object().cloned(), &open())
            .is_err()
    );
}

#[test]
fn update_all_refuses_fields_the_member_cannot_edit() {
    let mut rooms = pair();
    let no_secret = |_: ConnId, f: &str| f != "secret";
    let access = Access {
        read: &everything,
        edit: &no_secret,
    };
    let changes = json!({"title": "x", "secret": "y"}).as_object().cloned();
    assert!(rooms.update_all(A, &room1(), changes, &access).is_err());
    assert!(rooms.room(&room1()).unwrap().changes.is_empty());
}

#[test]
fn discard_clears_editable_changes_for_everyone() {
    let mut rooms = pair();
    let room = room1();
    let changes = json!({"title": "x", "body": "y"}).as_object().cloned();
    rooms.update_all(A, &room, changes, &open()).unwrap();
    let out = parsed(&rooms.discard(B, &room, &open()).unwrap());
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|(_, v)| v["fields"] == json!(["title", "body"])));
    assert!(rooms.room(&room).unwrap().changes.is_empty());

    rooms
        .update_all(A, &room, json!({"title": "x"}).as_object().cloned(), &open())
        .unwrap();
    let nothing = |_: ConnId, _: &str| false;
    let access = Access {
        read: &everything,
        edit: &nothing,
    };
    assert_eq!(
        rooms.discard(B, &room, &access),
        Err(CollabError::NoDiscardPermission)
    );
}

#[test]
fn leave_releases_focus_and_notifies() {
    let mut rooms = pair();
    let room = room1();
    rooms.focus(A, &room, Some("title"), &open()).unwrap();
    let out = parsed(&rooms.leave(A, &room).unwrap());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, B);
    assert_eq!(out[0].1["action"], json!("leave"));
    assert_eq!(out[0].1["connection"], json!("1"));
    rooms.focus(B, &room, Some("title"), &open()).unwrap();
    assert_eq!(
        rooms.leave(A, &room).unwrap_err().reply("leave"),
        format!(
            r#"{{"action":"error","type":"collab","code":"FORBIDDEN","trigger":"leave","message":"No access to room \"{room}\" or it does not exist"}}"#
        )
    );
}

#[test]
fn last_member_leaving_deletes_the_room() {
    let mut rooms = pair();
    let room = room1();
    rooms
        .update(A, &room, "title", Some(json!("x")), &open())
        .unwrap();
    rooms.leave(A, &room).unwrap();
    assert!(rooms.leave(B, &room).unwrap().is_empty());
    assert!(rooms.is_empty());
    // A new room starts without the old pending changes.
    let out = parsed(&rooms.join(A, None, join_item(json!(1)), &open()).unwrap());
    assert_eq!(out[0].1["changes"], json!({}));
}

#[test]
fn disconnect_leaves_every_room() {
    let mut rooms = pair();
    rooms.join(A, Some("ua"), join_item(json!(2)), &open()).unwrap();
    rooms.focus(A, &room1(), Some("title"), &open()).unwrap();
    let out = rooms.disconnect(A);
    // B hears A leave room 1; room 2 had only A and is gone.
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to, B);
    assert_eq!(rooms.len(), 1);
    assert!(rooms.rooms_of(A).is_empty());
    assert!(
        rooms
            .room(&room1())
            .unwrap()
            .members
            .iter()
            .all(|m| m.focus.is_none())
    );
}

#[test]
fn init_hides_unreadable_changes_and_focuses() {
    let mut rooms = pair();
    let room = room1();
    rooms
        .update_all(
            A,
            &room,
            json!({"title": "x", "salary": 5}).as_object().cloned(),
            &open(),
        )
        .unwrap();
    rooms.focus(A, &room, Some("salary"), &open()).unwrap();
    let c_blind = |conn: ConnId, f: &str| !(conn == C && f == "salary");
    let access = Access {
        read: &c_blind,
        edit: &everything,
    };
    let out = parsed(&rooms.join(C, None, join_item(json!(1)), &access).unwrap());
    let init = &out.last().unwrap().1;
    assert_eq!(init["changes"], json!({"title": "x"}));
    assert_eq!(init["focuses"], json!({}));
    assert_eq!(out[0].1["user"], Value::Null);
}

#[test]
fn broadcast_goes_to_the_others_only() {
    let mut rooms = pair();
    let room = room1();
    let out = parsed(&rooms.broadcast(A, &room, json!({"cursor": 3})).unwrap());
    assert_eq!(
        out,
        vec![(
            B,
            json!({"action": "broadcast", "connection": "1", "data": {"cursor": 3}, "type": "collab", "room": room, "order": 1})
        )]
    );
    assert!(rooms.broadcast(C, &room, json!(1)).is_err());
    assert!(rooms.room(&room).unwrap().changes.is_empty());
}

#[test]
fn saves_reconcile_pending_changes() {
    let mut rooms = pair();
    let room = room1();
    let changes = json!({
        "title": "saved",
        "body": "still pending",
        "author": {"id": 7, "name": "x"},
        "tags": {"create": [], "update": [], "delete": []},
        "gone": 1
    });
    rooms
        .update_all(A, &room, changes.as_object().cloned(), &open())
        .unwrap();
    assert_eq!(
        rooms.rooms_for_change("articles", &[json!("1")]),
        vec![room.clone()]
    );
    assert!(rooms.rooms_for_change("articles", &[json!(2)]).is_empty());
    assert!(
        rooms
            .rooms_for_change("directus_activity", &[json!(1)])
            .is_empty()
    );
    let record = json!({"id": 1, "title": "saved", "body": "old", "author": 7, "tags": []});
    let pk = |field: &str| (field == "author").then(|| "id".to_string());
    let out = parsed(&rooms.saved(&room, record.as_object().unwrap(), &pk));
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|(_, v)| v["action"] == json!("save")));
    assert_eq!(
        Value::Object(rooms.room(&room).unwrap().changes.clone()),
        json!({"body": "still pending"})
    );
}

#[test]
fn versions_and_singletons_follow_their_own_changes() {
    let mut rooms = Rooms::new();
    let mut version = join_item(json!(1));
    version.version = Some("v1".into());
    rooms.join(A, None, version, &open()).unwrap();
    rooms.join(B, None, join_item(Value::Null), &open()).unwrap();
    let versioned = room_uid("articles", &json!(1), Some("v1"));
    let singleton = room_uid("articles", &Value::Null, None);
    assert_eq!(
        rooms.rooms_for_change("directus_versions", &[json!("v1")]),
        vec![versioned.clone()]
    );
    assert_eq!(rooms.rooms_for_change("articles", &[json!(9)]), vec![singleton]);
    // A version's delta holds only what changed: others stay pending.
    rooms
        .update(A, &versioned, "title", Some(json!("x")), &open())
        .unwrap();
    rooms.saved(&versioned, &serde_json::Map::new(), &|_| None);
    assert!(rooms.room(&versioned).unwrap().changes.contains_key("title"));
}

#[test]
fn deletes_close_the_room() {
    let mut rooms = pair();
    let room = room1();
    let out = parsed(&rooms.deleted(&room));
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|(_, v)| v["action"] == json!("delete")));
    assert!(rooms.is_empty());
    assert!(rooms.deleted(&room).is_empty());
}

#[test]
fn terminate_all_errors_every_member_and_closes() {
    let mut rooms = pair();
    let out = rooms.terminate_all();
    assert_eq!(out.len(), 2);
    assert!(out[0].text.contains("Collaborative editing is disabled"));
    assert!(rooms.is_empty());
}

#[test]
fn orders_count_per_connection_across_rooms() {
    let mut rooms = Rooms::new();
    let orders = |out: Vec<Outgoing>| -> Vec<u64> {
        parsed(&out)
            .iter()
            .map(|(_, v)| v["order"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(
        orders(rooms.join(A, None, join_item(json!(1)), &open()).unwrap()),
        vec![0]
    );
    assert_eq!(
        orders(rooms.join(A, None, join_item(json!(2)), &open()).unwrap()),
        vec![1]
    );
    rooms.disconnect(A);
    assert_eq!(
        orders(rooms.join(A, None, join_item(json!(1)), &open()).unwrap()),
        vec![0]
    );
}

#[derive(Debug, Clone)]
enum Op {
    Join(u64, u8),
    Leave(u64, u8),
    Focus(u64, u8, Option<u8>),
    Update(u64, u8, u8),
    Disconnect(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let conn = 0..5u64;
    let item = 0..3u8;
    let field = 0..3u8;
    prop_oneof![
        (conn.clone(), item.clone()).prop_map(|(c, i)| Op::Join(c, i)),
        (conn.clone(), item.clone()).prop_map(|(c, i)| Op::Leave(c, i)),
        (conn.clone(), item.clone(), prop::option::of(field.clone()))
            .prop_map(|(c, i, f)| Op::Focus(c, i, f)),
        (conn.clone(), item, field).prop_map(|(c, i, f)| Op::Update(c, i, f)),
        conn.prop_map(Op::Disconnect),
    ]
}

proptest! {
    #[test]
    fn random_sequences_keep_invariants(ops in prop::collection::vec(op(), 0..60)) {
        let mut rooms = Rooms::new();
        for op in ops {
            match op {
                Op::Join(c, i) => {
                    rooms.join(ConnId(c), None, join_item(json!(i)), &open()).unwrap();
                }
                Op::Leave(c, i) => {
                    let _ = rooms.leave(ConnId(c), &room_uid("articles", &json!(i), None));
                }
                Op::Focus(c, i, f) => {
                    let field = f.map(|f| format!("f{f}"));
                    let room = room_uid("articles", &json!(i), None);
                    let _ = rooms.focus(ConnId(c), &room, field.as_deref(), &open());
                }
                Op::Update(c, i, f) => {
                    let room = room_uid("articles", &json!(i), None);
                    let _ = rooms.update(ConnId(c), &room, &format!("f{f}"), Some(json!(c)), &open());
                }
                Op::Disconnect(c) => {
                    let out = rooms.disconnect(ConnId(c));
                    prop_assert!(out.iter().all(|o| o.to != ConnId(c)));
                    prop_assert!(rooms.rooms_of(ConnId(c)).is_empty());
                }
            }
            rooms.check_invariants();
        }
    }
}
