//! Keyward's persistence: one trait, two implementations (SQLite, the embedded default,
//! and PostgreSQL, for several nodes). Both are generated from one body of SQL in
//! [`sql`], so they cannot drift apart, and the same test suite runs against both.

use async_trait::async_trait;
use keyward_core::{
    ApiKey, Door, KeyId, KeySecret, Page, Paged, ResourceKind, SecretHash, Space, SpaceId, Tenant,
    TenantId, User, UserId,
};
use std::sync::Arc;
use time::OffsetDateTime;

mod copy;
pub mod postgres;
mod sql;
pub mod sqlite;

pub use copy::{copy_sqlite_to_postgres, CopyCounts};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; the string names the rule (`"key name"`, `"email"`).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The record to change does not exist.
    #[error("not found")]
    NotFound,
    /// The database could not be reached or refused the statement.
    #[error("storage error: {0}")]
    Unavailable(String),
    /// A stored value could not be read back (a bug or manual tampering).
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A change that makes what nodes cached about a key stale. Stores announce it inside
/// the writing transaction (or right after it commits), so every node hears about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The key's state, grants, expiry or secrets changed.
    Key(KeyId),
    /// The owner's role, grants or state changed, which affects all of their keys.
    Owner(UserId),
}

impl Change {
    /// The text form carried by a notification: `key:<uuid>` or `owner:<uuid>`.
    pub fn to_payload(self) -> String {
        match self {
            Change::Key(id) => format!("key:{}", id.0),
            Change::Owner(id) => format!("owner:{}", id.0),
        }
    }

    pub fn from_payload(text: &str) -> Option<Change> {
        let (kind, id) = text.split_once(':')?;
        let id = uuid::Uuid::parse_str(id).ok()?;
        match kind {
            "key" => Some(Change::Key(KeyId(id))),
            "owner" => Some(Change::Owner(UserId(id))),
            _ => None,
        }
    }
}

/// What a change feed reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeEvent {
    Changed(Change),
    /// The feed stopped hearing changes (connection lost, or it fell behind): anything
    /// cached may be stale, and nothing read now can be trusted to stay fresh.
    Lost,
    /// The feed hears changes again; what was cached while it was lost may be stale.
    Resumed,
}

/// Changes announced by every node (this one included), in order of commit.
pub type ChangeFeed = tokio::sync::mpsc::Receiver<ChangeEvent>;

/// Which keys a listing returns.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyFilter {
    /// Only this user's keys; `None` for the whole tenant.
    pub owner: Option<UserId>,
    /// Only keys made through this door.
    pub door: Option<Door>,
    /// Revoked keys are history; they are left out unless asked for.
    pub include_revoked: bool,
}

/// What a secret's hash leads to: the key, the owner, and when this secret stops
/// working (set on a secret replaced by rotation).
#[derive(Clone, Debug)]
pub struct SecretMatch {
    /// The stored hash that matched.
    pub secret_hash: SecretHash,
    pub key: ApiKey,
    pub secret_expires_at: Option<OffsetDateTime>,
    pub owner: User,
}

