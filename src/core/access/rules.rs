//! What a read may see, per collection, as the SQL compiler consumes it: which rows (a filter
//! AND-ed into every level of the statement) and, where policies disagree, which fields are
//! visible only in some rows (rendered as `case when <rule> then <value> end`, i.e. `null`
//! elsewhere, as Directus v11 does). Planned by [`super::plan`] from the caller's permissions;
//! the SQL compiler in `db::items` reads it.

use std::collections::{HashMap, HashSet};

use crate::core::filter::Filter;

/// Rules for one collection.
#[derive(Debug, Clone, Default)]
pub struct CollectionRules {
    /// Only rows matching this are visible; `None`: every row.
    pub rows: Option<Filter>,
    /// Fields visible only in rows matching their filter.
    pub conditional: HashMap<String, Filter>,
    /// Readable fields; `None`: all of them.
    pub readable: Option<HashSet<String>>,
}

/// Rules for every collection a read touches. An empty set with `unrestricted` is the admin.
#[derive(Debug, Clone, Default)]
pub struct ReadRules {
    pub unrestricted: bool,
    pub collections: HashMap<String, CollectionRules>,
}

impl ReadRules {
    /// No restriction at all (admins).
    pub fn unrestricted() -> ReadRules {
        ReadRules {
            unrestricted: true,
            collections: HashMap::new(),
        }
    }

    /// The row filter of `collection`. A collection without rules (never granted) shows no
    /// rows: callers check grants before compiling, so this is the safe fallback.
    pub fn rows(&self, collection: &str) -> RowRule<'_> {
        if self.unrestricted {
            return RowRule::All;
        }
        match self.collections.get(collection) {
            None => RowRule::None,
            Some(CollectionRules { rows: None, .. }) => RowRule::All,
            Some(CollectionRules {
                rows: Some(filter), ..
            }) => RowRule::Matching(filter),
        }
    }

    /// The condition under which `field` of `collection` is visible (`None`: wherever the row is).
    pub fn field_condition(&self, collection: &str, field: &str) -> Option<&Filter> {
        if self.unrestricted {
            return None;
        }
        self.collections.get(collection)?.conditional.get(field)
    }

    /// Whether `field` of `collection` may be read at all (search uses only these).
    pub fn readable(&self, collection: &str, field: &str) -> bool {
        if self.unrestricted {
            return true;
        }
        self.collections
            .get(collection)
            .is_some_and(|rules| rules.readable.as_ref().is_none_or(|set| set.contains(field)))
    }
}

/// Which rows of a collection a read may return.
#[derive(Debug, Clone, Copy)]
pub enum RowRule<'a> {
    All,
    Matching(&'a Filter),
    None,
}
