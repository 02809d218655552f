//! Directus's zod schemas for client messages (`websocket/messages.js`, `@directus/types`
//! `WebSocketMessage` and collab `ClientMessage`), key for key in their declared order, since
//! that order is the order of the issues in an error text.

use std::sync::LazyLock;

use super::zod::Schema::{self, Any, Array, Object, OneOf, Record, Str, Union};

/// `@directus/types` `COLORS`, the colors collab assigns to room members.
pub const COLORS: &[&str] = &["purple", "pink", "blue", "green", "yellow", "orange", "red"];

fn uid() -> Schema {
    Schema::str_or_num().optional()
}

/// `WebSocketMessage`: an object with a string `type` and an optional string|number `uid`.
pub static BASE: LazyLock<Schema> = LazyLock::new(|| Object(vec![("type", Str), ("uid", uid())]));

/// The `subscribe` branch of `WebSocketSubscribeMessage`, plus our `since` and `backpressure`.
pub static SUBSCRIBE: LazyLock<Schema> = LazyLock::new(|| {
    let event = Union(vec![OneOf(&["create"]), OneOf(&["update"]), OneOf(&["delete"])]);
    Object(vec![
        ("type", OneOf(&["subscribe"])),
        ("uid", uid()),
        ("collection", Str),
        ("event", event.optional()),
        ("item", Schema::str_or_num().optional()),
        ("query", Record.optional()),
        ("since", Str.optional()),
        (
            "backpressure",
            OneOf(&["coalesce", "resync", "disconnect"]).optional(),
        ),
    ])
});

/// The `unsubscribe` branch of `WebSocketSubscribeMessage`.
pub static UNSUBSCRIBE: LazyLock<Schema> =
    LazyLock::new(|| Object(vec![("type", OneOf(&["unsubscribe"])), ("uid", uid())]));

/// `WebSocketItemsMessage`: a plain (not discriminated) union, so a bad message is reported
/// against all four actions.
pub static ITEMS: LazyLock<Schema> = LazyLock::new(|| {
    let head = |action: &'static [&'static str]| {
        vec![
            ("uid", uid()),
            ("type", OneOf(&["items"])),
            ("collection", Str),
            ("action", OneOf(action)),
        ]
    };
    let keys = || Array(Box::new(Schema::str_or_num())).optional();
    let id = || Schema::str_or_num().optional();
    let with = |mut fields: Vec<(&'static str, Schema)>, rest: Vec<(&'static str, Schema)>| {
        fields.extend(rest);
        Object(fields)
    };
    Union(vec![
        with(head(&["create"]), vec![("data", Any), ("query", Any)]),
        with(
            head(&["read"]),
            vec![("ids", keys()), ("id", id()), ("query", Any)],
        ),
        with(
            head(&["update"]),
            vec![("data", Any), ("ids", keys()), ("id", id()), ("query", Any)],
        ),
        with(
            head(&["delete"]),
            vec![("ids", keys()), ("id", id()), ("query", Any)],
        ),
    ])
});

/// The options of collab's `ClientMessage` (a discriminated union on `action`), by action.
/// `broadcast` is ours.
pub fn collab(action: &str) -> Option<&'static Schema> {
    match action {
        "join" => Some(&COLLAB_JOIN),
        "leave" => Some(&COLLAB_ROOM_ONLY),
        "update" => Some(&COLLAB_UPDATE),
        "updateAll" => Some(&COLLAB_UPDATE_ALL),
        "focus" => Some(&COLLAB_FOCUS),
        "discard" => Some(&COLLAB_ROOM_ONLY),
        "broadcast" => Some(&COLLAB_BROADCAST),
        _ => None,
    }
}

static COLLAB_JOIN: LazyLock<Schema> = LazyLock::new(|| {
    Object(vec![
        ("type", OneOf(&["collab"])),
        ("action", OneOf(&["join"])),
        ("collection", Str),
        ("item", Schema::str_or_num().nullable()),
        ("version", Str.nullable()),
        ("color", OneOf(COLORS).nullable().optional()),
        ("initialChanges", Record.optional()),
    ])
});

fn in_room(rest: Vec<(&'static str, Schema)>) -> Schema {
    // `BaseClientMessage.extend(...)`: type and room first; `action` was checked by the
    // discriminator already, so its literal can't fail and is left out.
    let mut fields = vec![("type", OneOf(&["collab"])), ("room", Str)];
    fields.extend(rest);
    Object(fields)
}

static COLLAB_ROOM_ONLY: LazyLock<Schema> = LazyLock::new(|| in_room(vec![]));
static COLLAB_UPDATE: LazyLock<Schema> = LazyLock::new(|| in_room(vec![("field", Str), ("changes", Any)]));
static COLLAB_UPDATE_ALL: LazyLock<Schema> = LazyLock::new(|| in_room(vec![("changes", Record.optional())]));
static COLLAB_FOCUS: LazyLock<Schema> = LazyLock::new(|| in_room(vec![("field", Str.nullable())]));
static COLLAB_BROADCAST: LazyLock<Schema> = LazyLock::new(|| in_room(vec![("data", Any)]));

/// zod 4's `z.string().email()` pattern,
/// `^(?!\.)(?!.*\.\.)([A-Za-z0-9_'+\-\.]*)[A-Za-z0-9_+-]@([A-Za-z0-9][A-Za-z0-9\-]*\.)+[A-Za-z]{2,}$`,
/// written out because the `regex` crate has no look-ahead.
pub fn is_email(text: &str) -> bool {
    if text.starts_with('.') || text.contains("..") {
        return false;
    }
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    let local_ok = local
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_'+-.".contains(c))
        && local
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || "_+-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let Some((tld, labels)) = labels.split_last() else {
        return false;
    };
    let label_ok = |label: &&str| {
        label.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    local_ok
        && !labels.is_empty()
        && labels.iter().all(label_ok)
        && tld.len() >= 2
        && tld.chars().all(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::is_email;

    #[test]
    fn email_matches_zod() {
        // Outcomes taken from zod 4.1.12's `z.string().email()`.
        for (text, ok) in [
            ("a@b.co", true),
            ("a@b.c", false),
            ("a..b@c.com", false),
            (".a@b.com", false),
            ("a.@b.com", false),
            ("a+b@x-y.com", true),
            ("a@-b.com", false),
            ("a@b_c.com", false),
            ("A@B.COM", true),
            ("a@b.co.", false),
            ("é@b.com", false),
            ("a@b.c0m", false),
            ("a@b@c.com", false),
            ("@b.com", false),
        ] {
            assert_eq!(is_email(text), ok, "{text}");
        }
    }
}
