//! All SQL: the pool, migrations, bootstrap, introspection, DDL, metadata rows, the logical
//! replication setup (publication, slot), and the embedded cluster that hosts them by default.
//!
//! Identifiers in SQL come only from the schema snapshot or from names checked by
//! `core::name`, and are always quoted with [`sql::ident`]; values are always bound parameters.
//! Postgres errors become client errors in one place, [`constraint::classify`].

pub mod access;
pub mod activity;
pub mod bootstrap;
pub mod cluster;
pub mod constraint;
pub mod ddl;
pub mod introspect;
pub mod items;
pub mod metadata;
pub mod permissions;
pub mod pool;
pub mod replication;
pub mod sessions;
pub mod sql;
pub mod users;
