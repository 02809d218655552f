//! Routes and extractors. Handlers parse, authenticate, call one service method (or send one
//! actor message), and map the result; no SQL and no business rules live here.

pub mod auth;
pub mod body;
pub mod collections;
pub mod edge;
pub mod envelope;
pub mod export;
pub mod fields;
pub mod items;
pub mod items_write;
pub mod limits;
pub mod metrics;
pub mod observe;
pub mod permissions_me;
pub mod realtime;
pub mod relations;
pub mod route_target;
pub mod schema_guard;
pub mod server;
pub mod state;
pub mod users;
pub mod utils;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{HttpRequest, HttpResponse, Resource, web};

use crate::error::Error;

/// Registers every route, the extractor error mapping and the 404 fallback.
pub fn configure(cfg: &mut web::ServiceConfig, max_payload_size: usize) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(max_payload_size)
            .error_handler(json_error),
    )
    .app_data(web::PayloadConfig::new(max_payload_size))
    .app_data(web::PathConfig::default().error_handler(path_error))
    .app_data(web::QueryConfig::default().error_handler(query_error))
    // The items routes come first: actix tries resources in order, and each dynamic pattern is
    // a regex match, so the hot path should not pay for the schema routes before it.
    .service(item_list(resource("/items/{collection}")))
    .service(item_one(resource("/items/{collection}/{id}")))
    .configure(system_routes)
    .service(resource("/auth/login").route(web::post().to(auth::session::login)))
    .service(resource("/auth/refresh").route(web::post().to(auth::session::refresh)))
    .service(resource("/auth/logout").route(web::post().to(auth::session::logout)))
    .service(resource("/auth/password/request").route(web::post().to(auth::password::request)))
    .service(resource("/auth/password/reset").route(web::post().to(auth::password::reset)))
    .service(resource("/stream").route(web::get().to(realtime::sse::stream)))
    .service(resource("/server/ping").route(web::get().to(server::ping)))
    .service(resource("/server/health").route(web::get().to(server::health)))
    .service(resource("/server/info").route(web::get().to(server::info)))
    .service(resource("/metrics").route(web::get().to(metrics::metrics)))
    .service(
        resource("/collections")
            .route(web::get().to(collections::read_all))
            .route(web::post().to(collections::create)),
    )
    .service(
        resource("/collections/{collection}")
            .route(web::get().to(collections::read_one))
            .route(web::patch().to(collections::update))
            .route(web::delete().to(collections::delete)),
    )
    .service(resource("/fields").route(web::get().to(fields::read_all)))
    .service(
        resource("/fields/{collection}")
            .route(web::get().to(fields::read_collection))
            .route(web::post().to(fields::create)),
    )
    .service(
        resource("/fields/{collection}/{field}")
            .route(web::get().to(fields::read_one))
            .route(web::patch().to(fields::update))
            .route(web::delete().to(fields::delete)),
    )
    .service(
        resource("/relations")
            .route(web::get().to(relations::read_all))
            .route(web::post().to(relations::create)),
    )
    .service(resource("/relations/{collection}").route(web::get().to(relations::read_collection)))
    .service(
        resource("/relations/{collection}/{field}")
            .route(web::get().to(relations::read_one))
            .route(web::patch().to(relations::update))
            .route(web::delete().to(relations::delete)),
    )
    .default_service(web::to(route_not_found));
}

/// Directus's system collections served by the items handlers under their own paths.
const SYSTEM_ROUTES: &[(&str, &str)] = &[
    ("/users", "directus_users"),
    ("/roles", "directus_roles"),
    ("/policies", "directus_policies"),
    ("/permissions", "directus_permissions"),
    ("/access", "directus_access"),
];

/// System collections served read-only under their own paths.
const READ_ONLY_ROUTES: &[(&str, &str)] = &[
    ("/activity", "directus_activity"),
    ("/revisions", "directus_revisions"),
];

fn system_routes(cfg: &mut web::ServiceConfig) {
    // Before `/users/{id}`, which would otherwise take "me" as a key.
    cfg.service(
        resource("/users/me")
            .route(web::get().to(users::read_me))
            .route(web::patch().to(users::update_me)),
    );
    cfg.service(resource("/permissions/me").route(web::get().to(permissions_me::read_me)));
    cfg.service(resource("/utils/revert/{revision}").route(web::post().to(utils::revert)));
    // Read-only, as Directus serves them: activity and revisions are written by the service.
    for (path, collection) in READ_ONLY_ROUTES {
        let system = route_target::SystemCollection(collection);
        cfg.service(
            resource(path)
                .app_data(system)
                .route(web::get().to(items::read_many))
                .route(web::method(search_method()).to(items::search)),
        )
        .service(
            resource(&format!("{path}/{{id}}"))
                .app_data(system)
                .route(web::get().to(items::read_one)),
        );
    }
    for (path, collection) in SYSTEM_ROUTES {
        let system = route_target::SystemCollection(collection);
        cfg.service(item_list(resource(path).app_data(system)))
            .service(item_one(resource(&format!("{path}/{{id}}")).app_data(system)));
    }
}

/// The collection-wide items methods: list, `SEARCH`, create, batch update, batch delete.
fn item_list(resource: Resource) -> Resource {
    resource
        .route(web::get().to(items::read_many))
        .route(web::method(search_method()).to(items::search))
        .route(web::post().to(items_write::create))
        .route(web::patch().to(items_write::update_many))
        .route(web::delete().to(items_write::delete_many))
}

/// The one-item methods: read, update, delete.
fn item_one(resource: Resource) -> Resource {
    resource
        .route(web::get().to(items::read_one))
        .route(web::patch().to(items_write::update_one))
        .route(web::delete().to(items_write::delete_one))
}

/// The `SEARCH` HTTP method Directus accepts for reads with the query in the body.
fn search_method() -> actix_web::http::Method {
    // unwrap-free: the name is a valid token, so this never falls back.
    actix_web::http::Method::from_bytes(b"SEARCH").unwrap_or(actix_web::http::Method::GET)
}

/// A resource whose unserved methods answer like unknown paths, as Directus (Express) does.
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(route_not_found))
}

async fn route_not_found(req: HttpRequest) -> Result<HttpResponse, Error> {
    Err(Error::RouteNotFound {
        path: req.path().to_string(),
    })
}

fn json_error(err: JsonPayloadError, req: &HttpRequest) -> actix_web::Error {
    let err = match err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            Error::ContentTooLarge
        }
        JsonPayloadError::Deserialize(e) if e.is_data() => Error::payload(e.to_string()),
        JsonPayloadError::Deserialize(_) => Error::payload("Request body is not valid JSON"),
        JsonPayloadError::ContentType => Error::UnsupportedMediaType {
            media_type: req
                .headers()
                .get(actix_web::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .chars()
                .take(100)
                .collect(),
        },
        JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => Error::ContentTooLarge,
        other => Error::payload(other.to_string()),
    };
    err.into()
}

fn path_error(err: PathError, req: &HttpRequest) -> actix_web::Error {
    tracing::debug!(error = %err, "unusable path parameter");
    Error::RouteNotFound {
        path: req.path().to_string(),
    }
    .into()
}

fn query_error(err: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    Error::query(err.to_string()).into()
}
