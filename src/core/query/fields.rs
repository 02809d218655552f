//! The `fields` parameter → a tree of what to read: columns, functions of columns, and
//! relations (M2O objects, O2M arrays; M2M is O2M to the junction, then M2O), as Directus
//! expands `*`, `rel.*`, `*.*` and `rel.field`.

use crate::core::field_type::FieldType;
use crate::core::filter::Function;
use crate::core::schema::{Collection, SchemaSnapshot};

/// One node of the selection.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    /// A column, returned under its own name.
    Column { field: String, field_type: FieldType },
    /// `json(field, a.b[0])`: the JSON value at a path, returned as `field_a_b_0_json`.
    Json {
        field: String,
        steps: Vec<String>,
        key: String,
    },
    /// Another selection under a name from `alias` (`alias[t]=title` with `fields=t`).
    Alias { key: String, target: Box<Selection> },
    /// `year(date)`, returned as `date_year` (a string, as Directus on Postgres 14+).
    Function {
        field: String,
        function: Function,
        key: String,
    },
    /// An M2O field expanded into the related row (or `null`).
    ManyToOne {
        field: String,
        related: String,
        related_key: String,
        children: Vec<Selection>,
        /// `deep[field]`: only `_filter` applies to a single related row (else it reads `null`).
        nested: Nested,
    },
    /// An O2M alias: related rows whose `related_field` points here. Without `children` it is
    /// the array of their primary keys (what `*` gives for an O2M field).
    OneToMany {
        field: String,
        related: String,
        related_field: String,
        related_key: String,
        children: Option<Vec<Selection>>,
        /// `deep[field]`: which related rows, in what order, how many.
        nested: Nested,
    },
}

/// Rows an O2M relation returns per parent unless `deep` says otherwise (Directus's default).
pub const O2M_DEFAULT_LIMIT: i64 = 100;

/// The sub-query of a relation, from `deep` (`_filter`, `_search`, `_sort`, `_limit`,
/// `_offset`, `_page`).
#[derive(Debug, Clone, PartialEq)]
pub struct Nested {
    pub filter: Option<crate::core::filter::Filter>,
    pub search: Option<String>,
    /// Empty: by the related primary key.
    pub sort: Vec<super::Sort>,
    /// `None`: no limit (`_limit: -1`).
    pub limit: Option<i64>,
    pub offset: i64,
}

impl Default for Nested {
    fn default() -> Self {
        Nested {
            filter: None,
            search: None,
            sort: Vec::new(),
            limit: Some(O2M_DEFAULT_LIMIT),
            offset: 0,
        }
    }
}

impl Selection {
    /// The key this node has in the returned object.
    pub fn key(&self) -> &str {
        match self {
            Selection::Column { field, .. }
            | Selection::ManyToOne { field, .. }
            | Selection::OneToMany { field, .. } => field,
            Selection::Function { key, .. } | Selection::Alias { key, .. } | Selection::Json { key, .. } => {
                key
            }
        }
    }
}

/// Why `fields` is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldsError {
    /// Unknown (or not readable) field: FORBIDDEN naming it, with the relational path.
    Field {
        collection: String,
        field: String,
        path: Option<String>,
    },
    Invalid(String),
}

