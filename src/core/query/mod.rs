//! The Directus query language: parameters → a typed, schema-validated [`Query`].
//!
//! `params` decodes query strings; `filter` parses and evaluates filter trees. The SQL compiler
//! lives in `db::items` and the in-memory evaluator in `filter::eval`; both consume the same AST,
//! so REST reads, realtime subscriptions and permission rules agree on what matches.

pub mod params;
