//! [`CollabHub`]: the collaborative-editing rooms of this instance (presence, field focus locks,
//! pending changes, our `broadcast`), around the pure [`Rooms`] state machine. Sessions send
//! their collab requests here with the field rights they hold on the room's collection; replies
//! go back through each member's outbox. Single instance: rooms are not shared across nodes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::{Actor, Context, Handler, Message};

use super::outbox::Outbox;
use crate::core::realtime::Committed;
use crate::core::realtime::collab::{Access, CollabError, ConnId, Outgoing, Rooms};
use crate::core::realtime::event::RowOp;
use crate::core::realtime::protocol::CollabRequest;

/// Which fields of a collection a connection may read and edit (`None`: all).
#[derive(Debug, Clone, Default)]
pub struct FieldRights {
    pub read: Option<HashSet<String>>,
    pub edit: Option<HashSet<String>>,
}

impl FieldRights {
    fn reads(&self, field: &str) -> bool {
        self.read.as_ref().is_none_or(|set| set.contains(field))
    }

    fn edits(&self, field: &str) -> bool {
        self.reads(field) && self.edit.as_ref().is_none_or(|set| set.contains(field))
    }
}

struct Connection {
    outbox: Arc<Outbox>,
    user: Option<String>,
    /// By collection, from the joins this connection made.
    rights: HashMap<String, FieldRights>,
}

#[derive(Default)]
pub struct CollabHub {
    rooms: Rooms,
    conns: HashMap<ConnId, Connection>,
}

impl Actor for CollabHub {
    type Context = Context<Self>;
}

/// A session opened.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Register {
    pub conn: ConnId,
    pub outbox: Arc<Outbox>,
    pub user: Option<String>,
}

/// A session closed: it leaves every room and releases its locks.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unregister {
    pub conn: ConnId,
}

/// A collab request; `rights` are for a `join`'s collection (already checked: the caller may
/// read the item).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Request {
    pub conn: ConnId,
    pub request: CollabRequest,
    pub rights: Option<FieldRights>,
}

/// Committed changes: rooms whose item was saved hear `save` (their pending changes go), rooms
/// whose item was deleted hear `delete` and close. Whoever wrote the change, REST or SQL.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Changed(pub Arc<Committed>);

impl CollabHub {
    fn route(&self, outgoing: Vec<Outgoing>) {
        for Outgoing { to, text } in outgoing {
            if let Some(conn) = self.conns.get(&to) {
                conn.outbox.push_text(text);
            }
        }
    }

    fn rights(&self, conn: ConnId, collection: &str) -> FieldRights {
        self.conns
            .get(&conn)
            .and_then(|c| c.rights.get(collection))
            .cloned()
            .unwrap_or(FieldRights {
                read: Some(HashSet::new()),
                edit: Some(HashSet::new()),
            })
    }

    fn run(&mut self, conn: ConnId, request: CollabRequest) -> Result<Vec<Outgoing>, CollabError> {
        let collection = match &request {
            CollabRequest::Join(join) => Some(join.collection.clone()),
            CollabRequest::Leave { room }
            | CollabRequest::Update { room, .. }
            | CollabRequest::UpdateAll { room, .. }
            | CollabRequest::Focus { room, .. }
            | CollabRequest::Discard { room }
            | CollabRequest::Broadcast { room, .. } => {
                self.rooms.room(room).map(|r| r.collection.to_string())
            }
        };
        // Every member's rights on the room's collection, looked up as the room asks.
        let rights: HashMap<ConnId, FieldRights> = match &collection {
            Some(collection) => self
                .conns
                .keys()
                .map(|id| (*id, self.rights(*id, collection)))
                .collect(),
            None => HashMap::new(),
        };
        let read = |c: ConnId, field: &str| rights.get(&c).is_some_and(|r| r.reads(field));
        let edit = |c: ConnId, field: &str| rights.get(&c).is_some_and(|r| r.edits(field));
        let access = Access {
            read: &read,
            edit: &edit,
        };
        let user = self.conns.get(&conn).and_then(|c| c.user.clone());
        match request {
            CollabRequest::Join(join) => self.rooms.join(conn, user.as_deref(), join, &access),
            CollabRequest::Leave { room } => self.rooms.leave(conn, &room),
            CollabRequest::Update { room, field, changes } => {
                self.rooms.update(conn, &room, &field, changes, &access)
            }
            CollabRequest::UpdateAll { room, changes } => {
                self.rooms.update_all(conn, &room, changes, &access)
            }
            CollabRequest::Focus { room, field } => self.rooms.focus(conn, &room, field.as_deref(), &access),
            CollabRequest::Discard { room } => self.rooms.discard(conn, &room, &access),
            CollabRequest::Broadcast { room, data } => self.rooms.broadcast(conn, &room, data),
        }
    }
}

impl Handler<Register> for CollabHub {
    type Result = ();

    fn handle(&mut self, msg: Register, _ctx: &mut Context<Self>) {
        self.conns.insert(
            msg.conn,
            Connection {
                outbox: msg.outbox,
                user: msg.user,
                rights: HashMap::new(),
            },
        );
    }
}

impl Handler<Unregister> for CollabHub {
    type Result = ();

    fn handle(&mut self, msg: Unregister, _ctx: &mut Context<Self>) {
        let outgoing = self.rooms.disconnect(msg.conn);
        self.conns.remove(&msg.conn);
        self.route(outgoing);
    }
}

impl Handler<Request> for CollabHub {
    type Result = ();

    fn handle(&mut self, msg: Request, _ctx: &mut Context<Self>) {
        let trigger = msg.request.action();
        if let (CollabRequest::Join(join), Some(rights)) = (&msg.request, msg.rights)
            && let Some(conn) = self.conns.get_mut(&msg.conn)
        {
            conn.rights.insert(join.collection.clone(), rights);
        }
        match self.run(msg.conn, msg.request) {
            Ok(outgoing) => self.route(outgoing),
            Err(err) => {
                if let Some(conn) = self.conns.get(&msg.conn) {
                    conn.outbox.push_text(err.reply(trigger));
                }
            }
        }
    }
}

impl Handler<Changed> for CollabHub {
    type Result = ();

    fn handle(&mut self, msg: Changed, _ctx: &mut Context<Self>) {
        if self.rooms.is_empty() {
            return;
        }
        for change in &msg.0.changes {
            let keys = std::slice::from_ref(&change.key);
            match change.op {
                RowOp::Update => {
                    let Some(record) = &change.new else { continue };
                    for room in self.rooms.rooms_for_change(&change.collection, keys) {
                        // WAL rows hold foreign keys, never expanded related rows.
                        let outgoing = self.rooms.saved(&room, record, &|_| None);
                        self.route(outgoing);
                    }
                }
                RowOp::Delete => {
                    for room in self.rooms.rooms_for_change(&change.collection, keys) {
                        let outgoing = self.rooms.deleted(&room);
                        self.route(outgoing);
                    }
                }
                RowOp::Insert | RowOp::Truncate => {}
            }
        }
    }
}
