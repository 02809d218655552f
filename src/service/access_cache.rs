//! Caches who callers are, so an authenticated request costs no extra database round trip:
//! static-token digest → user, and user → [`Principal`] (role chain, policies, permissions).
//!
//! Entries are dropped all at once whenever users, roles, policies, access or permission rows
//! change (the `directrix_access` notification, see `actors::schema`), so a revoked token or a
//! narrowed permission takes effect as soon as the change commits, on every instance. Bounded:
//! past [`MAX_ENTRIES`] a map starts over rather than grow.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use uuid::Uuid;

use crate::db::access::Principal;

/// Distinct tokens (and, separately, users) remembered before a map is emptied.
pub const MAX_ENTRIES: usize = 10_000;

/// The caches, shared by every HTTP worker.
#[derive(Default)]
pub struct AccessCache {
    /// Token digest → the active user holding it (`None`: nobody).
    tokens: RwLock<HashMap<String, Option<Uuid>>>,
    /// User (`None`: the public) → what access control needs of them.
    principals: RwLock<HashMap<Option<Uuid>, Arc<Principal>>>,
    /// Bumped by every clear, so a load that raced a change is not cached as current.
    generation: std::sync::atomic::AtomicU64,
}

impl AccessCache {
    /// The cached owner of a static-token digest, if known.
    pub fn token(&self, digest: &str) -> Option<Option<Uuid>> {
        self.tokens.read().ok()?.get(digest).copied()
    }

    /// Remembers a static-token answer.
    pub fn put_token(&self, digest: String, owner: Option<Uuid>, generation: u64) {
        put(&self.tokens, digest, owner, generation, self.generation());
    }

    /// The cached principal of a user, if loaded.
    pub fn principal(&self, user: Option<Uuid>) -> Option<Arc<Principal>> {
        self.principals.read().ok()?.get(&user).cloned()
    }

    /// Remembers a principal loaded at `generation`.
    pub fn put_principal(&self, user: Option<Uuid>, principal: Arc<Principal>, generation: u64) {
        put(&self.principals, user, principal, generation, self.generation());
    }

    /// The current generation; read it before loading, pass it to `put_*`.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Forgets everything (access data changed).
    pub fn clear(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        if let Ok(mut tokens) = self.tokens.write() {
            tokens.clear();
        }
        if let Ok(mut principals) = self.principals.write() {
            principals.clear();
        }
    }
}

fn put<K: std::hash::Hash + Eq, V>(
    map: &RwLock<HashMap<K, V>>,
    key: K,
    value: V,
    loaded_at: u64,
    current: u64,
) {
    if loaded_at != current {
        return;
    }
    if let Ok(mut entries) = map.write() {
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_that_raced_a_clear_is_not_cached() {
        let cache = AccessCache::default();
        let before = cache.generation();
        cache.clear();
        cache.put_token("d".into(), Some(Uuid::nil()), before);
        assert_eq!(cache.token("d"), None);
        cache.put_token("d".into(), Some(Uuid::nil()), cache.generation());
        assert_eq!(cache.token("d"), Some(Some(Uuid::nil())));
        cache.clear();
        assert_eq!(cache.token("d"), None);
    }
}
