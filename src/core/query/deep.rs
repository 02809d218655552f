//! `deep`: per-relation sub-queries (`_filter`, `_search`, `_sort`, `_limit`, `_offset`,
//! `_page`) on the relations `fields` selected, nested like the relations themselves:
//! `deep[comments][_filter][body][_contains]=x`, `deep[comments][author][_filter]…`.

use crate::core::filter::Variables;
use serde_json::{Map, Value};

use super::fields::{Nested, Selection};
use super::{QueryError, Settings, integer, invalid, non_empty_filter, parse_sort};
use crate::core::schema::SchemaSnapshot;

/// Applies `deep` to the selection tree. Keys that name no selected relation are ignored, as in
/// Directus.
pub(super) fn apply(
    selections: &mut [Selection],
    deep: &Map<String, Value>,
    snapshot: &SchemaSnapshot,
    vars: &Variables,
    settings: Settings,
    depth: usize,
) -> Result<(), QueryError> {
    if depth > settings.max_relational_depth {
        return Err(invalid("Max relational depth exceeded"));
    }
    for (key, spec) in deep {
        if key.starts_with('_') {
            continue;
        }
        let Some(selection) = selections.iter_mut().find(|s| s.key() == key) else {
            continue;
        };
        let spec = spec
            .as_object()
            .ok_or_else(|| invalid("\"deep\" must be of type object"))?;
        match selection {
            Selection::OneToMany {
                related,
                children,
                nested,
                ..
            } => {
                *nested = parse_nested(spec, snapshot, related, vars, settings)?;
                if let Some(children) = children {
                    apply(children, spec, snapshot, vars, settings, depth + 1)?;
                }
            }
            Selection::ManyToOne {
                related,
                children,
                nested,
                ..
            } => {
                // One related row: only the filter means anything.
                let parsed = parse_nested(spec, snapshot, related, vars, settings)?;
                nested.filter = parsed.filter;
                apply(children, spec, snapshot, vars, settings, depth + 1)?;
            }
            Selection::Column { .. }
            | Selection::Function { .. }
            | Selection::Alias { .. }
            | Selection::Json { .. } => {}
        }
    }
    Ok(())
}

fn parse_nested(
    spec: &Map<String, Value>,
    snapshot: &SchemaSnapshot,
    related: &str,
    vars: &Variables,
    settings: Settings,
) -> Result<Nested, QueryError> {
    let target = snapshot.collection(related).ok_or_else(|| QueryError::Field {
        collection: related.into(),
        field: "*".into(),
        path: None,
    })?;
    let mut nested = Nested::default();
    let mut page = None;
    for (key, value) in spec.iter().filter(|(k, _)| k.starts_with('_')) {
        match key.as_str() {
            "_filter" => {
                let value = match value {
                    Value::String(text) => {
                        serde_json::from_str(text).map_err(|_| invalid("Invalid JSON for filter object"))?
                    }
                    other => other.clone(),
                };
                nested.filter = non_empty_filter(&value, snapshot, related, vars, settings)?;
            }
            "_search" => nested.search = value.as_str().filter(|s| !s.is_empty()).map(String::from),
            "_sort" => nested.sort = parse_sort(value, snapshot, target)?,
            "_limit" => {
                let limit = integer(value, "limit")?;
                if limit < -1 {
                    return Err(invalid("\"limit\" must be greater than or equal to -1"));
                }
                nested.limit = (limit != -1).then_some(limit);
            }
            "_offset" => {
                nested.offset = integer(value, "offset")?;
                if nested.offset < 0 {
                    return Err(invalid("\"offset\" must be greater than or equal to 0"));
                }
            }
            "_page" => page = Some(integer(value, "page")?),
            // `_fields`, `_group`, `_aggregate`, `_alias` have no effect on a nested read here.
            _ => {}
        }
    }
    // `_page` overrides `_offset` and needs the limit, wherever it stood in the object.
    if let (Some(page), Some(limit)) = (page, nested.limit)
        && page > 0
    {
        nested.offset = limit.saturating_mul(page - 1);
    }
    Ok(nested)
}
