//! The native door's error: `{"message", "error_code", "details"}` with a status. Every
//! failure of the core, the store or the request itself maps here in one place.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyward_app::{AppError, Entity, Field};
use keyward_core::CoreError;
use serde_json::{json, Value};

/// A failure, before a door renders it: one of the request itself (what only HTTP can
/// get wrong), or the application layer's [`AppError`], variant for variant.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The body is not JSON or has wrong types; the text is the parser's reason.
    InvalidJson(String),
    /// A malformed path id, query string or header.
    BadRequest(String),
    Unauthorized(String),
    Forbidden(String),
    NotFound(Entity),
    /// A route, or a vendor's thing Keyward does not keep (a pin): the text names it.
    NoSuch(String),
    Conflict(Field),
    /// The record is no longer the version the request named (`If-Match`).
    PreconditionFailed,
    PayloadTooLarge,
    /// The body did not arrive within the body-read timeout.
    RequestTimeout,
    Validation {
        field: String,
        message: String,
    },
    /// A route a vendor defines that Keyward answers only as far as its permission check.
    NotImplemented(String),
    /// Too many attempts (logins): retry after this many seconds.
    Throttled {
        retry_after_seconds: u32,
    },
    /// Too busy (password hashing): retry after this many seconds.
    Busy {
        retry_after_seconds: u32,
    },
    /// A rate limit of the key in use is spent for now.
    RateLimited(Box<keyward_app::limiter::RateState>),
    /// The key in use has spent its credits.
    UsageExceeded {
        retry_after_seconds: Option<u64>,
    },
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
            Failure::NotFound(_) | Failure::NoSuch(_) => StatusCode::NOT_FOUND,
            Failure::Conflict(Field::KeyName) => StatusCode::CONFLICT,
            // Kept as the native door answered a taken email or username before.
            Failure::Conflict(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Failure::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Failure::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Failure::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Failure::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Failure::Unavailable(_) | Failure::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Throttled { .. } | Failure::RateLimited(_) | Failure::UsageExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
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
            Failure::NoSuch(what) => format!("{what} not found"),
            Failure::Conflict(Field::KeyName) => "An entity with this name already exists".into(),
            Failure::Conflict(field) => format!("{} is already taken", field.as_str()),
            Failure::PayloadTooLarge => "The request body is too large".into(),
            Failure::PreconditionFailed => {
                "The record changed since the version in If-Match: read it again".into()
            }
            Failure::RequestTimeout => "The request body did not arrive in time".into(),
            Failure::Validation { message, .. } => message.clone(),
            Failure::Unavailable(_) => "The store is unavailable; try again".into(),
            Failure::Busy {
                retry_after_seconds,
            } => format!(
                "Too many requests of this kind are waiting; retry after {retry_after_seconds} s"
            ),
            Failure::Throttled {
                retry_after_seconds,
            } => format!("Too many failed attempts; retry after {retry_after_seconds} s"),
            Failure::RateLimited(limit) => format!(
                "The API key's rate limit '{}' ({} per window) is exceeded; retry after {} s",
                limit.name,
                limit.limit,
                retry_seconds(limit)
            ),
            Failure::UsageExceeded { .. } => "The API key's usage credits are spent".into(),
            Failure::Internal(_) => "Internal error".into(),
        }
    }

    pub fn native_code(&self) -> &'static str {
        match self {
            Failure::InvalidJson(_) => "InvalidJson",
            Failure::BadRequest(_) => "BadRequest",
            Failure::Unauthorized(_) => "Unauthorized",
            Failure::Forbidden(_) => "Forbidden",
            Failure::NotFound(_) | Failure::NoSuch(_) => "NotFound",
            Failure::Conflict(Field::KeyName) => "DuplicateName",
            Failure::Conflict(_) => "ValidationError",
            Failure::PayloadTooLarge => "PayloadTooLarge",
            Failure::PreconditionFailed => "PreconditionFailed",
            Failure::RequestTimeout => "RequestTimeout",
            Failure::Validation { .. } => "ValidationError",
            Failure::NotImplemented(_) => "NotImplemented",
            Failure::Unavailable(_) => "Unavailable",
            Failure::Busy { .. } => "Busy",
            Failure::Throttled { .. } => "TooManyRequests",
            Failure::RateLimited(_) => "RateLimited",
            Failure::UsageExceeded { .. } => "UsageExceeded",
            Failure::Internal(_) => "Internal",
        }
    }

    fn native_details(&self) -> Value {
        match self {
            Failure::Validation { field, .. } => json!({ "field": field }),
            Failure::Conflict(field) if *field != Field::KeyName => {
                json!({ "field": field.as_str() })
            }
            _ => Value::Null,
        }
    }

    /// Adds `Retry-After` to a door's answer when the failure says when to retry, and a
    /// spent rate limit's `RateLimit-Limit`, `-Remaining` and `-Reset` (seconds).
    pub fn with_retry_after(&self, mut response: Response) -> Response {
        if let Failure::RateLimited(limit) = self {
            response
                .headers_mut()
                .extend(rate_limit_headers(limit, true));
        }
        if let Failure::UsageExceeded {
            retry_after_seconds: Some(seconds),
        } = self
        {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(*seconds),
            );
        }
        if let Failure::Busy {
            retry_after_seconds,
        }
        | Failure::Throttled {
            retry_after_seconds,
        } = self
        {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(*retry_after_seconds),
            );
        }
        response
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

