//! The core's one error type: what went wrong, independent of any wire format.

use std::fmt;
use thiserror::Error;

/// A kind of record that can be looked for and not found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entity {
    ApiKey,
    User,
    Space,
    Tenant,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::ApiKey => "API key",
            Entity::User => "user",
            Entity::Space => "space",
            Entity::Tenant => "tenant",
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request was refused, in domain terms. Each front door maps these to its own
/// status codes and bodies in one function.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CoreError {
    /// Input that parsed but breaks a rule (a blank name, a bad permission string, ...).
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The thing asked for does not exist in the caller's tenant.
    #[error("{0} not found")]
    NotFound(Entity),
    /// A name that must be unique is taken.
    #[error("An entity with this name already exists")]
    DuplicateName,
    /// No credentials, or credentials that do not verify.
    #[error("{0}")]
    Unauthenticated(String),
}

impl CoreError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

pub type CoreResult<T> = Result<T, CoreError>;
