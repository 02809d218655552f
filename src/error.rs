//! The one error type every client can see, and the only place Directus error codes, HTTP
//! statuses and messages are spelled.
//!
//! Pure modules (`core`) return their own typed errors and convert into [`Error`] at the edge;
//! `db` maps Postgres SQLSTATEs into it in `db::constraint`. Rendering to the REST envelope
//! (`{"errors":[{"message", "extensions":{"code", ...}}]}`) happens here and nowhere else.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Map, Value, json};

/// Every error a client can see. `code()` is the Directus `extensions.code`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// HTTP 403. Also used for missing collections and items, so existence is not revealed, as
    /// Directus does.
    #[error("You don't have permission to access this.")]
    Forbidden,
    /// HTTP 403 from routes scoped to a collection (`/fields/:collection`, `/relations/:collection`)
    /// when it is not a table that exists (Directus's collection-exists check).
    #[error(
        "You don't have permission to access collection \"{collection}\" or it does not exist. Queried in root."
    )]
    ForbiddenCollection { collection: String },
    /// HTTP 403 for a field that does not exist or may not be read, named with the relational
    /// path it was queried under, so existence is not revealed.
    #[error(
        "You don't have permission to access field \"{field}\" in collection \"{collection}\" or it does not exist. Queried in {}.",
        path.as_deref().map(|p| format!("\"{p}\"")).unwrap_or_else(|| "root".into())
    )]
    ForbiddenField {
        collection: String,
        field: String,
        path: Option<String>,
    },
    /// HTTP 400. `reason` is safe to show to the client.
    #[error("Invalid payload. {reason}.")]
    InvalidPayload { reason: String },
    /// HTTP 400. `reason` is safe to show to the client.
    #[error("Invalid query. {reason}.")]
    InvalidQuery { reason: String },
    /// HTTP 404 for a path no route serves.
    #[error("Route {path} doesn't exist.")]
    RouteNotFound { path: String },
    /// HTTP 405 for a known path used with a method it does not serve.
    #[error("Invalid method \"{current}\" used. Should be one of {}.", quoted(allowed))]
    MethodNotAllowed { current: String, allowed: Vec<String> },
    /// HTTP 400: one or more fields failed validation; each is its own entry in `errors`.
    #[error("Validation failed.")]
    FailedValidation {
        failures: Vec<crate::core::payload::Failure>,
    },
    /// HTTP 400, SQLSTATE 23505.
    #[error("Value for field \"{field}\" in collection \"{collection}\" has to be unique.")]
    RecordNotUnique { collection: String, field: String },
    /// HTTP 400, SQLSTATE 23503.
    #[error("Invalid foreign key for field \"{field}\" in collection \"{collection}\".")]
    InvalidForeignKey { collection: String, field: String },
    /// HTTP 400, SQLSTATE 23502.
    #[error("Value for field \"{field}\" in collection \"{collection}\" can't be null.")]
    NotNullViolation { collection: String, field: String },
    /// HTTP 400, SQLSTATE 22001.
    #[error("Value for field \"{field}\" in collection \"{collection}\" is too long.")]
    ValueTooLong { collection: String, field: String },
    /// HTTP 400, SQLSTATE 22003.
    #[error("Numeric value for field \"{field}\" in collection \"{collection}\" is out of range.")]
    ValueOutOfRange { collection: String, field: String },
    /// HTTP 400: a column cannot become NOT NULL while rows hold nulls.
    #[error("Field \"{field}\" in collection \"{collection}\" contains null values.")]
    ContainsNullValues { collection: String, field: String },
    /// HTTP 401: the token or credentials do not identify an active user.
    #[error("Invalid user credentials.")]
    InvalidCredentials,
    /// HTTP 401: a well-formed token whose lifetime has passed.
    #[error("Token expired.")]
    TokenExpired,
    /// HTTP 403: a token that cannot be decoded at all.
    #[error("Invalid token.")]
    InvalidToken,
    /// HTTP 401: the user exists but is not `active`.
    #[error("User suspended.")]
    UserSuspended,
    /// HTTP 401: none of the caller's policies admits the request's IP address.
    #[error("Invalid IP address.")]
    InvalidIp,
    /// HTTP 401: the one-time password is missing or wrong for a user with TFA on.
    #[error("Invalid user OTP.")]
    InvalidOtp,
    /// HTTP 429: a rate limiter is out of points; `Retry-After` says when it refills.
    #[error("Too many requests, retry after {}.", human_seconds(*retry_after_secs))]
    RequestsExceeded { retry_after_secs: u64 },
    /// HTTP 403: a request past a documented cap (Directus's `LimitExceededError`).
    #[error("{what}")]
    LimitExceeded { what: String },
    /// HTTP 503: the server is saturated and sheds load instead of queueing (Directus's
    /// pressure limiter); `Retry-After` is sent.
    #[error("Service \"api\" is unavailable. Under pressure.")]
    UnderPressure { retry_after_secs: u64 },
    /// HTTP 413: the request body is larger than `MAX_PAYLOAD_SIZE`.
    #[error("Uploaded content is too large.")]
    ContentTooLarge,
    /// HTTP 415: a body whose content type the route cannot read.
    #[error("Unsupported media type \"{media_type}\".")]
    UnsupportedMediaType { media_type: String },
    /// HTTP 503: a dependency (the database, later Redis) cannot be reached.
    #[error("Service \"{service}\" is unavailable. {reason}.")]
    ServiceUnavailable { service: String, reason: String },
    /// HTTP 500. The cause is logged with its chain, never sent.
    #[error("An unexpected error occurred.")]
    Internal(#[source] anyhow::Error),
}

