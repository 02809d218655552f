//! Keeps the schema API (`/collections`, `/fields`, `/relations`) to user collections: the
//! system collections (`directus_*`) are in the snapshot so the items engine can serve
//! `/users` and friends, but their shape is ours to migrate, not a client's to change.

use crate::error::Error;

/// `FORBIDDEN` for a system collection, as for one that does not exist.
pub fn refuse_system(collection: &str) -> Result<(), Error> {
    if is_system(collection) {
        return Err(Error::Forbidden);
    }
    Ok(())
}

/// Whether a collection is one of Directus's system collections.
pub fn is_system(collection: &str) -> bool {
    collection.starts_with("directus_")
}
