//! Read queries against read rules: every field a query touches must be readable, in every
//! collection its relations reach; `*` shrinks to what is readable.
//!
//! Directus v11 (`permissions/modules/process-ast`): `fieldMapFromAst` collects the fields of
//! `fields` (with nested relations and `count()` of O2M fields), `filter` (relations, `_some`,
//! `_none`), `sort` (M2O hops), `aggregate`, `groupBy` and each relation's `deep` query;
//! `validatePathPermissions` refuses a collection with no rule and a field no rule grants, with
//! the error a missing field gets, so existence is not revealed. Which *values* those fields
//! show (cases, [`super::Visibility`]) is the SQL compiler's part; here only names are checked.

use std::collections::HashMap;
use std::rc::Rc;

use super::{AccessError, Resolved};
use crate::core::filter::{Filter, Function, RelationKind};
use crate::core::query::fields::{Selection, split_path};
use crate::core::query::{Query, Sort};
use crate::core::schema::SchemaSnapshot;

/// Checks every field `query` on `collection` touches against the read rules `read` returns
/// (`None`: no read permission). The first refusal is returned: [`AccessError::Forbidden`] for
/// a collection that may not be read, [`AccessError::Field`] for a field, with its relational
/// path. Run it after [`narrow_wildcards`], on the query that will execute.
pub fn check_query(
    query: &Query,
    snapshot: &SchemaSnapshot,
    collection: &str,
    read: &dyn Fn(&str) -> Result<Option<Resolved>, AccessError>,
) -> Result<(), AccessError> {
    let mut walk = Walk {
        snapshot,
        cache: Rules::new(read),
    };
    let rules = walk.cache.readable(collection)?;
    walk.selections(&query.fields, &rules, None)?;
    if let Some(filter) = &query.filter {
        walk.filter(filter, &rules, None)?;
    }
    // The order `query::parse` adds when none is asked for (primary key or the collection's
    // sort field) is the server's, not the caller's: Directus applies it unchecked.
    if !is_default_sort(&query.sort, snapshot, collection) {
        walk.sorts(&query.sort, &rules, None)?;
    }
    for aggregate in &query.aggregate {
        if let Some((field, _)) = &aggregate.field {
            need(&rules, field, None)?;
        }
    }
    for key in &query.group_by {
        need(&rules, &key.field, None)?;
    }
    Ok(())
}

/// Removes from `selections` the fields that came from a `*` and may not be read, as Directus
/// expands wildcards to the permitted fields only. `requested` is the `fields` parameter as the
/// query was parsed from (its items, `["*"]` when absent): a field named there explicitly is
/// kept, so [`check_query`] refuses it. Relations a wildcard reached (`*.*`) are dropped when
/// their collection may not be read.
pub fn narrow_wildcards(
    selections: &mut Vec<Selection>,
    requested: &[String],
    collection: &str,
    read: &dyn Fn(&str) -> Result<Option<Resolved>, AccessError>,
) -> Result<(), AccessError> {
    let mut cache = Rules::new(read);
    let rules = cache.readable(collection)?;
    let paths: Vec<Vec<&str>> = requested.iter().map(|p| split_path(p)).collect();
    let refs: Vec<&[&str]> = paths.iter().map(Vec::as_slice).collect();
    narrow_level(selections, &refs, &rules, &mut cache)
}

fn narrow_level(
    selections: &mut Vec<Selection>,
    paths: &[&[&str]],
    rules: &Resolved,
    cache: &mut Rules<'_>,
) -> Result<(), AccessError> {
    let named = |field: &str| paths.iter().any(|p| p.first() == Some(&field));
    // Sub-paths that reach into `field`: its own, and a wildcard's (`*.*`).
    let below = |field: &str| -> Vec<&[&str]> {
        paths
            .iter()
            .filter_map(|p| match p.split_first() {
                Some((head, rest)) if !rest.is_empty() && (*head == field || *head == "*") => Some(rest),
                _ => None,
            })
            .collect()
    };
    let mut kept = Vec::with_capacity(selections.len());
    for mut selection in selections.drain(..) {
        let keep = match &mut selection {
            // Functions, JSON paths and aliases are always named explicitly.
            Selection::Function { .. } | Selection::Json { .. } | Selection::Alias { .. } => true,
            Selection::Column { field, .. } => named(field) || rules.can(field),
            Selection::ManyToOne {
                field,
                related,
                children,
                ..
            } => {
                let explicit = named(field);
                match cache.get(related)? {
                    Some(related_rules) if explicit || rules.can(field) => {
                        narrow_level(children, &below(field), &related_rules, cache)?;
                        true
                    }
                    _ => explicit,
                }
            }
            Selection::OneToMany {
                field,
                related,
                related_key,
                children,
                ..
            } => {
                let explicit = named(field);
                match cache.get(related)? {
                    Some(related_rules) if explicit || rules.can(field) => match children {
                        Some(children) => {
                            narrow_level(children, &below(field), &related_rules, cache)?;
                            true
                        }
                        // The bare alias reads the related keys.
                        None => explicit || related_rules.can(related_key),
                    },
                    _ => explicit,
                }
            }
        };
        if keep {
            kept.push(selection);
        }
    }
    *selections = kept;
    Ok(())
}

/// Read rules per collection, resolved once per walk.
struct Rules<'r> {
    read: &'r dyn Fn(&str) -> Result<Option<Resolved>, AccessError>,
    seen: HashMap<String, Option<Rc<Resolved>>>,
}

impl<'r> Rules<'r> {
    fn new(read: &'r dyn Fn(&str) -> Result<Option<Resolved>, AccessError>) -> Self {
        Rules {
            read,
            seen: HashMap::new(),
        }
    }

