//! Pure logic shared by every layer: the schema model, field types, name rules, queries,
//! filters, access control, tokens and the pgoutput (logical replication) decoder.
//!
//! Nothing in `core` does I/O, reads the clock or knows about HTTP or SQL connections; callers
//! pass data in.

pub mod access;
pub mod catalog;
pub mod field_type;
pub mod filter;
pub mod name;
pub mod otp;
pub mod password;
pub mod payload;
pub mod pgoutput;
pub mod query;
pub mod realtime;
pub mod schema;
pub mod schema_change;
pub mod token;
