//! The domain's records: tenants, spaces, users and API keys.

use crate::ids::{KeyId, SpaceId, TenantId, UserId};
use crate::keyfmt::KeyShape;
use crate::limits::{Credits, KeyLimits, RateLimit};
use crate::perm::Grants;
use crate::secret::SecretHash;
use serde_json::{Map, Value};
use time::OffsetDateTime;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created_at: OffsetDateTime,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Space {
    pub id: SpaceId,
    pub tenant_id: TenantId,
    /// A small number for dialects that show numeric ids (Octopus's `Spaces-1`).
    pub seq: i64,
    pub name: String,
    pub created_at: OffsetDateTime,
}

/// A kind of named resource inside a space that access grants can refer to (Macrometa's
/// collections and streams). Keyward keeps only the names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    Collection,
    Stream,
}

impl ResourceKind {
    /// The name used in the store and as the resource path segment
    /// (`fabric/<space>/<kind>/<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Collection => "collection",
            ResourceKind::Stream => "stream",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub tenant_id: TenantId,
    /// A small number, unique in the tenant, assigned by the store on insert.
    pub seq: i64,
    pub email: String,
    pub username: String,
    pub display_name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub role: Role,
    pub active: bool,
    /// What this user may do; an administrator holds everything.
    pub grants: Grants,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Sessions issued in an earlier epoch are over: bumped by logout, a new password,
    /// a role change and deactivation.
    pub session_epoch: i64,
    /// Rate limits shared by all of the user's keys, charged with each key's own.
    pub ratelimits: Vec<RateLimit>,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// What the user actually holds: administrators hold everything, whatever is stored.
    /// Borrowed, not built: it is read on every authenticated request.
    pub fn effective_grants(&self) -> &Grants {
        static ALL: std::sync::LazyLock<Grants> = std::sync::LazyLock::new(Grants::all);
        if self.is_admin() {
            &ALL
        } else {
            &self.grants
        }
    }
}

/// Free JSON attributes attached to a key (a JSON object).
pub type Metadata = Map<String, Value>;

/// Where a key was created, so that each door can show its own keys in its own way;
/// and which door a request came through. Keys are never made through the gateway's
/// forward-auth door, which only verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Door {
    Native,
    Macrometa,
    Octopus,
    W3ipfs,
    Gateway,
    /// The web console: people in a browser.
    Console,
}

impl Door {
    pub fn as_str(self) -> &'static str {
        match self {
            Door::Native => "native",
            Door::Macrometa => "macrometa",
            Door::Octopus => "octopus",
            Door::W3ipfs => "w3ipfs",
            Door::Gateway => "gateway",
            Door::Console => "console",
        }
    }

    pub fn parse(text: &str) -> Option<Door> {
        [
            Door::Native,
            Door::Macrometa,
            Door::Octopus,
            Door::W3ipfs,
            Door::Gateway,
            Door::Console,
        ]
        .into_iter()
        .find(|d| d.as_str() == text)
    }
}

/// An API key's record. Its secret is not here: only hashes of it, in [`KeySecret`].
#[derive(Clone, Debug, PartialEq)]
pub struct ApiKey {
    pub id: KeyId,
    pub tenant_id: TenantId,
    pub owner_id: UserId,
    /// A small number, unique across the store, assigned on insert.
    pub seq: i64,
    pub name: String,
    pub door: Door,
    pub shape: KeyShape,
    /// Prefix and first characters of the current secret, so people can tell keys apart.
    pub start: String,
    /// The public half of a key + secret pair (W3IPFS), if the key has one.
    pub public_id: Option<String>,
    pub grants: Grants,
    pub metadata: Metadata,
    pub enabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub use_count: i64,
    /// Who disabled the key, while it is disabled.
    pub disabled_by: Option<UserId>,
    /// Whether they did it as an administrator: then only an administrator may enable
    /// it again.
    pub disabled_by_admin: bool,
    /// Rate limits and the addresses the key may be used from.
    pub limits: KeyLimits,
    /// Usage credits; `None` is unlimited.
    pub credits: Option<Credits>,
}

/// The state a key is in at a given moment, in the order in which they are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    Active,
    Disabled,
    Expired,
    Revoked,
}

impl KeyState {
    pub const ALL: [KeyState; 4] = [
        KeyState::Active,
        KeyState::Disabled,
        KeyState::Expired,
        KeyState::Revoked,
    ];

    pub fn parse(text: &str) -> Option<KeyState> {
        KeyState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Disabled => "disabled",
            KeyState::Expired => "expired",
            KeyState::Revoked => "revoked",
        }
    }
}

impl ApiKey {
    pub fn state(&self, now: OffsetDateTime) -> KeyState {
        if self.revoked_at.is_some() {
            KeyState::Revoked
        } else if self.expires_at.is_some_and(|t| t <= now) {
            KeyState::Expired
        } else if !self.enabled {
            KeyState::Disabled
        } else {
            KeyState::Active
        }
    }
}

/// One hash under which a key can be presented. A key has one, or two during a
/// rotation's grace period, when the old one carries an expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySecret {
    pub hash: SecretHash,
    pub key_id: KeyId,
    pub expires_at: Option<OffsetDateTime>,
}

/// A page request: how many to skip and how many to return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub offset: u64,
    pub limit: u64,
}

impl Page {
    pub const MAX_LIMIT: u64 = 1000;

    pub fn new(offset: u64, limit: u64) -> Page {
        Page {
            offset,
            limit: limit.clamp(1, Self::MAX_LIMIT),
        }
    }
}

/// One page of results and how many there are in all.
#[derive(Clone, Debug, PartialEq)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: u64,
}
