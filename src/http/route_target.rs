//! Which collection (and item) an items-style route addresses. `/items/:collection[/:id]` take
//! them from the path; the system routes (`/users`, `/roles`, `/policies`, `/permissions`,
//! `/access`) are the same handlers with the collection fixed on the resource, so one code
//! path (and one permission check) serves both.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};

use crate::error::Error;

/// Set on a system resource: the Directus collection it serves.
#[derive(Debug, Clone, Copy)]
pub struct SystemCollection(pub &'static str);

/// The addressed collection.
#[derive(Debug, Clone)]
pub struct CollectionName {
    pub name: String,
    /// A system route; `/items/directus_*` is refused, the system routes are not.
    pub system: bool,
}

impl FromRequest for CollectionName {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match req.app_data::<SystemCollection>() {
            Some(system) => Ok(CollectionName {
                name: system.0.to_string(),
                system: true,
            }),
            None => req
                .match_info()
                .get("collection")
                .map(|name| CollectionName {
                    name: name.to_string(),
                    system: false,
                })
                .ok_or_else(|| Error::RouteNotFound {
                    path: req.path().to_string(),
                }),
        })
    }
}

/// The addressed item's key, as text.
#[derive(Debug, Clone)]
pub struct ItemKey(pub String);

impl FromRequest for ItemKey {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.match_info()
                .get("id")
                .map(|id| ItemKey(id.to_string()))
                .ok_or_else(|| Error::RouteNotFound {
                    path: req.path().to_string(),
                }),
        )
    }
}
