//! Decodes a URL query string into JSON the way Express's `qs` does for Directus:
//! `filter[title][_eq]=Hello` → `{"filter":{"title":{"_eq":"Hello"}}}`, `fields[]=a&fields[]=b`
//! → `{"fields":["a","b"]}`, repeated keys → arrays. Values stay strings; `query::parse` decides
//! what each parameter means (and parses JSON-string encodings like `filter={"a":{"_eq":1}}`).
//!
//! Bounded like Directus's `QUERYSTRING_MAX_PARSE_DEPTH` / `QUERYSTRING_ARRAY_LIMIT`: deeper
//! keys and larger indexes are refused instead of allocating.

use serde_json::{Map, Value};

/// Bracket nesting allowed in one key (Directus's `QUERYSTRING_MAX_PARSE_DEPTH`, default 10).
pub const MAX_DEPTH: usize = 10;
/// Highest explicit array index (`a[499]`), and the most items one array may collect
/// (Directus's `QUERYSTRING_ARRAY_LIMIT`, default 500).
pub const MAX_ARRAY: usize = 500;

/// Why a query string cannot be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamsError {
    #[error("Query parameter \"{key}\" is nested deeper than {MAX_DEPTH} levels")]
    TooDeep { key: String },
    #[error("Query parameter \"{key}\" has more than {MAX_ARRAY} items")]
    TooLong { key: String },
    #[error("Query parameter \"{key}\" is used both as a value and as an object")]
    Conflict { key: String },
    #[error("Query parameter \"{key}\" is malformed")]
    Malformed { key: String },
}

/// Decodes a raw query string (without the leading `?`).
pub fn decode(query: &str) -> Result<Map<String, Value>, ParamsError> {
    let mut root = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(raw_key);
        let value = percent_decode(raw_value);
        let path = split_key(&key)?;
        insert(&mut root, &key, &path, Value::String(value))?;
    }
    Ok(root)
}

/// `a[b][]` → `["a", "b", ""]`.
fn split_key(key: &str) -> Result<Vec<String>, ParamsError> {
    let malformed = || ParamsError::Malformed { key: truncate(key) };
    let (head, mut rest) = match key.find('[') {
        Some(0) => return Err(malformed()),
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    let mut path = vec![head.to_string()];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[').ok_or_else(malformed)?;
        let close = inner.find(']').ok_or_else(malformed)?;
        path.push(inner[..close].to_string());
        rest = &inner[close + 1..];
        if path.len() > MAX_DEPTH + 1 {
            return Err(ParamsError::TooDeep { key: truncate(key) });
        }
    }
    Ok(path)
}

fn insert(map: &mut Map<String, Value>, key: &str, path: &[String], value: Value) -> Result<(), ParamsError> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(());
    };
    if rest.is_empty() {
        // A repeated key collects its values, as qs does.
        return match map.get_mut(first) {
            None => {
                map.insert(first.clone(), value);
                Ok(())
            }
            Some(Value::Array(items)) => push(items, key, value),
            Some(existing @ Value::String(_)) => {
                let previous = existing.take();
                *existing = Value::Array(vec![previous, value]);
                Ok(())
            }
            Some(_) => Err(ParamsError::Conflict { key: truncate(key) }),
        };
    }
    let slot = map
        .entry(first.clone())
        .or_insert_with(|| container_for(&rest[0]));
    insert_into(slot, key, rest, value)
}

fn insert_into(slot: &mut Value, key: &str, path: &[String], value: Value) -> Result<(), ParamsError> {
    let Some((segment, rest)) = path.split_first() else {
        return Ok(());
    };
    match slot {
        Value::Array(items) => {
            if segment.is_empty() && rest.is_empty() {
                return push(items, key, value);
            }
            let index = if segment.is_empty() {
                items.len()
            } else {
                array_index(segment, key)?
            };
            if index > MAX_ARRAY {
                return Err(ParamsError::TooLong { key: truncate(key) });
            }
            if rest.is_empty() {
                if index < items.len() {
                    items[index] = value;
                } else {
                    items.push(value);
                }
                return Ok(());
            }
            if index >= items.len() {
                items.push(container_for(&rest[0]));
            }
            let last = items.len() - 1;
            insert_into(&mut items[index.min(last)], key, rest, value)
        }
        Value::Object(map) => insert(map, key, path, value),
        _ => Err(ParamsError::Conflict { key: truncate(key) }),
    }
}