impl Error {
    /// Shorthand for an [`Error::InvalidPayload`] with a reason.
    pub fn payload(reason: impl Into<String>) -> Self {
        Error::InvalidPayload {
            reason: reason.into(),
        }
    }

    /// Shorthand for an [`Error::InvalidQuery`] with a reason.
    pub fn query(reason: impl Into<String>) -> Self {
        Error::InvalidQuery {
            reason: reason.into(),
        }
    }

    /// Wraps any unexpected failure; the client sees only "An unexpected error occurred.".
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Error::Internal(err.into())
    }

    /// The Directus `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Forbidden | Error::ForbiddenCollection { .. } | Error::ForbiddenField { .. } => {
                "FORBIDDEN"
            }
            Error::InvalidPayload { .. } => "INVALID_PAYLOAD",
            Error::FailedValidation { .. } => "FAILED_VALIDATION",
            Error::InvalidQuery { .. } => "INVALID_QUERY",
            Error::RouteNotFound { .. } => "ROUTE_NOT_FOUND",
            Error::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            Error::RecordNotUnique { .. } => "RECORD_NOT_UNIQUE",
            Error::InvalidForeignKey { .. } => "INVALID_FOREIGN_KEY",
            Error::NotNullViolation { .. } => "NOT_NULL_VIOLATION",
            Error::ValueTooLong { .. } => "VALUE_TOO_LONG",
            Error::ValueOutOfRange { .. } => "VALUE_OUT_OF_RANGE",
            Error::ContainsNullValues { .. } => "CONTAINS_NULL_VALUES",
            Error::InvalidCredentials => "INVALID_CREDENTIALS",
            Error::TokenExpired => "TOKEN_EXPIRED",
            Error::InvalidToken => "INVALID_TOKEN",
            Error::UserSuspended => "USER_SUSPENDED",
            Error::InvalidIp => "INVALID_IP",
            Error::InvalidOtp => "INVALID_OTP",
            Error::RequestsExceeded { .. } => "REQUESTS_EXCEEDED",
            Error::LimitExceeded { .. } => "LIMIT_EXCEEDED",
            Error::UnderPressure { .. } => "SERVICE_UNAVAILABLE",
            Error::ContentTooLarge => "CONTENT_TOO_LARGE",
            Error::UnsupportedMediaType { .. } => "UNSUPPORTED_MEDIA_TYPE",
            Error::ServiceUnavailable { .. } => "SERVICE_UNAVAILABLE",
            Error::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// The HTTP status Directus answers with for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Forbidden
            | Error::ForbiddenCollection { .. }
            | Error::ForbiddenField { .. }
            | Error::InvalidToken
            | Error::LimitExceeded { .. } => StatusCode::FORBIDDEN,
            Error::InvalidPayload { .. }
            | Error::FailedValidation { .. }
            | Error::InvalidQuery { .. }
            | Error::RecordNotUnique { .. }
            | Error::InvalidForeignKey { .. }
            | Error::NotNullViolation { .. }
            | Error::ValueTooLong { .. }
            | Error::ValueOutOfRange { .. }
            | Error::ContainsNullValues { .. } => StatusCode::BAD_REQUEST,
            Error::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::InvalidCredentials
            | Error::TokenExpired
            | Error::UserSuspended
            | Error::InvalidIp
            | Error::InvalidOtp => StatusCode::UNAUTHORIZED,
            Error::RequestsExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::UnderPressure { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::ContentTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::ServiceUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `extensions` beyond `code`: the machine-readable details Directus adds per error class.
    fn extensions(&self) -> Map<String, Value> {
        let mut ext = Map::new();
        ext.insert("code".into(), json!(self.code()));
        match self {
            Error::InvalidPayload { reason } | Error::InvalidQuery { reason } => {
                ext.insert("reason".into(), json!(reason));
            }
            Error::ForbiddenCollection { .. } | Error::ForbiddenField { .. } => {
                ext.insert("reason".into(), json!(self.to_string()));
            }
            Error::RouteNotFound { path } => {
                ext.insert("path".into(), json!(path));
            }
            Error::MethodNotAllowed { current, allowed } => {
                ext.insert("allowed".into(), json!(allowed));
                ext.insert("current".into(), json!(current));
            }
            Error::RecordNotUnique { collection, field }
            | Error::InvalidForeignKey { collection, field }
            | Error::NotNullViolation { collection, field }
            | Error::ValueTooLong { collection, field }
            | Error::ValueOutOfRange { collection, field }
            | Error::ContainsNullValues { collection, field } => {
                ext.insert("collection".into(), json!(collection));
                ext.insert("field".into(), json!(field));
            }
            Error::UnsupportedMediaType { media_type } => {
                ext.insert("mediaType".into(), json!(media_type));
            }
            Error::ServiceUnavailable { service, reason } => {
                ext.insert("service".into(), json!(service));
                ext.insert("reason".into(), json!(reason));
            }
            Error::UnderPressure { .. } => {
                ext.insert("service".into(), json!("api"));
                ext.insert("reason".into(), json!("Under pressure"));
            }
            Error::Forbidden
            | Error::FailedValidation { .. }
            | Error::InvalidCredentials
            | Error::TokenExpired
            | Error::InvalidToken
            | Error::UserSuspended
            | Error::InvalidIp
            | Error::InvalidOtp
            | Error::RequestsExceeded { .. }
            | Error::LimitExceeded { .. }
            | Error::ContentTooLarge
            | Error::Internal(_) => {}
        }
        ext
    }

    /// The Directus REST error envelope for this error.
    pub fn envelope(&self) -> Value {
        if let Error::FailedValidation { failures } = self {
            let errors: Vec<Value> = failures
                .iter()
                .map(|f| {
                    let mut ext = json!({"field": f.field, "path": [], "type": f.kind});
                    if let (Some(key), Some(expected), Some(map)) =
                        (f.detail_key(), &f.expected, ext.as_object_mut())
                    {
                        map.insert(key.into(), expected.clone());
                    }
                    if let Some(map) = ext.as_object_mut() {
                        map.insert("code".into(), json!("FAILED_VALIDATION"));
                    }
                    json!({"message": f.message(), "extensions": ext})
                })
                .collect();
            return json!({ "errors": errors });
        }
        json!({ "errors": [ { "message": self.to_string(), "extensions": self.extensions() } ] })
    }
}

