//! Directrix: a real-time backend that speaks the Directus API over PostgreSQL.
//!
//! Layers, importing one way only: [`http`] → [`actors`] / [`service`] → [`db`] / [`core`]
//! ([`actors`] may call [`service`]). [`app`] composes them; [`config`], [`error`] and
//! [`telemetry`] are shared by all.

pub mod actors;
pub mod app;
pub mod config;
pub mod core;
pub mod db;
pub mod error;
pub mod http;
pub mod mail;
pub mod service;
pub mod telemetry;
