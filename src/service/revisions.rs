//! Reverting an item to a revision, as Directus's `RevisionsService.revert`: the revision is
//! read as the caller (so reading `directus_revisions` must be granted), then its `data` is
//! written back through the items service as an ordinary update by the caller (so the update
//! right on the item must be granted, and the revert is itself recorded as an `update`).

use serde_json::{Map, Value};

use super::items::ItemsQuery;
use super::{Accountability, ItemsService, Services};
use crate::error::Error;

/// Writes revision `revision`'s data back onto its item. `FORBIDDEN` for a revision that does
/// not exist or may not be read; `INVALID_PAYLOAD` for one without data.
pub async fn revert(services: &Services, acc: &Accountability, revision: &str) -> Result<(), Error> {
    let schema = services.schema();
    let mut revisions = ItemsService::new(services, "directus_revisions", acc, schema.clone());
    let row = revisions
        .read_one(revision, &ItemsQuery::fields("collection,item,data"))
        .await?;
    let row: Value = serde_json::from_str(&row).map_err(Error::internal)?;
    let (Some(collection), Some(item)) = (row["collection"].as_str(), row["item"].as_str()) else {
        return Err(Error::Forbidden);
    };
    let Value::Object(data) = &row["data"] else {
        return Err(Error::payload("Revision doesn't contain data to revert to"));
    };
    let target = super::items::collection_of(&schema, collection)?;
    // Directus writes back the item's own fields: not the key, not aliases, not fields that
    // are gone since.
    let data: Map<String, Value> = data
        .iter()
        .filter(|(field, _)| {
            target.primary_key.as_deref() != Some(field.as_str())
                && target.field(field).is_some_and(|f| f.schema.is_some())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ItemsService::new(services, collection, acc, schema.clone())
        .update_one(item, Value::Object(data))
        .await
        .map(drop)
}
