//! Keyward's persistence: traits split by capability ([`traits`]), two implementations
//! (SQLite, the embedded default, and PostgreSQL, for several nodes) compiled from one
//! body of SQL (`src/queries/`), so they cannot drift apart, and one test suite run
//! against both.
//!
//! Reads go through the capability traits; every change of state goes through one
//! call, [`WriteStore::commit`], which commits the change and its audit events in one
//! transaction ([`write`]).

use keyward_core::{ApiKey, Door, KeyId, SecretHash, User, UserId};
use std::sync::Arc;
use time::OffsetDateTime;

mod copy;
pub mod postgres;
mod sql;
pub mod sqlite;
pub mod testing;
pub mod traits;
pub mod write;

pub use copy::{copy_sqlite_to_postgres, CopyCounts};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use traits::{
    AuditStore, KeyStore, Recent, Store, TenantStore, UsageStore, UserStore, WriteStore,
};
pub use write::{Committed, CreditChange, CreditOp, Mutation};

/// A uniqueness rule of the schema, identified by the name of the constraint (or, on
/// SQLite, which names none, by its columns) that the database reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Constraint {
    TenantName,
    SpaceName,
    Email,
    Username,
    /// A live key's name, per owner (native and W3IPFS keys).
    KeyName,
    /// A live Macrometa keyid, per tenant.
    MacrometaKeyid,
    /// A key pair's public half.
    PublicId,
    /// A secret's hash (two keys can only share one by a bug or a broken generator).
    SecretHash,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken.
    #[error("{0:?} already exists")]
    Conflict(Constraint),
    /// The record to change does not exist.
    #[error("not found")]
    NotFound,
    /// The record changed since it was read (its `updated_at` moved): read it again and
    /// redo the change.
    #[error("changed since it was read")]
    Stale,
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

/// Credits one key spent on a node since the last flush, within one refill interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditUse {
    pub key_id: KeyId,
    pub spent: u64,
    /// When the node refilled the key for a new interval before spending: the interval's
    /// start and the refill's amount. The store refills the balance first, unless it
    /// already counts as refilled for that interval.
    pub refill: Option<(OffsetDateTime, u64)>,
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