impl From<AppError> for Failure {
    fn from(err: AppError) -> Self {
        match err {
            AppError::Unauthenticated(m) => Failure::Unauthorized(m),
            AppError::Forbidden(m) => Failure::Forbidden(m),
            AppError::NotFound(entity) => Failure::NotFound(entity),
            AppError::Conflict(field) => Failure::Conflict(field),
            AppError::VersionMismatch => Failure::PreconditionFailed,
            AppError::Invalid { field, reason } => Failure::Validation {
                field,
                message: reason,
            },
            AppError::Busy {
                retry_after_seconds,
            } => Failure::Busy {
                retry_after_seconds,
            },
            AppError::Throttled {
                retry_after_seconds,
            } => Failure::Throttled {
                retry_after_seconds,
            },
            AppError::RateLimited(limit) => Failure::RateLimited(limit),
            AppError::UsageExceeded {
                retry_after_seconds,
            } => Failure::UsageExceeded {
                retry_after_seconds,
            },
            AppError::Unavailable(m) => Failure::Unavailable(m),
            AppError::Internal(m) => Failure::Internal(m),
        }
    }
}

/// Whole seconds until a spent limit lets a request through: at least 1, so that a
/// client that honours it does not retry at once.
/// A rate limit's `RateLimit-Limit`, `-Remaining` and `-Reset` (seconds), and when it
/// refused, `Retry-After`: one rendering for every door and forward-auth.
pub fn rate_limit_headers(
    limit: &keyward_app::limiter::RateState,
    refused: bool,
) -> Vec<(axum::http::HeaderName, axum::http::HeaderValue)> {
    use axum::http::{HeaderName, HeaderValue};
    let reset_ms = limit.reset_at_ms - now_ms();
    let reset = u64::try_from(reset_ms).unwrap_or(0).div_ceil(1000);
    let mut headers = vec![
        (
            HeaderName::from_static("ratelimit-limit"),
            HeaderValue::from(limit.limit),
        ),
        (
            HeaderName::from_static("ratelimit-remaining"),
            HeaderValue::from(limit.remaining),
        ),
        (
            HeaderName::from_static("ratelimit-reset"),
            HeaderValue::from(reset),
        ),
    ];
    if refused {
        let retry = HeaderValue::from(retry_seconds(limit));
        headers.push((axum::http::header::RETRY_AFTER, retry));
    }
    headers
}

fn retry_seconds(limit: &keyward_app::limiter::RateState) -> u64 {
    limit.retry_after_ms.div_ceil(1000).max(1)
}

fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

/// The core's refusals (of a permission string a door parses, say) are the
/// application's.
impl From<CoreError> for Failure {
    fn from(err: CoreError) -> Self {
        AppError::from(err).into()
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

/// Every refusal of the native API.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub message: String,
    /// What went wrong, for programs: InvalidJson, BadRequest, Unauthorized, Forbidden,
    /// NotFound, DuplicateName, ValidationError, PayloadTooLarge, PreconditionFailed,
    /// RequestTimeout, NotImplemented, Unavailable, Busy, TooManyRequests, RateLimited,
    /// UsageExceeded, Internal, MethodNotAllowed.
    #[schema(example = "ValidationError")]
    pub error_code: &'static str,
    /// `{"field": ...}` naming the field a ValidationError is about; else null.
    #[schema(value_type = Option<Object>)]
    pub details: Value,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let failure = self.0;
        failure.log();
        let body = ErrorBody {
            message: failure.message(),
            error_code: failure.native_code(),
            details: failure.native_details(),
        };
        failure.with_retry_after((failure.status(), axum::Json(body)).into_response())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
