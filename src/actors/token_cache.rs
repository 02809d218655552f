//! Caches static-token lookups so an authenticated request costs no extra database round trip.
//!
//! Entries are dropped all at once whenever users, roles, policies or access rows change
//! (the `directrix_access` notification, see `actors::schema`), so a revoked or reassigned
//! token stops working as soon as the change commits. Bounded: past [`MAX_ENTRIES`] the cache
//! starts over rather than grow.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::db::users::TokenOwner;

/// Distinct tokens remembered before the cache is emptied.
pub const MAX_ENTRIES: usize = 10_000;

/// Token digest → owner (or `None`: no active user has it).
#[derive(Default)]
pub struct TokenCache {
    entries: RwLock<HashMap<String, Option<TokenOwner>>>,
}

impl TokenCache {
    /// The cached answer for a digest, if any.
    pub fn get(&self, digest: &str) -> Option<Option<TokenOwner>> {
        self.entries.read().ok()?.get(digest).cloned()
    }

    /// Remembers an answer.
    pub fn put(&self, digest: String, owner: Option<TokenOwner>) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(digest, owner);
        }
    }

    /// Forgets everything (access data changed).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }
}