fn push(items: &mut Vec<Value>, key: &str, value: Value) -> Result<(), ParamsError> {
    if items.len() >= MAX_ARRAY {
        return Err(ParamsError::TooLong { key: truncate(key) });
    }
    items.push(value);
    Ok(())
}

/// `[]` and `[0]` start arrays; anything else an object.
fn container_for(segment: &str) -> Value {
    if segment.is_empty() || segment.bytes().all(|b| b.is_ascii_digit()) && segment.len() <= 3 {
        Value::Array(Vec::new())
    } else {
        Value::Object(Map::new())
    }
}

fn array_index(segment: &str, key: &str) -> Result<usize, ParamsError> {
    segment
        .parse::<usize>()
        .map_err(|_| ParamsError::Conflict { key: truncate(key) })
}

/// `+` is a space; `%XY` a byte; invalid escapes stay as they are; invalid UTF-8 is replaced.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn truncate(key: &str) -> String {
    key.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn decoded(q: &str) -> Value {
        Value::Object(decode(q).unwrap())
    }

    #[test]
    fn brackets_nest_and_repeat_like_qs() {
        assert_eq!(
            decoded("filter[title][_eq]=Hello"),
            json!({"filter": {"title": {"_eq": "Hello"}}})
        );
        assert_eq!(decoded("fields[]=a&fields[]=b"), json!({"fields": ["a", "b"]}));
        assert_eq!(decoded("sort=a&sort=-b"), json!({"sort": ["a", "-b"]}));
        assert_eq!(
            decoded("filter[_or][0][a][_eq]=1&filter[_or][1][b][_eq]=2"),
            json!({"filter": {"_or": [{"a": {"_eq": "1"}}, {"b": {"_eq": "2"}}]}})
        );
        assert_eq!(
            decoded("filter[id][_in][]=1&filter[id][_in][]=2"),
            json!({"filter": {"id": {"_in": ["1", "2"]}}})
        );
        assert_eq!(decoded("limit=10&meta=*"), json!({"limit": "10", "meta": "*"}));
    }

    #[test]
    fn values_are_percent_decoded() {
        assert_eq!(
            decoded("search=caf%C3%A9+au+lait"),
            json!({"search": "café au lait"})
        );
        assert_eq!(
            decoded("filter=%7B%22a%22%3A1%7D"),
            json!({"filter": "{\"a\":1}"})
        );
        assert_eq!(decoded("x=100%"), json!({"x": "100%"}));
        assert_eq!(decoded("x=%zz"), json!({"x": "%zz"}));
    }

    #[test]
    fn abuse_is_refused() {
        let deep = format!("filter{}=1", "[a]".repeat(11));
        assert!(matches!(decode(&deep), Err(ParamsError::TooDeep { .. })));
        let many: Vec<String> = (0..501).map(|i| format!("f[]={i}")).collect();
        assert!(matches!(
            decode(&many.join("&")),
            Err(ParamsError::TooLong { .. })
        ));
        assert!(matches!(decode("a=1&a[b]=2"), Err(ParamsError::Conflict { .. })));
        assert!(matches!(decode("[a]=1"), Err(ParamsError::Malformed { .. })));
        assert!(matches!(decode("a[b=1"), Err(ParamsError::Malformed { .. })));
    }

    proptest! {
        #[test]
        fn decoding_never_panics(q in "[a-z\\[\\]=&%+0-9_]{0,80}") {
            let _ = decode(&q);
        }

        #[test]
        fn decoding_arbitrary_text_never_panics(q in ".{0,120}") {
            let _ = decode(&q);
        }
    }
}
