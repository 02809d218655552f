//! One room's state and transitions (`websocket/collab/room.js` `Room`), returning message
//! bodies per recipient; [`super::Rooms`] stamps them with `type`, `room` and `order`.

use serde_json::{Map, Value, json};

use super::{Access, ConnId, Member};
use crate::core::realtime::protocol::Color;

/// A message body (`action` and its fields) for one member.
pub(super) type Body = (ConnId, Map<String, Value>);

#[derive(Debug, Clone)]
pub(super) struct Room {
    pub collection: String,
    /// As the creating member sent it: string, number, or null for a singleton.
    pub item: Value,
    pub version: Option<String>,
    /// Pending (unsaved) field values, shared by all members.
    pub changes: Map<String, Value>,
    /// In join order, which is the order of `users` in `init`.
    pub members: Vec<Member>,
}

fn body(action: &str) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("action".into(), json!(action));
    map
}

impl Room {
    pub fn member(&self, conn: ConnId) -> Option<&Member> {
        self.members.iter().find(|m| m.conn == conn)
    }

    fn member_mut(&mut self, conn: ConnId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.conn == conn)
    }

    /// Who holds the lock on `field`.
    pub fn focuser(&self, field: &str) -> Option<ConnId> {
        self.members
            .iter()
            .find(|m| m.focus.as_deref() == Some(field))
            .map(|m| m.conn)
    }

    /// Adds `conn` unless it is a member already (then everyone has heard of it), and sends
    /// it the room's state.
    pub fn join(
        &mut self,
        conn: ConnId,
        user: Option<&str>,
        color: Option<Color>,
        access: &Access,
    ) -> Vec<Body> {
        let mut out = Vec::new();
        if self.member(conn).is_none() {
            let color = self.pick_color(user, color);
            let mut joined = body("join");
            joined.insert("user".into(), json!(user));
            joined.insert("connection".into(), conn.to_json());
            joined.insert("color".into(), json!(color.as_str()));
            out.extend(self.members.iter().map(|m| (m.conn, joined.clone())));
            self.members.push(Member {
                conn,
                user: user.map(String::from),
                color,
                focus: None,
            });
        }
        let readable = |field: &str| (access.read)(conn, field);
        let mut init = body("init");
        init.insert("collection".into(), json!(self.collection));
        init.insert("item".into(), self.item.clone());
        init.insert("version".into(), json!(self.version));
        let changes: Map<String, Value> = self
            .changes
            .iter()
            .filter(|(field, _)| readable(field))
            .map(|(field, value)| (field.clone(), value.clone()))
            .collect();
        init.insert("changes".into(), Value::Object(changes));
        let focuses: Map<String, Value> = self
            .members
            .iter()
            .filter_map(|m| Some((m.conn, m.focus.as_deref()?)))
            .filter(|(_, field)| readable(field))
            .map(|(holder, field)| (holder.to_string(), json!(field)))
            .collect();
        init.insert("focuses".into(), Value::Object(focuses));
        init.insert("connection".into(), conn.to_json());
        let users: Vec<Value> = self
            .members
            .iter()
            .map(|m| json!({"user": m.user, "connection": m.conn.to_json(), "color": m.color.as_str()}))
            .collect();
        init.insert("users".into(), Value::Array(users));
        out.push((conn, init));
        out
    }

    /// The requested color if no member has it; else a free one, the same for a user in every
    /// room where it is free (Directus picks at random); with all seven taken, any.
    fn pick_color(&self, user: Option<&str>, requested: Option<Color>) -> Color {
        let taken: Vec<Color> = self.members.iter().map(|m| m.color).collect();
        let mut free: Vec<Color> = Color::ALL.into_iter().filter(|c| !taken.contains(c)).collect();
        if free.is_empty() {
            free = Color::ALL.to_vec();
        }
        match requested {
            Some(color) if free.contains(&color) => color,
            _ => free[fnv(user.unwrap_or_default()) as usize % free.len()],
        }
    }

    /// Removes `conn` and its focus; the others hear `leave` (a released lock is implied).
    pub fn leave(&mut self, conn: ConnId) -> Vec<Body> {
        self.members.retain(|m| m.conn != conn);
        if self.members.is_empty() {
            self.changes.clear();
        }
        let mut left = body("leave");
        left.insert("connection".into(), conn.to_json());
        self.members.iter().map(|m| (m.conn, left.clone())).collect()
    }

    /// Takes the lock on `field` (`None` releases the member's lock). `None` as the result:
    /// another member holds it.
    pub fn focus(&mut self, conn: ConnId, field: Option<&str>, access: &Access) -> Option<Vec<Body>> {
        // Filtering recipients by the field: the one taken, or the one released.
        let shown = match field {
            Some(field) => {
                if self.focuser(field).is_some_and(|holder| holder != conn) {
                    return None;
                }
                Some(field.to_string())
            }
            None => self.member(conn).and_then(|m| m.focus.clone()),
        };
        if let Some(member) = self.member_mut(conn) {
            member.focus = field.map(String::from);
        }
        let mut focus = body("focus");
        focus.insert("connection".into(), conn.to_json());
        focus.insert("field".into(), json!(field));
        Some(self.others_who_read(conn, shown.as_deref(), access, &focus))
    }

    /// Records `changes` and sends each field, one message per field, to the other members
    /// who may read it.
    pub fn update(&mut self, conn: ConnId, changes: Map<String, Value>, access: &Access) -> Vec<Body> {
        let mut out = Vec::new();
        for member in self.members.iter().filter(|m| m.conn != conn) {
            for (field, value) in &changes {
                if (access.read)(member.conn, field) {
                    let mut update = body("update");
                    update.insert("field".into(), json!(field));
                    update.insert("changes".into(), value.clone());
                    out.push((member.conn, update));
                }
            }
        }
        self.changes.extend(changes);
        out
    }

    /// Drops `field`'s pending change; the other members who may read it hear `discard`.
    pub fn unset(&mut self, conn: ConnId, field: &str, access: &Access) -> Vec<Body> {
        self.changes.shift_remove(field);
        let mut discard = body("discard");
        discard.insert("fields".into(), json!([field]));
        self.others_who_read(conn, Some(field), access, &discard)
    }

    /// Drops the pending changes of `fields`; every member, the sender too, hears which of
    /// them it may read.
    pub fn discard(&mut self, fields: &[String], access: &Access) -> Vec<Body> {
        for field in fields {
            self.changes.shift_remove(field);
        }
        self.members
            .iter()
            .map(|m| {
                let visible: Vec<&String> = fields.iter().filter(|f| (access.read)(m.conn, f)).collect();
                let mut discard = body("discard");
                discard.insert("fields".into(), json!(visible));
                (m.conn, discard)
            })
            .collect()
    }

    /// Ours: `data` from `conn` to every other member.
    pub fn broadcast(&self, conn: ConnId, data: Value) -> Vec<Body> {
        let mut message = body("broadcast");
        message.insert("connection".into(), conn.to_json());
        message.insert("data".into(), data);
        self.members
            .iter()
            .filter(|m| m.conn != conn)
            .map(|m| (m.conn, message.clone()))
            .collect()
    }

    /// The item (or version) was saved elsewhere: pending changes the saved record now holds
    /// are dropped, and every member hears `save`. `related_pk` names the primary key of a
    /// many-to-one field's related collection.
    pub fn saved(
        &mut self,
        record: &Map<String, Value>,
        related_pk: &dyn Fn(&str) -> Option<String>,
    ) -> Vec<Body> {
        let versioned = self.version.is_some();
        self.changes.retain(|field, value| {
            // Relational change sets are always dropped, so a save can't create them twice.
            if is_detailed_update(value) {
                return false;
            }
            let Some(saved) = record.get(field) else {
                // A version's delta holds only what changed; an item's record holds all.
                return versioned;
            };
            if value == saved {
                return false;
            }
            let saved_m2o = value
                .as_object()
                .zip(related_pk(field))
                .is_some_and(|(object, pk)| object.get(&pk) == Some(saved));
            !saved_m2o
        });
        self.members.iter().map(|m| (m.conn, body("save"))).collect()
    }

    /// The item (or version) was deleted: every member hears `delete`; the caller drops the room.
    pub fn deleted(&self) -> Vec<Body> {
        self.members.iter().map(|m| (m.conn, body("delete"))).collect()
    }

    fn others_who_read(
        &self,
        conn: ConnId,
        field: Option<&str>,
        access: &Access,
        message: &Map<String, Value>,
    ) -> Vec<Body> {
        self.members
            .iter()
            .filter(|m| m.conn != conn)
            .filter(|m| field.is_none_or(|f| (access.read)(m.conn, f)))
            .map(|m| (m.conn, message.clone()))
            .collect()
    }
}

/// `isDetailedUpdateSyntax`: `{create: [], update: [], delete: []}`.
fn is_detailed_update(value: &Value) -> bool {
    value.as_object().is_some_and(|object| {
        ["create", "update", "delete"]
            .iter()
            .all(|key| object.get(*key).is_some_and(Value::is_array))
    })
}

/// FNV-1a: stable across builds, unlike `DefaultHasher`, so colors don't move on upgrade.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
