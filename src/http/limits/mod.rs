//! Rate limiting and overload shedding: everything that refuses a request because of *how much*
//! is asked rather than *what*.
//!
//! Pressure shedding (`PRESSURE_LIMITER_*`) is per worker and lives in [`pressure`]. The client
//! address comes from [`client_ip`](mod@client_ip); the buckets from [`store`].
//!
//! This module never authenticates or reads the database: limits apply before either, so they
//! stay cheap under attack.

pub mod client_ip;
pub mod pressure;
pub mod store;
