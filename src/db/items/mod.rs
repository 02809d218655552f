//! Items SQL: compiled from `core`'s query AST (see [`compile`]) and run here.

pub mod compile;
pub mod nested;
pub mod read;
/// The read rules live in `core` (pure data); re-exported where the compiler always found them.
pub use crate::core::access::rules;
pub mod write;

use sqlx::postgres::PgArguments;
use sqlx::{AssertSqlSafe, Postgres};

use compile::{Bind, Sql};

/// A ready-to-run query for compiled SQL; every bind is text or a text array, cast in the SQL.
pub fn query(sql: &Sql) -> sqlx::query::Query<'static, Postgres, PgArguments> {
    let mut query = sqlx::query(AssertSqlSafe(sql.text.clone()));
    for bind in &sql.binds {
        query = match bind {
            Bind::Text(text) => query.bind(text.clone()),
            Bind::TextArray(items) => query.bind(items.clone()),
        };
    }
    query
}
