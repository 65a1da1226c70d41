//! The native door's JSON shapes for keys and users. They borrow what they show: an
//! answer is serialized straight from the key or user, with nothing copied on the way.

use crate::limits_wire::{credits_view, rate_limit_views, CreditsView, RateLimitView};
use keyward_core::limits::IpAllowlist;
use keyward_core::{ApiKey, Grants, KeyId, Metadata, User, UserId};
use serde::Serialize;
use time::OffsetDateTime;

#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyView<'a> {
    #[schema(value_type = uuid::Uuid)]
    pub id: KeyId,
    pub name: &'a str,
    /// Prefix and first characters of the secret, to tell keys apart.
    pub start: &'a str,
    #[schema(value_type = uuid::Uuid)]
    pub owner_id: UserId,
    /// The door the key was made through: native, macrometa, octopus, w3ipfs.
    pub door: &'static str,
    /// Permission strings (`invoices.read`, `data.*`) and access levels on resource
    /// paths (`fabric/_system:rw`).
    #[schema(value_type = Vec<String>)]
    pub permissions: &'a Grants,
    #[schema(value_type = Object)]
    pub metadata: &'a Metadata,
    pub enabled: bool,
    /// active, disabled, expired or revoked.
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
    /// Who disabled the key, while it is disabled.
    #[schema(value_type = Option<uuid::Uuid>)]
    pub disabled_by: Option<UserId>,
    pub ratelimits: Vec<RateLimitView<'a>>,
    /// Addresses and networks the key may be used from; empty: any.
    #[schema(value_type = Vec<String>)]
    pub ip_allowlist: &'a IpAllowlist,
    /// `null`: unlimited.
    pub credits: Option<CreditsView>,
    /// Verifications in the last 24 hours and 30 days, on listings (a single key's
    /// answers are the same wherever it is read: create, get, patch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::analytics::RecentUseView>,
}

impl<'a> KeyView<'a> {
    pub fn of(key: &'a ApiKey) -> Self {
        KeyView {
            id: key.id,
            name: &key.name,
            start: &key.start,
            owner_id: key.owner_id,
            door: key.door.as_str(),
            permissions: &key.grants,
            metadata: &key.metadata,
            enabled: key.enabled,
            state: key.state(OffsetDateTime::now_utc()).as_str(),
            created_at: key.created_at,
            updated_at: key.updated_at,
            expires_at: key.expires_at,
            revoked_at: key.revoked_at,
            last_used_at: key.last_used_at,
            use_count: key.use_count,
            disabled_by: key.disabled_by,
            ratelimits: rate_limit_views(&key.limits.ratelimits),
            ip_allowlist: &key.limits.ip_allowlist,
            credits: key.credits.as_ref().map(credits_view),
            usage: None,
        }
    }

    /// The view with the key's recent use.
    pub fn with_usage(key: &'a ApiKey, recent: Option<&keyward_store::RecentUse>) -> Self {
        KeyView {
            usage: Some(crate::analytics::RecentUseView::of(recent)),
            ..KeyView::of(key)
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserView<'a> {
    #[schema(value_type = uuid::Uuid)]
    pub id: UserId,
    pub email: &'a str,
    pub username: &'a str,
    pub display_name: &'a str,
    /// admin or member.
    pub role: &'static str,
    pub active: bool,
    #[schema(value_type = Vec<String>)]
    pub permissions: &'a Grants,
    /// Shared by all of the user's keys.
    pub ratelimits: Vec<RateLimitView<'a>>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl<'a> UserView<'a> {
    pub fn of(user: &'a User) -> Self {
        UserView {
            id: user.id,
            email: &user.email,
            username: &user.username,
            display_name: &user.display_name,
            role: user.role.as_str(),
            active: user.active,
            permissions: user.effective_grants(),
            ratelimits: rate_limit_views(&user.ratelimits),
            created_at: user.created_at,
        }
    }
}

/// One page of a listing.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PageView<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
}

/// A key with its secret: the answer to creating or rotating one, the only time the
/// secret is shown.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IssuedKeyView<'a> {
    #[serde(flatten)]
    pub key: KeyView<'a>,
    /// The secret. Keyward keeps only a keyed hash of it: it cannot be shown again.
    pub api_key: &'a str,
    /// After a rotation: until when the previous secret keeps working.
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub previous_expires_at: Option<OffsetDateTime>,
}
