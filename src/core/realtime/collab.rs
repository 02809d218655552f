//! Collaborative editing rooms, Directus 11's collab protocol as a pure state machine
//! (`websocket/collab/{collab,room}.js`): members of a room per item (or item version), each
//! with a color and at most one focused field; a focused field is locked against the others;
//! pending field values are relayed to members who may read them, cleared by `discard`, by a
//! save of the item elsewhere, or when the last member leaves.
//!
//! [`Rooms`] answers each request with [`Outgoing`] texts. Messages to members are
//! `{…body, "type":"collab", "room":<uid>, "order":<n>}`, `order` counting the collab messages
//! each connection has received; errors are the unnumbered collab error
//! ([`crate::core::realtime::protocol::collab_error`]).
//!
//! The caller owns what needs the database: whether the connection may read the item at all
//! (before [`Rooms::join`]), the `collaborative_editing_enabled` setting, and field permissions,
//! which it passes in as [`Access`]. Differences from Directus: a room is dropped when its
//! last member leaves (Directus clears it then and sweeps it later); colors are chosen from the
//! user id, not at random; discards list fields instead of `"*"`; values are filtered by
//! top-level field only (Directus also sanitizes nested relational values). Ours: the
//! `broadcast` action relays a payload to the other members and stores nothing.
//!
//! Single instance only: Directus also shares rooms across instances through Redis (a store
//! plus a bus for remote members); that is not built.

mod room;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::protocol::{Color, collab_error, collab_terminated, js_string};
use room::{Body, Room};

/// What a connection asks to join: the parsed collab `join` message.
pub use super::protocol::CollabJoin as Join;

/// A WebSocket connection, as the session actor numbers them. On the wire (`connection`) it is
/// a string, like Directus's client uuid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl ConnId {
    fn to_json(self) -> Value {
        Value::String(self.to_string())
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One text for one connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub to: ConnId,
    pub text: String,
}

/// A room member.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub conn: ConnId,
    /// The user id; `None` for a public (unauthenticated) connection.
    pub user: Option<String>,
    pub color: Color,
    /// The field this member has locked.
    pub focus: Option<String>,
}

/// Field permissions for the room a request is about, decided by the caller.
pub struct Access<'a> {
    /// May this connection see this field of the item (its value, who focuses it)? False for
    /// concealed, hashed and encrypted fields too, which Directus never relays.
    pub read: &'a dyn Fn(ConnId, &str) -> bool,
    /// May this connection change this field: it exists and is both readable and updatable?
    pub edit: &'a dyn Fn(ConnId, &str) -> bool,
}

/// A room, for the caller's permission checks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoomView<'a> {
    pub collection: &'a str,
    pub item: &'a Value,
    pub version: Option<&'a str>,
    pub changes: &'a Map<String, Value>,
    pub members: &'a [Member],
}

/// A refused collab request; [`CollabError::reply`] is Directus's text for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CollabError {
    /// The room doesn't exist or the connection isn't in it.
    #[error("No access to room {room} or room does not exist")]
    NoRoomAccess { room: String },
    /// The same, for `leave`, which Directus words differently.
    #[error("No access to room \"{room}\" or it does not exist")]
    NoRoomAccessOnLeave { room: String },
    #[error("Field {field} is already focused by another user")]
    FieldLocked { field: String },
    /// `verb`: `update`, `create` (a singleton's changes) or `focus on`.
    #[error("No permission to {verb} field {field} or field does not exist")]
    NoFieldPermission { verb: &'static str, field: String },
    /// An update to a field another member has locked.
    #[error("Cannot update field {field} without focusing on it first")]
    NotFocused { field: String },
    #[error("No permission to discard fields or item does not exist")]
    NoDiscardPermission,
    /// For the caller's item read check before [`Rooms::join`].
    #[error("No permission to access item or it does not exist")]
    NoItemAccess,
    /// For the caller: share sessions may not join.
    #[error("Collaborative editing is not supported for shares")]
    Share,
}

