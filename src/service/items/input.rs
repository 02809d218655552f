//! What callers hand the items service, checked as Directus's Joi schemas check it: the query
//! object (the shape of `?fields=…&filter=…` or a `SEARCH` body), and the selectors of batch
//! writes (`{keys, data}`, `{query, data}`, a key list).

use serde_json::{Map, Value};

use crate::core::schema::Collection;
use crate::db::items::read;
use crate::error::Error;

/// Directus's query object: `fields`, `filter`, `search`, `sort`, `limit`, `offset`, `page`,
/// `aggregate`, `groupBy`, `deep`, `alias`, `meta`, `export`, … as the REST query string or a
/// `SEARCH` body gives them. Parsed against the schema and the caller inside the service.
#[derive(Debug, Clone, Default)]
pub struct ItemsQuery(pub Map<String, Value>);

impl ItemsQuery {
    /// The query as given.
    pub fn params(&self) -> &Map<String, Value> {
        &self.0
    }

    /// A query asking only for `fields` (a Directus field list, `*` for all).
    pub fn fields(fields: &str) -> ItemsQuery {
        let mut params = Map::new();
        params.insert("fields".into(), Value::String(fields.into()));
        ItemsQuery(params)
    }

    /// The query limited to `keys`, as Directus's `readMany` limits it: the keys AND-ed into the
    /// filter, and at most as many rows as keys unless a limit is asked for. `None`: no keys,
    /// nothing to read.
    pub fn with_keys(&self, keys: &[Value], collection: &Collection) -> Result<Option<ItemsQuery>, Error> {
        if keys.is_empty() {
            return Ok(None);
        }
        let pk = collection.primary_key.clone().ok_or(Error::Forbidden)?;
        for key in keys {
            read::check_key(collection, &key_text(key).map_err(|_| Error::Forbidden)?)?;
        }
        let mut params = self.0.clone();
        let by_key = serde_json::json!({ pk: { "_in": keys } });
        let filter = match params.remove("filter") {
            None | Some(Value::Null) => by_key,
            Some(Value::String(text)) => {
                let parsed: Value =
                    serde_json::from_str(&text).map_err(|_| Error::query("\"filter\" must be valid JSON"))?;
                serde_json::json!({ "_and": [parsed, by_key] })
            }
            Some(other) => serde_json::json!({ "_and": [other, by_key] }),
        };
        params.insert("filter".into(), filter);
        params.entry("limit").or_insert_with(|| Value::from(keys.len()));
        Ok(Some(ItemsQuery(params)))
    }
}

impl From<Map<String, Value>> for ItemsQuery {
    fn from(params: Map<String, Value>) -> Self {
        ItemsQuery(params)
    }
}

/// How a batch write names its items.
#[derive(Debug, Clone)]
pub enum Selector {
    Keys(Vec<String>),
    Query(ItemsQuery),
}

/// A `PATCH` body: a batch of items with keys, or `{keys|query, data}`.
#[derive(Debug, Clone)]
pub enum UpdateBody {
    Batch(Vec<Value>),
    Many { selector: Selector, data: Value },
}

impl UpdateBody {
    /// Reads a batch `PATCH` body with Directus's (Joi's) messages.
    pub fn parse(body: Value) -> Result<UpdateBody, Error> {
        if let Value::Array(items) = body {
            return Ok(UpdateBody::Batch(items));
        }
        let (selector, data) = batch_body(body, true)?;
        Ok(UpdateBody::Many { selector, data })
    }
}

/// Reads a batch `DELETE` body: a key list, `{keys}` or `{query}`.
pub fn delete_body(body: Value) -> Result<Selector, Error> {
    match body {
        Value::Array(keys) => Ok(Selector::Keys(
            keys.iter().map(key_text).collect::<Result<Vec<_>, _>>()?,
        )),
        other => Ok(batch_body(other, false)?.0),
    }
}

/// Validates `{keys|query, data?}` with Directus's (Joi's) messages.
fn batch_body(body: Value, needs_data: bool) -> Result<(Selector, Value), Error> {
    let Value::Object(mut body) = body else {
        return Err(Error::payload("\"value\" must be of type object"));
    };
    if let Some(extra) = body
        .keys()
        .find(|k| !matches!(k.as_str(), "keys" | "query" | "data"))
    {
        return Err(Error::payload(format!("\"{extra}\" is not allowed")));
    }
    let data = body.remove("data");
    let data = match (needs_data, data) {
        (true, None) => return Err(Error::payload("\"data\" is required")),
        (true, Some(data)) => data,
        (false, Some(_)) => return Err(Error::payload("\"data\" is not allowed")),
        (false, None) => Value::Null,
    };
    let selector = match (body.remove("keys"), body.remove("query")) {
        (Some(_), Some(_)) => {
            return Err(Error::payload(
                "\"value\" contains a conflict between exclusive peers [query, keys]",
            ));
        }
        (Some(Value::Array(keys)), None) => {
            Selector::Keys(keys.iter().map(key_text).collect::<Result<_, _>>()?)
        }
        (Some(_), None) => return Err(Error::payload("\"keys\" must be an array")),
        (None, Some(Value::Object(query))) => Selector::Query(ItemsQuery(query)),
        (None, Some(_)) => return Err(Error::payload("\"query\" must be of type object")),
        (None, None) => {
            return Err(Error::payload(
                "\"value\" must contain at least one of [query, keys]",
            ));
        }
    };
    Ok((selector, data))
}

/// A key as text: strings and numbers, as Directus accepts them.
pub fn key_text(key: &Value) -> Result<String, Error> {
    match key {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(Error::payload("\"keys\" items must be strings or numbers")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn batch_bodies_are_checked_with_directus_messages() {
        let err = |body: Value| match UpdateBody::parse(body) {
            Err(Error::InvalidPayload { reason }) => reason,
            other => panic!("expected INVALID_PAYLOAD, got {other:?}"),
        };
        assert_eq!(err(json!({"keys": [1]})), "\"data\" is required");
        assert_eq!(
            err(json!({"data": {}})),
            "\"value\" must contain at least one of [query, keys]"
        );
        assert_eq!(
            err(json!({"keys": [1], "query": {}, "data": {}})),
            "\"value\" contains a conflict between exclusive peers [query, keys]"
        );
        assert_eq!(err(json!({"keys": 1, "data": {}})), "\"keys\" must be an array");
        assert_eq!(
            err(json!({"nope": 1, "keys": [1], "data": {}})),
            "\"nope\" is not allowed"
        );
        assert!(matches!(
            delete_body(json!({"keys": [1], "data": {}})),
            Err(Error::InvalidPayload { .. })
        ));
        assert!(matches!(delete_body(json!([1, "2"])), Ok(Selector::Keys(keys)) if keys == ["1", "2"]));
    }

    fn arb_body() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            let key =
                prop_oneof![Just("keys"), Just("query"), Just("data"), Just("x")].prop_map(String::from);
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(key, inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any JSON body is either understood or refused as INVALID_PAYLOAD; never a panic or
        /// another error.
        #[test]
        fn any_body_parses_or_is_an_invalid_payload(body in arb_body()) {
            for outcome in [UpdateBody::parse(body.clone()).map(drop), delete_body(body).map(drop)] {
                let understood = matches!(outcome, Ok(()) | Err(Error::InvalidPayload { .. }));
                prop_assert!(understood, "unexpected outcome");
            }
        }
    }
}