/// Seconds the way Directus's `ms()` prints them in messages: `1s`, `45s`, `2m`, `1h`.
fn human_seconds(secs: u64) -> String {
    match secs {
        s if s >= 3_600 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        if let Error::Internal(cause) = self {
            // Logged once, here at the edge, with the whole chain; never sent.
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        let mut res = HttpResponse::build(self.status());
        match self {
            Error::MethodNotAllowed { allowed, .. } => {
                res.insert_header(("Allow", allowed.join(", ")));
            }
            Error::RequestsExceeded { retry_after_secs } | Error::UnderPressure { retry_after_secs } => {
                res.insert_header(("Retry-After", retry_after_secs.to_string()));
            }
            // A dependency out of reach (the pool timed out, say): worth retrying shortly.
            Error::ServiceUnavailable { .. } => {
                res.insert_header(("Retry-After", "1"));
            }
            _ => {}
        }
        res.json(self.envelope())
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        crate::db::constraint::classify(err)
    }
}

impl From<crate::core::schema_change::SchemaError> for Error {
    fn from(err: crate::core::schema_change::SchemaError) -> Self {
        match err {
            crate::core::schema_change::SchemaError::Forbidden => Error::Forbidden,
            crate::core::schema_change::SchemaError::NoSuchCollection(collection) => {
                Error::ForbiddenCollection { collection }
            }
            crate::core::schema_change::SchemaError::Invalid(reason) => Error::InvalidPayload { reason },
        }
    }
}

impl From<crate::core::access::plan::PlanError> for Error {
    fn from(err: crate::core::access::plan::PlanError) -> Self {
        match err {
            crate::core::access::plan::PlanError::Query(err) => err.into(),
            crate::core::access::plan::PlanError::Access(err) => err.into(),
        }
    }
}

impl From<crate::core::query::QueryError> for Error {
    fn from(err: crate::core::query::QueryError) -> Self {
        match err {
            crate::core::query::QueryError::Invalid(reason) => Error::InvalidQuery { reason },
            crate::core::query::QueryError::Field {
                collection,
                field,
                path,
            } => Error::ForbiddenField {
                collection,
                field,
                path,
            },
        }
    }
}

impl From<crate::db::items::compile::StaleSchema> for Error {
    fn from(err: crate::db::items::compile::StaleSchema) -> Self {
        // The snapshot changed between parsing and compiling; the field is gone now.
        Error::ForbiddenField {
            collection: err.collection,
            field: err.field,
            path: None,
        }
    }
}

impl From<crate::core::payload::PayloadError> for Error {
    fn from(err: crate::core::payload::PayloadError) -> Self {
        match err {
            crate::core::payload::PayloadError::Invalid(reason) => Error::InvalidPayload { reason },
            crate::core::payload::PayloadError::Validation(failures) => Error::FailedValidation { failures },
            crate::core::payload::PayloadError::TooLong { collection, field } => {
                Error::ValueTooLong { collection, field }
            }
        }
    }
}

impl From<crate::core::access::AccessError> for Error {
    fn from(err: crate::core::access::AccessError) -> Self {
        use crate::core::access::AccessError;
        match err {
            AccessError::Forbidden => Error::Forbidden,
            AccessError::Collection { collection } => Error::ForbiddenCollection { collection },
            AccessError::Field {
                collection,
                field,
                path,
            } => Error::ForbiddenField {
                collection,
                field,
                path,
            },
            AccessError::Validation(failures) => Error::FailedValidation { failures },
            // A stored rule the server cannot apply: logged at the edge, never shown.
            err @ AccessError::InvalidRule { .. } => Error::internal(err),
        }
    }
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_directus_shape() {
        let err = Error::payload("\"name\" is required");
        assert_eq!(
            err.envelope(),
            json!({"errors":[{"message":"Invalid payload. \"name\" is required.",
                "extensions":{"code":"INVALID_PAYLOAD","reason":"\"name\" is required"}}]})
        );
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let err = Error::internal(anyhow::anyhow!("password=hunter2"));
        let body = err.envelope().to_string();
        assert!(!body.contains("hunter2"));
        assert!(body.contains("INTERNAL_SERVER_ERROR"));
    }
}
