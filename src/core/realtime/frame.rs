//! Wire text for change events, built once per subscription group and finished per subscriber.
//!
//! A group's message is serialized up to, not including, its closing brace ([`Event::open`]);
//! each WebSocket subscriber appends its own `uid` ([`Event::close`]) and each SSE stream wraps
//! it in an event block ([`Event::sse`]). The shape is Directus's
//! `{"type":"subscription","event":"create","data":[…],"uid":…}` plus two fields of ours:
//! `collection` (one SSE stream may carry several) and `lsn`, the id a client resumes from.
//! Only the last event of a transaction carries `lsn` (and, on SSE, `id:`): an id means
//! everything up to it was delivered, so a client that drops mid-transaction resumes before it.

use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::shape::EventKind;
use crate::core::pgoutput::Lsn;

/// One item of an event: its key, and its row unless it was deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub key: Value,
    pub row: Option<Map<String, Value>>,
}

/// One event message for a group: consecutive changes of one kind within one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    pub lsn: Lsn,
    /// The last event of its transaction for this subscription: it carries the id.
    pub complete: bool,
    collection: Arc<str>,
    pub items: Vec<Item>,
    /// The serialized message without its closing brace.
    open: Arc<str>,
}

impl Event {
    pub fn new(kind: EventKind, collection: &str, lsn: Lsn, complete: bool, items: Vec<Item>) -> Event {
        let open = open(kind, collection, complete.then_some(lsn), &items);
        Event {
            kind,
            lsn,
            complete,
            collection: collection.into(),
            items,
            open: open.into(),
        }
    }

    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// About how many bytes it takes on the wire (its text without a subscriber's uid).
    pub fn size(&self) -> usize {
        self.open.len() + 1
    }

    /// The WebSocket text for a subscriber with `uid`.
    pub fn close(&self, uid: Option<&Value>) -> String {
        let uid = uid.map(Value::to_string);
        self.closed_parts(uid.as_deref()).concat()
    }

    /// [`Event::close`] in pieces, for a subscriber whose uid is the JSON text `uid`: a socket
    /// writer frames them without first joining them into one string per subscriber.
    pub fn closed_parts<'a>(&'a self, uid: Option<&'a str>) -> [&'a str; 4] {
        close_parts(&self.open, uid)
    }

    /// An SSE event block; `id:` on the last event of a transaction.
    pub fn sse(&self) -> String {
        let mut out = String::with_capacity(self.open.len() + 48);
        if self.complete {
            let _ = writeln!(out, "id: {}", self.lsn);
        }
        let _ = write!(out, "event: {}\ndata: {}}}\n\n", self.kind.as_str(), self.open);
        out
    }
}

/// One transaction's items for a subscription as events: consecutive items of one kind share
/// an event, in order, and the last event carries the transaction's position, unless
/// `complete` is false (a part of a transaction more parts of which follow).
pub fn runs(
    collection: &str,
    lsn: Lsn,
    complete: bool,
    items: impl IntoIterator<Item = (EventKind, Item)>,
) -> Vec<Arc<Event>> {
    let mut events = Vec::new();
    let mut run: Option<(EventKind, Vec<Item>)> = None;
    for (kind, item) in items {
        match &mut run {
            Some((current, list)) if *current == kind => list.push(item),
            _ => {
                if let Some((current, list)) = run.take() {
                    events.push(Arc::new(Event::new(current, collection, lsn, false, list)));
                }
                run = Some((kind, vec![item]));
            }
        }
    }
    if let Some((current, list)) = run {
        events.push(Arc::new(Event::new(current, collection, lsn, complete, list)));
    }
    events
}

