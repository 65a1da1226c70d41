//! The application layer's one error: what went wrong, in domain terms. No status codes:
//! each door maps an `AppError` to its own shape in one function.

use keyward_core::CoreError;
pub use keyward_core::Entity;
use keyward_store::{Constraint, StoreError};

/// A value that must be unique and is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// A live key's name (per owner), or a Macrometa keyid (per tenant).
    KeyName,
    Email,
    Username,
    SpaceName,
    TenantName,
}

impl Field {
    /// The field's name as requests spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::KeyName => "name",
            Field::Email => "email",
            Field::Username => "username",
            Field::SpaceName => "space name",
            Field::TenantName => "tenant name",
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppError {
    /// No credential, or one that does not verify.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing by that id in the caller's tenant (or nothing the caller may see).
    #[error("{0} not found")]
    NotFound(Entity),
    /// A unique value is taken.
    #[error("{} already exists", .0.as_str())]
    Conflict(Field),
    /// The record is no longer the version the request named (an `If-Match`).
    #[error("the record changed since that version was read")]
    VersionMismatch,
    /// Input that breaks a rule; `field` names it as the request spelled it.
    #[error("{reason}")]
    Invalid { field: String, reason: String },
    /// Too much of this work is waiting already (password hashing): come back after
    /// `retry_after_seconds`.
    #[error("too busy; retry after {retry_after_seconds} s")]
    Busy { retry_after_seconds: u32 },
    /// Too many failed attempts (logins): try again after `retry_after_seconds`.
    #[error("too many attempts; retry after {retry_after_seconds} s")]
    Throttled { retry_after_seconds: u32 },
    /// A rate limit of the key in use (or of its owner) is spent for now.
    #[error("rate limit '{}' exceeded; retry after {} ms", .0.name, .0.retry_after_ms)]
    RateLimited(Box<crate::limiter::RateState>),
    /// The key in use has spent its credits; they refill in this many seconds, if
    /// they refill.
    #[error("the key's usage credits are spent")]
    UsageExceeded { retry_after_seconds: Option<u64> },
    /// The store could not answer: the request may be retried.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A bug: logged, and answered without detail.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        AppError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn forbidden(reason: impl Into<String>) -> Self {
        AppError::Forbidden(reason.into())
    }
}

pub type AppResult<T> = Result<T, AppError>;

impl From<CoreError> for AppError {
    fn from(err: CoreError) -> Self {
        match err {
            CoreError::Invalid { field, message } => AppError::Invalid {
                field,
                reason: message,
            },
            CoreError::Forbidden(m) => AppError::Forbidden(m),
            CoreError::Unauthenticated(m) => AppError::Unauthenticated(m),
            CoreError::DuplicateName => AppError::Conflict(Field::KeyName),
            CoreError::NotFound(what) => AppError::NotFound(what),
        }
    }
}

impl From<StoreError> for AppError {
    /// `NotFound` and `Stale` are answered by the operation that knows what it looked
    /// for; one that reaches here unhandled is a bug.
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(rule) => match rule {
                Constraint::KeyName | Constraint::MacrometaKeyid => {
                    AppError::Conflict(Field::KeyName)
                }
                Constraint::Email => AppError::Conflict(Field::Email),
                Constraint::Username => AppError::Conflict(Field::Username),
                Constraint::SpaceName => AppError::Conflict(Field::SpaceName),
                Constraint::TenantName => AppError::Conflict(Field::TenantName),
                Constraint::PublicId | Constraint::SecretHash => {
                    AppError::Internal(format!("generated value collided: {rule:?}"))
                }
            },
            StoreError::Unavailable(m) => AppError::Unavailable(m),
            StoreError::NotFound => AppError::Internal("a record vanished mid-operation".into()),
            StoreError::Stale => {
                AppError::Unavailable("the record kept changing; try again".into())
            }
            StoreError::Corrupt(m) => AppError::Internal(m),
        }
    }
}