/// Splits a `fields` value into items: commas outside parentheses, trimmed, empties dropped.
pub fn split(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    items.push(current);
    items
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `a.b.json(c, d.e)` → `["a", "b", "json(c, d.e)"]`: dots inside parentheses stay.
pub fn split_path(path: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in path.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            '.' if depth == 0 => {
                parts.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&path[start..]);
    parts
}

/// Builds the selection for `paths` (e.g. `["*", "author.name", "comments.*"]`) on `collection`,
/// at most `max_depth` relations deep.
pub fn build(
    snapshot: &SchemaSnapshot,
    collection: &str,
    paths: &[String],
    max_depth: usize,
) -> Result<Vec<Selection>, FieldsError> {
    let target = snapshot
        .collection(collection)
        .ok_or_else(|| FieldsError::Field {
            collection: collection.into(),
            field: "*".into(),
            path: None,
        })?;
    let split: Vec<Vec<&str>> = paths.iter().map(|p| split_path(p)).collect();
    let refs: Vec<&[&str]> = split.iter().map(|p| p.as_slice()).collect();
    level(snapshot, target, &refs, max_depth, None)
}

fn level(
    snapshot: &SchemaSnapshot,
    collection: &Collection,
    paths: &[&[&str]],
    depth_left: usize,
    prefix: Option<&str>,
) -> Result<Vec<Selection>, FieldsError> {
    let mut out: Vec<Selection> = Vec::new();
    // Children requested per relational field, in first-seen order.
    let mut nested: Vec<(String, Vec<&[&str]>)> = Vec::new();
    let mut wanted: Vec<String> = Vec::new();
    for path in paths {
        let Some((head, rest)) = path.split_first() else {
            continue;
        };
        if *head == "*" {
            for field in &collection.fields {
                if rest.is_empty() {
                    push_unique(&mut wanted, &field.field);
                } else if is_relational(snapshot, collection, &field.field) {
                    push_nested(&mut nested, &field.field, rest);
                }
            }
            continue;
        }
        if let Some(open) = head.find('(')
            && &head[..open] == "json"
        {
            let inner = head[open + 1..]
                .strip_suffix(')')
                .ok_or_else(|| FieldsError::Invalid("Missing closing parenthesis in \"fields\"".into()))?;
            let (name, path) = inner
                .split_once(',')
                .map(|(n, p)| (n.trim(), p.trim()))
                .ok_or_else(|| FieldsError::Invalid("Invalid function specified \"json\"".into()))?;
            let field = collection
                .field(name)
                .ok_or_else(|| forbidden(collection, name, prefix))?;
            if field.field_type != FieldType::Json {
                return Err(FieldsError::Invalid("Invalid function specified \"json\"".into()));
            }
            let steps = crate::core::filter::json_steps(path)
                .map_err(|_| FieldsError::Invalid(format!("Invalid JSON path \"{path}\" in \"fields\"")))?;
            let key = format!("{name}_{}_json", steps.join("_"));
            if !out.iter().any(|s| s.key() == key) {
                out.push(Selection::Json {
                    field: name.to_string(),
                    steps,
                    key,
                });
            }
            continue;
        }
        if let Some(open) = head.find('(') {
            let function = Function::parse(&head[..open]).ok_or_else(|| {
                FieldsError::Invalid(format!("Invalid function specified \"{}\"", &head[..open]))
            })?;
            let inner = head[open + 1..]
                .strip_suffix(')')
                .ok_or_else(|| FieldsError::Invalid("Missing closing parenthesis in \"fields\"".into()))?;
            let field = collection
                .field(inner)
                .ok_or_else(|| forbidden(collection, inner, prefix))?;
            let countable = function == Function::Count
                && (field.field_type == FieldType::Json
                    || snapshot.one_to_many(&collection.collection, inner).is_some());
            let dated = function != Function::Count
                && matches!(
                    field.field_type,
                    FieldType::Date | FieldType::Time | FieldType::DateTime | FieldType::Timestamp
                );
            if !countable && !dated {
                return Err(FieldsError::Invalid(format!(
                    "Invalid function specified \"{}\"",
                    &head[..open]
                )));
            }
            let key = format!("{inner}_{}", &head[..open]);
            if !out.iter().any(|s| s.key() == key) {
                out.push(Selection::Function {
                    field: inner.to_string(),
                    function,
                    key,
                });
            }
            continue;
        }
        collection
            .field(head)
            .ok_or_else(|| forbidden(collection, head, prefix))?;
        if rest.is_empty() {
            push_unique(&mut wanted, head);
        } else if is_relational(snapshot, collection, head) {
            push_nested(&mut nested, head, rest);
        } else {
            // Directus drops `x.y` when `x` is not a relation.
            continue;
        }
    }
    for name in &wanted {
        if nested.iter().any(|(n, _)| n == name) {
            continue;
        }
        if let Some(selection) = plain(snapshot, collection, name) {
            out.push(selection);
        }
    }
    for (name, children) in nested {
        if depth_left == 0 {
            return Err(FieldsError::Invalid("Max relational depth exceeded".into()));
        }
        let path = match prefix {
            Some(p) => format!("{p}.{name}"),
            None => name.clone(),
        };
        out.push(relational(
            snapshot,
            collection,
            &name,
            &children,
            depth_left - 1,
            &path,
        )?);
    }
    // Keep the collection's field order, as Directus returns columns.
    out.sort_by_key(|s| {
        let name = match s {
            Selection::Function { field, .. } | Selection::Json { field, .. } => field.as_str(),
            other => other.key(),
        };
        collection
            .fields
            .iter()
            .position(|f| f.field == name)
            .unwrap_or(usize::MAX)
    });
    Ok(out)
}

fn push_unique(list: &mut Vec<String>, name: &str) {
    if !list.iter().any(|n| n == name) {
        list.push(name.to_string());
    }
}

fn push_nested<'p>(nested: &mut Vec<(String, Vec<&'p [&'p str]>)>, name: &str, rest: &'p [&'p str]) {
    match nested.iter_mut().find(|(n, _)| n == name) {
        Some((_, list)) => list.push(rest),
        None => nested.push((name.to_string(), vec![rest])),
    }
}

fn forbidden(collection: &Collection, field: &str, prefix: Option<&str>) -> FieldsError {
    FieldsError::Field {
        collection: collection.collection.clone(),
        field: field.to_string(),
        path: prefix.map(String::from),
    }
}

fn is_relational(snapshot: &SchemaSnapshot, collection: &Collection, field: &str) -> bool {
    many_to_one(snapshot, collection, field).is_some() || one_to_many(snapshot, collection, field).is_some()
}

fn many_to_one(snapshot: &SchemaSnapshot, collection: &Collection, field: &str) -> Option<(String, String)> {
    let related = snapshot
        .relation(&collection.collection, field)?
        .related_collection
        .clone()?;
    let key = snapshot.collection(&related)?.primary_key.clone()?;
    Some((related, key))
}

fn one_to_many(
    snapshot: &SchemaSnapshot,
    collection: &Collection,
    field: &str,
) -> Option<(String, String, String)> {
    let relation = snapshot.one_to_many(&collection.collection, field)?;
    let key = snapshot.collection(&relation.collection)?.primary_key.clone()?;
    Some((relation.collection.clone(), relation.field.clone(), key))
}

/// A field without sub-selection: a column, or an O2M alias as its key list. Other aliases
/// (presentation fields) have no value and are left out.
fn plain(snapshot: &SchemaSnapshot, collection: &Collection, name: &str) -> Option<Selection> {
    let field = collection.field(name)?;
    if field.schema.is_some() {
        return Some(Selection::Column {
            field: name.to_string(),
            field_type: field.field_type,
        });
    }
    let (related, related_field, related_key) = one_to_many(snapshot, collection, name)?;
    Some(Selection::OneToMany {
        field: name.to_string(),
        related,
        related_field,
        related_key,
        children: None,
        nested: Nested::default(),
    })
}

fn relational(
    snapshot: &SchemaSnapshot,
    collection: &Collection,
    name: &str,
    children: &[&[&str]],
    depth_left: usize,
    path: &str,
) -> Result<Selection, FieldsError> {
    if let Some((related, related_key)) = many_to_one(snapshot, collection, name) {
        let target = snapshot
            .collection(&related)
            .ok_or_else(|| forbidden(collection, name, None))?;
        let children = level(snapshot, target, children, depth_left, Some(path))?;
        return Ok(Selection::ManyToOne {
            field: name.to_string(),
            related,
            related_key,
            children,
            nested: Nested::default(),
        });
    }
    let (related, related_field, related_key) =
        one_to_many(snapshot, collection, name).ok_or_else(|| forbidden(collection, name, None))?;
    let target = snapshot
        .collection(&related)
        .ok_or_else(|| forbidden(collection, name, None))?;
    let children = level(snapshot, target, children, depth_left, Some(path))?;
    Ok(Selection::OneToMany {
        field: name.to_string(),
        related,
        related_field,
        related_key,
        children: Some(children),
        nested: Nested::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_split_on_commas_outside_parentheses() {
        assert_eq!(split(" a, b.c ,year(d),,"), vec!["a", "b.c", "year(d)"]);
        assert_eq!(split("json(a, b),c"), vec!["json(a, b)", "c"]);
    }

    proptest::proptest! {
        #[test]
        fn splitting_never_panics(text in ".{0,60}") {
            let _ = split(&text);
        }
    }
}