fn open(kind: EventKind, collection: &str, lsn: Option<Lsn>, items: &[Item]) -> String {
    let mut out = String::with_capacity(64 + items.len() * 64);
    out.push_str("{\"type\":\"subscription\",\"event\":\"");
    out.push_str(kind.as_str());
    out.push_str("\",\"data\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let value = match (&item.row, kind) {
            (Some(row), EventKind::Create | EventKind::Update) => {
                serde_json::to_string(row).unwrap_or_else(|_| "null".into())
            }
            _ => item.key.to_string(),
        };
        out.push_str(&value);
    }
    out.push_str("],\"collection\":");
    out.push_str(&Value::String(collection.to_string()).to_string());
    if let Some(lsn) = lsn {
        let _ = write!(out, ",\"lsn\":\"{lsn}\"");
    }
    out
}

fn close_parts<'a>(open: &'a str, uid: Option<&'a str>) -> [&'a str; 4] {
    match uid {
        Some(uid) => [open, ",\"uid\":", uid, "}"],
        None => [open, "", "", "}"],
    }
}

/// Our must-refetch message: the subscriber's view can't be continued from changes (its
/// resume point is gone, it fell behind, or the table was truncated) and must be read again.
pub fn refetch(reason: &str, collection: &str, lsn: Option<Lsn>, uid: Option<&Value>) -> String {
    let uid = uid.map(Value::to_string);
    refetch_json(reason, collection, lsn, uid.as_deref())
}

/// [`refetch`] for a uid already in its JSON text.
pub fn refetch_json(reason: &str, collection: &str, lsn: Option<Lsn>, uid: Option<&str>) -> String {
    let mut out = String::from("{\"type\":\"subscription\",\"event\":\"refetch\",\"reason\":");
    out.push_str(&Value::String(reason.to_string()).to_string());
    out.push_str(",\"collection\":");
    out.push_str(&Value::String(collection.to_string()).to_string());
    if let Some(lsn) = lsn {
        let _ = write!(out, ",\"lsn\":\"{lsn}\"");
    }
    close_parts(&out, uid).concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn items() -> Vec<Item> {
        vec![
            Item {
                key: json!(1),
                row: json!({"id": 1, "title": "a\"b"}).as_object().cloned(),
            },
            Item {
                key: json!("k"),
                row: None,
            },
        ]
    }

    #[test]
    fn directus_shape_with_uid() {
        let event = Event::new(EventKind::Create, "articles", Lsn(0x1_0000_00AB), true, items());
        let text = event.close(Some(&json!("sub-1")));
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            json!({"type": "subscription", "event": "create",
                   "data": [{"id": 1, "title": "a\"b"}, "k"],
                   "collection": "articles", "lsn": "1/AB", "uid": "sub-1"})
        );
        assert!(text.starts_with("{\"type\":\"subscription\",\"event\":\"create\",\"data\":["));
        let numeric: Value = serde_json::from_str(&event.close(Some(&json!(7)))).unwrap();
        assert_eq!(numeric["uid"], json!(7));
        let bare: Value = serde_json::from_str(&event.close(None)).unwrap();
        assert!(bare.get("uid").is_none());
    }

    #[test]
    fn deletes_carry_keys() {
        let event = Event::new(EventKind::Delete, "a", Lsn(5), false, items());
        let value: Value = serde_json::from_str(&event.close(None)).unwrap();
        assert_eq!(value["data"], json!([1, "k"]));
        assert!(value.get("lsn").is_none());
    }

    #[test]
    fn sse_blocks() {
        let event = Event::new(EventKind::Update, "a", Lsn(16), true, vec![]);
        assert_eq!(
            event.sse(),
            "id: 0/10\nevent: update\ndata: {\"type\":\"subscription\",\"event\":\"update\",\"data\":[],\"collection\":\"a\",\"lsn\":\"0/10\"}\n\n"
        );
        let partial = Event::new(EventKind::Update, "a", Lsn(16), false, vec![]);
        assert!(partial.sse().starts_with("event: update\n"));
    }

    #[test]
    fn refetch_message() {
        let value: Value = serde_json::from_str(&refetch("gap", "a", Some(Lsn(1)), Some(&json!(3)))).unwrap();
        assert_eq!(
            value,
            json!({"type": "subscription", "event": "refetch", "reason": "gap", "collection": "a", "lsn": "0/1", "uid": 3})
        );
    }
}