impl CollabError {
    /// Every collab refusal is a `ForbiddenError` in Directus.
    pub fn code(&self) -> &'static str {
        "FORBIDDEN"
    }

    /// The error text, `trigger` being the request's action (`join`, `update`, …).
    pub fn reply(&self, trigger: &str) -> String {
        collab_error(self.code(), Some(&json!(trigger)), &self.to_string())
    }
}

/// Collections whose changes never concern a room (Directus's `IRRELEVANT_COLLECTIONS`).
const IRRELEVANT_COLLECTIONS: &[&str] = &[
    "directus_activity",
    "directus_extensions",
    "directus_flows",
    "directus_folders",
    "directus_migrations",
    "directus_notifications",
    "directus_operations",
    "directus_presets",
    "directus_revisions",
    "directus_sessions",
    "directus_shares",
];

/// Every open room on this instance.
#[derive(Debug, Default)]
pub struct Rooms {
    /// By room uid; ordered so a disconnect's `leave`s come out in a stable order.
    rooms: BTreeMap<String, Room>,
    /// The next `order` of each connection that has been sent a collab message.
    orders: HashMap<ConnId, u64>,
}

/// Directus's deterministic room uid: sha256 of `[collection, item, version].join('-')`, so
/// everyone editing the same thing lands in the same room.
pub fn room_uid(collection: &str, item: &Value, version: Option<&str>) -> String {
    let item = match item {
        Value::Null => String::new(),
        item => js_string(item),
    };
    let key = format!("{collection}-{item}-{}", version.unwrap_or_default());
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl Rooms {
    pub fn new() -> Rooms {
        Rooms::default()
    }

    /// The room with this uid.
    pub fn room(&self, uid: &str) -> Option<RoomView<'_>> {
        self.rooms.get(uid).map(|room| RoomView {
            collection: &room.collection,
            item: &room.item,
            version: room.version.as_deref(),
            changes: &room.changes,
            members: &room.members,
        })
    }

    /// The rooms `conn` is in.
    pub fn rooms_of(&self, conn: ConnId) -> Vec<&str> {
        self.rooms
            .iter()
            .filter(|(_, room)| room.member(conn).is_some())
            .map(|(uid, _)| uid.as_str())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// `join`: creates the room if needed, adds `conn` (the others hear `join`) and sends it
    /// `init`. The caller has checked that `conn` may read the item (and version), else
    /// [`CollabError::NoItemAccess`].
    pub fn join(
        &mut self,
        conn: ConnId,
        user: Option<&str>,
        join: Join,
        access: &Access,
    ) -> Result<Vec<Outgoing>, CollabError> {
        if let Some(changes) = &join.initial_changes {
            let verb = if join.item.is_null() { "create" } else { "update" };
            if let Some(field) = changes.keys().find(|field| !(access.edit)(conn, field)) {
                return Err(CollabError::NoFieldPermission {
                    verb,
                    field: field.clone(),
                });
            }
        }
        let uid = room_uid(&join.collection, &join.item, join.version.as_deref());
        let room = self.rooms.entry(uid.clone()).or_insert_with(|| Room {
            collection: join.collection,
            item: join.item,
            version: join.version,
            changes: join.initial_changes.unwrap_or_default(),
            members: Vec::new(),
        });
        let bodies = room.join(conn, user, join.color, access);
        Ok(self.stamp(&uid, bodies))
    }

    /// `leave` one room; the others hear `leave`, and the room goes with its last member.
    pub fn leave(&mut self, conn: ConnId, room: &str) -> Result<Vec<Outgoing>, CollabError> {
        let state = self
            .rooms
            .get_mut(room)
            .filter(|state| state.member(conn).is_some());
        let Some(state) = state else {
            return Err(CollabError::NoRoomAccessOnLeave { room: room.into() });
        };
        let bodies = state.leave(conn);
        if state.members.is_empty() {
            self.rooms.remove(room);
        }
        Ok(self.stamp(room, bodies))
    }

    /// The connection closed: it leaves every room, releasing its locks.
    pub fn disconnect(&mut self, conn: ConnId) -> Vec<Outgoing> {
        let uids: Vec<String> = self.rooms_of(conn).into_iter().map(String::from).collect();
        let out = uids
            .iter()
            .flat_map(|uid| self.leave(conn, uid).unwrap_or_default())
            .collect();
        self.orders.remove(&conn);
        out
    }

    /// `update` of one field. With `changes` the member takes the field's lock if it can (the
    /// others hear `focus`) and the value goes to the others who may read the field; without,
    /// the field's pending change is dropped (the others hear `discard`).
    pub fn update(
        &mut self,
        conn: ConnId,
        room: &str,
        field: &str,
        changes: Option<Value>,
        access: &Access,
    ) -> Result<Vec<Outgoing>, CollabError> {
        let state = self.member_room(conn, room)?;
        if !(access.edit)(conn, field) {
            return Err(CollabError::NoFieldPermission {
                verb: "update",
                field: field.into(),
            });
        }
        let mut bodies = Vec::new();
        match changes {
            Some(value) => {
                if state.member(conn).and_then(|m| m.focus.as_deref()) != Some(field) {
                    bodies = state
                        .focus(conn, Some(field), access)
                        .ok_or_else(|| CollabError::NotFocused { field: field.into() })?;
                }
                let mut changes = Map::new();
                changes.insert(field.into(), value);
                bodies.extend(state.update(conn, changes, access));
            }
            None => {
                if state.focuser(field).is_some_and(|holder| holder != conn) {
                    return Err(CollabError::FieldLocked { field: field.into() });
                }
                bodies = state.unset(conn, field, access);
            }
        }
        Ok(self.stamp(room, bodies))
    }

    /// `updateAll`: several fields at once; fields another member has locked are skipped.
    pub fn update_all(
        &mut self,
        conn: ConnId,
        room: &str,
        changes: Option<Map<String, Value>>,
        access: &Access,
    ) -> Result<Vec<Outgoing>, CollabError> {
        let Some(mut changes) = changes.filter(|changes| !changes.is_empty()) else {
            return Ok(vec![]);
        };
        let state = self.member_room(conn, room)?;
        changes.retain(|field, _| state.focuser(field).is_none_or(|holder| holder == conn));
        if changes.is_empty() {
            return Ok(vec![]);
        }
        let verb = if state.item.is_null() { "create" } else { "update" };
        if let Some(field) = changes.keys().find(|field| !(access.edit)(conn, field)) {
            return Err(CollabError::NoFieldPermission {
                verb,
                field: field.clone(),
            });
        }
        let bodies = state.update(conn, changes, access);
        Ok(self.stamp(room, bodies))
    }

    /// `focus`: lock `field` (releasing the member's previous lock) or, with `None`, release.
    pub fn focus(
        &mut self,
        conn: ConnId,
        room: &str,
        field: Option<&str>,
        access: &Access,
    ) -> Result<Vec<Outgoing>, CollabError> {
        let state = self.member_room(conn, room)?;
        if let Some(field) = field
            && !(access.edit)(conn, field)
        {
            return Err(CollabError::NoFieldPermission {
                verb: "focus on",
                field: field.into(),
            });
        }
        let bodies = state
            .focus(conn, field, access)
            .ok_or_else(|| CollabError::FieldLocked {
                field: field.unwrap_or_default().into(),
            })?;
        Ok(self.stamp(room, bodies))
    }

    /// `discard`: drop the pending changes of every field the member may edit; every member
    /// hears which of those it may read.
    pub fn discard(
        &mut self,
        conn: ConnId,
        room: &str,
        access: &Access,
    ) -> Result<Vec<Outgoing>, CollabError> {
        let state = self.member_room(conn, room)?;
        let fields: Vec<String> = state
            .changes
            .keys()
            .filter(|field| (access.edit)(conn, field))
            .cloned()
            .collect();
        if fields.is_empty() && !state.changes.is_empty() {
            return Err(CollabError::NoDiscardPermission);
        }
        let bodies = state.discard(&fields, access);
        Ok(self.stamp(room, bodies))
    }

    /// Ours: relay `data` to the room's other members.
    pub fn broadcast(&mut self, conn: ConnId, room: &str, data: Value) -> Result<Vec<Outgoing>, CollabError> {
        let bodies = self.member_room(conn, room)?.broadcast(conn, data);
        Ok(self.stamp(room, bodies))
    }

    /// The rooms an `update` or `delete` of `keys` in `collection` concerns (creates never
    /// do). A version's room follows changes to its `directus_versions` row; a singleton's
    /// room follows every change to its collection.
    pub fn rooms_for_change(&self, collection: &str, keys: &[Value]) -> Vec<String> {
        if IRRELEVANT_COLLECTIONS.contains(&collection) {
            return vec![];
        }
        let hit = |target: &str| keys.iter().any(|key| js_string(key) == target);
        self.rooms
            .iter()
            .filter(|(_, room)| match &room.version {
                Some(version) => collection == "directus_versions" && hit(version),
                None => {
                    room.collection == collection
                        && collection != "directus_versions"
                        && (room.item.is_null() || hit(&js_string(&room.item)))
                }
            })
            .map(|(uid, _)| uid.clone())
            .collect()
    }

    /// The room's item (or version) was saved: `record` is the item as saved now (for a
    /// version, its delta). Pending changes it holds are dropped and every member hears
    /// `save`. `related_pk`: the related collection's primary key, for a many-to-one field.
    pub fn saved(
        &mut self,
        room: &str,
        record: &Map<String, Value>,
        related_pk: &dyn Fn(&str) -> Option<String>,
    ) -> Vec<Outgoing> {
        let Some(state) = self.rooms.get_mut(room) else {
            return vec![];
        };
        let bodies = state.saved(record, related_pk);
        self.stamp(room, bodies)
    }

    /// The room's item (or version) was deleted: every member hears `delete` and the room is
    /// closed.
    pub fn deleted(&mut self, room: &str) -> Vec<Outgoing> {
        let bodies = self.rooms.get(room).map(Room::deleted).unwrap_or_default();
        let out = self.stamp(room, bodies);
        self.rooms.remove(room);
        out
    }

    /// Collaborative editing was switched off: every member of every room gets the
    /// termination error (once per room, as Directus sends it) and all rooms close. The
    /// caller closes the connections.
    pub fn terminate_all(&mut self) -> Vec<Outgoing> {
        let out = self
            .rooms
            .values()
            .flat_map(|room| room.members.iter())
            .map(|m| Outgoing {
                to: m.conn,
                text: collab_terminated(),
            })
            .collect();
        self.rooms.clear();
        out
    }

    fn member_room(&mut self, conn: ConnId, room: &str) -> Result<&mut Room, CollabError> {
        self.rooms
            .get_mut(room)
            .filter(|state| state.member(conn).is_some())
            .ok_or_else(|| CollabError::NoRoomAccess { room: room.into() })
    }

    /// `Room.send`: `{…body, type, room, order}`, numbering per connection.
    fn stamp(&mut self, room: &str, bodies: Vec<Body>) -> Vec<Outgoing> {
        bodies
            .into_iter()
            .map(|(to, mut body)| {
                let order = self.orders.entry(to).or_insert(0);
                body.insert("type".into(), json!("collab"));
                body.insert("room".into(), json!(room));
                body.insert("order".into(), json!(*order));
                *order += 1;
                Outgoing {
                    to,
                    text: Value::Object(body).to_string(),
                }
            })
            .collect()
    }

    /// Checks the invariants: each field locked by at most one member of a room, one lock per
    /// member (by construction), members unique, no empty room.
    #[cfg(test)]
    fn check_invariants(&self) {
        for room in self.rooms.values() {
            assert!(!room.members.is_empty(), "empty room kept");
            let mut conns: Vec<ConnId> = room.members.iter().map(|m| m.conn).collect();
            conns.sort();
            conns.dedup();
            assert_eq!(conns.len(), room.members.len(), "duplicate member");
            let mut locked: Vec<&str> = room.members.iter().filter_map(|m| m.focus.as_deref()).collect();
            let total = locked.len();
            locked.sort();
            locked.dedup();
            assert_eq!(locked.len(), total, "field locked twice");
        }
    }
}
