//! The native door's JSON shapes for keys and users.

use keyward_core::{ApiKey, KeyId, Metadata, User, UserId};
use serde::Serialize;
use time::OffsetDateTime;

#[derive(Serialize)]
pub struct KeyView {
    pub id: KeyId,
    pub name: String,
    /// Prefix and first characters of the secret, to tell keys apart.
    pub start: String,
    pub owner_id: UserId,
    pub door: &'static str,
    pub permissions: Vec<String>,
    pub metadata: Metadata,
    pub enabled: bool,
    pub state: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    pub use_count: i64,
}

impl KeyView {
    pub fn of(key: &ApiKey) -> Self {
        KeyView {
            id: key.id,
            name: key.name.clone(),
            start: key.start.clone(),
            owner_id: key.owner_id,
            door: key.door.as_str(),
            permissions: key.grants.to_strings(),
            metadata: key.metadata.clone(),
            enabled: key.enabled,
            state: key.state(OffsetDateTime::now_utc()).as_str(),
            created_at: key.created_at,
            updated_at: key.updated_at,
            expires_at: key.expires_at,
            revoked_at: key.revoked_at,
            last_used_at: key.last_used_at,
            use_count: key.use_count,
        }
    }
}

#[derive(Serialize)]
pub struct UserView {
    pub id: UserId,
    pub email: String,
    pub username: String,
    pub display_name: String,
    pub role: &'static str,
    pub active: bool,
    pub permissions: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl UserView {
    pub fn of(user: &User) -> Self {
        UserView {
            id: user.id,
            email: user.email.clone(),
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            role: user.role.as_str(),
            active: user.active,
            permissions: user.effective_grants().to_strings(),
            created_at: user.created_at,
        }
    }
}

/// One page of a listing.
#[derive(Serialize)]
pub struct PageView<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
}
