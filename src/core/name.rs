//! Rules for the names clients may give new collections and fields.
//!
//! Names read from the database (introspected tables) are not checked here: they are only ever
//! looked up in the schema snapshot and quoted. Names a client creates must be plain, so they are
//! safe in URLs, JSON keys and filter paths, and fit Postgres's 63-byte identifier limit.

/// Postgres truncates identifiers longer than this (NAMEDATALEN - 1).
pub const MAX_NAME_BYTES: usize = 63;

/// Why a name cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{kind} name can't be empty")]
    Empty { kind: &'static str },
    #[error("{kind} name \"{name}\" is longer than {MAX_NAME_BYTES} bytes")]
    TooLong { kind: &'static str, name: String },
    #[error(
        "{kind} name \"{name}\" may only contain letters, digits, \"_\" and \"-\", and can't start with a digit"
    )]
    Characters { kind: &'static str, name: String },
    #[error("Collections can't start with \"{prefix}\"")]
    Reserved { prefix: &'static str },
}

/// Prefixes of system collections; user collections may not take them.
const RESERVED_PREFIXES: &[&str] = &["directus_", "directrix_"];

/// Checks a new collection name.
pub fn check_collection(name: &str) -> Result<(), NameError> {
    check(name, "Collection")?;
    for prefix in RESERVED_PREFIXES {
        if name.to_ascii_lowercase().starts_with(prefix) {
            return Err(NameError::Reserved { prefix });
        }
    }
    Ok(())
}

/// Checks a new field name.
pub fn check_field(name: &str) -> Result<(), NameError> {
    check(name, "Field")
}

fn check(name: &str, kind: &'static str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong {
            kind,
            name: truncate(name),
        });
    }
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !plain || name.as_bytes()[0].is_ascii_digit() {
        return Err(NameError::Characters {
            kind,
            name: truncate(name),
        });
    }
    Ok(())
}

/// Keeps error messages short when a client sends a huge name.
fn truncate(name: &str) -> String {
    name.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_names_pass() {
        assert_eq!(check_collection("articles"), Ok(()));
        assert_eq!(check_field("date_created"), Ok(()));
        assert_eq!(check_field("kebab-case"), Ok(()));
    }

    #[test]
    fn hostile_names_fail() {
        assert!(check_collection("\"; drop table x; --").is_err());
        assert!(check_collection("a b").is_err());
        assert!(check_collection("1abc").is_err());
        assert!(check_collection("").is_err());
        assert!(check_collection(&"a".repeat(64)).is_err());
        assert!(check_field("naïve").is_err());
        assert!(check_field("a\0b").is_err());
    }

    #[test]
    fn system_prefixes_are_reserved() {
        assert_eq!(
            check_collection("directus_users"),
            Err(NameError::Reserved { prefix: "directus_" })
        );
        assert!(check_collection("Directrix_x").is_err());
        assert_eq!(check_field("directus_ok_as_a_field"), Ok(()));
    }

    proptest! {
        #[test]
        fn accepted_names_are_always_safe(name in ".{0,80}") {
            if check_field(&name).is_ok() {
                prop_assert!(name.len() <= MAX_NAME_BYTES);
                prop_assert!(!name.contains('"') && !name.contains('\0') && !name.contains(' '));
            }
        }
    }
}
