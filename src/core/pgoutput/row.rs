//! [`Row`]: one tuple of a change, column name → [`Datum`], in the relation's column order.
//!
//! Values stay Postgres text here; `value.rs` turns them into Directus JSON once the caller
//! knows each field's type. Rows are built by `transaction.rs`.

use std::sync::Arc;

/// One column value of a [`Row`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datum {
    Null,
    /// The type's text output, as Postgres sent it.
    Text(String),
    /// A TOASTed value the update left unchanged, which Postgres therefore did not send. With
    /// REPLICA IDENTITY FULL the decoder fills it from the old row; otherwise the consumer must
    /// take it from a cached row or read it again.
    Unchanged,
}

impl Datum {
    /// The value as Postgres text: `None` for null, and for an unsent unchanged value.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Datum::Text(text) => Some(text),
            Datum::Null | Datum::Unchanged => None,
        }
    }

    pub fn is_unchanged(&self) -> bool {
        matches!(self, Datum::Unchanged)
    }
}

/// Named column values of one row. Column names are shared with the decoder's relation cache,
/// so a row costs one allocation per text value, not per name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Row {
    columns: Vec<(Arc<str>, Datum)>,
}

impl Row {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Row {
            columns: Vec::with_capacity(capacity),
        }
    }

    pub(super) fn push(&mut self, name: Arc<str>, datum: Datum) {
        self.columns.push((name, datum));
    }

    /// The value of column `name`; `None` when the row has no such column (a key-only old row
    /// holds only the key columns).
    pub fn get(&self, name: &str) -> Option<&Datum> {
        self.columns.iter().find(|(n, _)| &**n == name).map(|(_, d)| d)
    }

    /// Columns in the relation's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Datum)> {
        self.columns.iter().map(|(n, d)| (&**n, d))
    }

    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Bytes of text the row holds, for the decoder's memory budget.
    pub(super) fn text_len(&self) -> usize {
        self.columns
            .iter()
            .map(|(_, d)| d.as_text().map_or(0, str::len))
            .sum()
    }

    /// Whether any value is [`Datum::Unchanged`] (still missing after the merge with the old row).
    pub fn has_unchanged(&self) -> bool {
        self.columns.iter().any(|(_, d)| d.is_unchanged())
    }

    /// Replaces unchanged values with the same column's value in `old`, where `old` has one.
    /// Postgres sends the old row whole (detoasted) under REPLICA IDENTITY FULL, so after this
    /// the new row is complete; with a key-only old row only key columns could be filled.
    pub(super) fn fill_unchanged_from(&mut self, old: &Row) {
        for (name, datum) in &mut self.columns {
            if datum.is_unchanged()
                && let Some(previous) = old.get(name)
                && !previous.is_unchanged()
            {
                *datum = previous.clone();
            }
        }
    }
}

impl<N: Into<Arc<str>>> FromIterator<(N, Datum)> for Row {
    fn from_iter<I: IntoIterator<Item = (N, Datum)>>(iter: I) -> Self {
        Row {
            columns: iter.into_iter().map(|(n, d)| (n.into(), d)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Datum {
        Datum::Text(s.into())
    }

    #[test]
    fn unchanged_values_are_filled_from_the_old_row() {
        let old: Row = [("id", text("1")), ("body", text("long")), ("note", Datum::Null)]
            .into_iter()
            .collect();
        let mut new: Row = [
            ("id", text("1")),
            ("body", Datum::Unchanged),
            ("note", Datum::Unchanged),
        ]
        .into_iter()
        .collect();
        new.fill_unchanged_from(&old);
        assert_eq!(new, old);
        assert!(!new.has_unchanged());
    }

    #[test]
    fn a_key_only_old_row_leaves_other_columns_unchanged() {
        let old: Row = [("id", text("1"))].into_iter().collect();
        let mut new: Row = [("id", text("2")), ("body", Datum::Unchanged)]
            .into_iter()
            .collect();
        new.fill_unchanged_from(&old);
        assert_eq!(new.get("id"), Some(&text("2")));
        assert_eq!(new.get("body"), Some(&Datum::Unchanged));
        assert_eq!(new.get("missing"), None);
        assert!(new.has_unchanged());
    }
}
