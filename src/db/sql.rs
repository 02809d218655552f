//! Rendering identifiers and DDL literals into SQL text.
//!
//! DML never needs [`literal`]: values there are bound parameters. DDL cannot bind parameters
//! (a column default is part of the statement), so [`literal`] exists for that one case, and
//! every DDL transaction first sets `standard_conforming_strings = on` so backslashes are inert.

/// Quotes an identifier: `a"b` → `"a""b"`.
pub fn ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Quotes `schema.name`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", ident(schema), ident(name))
}

/// The table behind a collection: `directus_users` and the other system collections live in
/// our `directrix` schema under their short names; every other collection is `schema.name`.
pub fn table(schema: &str, collection: &str) -> String {
    match collection.strip_prefix("directus_") {
        Some(short) => qualified("directrix", short),
        None => qualified(schema, collection),
    }
}

/// Quotes a string literal for DDL: `it's` → `'it''s'`. NUL cannot be stored in Postgres
/// text and is rejected by the caller before this point.
pub fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn identifiers_and_literals_are_escaped() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(qualified("public", "x"), "\"public\".\"x\"");
        assert_eq!(literal("it's"), "'it''s'");
    }

    proptest! {
        #[test]
        fn quoted_identifiers_have_no_lone_quote(name in ".{0,40}") {
            let quoted = ident(&name);
            let inner = &quoted[1..quoted.len() - 1];
            prop_assert!(!inner.replace("\"\"", "").contains('"'));
        }
    }
}
