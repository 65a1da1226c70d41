//! The native door's error: `{"message", "error_code", "details"}` with a status. Every
//! failure of the core, the store or the request itself maps here in one place.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyward_core::CoreError;
use keyward_store::StoreError;
use serde_json::{json, Value};

/// A failure in domain terms, before any door renders it.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The body is not JSON or has wrong types; the text is the parser's reason.
    InvalidJson(String),
    /// A malformed path id, query string or header.
    BadRequest(String),
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    DuplicateName,
    PayloadTooLarge,
    Validation {
        field: String,
        message: String,
    },
    /// A route a vendor defines that Keyward answers only as far as its permission check.
    NotImplemented(String),
    /// The store could not answer: the request may be retried.
    Unavailable(String),
    /// A bug: logged, and answered without detail.
    Internal(String),
}

impl Failure {
    pub fn status(&self) -> StatusCode {
        match self {
            Failure::InvalidJson(_) | Failure::BadRequest(_) => StatusCode::BAD_REQUEST,
            Failure::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Failure::Forbidden(_) => StatusCode::FORBIDDEN,
            Failure::NotFound(_) => StatusCode::NOT_FOUND,
            Failure::DuplicateName => StatusCode::CONFLICT,
            Failure::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Failure::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Failure::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Failure::InvalidJson(m)
            | Failure::BadRequest(m)
            | Failure::Unauthorized(m)
            | Failure::Forbidden(m)
            | Failure::NotImplemented(m) => m.clone(),
            Failure::NotFound(what) => format!("{what} not found"),
            Failure::DuplicateName => "An entity with this name already exists".into(),
            Failure::PayloadTooLarge => "The request body is too large".into(),
            Failure::Validation { message, .. } => message.clone(),
            Failure::Unavailable(_) => "The store is unavailable; try again".into(),
            Failure::Internal(_) => "Internal error".into(),
        }
    }

    pub fn native_code(&self) -> &'static str {
        match self {
            Failure::InvalidJson(_) => "InvalidJson",
            Failure::BadRequest(_) => "BadRequest",
            Failure::Unauthorized(_) => "Unauthorized",
            Failure::Forbidden(_) => "Forbidden",
            Failure::NotFound(_) => "NotFound",
            Failure::DuplicateName => "DuplicateName",
            Failure::PayloadTooLarge => "PayloadTooLarge",
            Failure::Validation { .. } => "ValidationError",
            Failure::NotImplemented(_) => "NotImplemented",
            Failure::Unavailable(_) => "Unavailable",
            Failure::Internal(_) => "Internal",
        }
    }

    fn native_details(&self) -> Value {
        match self {
            Failure::Validation { field, .. } => json!({ "field": field }),
            _ => Value::Null,
        }
    }

    /// Logs what the caller is not told.
    pub fn log(&self) {
        match self {
            Failure::Internal(detail) => tracing::error!(%detail, "internal error"),
            Failure::Unavailable(detail) => tracing::warn!(%detail, "store unavailable"),
            _ => {}
        }
    }
}

impl From<CoreError> for Failure {
    fn from(err: CoreError) -> Self {
        match err {
            CoreError::Invalid { field, message } => Failure::Validation { field, message },
            CoreError::Forbidden(m) => Failure::Forbidden(m),
            CoreError::NotFound(what) => Failure::NotFound(what),
            CoreError::DuplicateName => Failure::DuplicateName,
            CoreError::Unauthenticated(m) => Failure::Unauthorized(m),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict("key name") => Failure::DuplicateName,
            StoreError::Conflict(what) => Failure::Validation {
                field: what.to_string(),
                message: format!("{what} is already taken"),
            },
            StoreError::NotFound => Failure::NotFound("record".into()),
            StoreError::Unavailable(m) => Failure::Unavailable(m),
            StoreError::Corrupt(m) => Failure::Internal(m),
        }
    }
}

/// The native rendering of a [`Failure`].
#[derive(Debug)]
pub struct ApiError(pub Failure);

impl<E: Into<Failure>> From<E> for ApiError {
    fn from(err: E) -> Self {
        ApiError(err.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let failure = self.0;
        failure.log();
        let body = json!({
            "message": failure.message(),
            "error_code": failure.native_code(),
            "details": failure.native_details(),
        });
        (failure.status(), axum::Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