    fn get(&mut self, collection: &str) -> Result<Option<Rc<Resolved>>, AccessError> {
        if let Some(found) = self.seen.get(collection) {
            return Ok(found.clone());
        }
        let found = (self.read)(collection)?.map(Rc::new);
        self.seen.insert(collection.to_string(), found.clone());
        Ok(found)
    }

    /// Rules of a collection the query reaches; none at all is `FORBIDDEN`.
    fn readable(&mut self, collection: &str) -> Result<Rc<Resolved>, AccessError> {
        self.get(collection)?.ok_or(AccessError::Forbidden)
    }
}

struct Walk<'a, 'r> {
    snapshot: &'a SchemaSnapshot,
    cache: Rules<'r>,
}

impl Walk<'_, '_> {
    fn selections(
        &mut self,
        selections: &[Selection],
        rules: &Resolved,
        path: Option<&str>,
    ) -> Result<(), AccessError> {
        for selection in selections {
            self.selection(selection, rules, path)?;
        }
        Ok(())
    }

    fn selection(
        &mut self,
        selection: &Selection,
        rules: &Resolved,
        path: Option<&str>,
    ) -> Result<(), AccessError> {
        match selection {
            Selection::Column { field, .. } | Selection::Json { field, .. } => need(rules, field, path),
            Selection::Function { field, function, .. } => {
                need(rules, field, path)?;
                // `count(o2m)` counts related items: their collection must be readable.
                if *function == Function::Count
                    && let Some(relation) = self.snapshot.one_to_many(rules.collection(), field)
                {
                    self.cache.readable(&relation.collection)?;
                }
                Ok(())
            }
            // The alias is a new name for its target; the target is what is read (a renamed
            // field must not escape its rule, GHSA-p8v3-m643-4xqx).
            Selection::Alias { target, .. } => self.selection(target, rules, path),
            Selection::ManyToOne {
                field,
                related,
                children,
                nested,
                ..
            } => {
                need(rules, field, path)?;
                let related_rules = self.cache.readable(related)?;
                let inner = join(path, field);
                self.selections(children, &related_rules, Some(&inner))?;
                if let Some(filter) = &nested.filter {
                    self.filter(filter, &related_rules, Some(&inner))?;
                }
                self.sorts(&nested.sort, &related_rules, Some(&inner))
            }
            Selection::OneToMany {
                field,
                related,
                related_key,
                children,
                nested,
                ..
            } => {
                need(rules, field, path)?;
                let related_rules = self.cache.readable(related)?;
                let inner = join(path, field);
                match children {
                    Some(children) => self.selections(children, &related_rules, Some(&inner))?,
                    None => need(&related_rules, related_key, Some(&inner))?,
                }
                if let Some(filter) = &nested.filter {
                    self.filter(filter, &related_rules, Some(&inner))?;
                }
                self.sorts(&nested.sort, &related_rules, Some(&inner))
            }
        }
    }

    fn filter(&mut self, filter: &Filter, rules: &Resolved, path: Option<&str>) -> Result<(), AccessError> {
        match filter {
            Filter::And(children) | Filter::Or(children) => {
                for child in children {
                    self.filter(child, rules, path)?;
                }
                Ok(())
            }
            Filter::Condition(condition) => need(rules, &condition.field, path),
            Filter::Relation(relation) => {
                need(rules, &relation.field, path)?;
                let related = match &relation.kind {
                    RelationKind::ManyToOne { related, .. } | RelationKind::OneToMany { related, .. } => {
                        related
                    }
                };
                let related_rules = self.cache.readable(related)?;
                self.filter(
                    &relation.filter,
                    &related_rules,
                    Some(&join(path, &relation.field)),
                )
            }
        }
    }

    fn sorts(&mut self, sorts: &[Sort], rules: &Resolved, path: Option<&str>) -> Result<(), AccessError> {
        for sort in sorts {
            // Rules of the collection the last M2O hop reached; `rules` before any hop.
            let mut reached: Option<Rc<Resolved>> = None;
            let mut at = path.map(String::from);
            for hop in &sort.through {
                need(reached.as_deref().unwrap_or(rules), &hop.field, at.as_deref())?;
                reached = Some(self.cache.readable(&hop.related)?);
                at = Some(join(at.as_deref(), &hop.field));
            }
            need(reached.as_deref().unwrap_or(rules), &sort.field, at.as_deref())?;
        }
        Ok(())
    }
}

/// `field` must be granted by `rules`, else it is refused as if it did not exist.
fn need(rules: &Resolved, field: &str, path: Option<&str>) -> Result<(), AccessError> {
    if rules.can(field) {
        Ok(())
    } else {
        Err(AccessError::Field {
            collection: rules.collection().to_string(),
            field: field.to_string(),
            path: path.map(String::from),
        })
    }
}

fn join(path: Option<&str>, field: &str) -> String {
    match path {
        Some(path) => format!("{path}.{field}"),
        None => field.to_string(),
    }
}

/// Whether `sort` is what `query::parse` puts in when none is given: the collection's sort
/// field if it has one, else its primary key, ascending.
fn is_default_sort(sort: &[Sort], snapshot: &SchemaSnapshot, collection: &str) -> bool {
    let ([only], Some(target)) = (sort, snapshot.collection(collection)) else {
        return false;
    };
    let default = target
        .meta
        .as_ref()
        .and_then(|m| m.sort_field.as_deref())
        .filter(|f| target.field(f).is_some())
        .or(target.primary_key.as_deref());
    !only.descending && only.through.is_empty() && Some(only.field.as_str()) == default
}

#[cfg(test)]
mod tests;
