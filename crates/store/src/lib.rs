//! Keyward's persistence: traits split by capability ([`traits`]), two implementations
//! (SQLite, the embedded default, and PostgreSQL, for several nodes) compiled from one
//! body of SQL (`src/queries/`), so they cannot drift apart, and one test suite run
//! against both.
//!
//! Reads go through the capability traits; every change of state goes through one
//! call, [`WriteStore::commit`], which commits the change and its audit events in one
//! transaction ([`write`]).

use keyward_core::{ApiKey, Door, KeyId, SecretHash, TenantId, User, UserId};
use std::sync::Arc;
use time::OffsetDateTime;

mod copy;
pub mod metered;
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
    /// The text form carried by a notification: `key:<uuid>` or `owner:<uuid>`, then
    /// `@` and when it was sent (Unix microseconds), for the lag nodes hear it with.
    pub fn to_payload(self, sent_micros: i64) -> String {
        match self {
            Change::Key(id) => format!("key:{}@{sent_micros}", id.0),
            Change::Owner(id) => format!("owner:{}@{sent_micros}", id.0),
        }
    }

    /// A notice's change and when it was sent (absent from notices of older nodes).
    pub fn from_payload(text: &str) -> Option<(Change, Option<i64>)> {
        let (change, sent) = split_sent(text);
        Some((Self::parse(change)?, sent))
    }

    fn parse(text: &str) -> Option<Change> {
        let (kind, id) = text.split_once(':')?;
        let id = uuid::Uuid::parse_str(id).ok()?;
        match kind {
            "key" => Some(Change::Key(KeyId(id))),
            "owner" => Some(Change::Owner(UserId(id))),
            _ => None,
        }
    }
}

/// A notice's text and its `@<sent micros>` suffix, if it has one.
pub fn split_sent(text: &str) -> (&str, Option<i64>) {
    match text.rsplit_once('@') {
        Some((body, sent)) => match sent.parse() {
            Ok(micros) => (body, Some(micros)),
            Err(_) => (text, None),
        },
        None => (text, None),
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

/// Changes announced by every node (this one included), in order of commit, and how
/// long notices took to arrive.
pub struct ChangeFeed {
    events: tokio::sync::mpsc::Receiver<ChangeEvent>,
    lags: Arc<NoticeLags>,
}

impl ChangeFeed {
    pub fn new(events: tokio::sync::mpsc::Receiver<ChangeEvent>, lags: Arc<NoticeLags>) -> Self {
        ChangeFeed { events, lags }
    }

    pub async fn recv(&mut self) -> Option<ChangeEvent> {
        self.events.recv().await
    }

    /// The lags heard since the last call, oldest first.
    pub fn take_lags(&self) -> Vec<std::time::Duration> {
        self.lags.take()
    }
}

/// How long notices (changes and heartbeats) took from the node that sent them, as
/// heard: a bounded buffer the metrics drain. Across machines, it includes their
/// clocks' difference.
#[derive(Default)]
pub struct NoticeLags(std::sync::Mutex<Vec<std::time::Duration>>);

impl NoticeLags {
    /// More are dropped until the buffer is drained.
    const MAX: usize = 4_096;

    pub fn heard(&self, sent_micros: i64, now: OffsetDateTime) {
        let micros = (now.unix_timestamp_nanos() / 1_000) as i64 - sent_micros;
        let lag = std::time::Duration::from_micros(u64::try_from(micros).unwrap_or(0));
        let mut lags = self.0.lock().expect("lags lock");
        if lags.len() < Self::MAX {
            lags.push(lag);
        }
    }

    fn take(&self) -> Vec<std::time::Duration> {
        std::mem::take(&mut *self.0.lock().expect("lags lock"))
    }
}

/// Which keys a listing returns.
#[derive(Clone, Debug, Default)]
pub struct KeyFilter {
    /// Only this user's keys; `None` for the whole tenant.
    pub owner: Option<UserId>,
    /// Only keys made through this door.
    pub door: Option<Door>,
    /// Revoked keys are history; they are left out unless asked for.
    pub include_revoked: bool,
    /// Only keys whose name or start contains this text, ignoring case.
    pub search: Option<String>,
    /// Only keys in this state at `as_of`.
    pub state: Option<keyward_core::KeyState>,
    /// When `state` is judged: the app's clock, which it sets (the store reads none).
    pub as_of: Option<OffsetDateTime>,
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

/// Verifications with one outcome in one minute: of one key, or (`key_id` `None`) of
/// secrets that matched no key of the tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerificationCount {
    pub tenant_id: TenantId,
    pub key_id: Option<KeyId>,
    pub owner_id: Option<UserId>,
    /// The minute's start, in Unix seconds.
    pub minute: i64,
    pub code: keyward_core::VerifyCode,
    pub count: u64,
}

/// What one flush writes, in one transaction: keys' uses and last-used times, the
/// verifications counted for analytics, and the credits spent.
#[derive(Clone, Copy, Debug, Default)]
pub struct UsageBatch<'a> {
    pub keys: &'a [KeyUsage],
    pub verifications: &'a [VerificationCount],
    pub credits: &'a [CreditUse],
}

impl UsageBatch<'_> {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.verifications.is_empty() && self.credits.is_empty()
    }
}

/// Which verification counts to read, and how to split them.
#[derive(Clone, Copy, Debug)]
pub struct CountsQuery {
    pub tenant: TenantId,
    pub key: Option<KeyId>,
    pub owner: Option<UserId>,
    pub range: keyward_core::analytics::BucketRange,
    pub group_by: keyward_core::analytics::GroupBy,
}

/// The count of one outcome in one bucket of one group (the key or owner, for a
/// query grouped by either; else `None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CountRow {
    pub bucket: i64,
    pub group: Option<uuid::Uuid>,
    pub code: keyward_core::VerifyCode,
    pub count: u64,
}

/// A key's verifications over two recent windows, for key listings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecentUse {
    /// Since the start of the hour 23 hours ago (24 hourly buckets).
    pub day: keyward_core::analytics::OutcomeCounts,
    /// Since midnight UTC 29 days ago (30 daily buckets).
    pub month: keyward_core::analytics::OutcomeCounts,
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
