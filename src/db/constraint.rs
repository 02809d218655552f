//! Turns Postgres failures into client errors, keyed by SQLSTATE (realworld's `on_constraint`,
//! Directus's `database/errors/dialects/postgres.ts`). The only place SQLSTATEs are spelled.
//!
//! Table and column names come from the error's own fields (`table`, `column`) or its detail
//! line (`Key (email)=(...) already exists.`); the detail's values are never echoed back.

use sqlx::postgres::PgDatabaseError;

use crate::error::Error;

/// Classifies any sqlx error.
pub fn classify(err: sqlx::Error) -> Error {
    match err {
        sqlx::Error::Database(db) => match db.try_downcast::<PgDatabaseError>() {
            Ok(pg) => classify_pg(&pg).unwrap_or_else(|| Error::internal(sqlx::Error::Database(pg))),
            Err(other) => Error::internal(sqlx::Error::Database(other)),
        },
        sqlx::Error::RowNotFound => Error::Forbidden,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            tracing::warn!(error = %err, "database unavailable");
            Error::ServiceUnavailable {
                service: "database".into(),
                reason: "Database connection unavailable".into(),
            }
        }
        other => Error::internal(other),
    }
}

fn classify_pg(pg: &PgDatabaseError) -> Option<Error> {
    let collection = || pg.table().unwrap_or_default().to_string();
    let field = || {
        pg.column()
            .map(str::to_string)
            .or_else(|| detail_key(pg.detail()))
            .unwrap_or_default()
    };
    let err = match pg.code() {
        "23505" => Error::RecordNotUnique {
            collection: collection(),
            field: field(),
        },
        "23503" => Error::InvalidForeignKey {
            collection: collection(),
            field: field(),
        },
        // The same SQLSTATE covers DDL that meets existing nulls (Directus tells them apart by
        // the message too).
        "23502" if pg.message().ends_with("contains null values") => Error::ContainsNullValues {
            collection: collection(),
            field: field(),
        },
        "23502" => Error::NotNullViolation {
            collection: collection(),
            field: field(),
        },
        "22001" => Error::ValueTooLong {
            collection: collection(),
            field: field(),
        },
        "22003" => Error::ValueOutOfRange {
            collection: collection(),
            field: field(),
        },
        // The message names the type and the client's own value, never other data.
        "22P02" | "22007" | "22008" | "22023" | "22004" | "2202E" | "22P05" => Error::payload(pg.message()),
        // DDL the client asked for that Postgres refuses: duplicate names, impossible casts,
        // objects (views) depending on what is being dropped. The message names only objects.
        "42P07" | "42701" | "42710" | "42804" | "42846" | "2BP01" | "42P16" => Error::payload(pg.message()),
        "23514" => Error::payload(format!(
            "Value violates check \"{}\"",
            pg.constraint().unwrap_or_default()
        )),
        // A table or column vanished under us (DDL from outside, snapshot not yet refreshed):
        // answer as for anything that does not exist.
        "42P01" | "42703" => Error::Forbidden,
        "57P01" | "57P02" | "57P03" | "53300" => Error::ServiceUnavailable {
            service: "database".into(),
            reason: "Database is shutting down or out of connections".into(),
        },
        _ => return None,
    };
    Some(err)
}

/// `Key (email)=(a@b.c) already exists.` → `email`. Multi-column keys are reported whole.
fn detail_key(detail: Option<&str>) -> Option<String> {
    let rest = detail?.strip_prefix("Key (")?;
    let end = rest.find(")=")?;
    Some(rest[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_come_from_the_detail_line() {
        assert_eq!(
            detail_key(Some("Key (email)=(a@b.c) already exists.")),
            Some("email".into())
        );
        assert_eq!(
            detail_key(Some("Key (a, b)=(1, 2) already exists.")),
            Some("a, b".into())
        );
        assert_eq!(detail_key(Some("something else")), None);
        assert_eq!(detail_key(None), None);
    }
}