/// Use of one key since the last flush, batched in memory off the hot path.
#[derive(Clone, Copy, Debug)]
pub struct KeyUsage {
    pub key_id: KeyId,
    pub last_used_at: OffsetDateTime,
    pub uses: i64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the database answers (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;
    /// Waits for in-flight statements and closes the connections.
    async fn close(&self);

    // Tenants and spaces.
    /// Creates a tenant with its first space and first administrator, all or nothing.
    async fn create_tenant(&self, tenant: &Tenant, space: &Space, admin: &User) -> StoreResult<()>;
    async fn tenant_count(&self) -> StoreResult<u64>;
    async fn tenant(&self, id: TenantId) -> StoreResult<Option<Tenant>>;
    async fn tenant_by_name(&self, name: &str) -> StoreResult<Option<Tenant>>;
    async fn list_spaces(&self, tenant: TenantId, page: Page) -> StoreResult<Paged<Space>>;
    async fn space_by_seq(&self, tenant: TenantId, seq: i64) -> StoreResult<Option<Space>>;
    async fn space_by_name(&self, tenant: TenantId, name: &str) -> StoreResult<Option<Space>>;
    /// Inserts a space and returns it with its `seq`; `Conflict("space name")` when the
    /// tenant already has one by that name.
    async fn create_space(&self, space: &Space) -> StoreResult<Space>;
    /// Records that a resource of this kind and name exists in a space. Recording it
    /// again is harmless.
    async fn register_resource(
        &self,
        space: SpaceId,
        kind: ResourceKind,
        name: &str,
    ) -> StoreResult<()>;
    /// The names of a space's resources of one kind, sorted.
    async fn list_resources(&self, space: SpaceId, kind: ResourceKind) -> StoreResult<Vec<String>>;

    // Users.
    /// Inserts a user and returns it with its assigned `seq`.
    async fn create_user(&self, user: &User) -> StoreResult<User>;
    async fn user(&self, tenant: TenantId, id: UserId) -> StoreResult<Option<User>>;
    /// Emails are unique across tenants, so an email alone finds its tenant at login.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    async fn user_by_username(&self, tenant: TenantId, username: &str)
        -> StoreResult<Option<User>>;
    async fn user_by_seq(&self, tenant: TenantId, seq: i64) -> StoreResult<Option<User>>;
    async fn list_users(&self, tenant: TenantId, page: Page) -> StoreResult<Paged<User>>;
    async fn update_user(&self, user: &User) -> StoreResult<()>;

    // Keys.
    /// Inserts a key with its first secret, durably, and returns it with its `seq`.
    async fn create_key(&self, key: &ApiKey, secret: &KeySecret) -> StoreResult<ApiKey>;
    /// Inserts many keys with their first secrets in one transaction: all or none. For
    /// bulk imports and load tests, where a commit per key would be the bottleneck.
    async fn create_keys(&self, keys: &[(ApiKey, KeySecret)]) -> StoreResult<()>;
    async fn key(&self, tenant: TenantId, id: KeyId) -> StoreResult<Option<ApiKey>>;
    /// The unrevoked key with this name, of one owner or (with `None`) of the tenant.
    async fn key_by_name(
        &self,
        tenant: TenantId,
        owner: Option<UserId>,
        name: &str,
    ) -> StoreResult<Option<ApiKey>>;
    async fn key_by_seq(&self, tenant: TenantId, seq: i64) -> StoreResult<Option<ApiKey>>;
    /// The unrevoked key with this name made through one door, of any owner in the
    /// tenant (Macrometa's keyids are unique per tenant).
    async fn key_by_door_name(
        &self,
        tenant: TenantId,
        door: Door,
        name: &str,
    ) -> StoreResult<Option<ApiKey>>;
    async fn key_by_public_id(&self, public_id: &str) -> StoreResult<Option<ApiKey>>;
    /// Newest first.
    async fn list_keys(
        &self,
        tenant: TenantId,
        filter: KeyFilter,
        page: Page,
    ) -> StoreResult<Paged<ApiKey>>;
    /// Saves a key's mutable fields (name, grants, metadata, state, expiry).
    async fn update_key(&self, key: &ApiKey) -> StoreResult<()>;
    /// Saves `key` (its new visible start), adds `secret`, makes every older secret
    /// stop working at `old_until` (dropping those already past), all or nothing.
    async fn rotate_key(
        &self,
        key: &ApiKey,
        secret: &KeySecret,
        old_until: OffsetDateTime,
    ) -> StoreResult<()>;
    /// The hot path's one read, on a cache miss.
    async fn lookup_secret(&self, hash: &SecretHash) -> StoreResult<Option<SecretMatch>>;
    /// Adds batched usage to the keys' counters and last-used times.
    async fn record_usage(&self, usage: &[KeyUsage]) -> StoreResult<()>;

    // Coherence between nodes.
    /// Follows the changes every node announces (`update_key`, `rotate_key` and
    /// `update_user` announce theirs). Fails when the feed cannot be set up at all.
    async fn subscribe_changes(&self) -> StoreResult<ChangeFeed>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store a URL names: `sqlite://path` (created if missing) or `postgres://...`,
/// and brings its schema up to date.
pub async fn open(url: &str) -> StoreResult<DynStore> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else if let Some(path) = url.strip_prefix("sqlite://") {
        Ok(Arc::new(
            SqliteStore::open(std::path::Path::new(path)).await?,
        ))
    } else {
        Err(StoreError::Unavailable(format!(
            "unsupported database URL '{url}': use sqlite://PATH or postgres://..."
        )))
    }
}
