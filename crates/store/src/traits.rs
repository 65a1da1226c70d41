//! What a store can do, one trait per capability. [`Store`] is all of them: the SQLite
//! and PostgreSQL stores implement each from the same SQL (`src/queries/<capability>.rs`).
//! Every trait here reads, except [`WriteStore`] (every change of state, with its audit
//! events) and [`UsageStore`] (batched counters, which are not changes of state).

use crate::write::{Committed, Mutation};
use crate::{
    ChangeFeed, CountRow, CountsQuery, CreditUse, KeyFilter, KeyUsage, RecentUse, SecretMatch,
    StoreResult, UsageBatch,
};
use async_trait::async_trait;
use keyward_core::audit::{AuditEvent, AuditFilter, AuditPage};
use keyward_core::{
    ApiKey, Door, KeyId, Page, Paged, ResourceKind, SecretHash, Space, SpaceId, Tenant, TenantId,
    User, UserId,
};
use time::OffsetDateTime;

/// Tenants, their spaces and the names of the resources inside those.
#[async_trait]
pub trait TenantStore: Send + Sync {
    async fn tenant_count(&self) -> StoreResult<u64>;
    async fn tenant(&self, id: TenantId) -> StoreResult<Option<Tenant>>;
    async fn tenant_by_name(&self, name: &str) -> StoreResult<Option<Tenant>>;
    async fn list_spaces(&self, tenant: TenantId, page: Page) -> StoreResult<Paged<Space>>;
    async fn space_by_seq(&self, tenant: TenantId, seq: i64) -> StoreResult<Option<Space>>;
    async fn space_by_name(&self, tenant: TenantId, name: &str) -> StoreResult<Option<Space>>;
    /// The names of a space's resources of one kind, sorted.
    async fn list_resources(&self, space: SpaceId, kind: ResourceKind) -> StoreResult<Vec<String>>;
}

#[async_trait]
pub trait UserStore: Send + Sync {
    async fn user(&self, tenant: TenantId, id: UserId) -> StoreResult<Option<User>>;
    /// The users with this email, in every tenant (an email is unique per tenant), for a
    /// login that names no tenant. At most `limit`.
    async fn users_by_email(&self, email: &str, limit: u32) -> StoreResult<Vec<User>>;
    async fn user_by_email_in(&self, tenant: TenantId, email: &str) -> StoreResult<Option<User>>;
    async fn user_by_username(&self, tenant: TenantId, username: &str)
        -> StoreResult<Option<User>>;
    async fn user_by_seq(&self, tenant: TenantId, seq: i64) -> StoreResult<Option<User>>;
    async fn list_users(&self, tenant: TenantId, page: Page) -> StoreResult<Paged<User>>;
}

#[async_trait]
pub trait KeyStore: Send + Sync {
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
    /// The hot path's one read, on a cache miss.
    async fn lookup_secret(&self, hash: &SecretHash) -> StoreResult<Option<SecretMatch>>;
}

/// Counters kept in memory on the hot path, written in batches, and read back as
/// analytics.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Writes one flush in one transaction: all of it, or (on any error) none.
    /// - keys' uses are added and their last-used times moved forward only;
    /// - verification counts are added to their minute, hour and day buckets;
    /// - what each key spent is subtracted from its stored credits (never below 0),
    ///   after any refill the node applied. Each is one statement that reads nothing
    ///   first, so nodes' flushes and the API's changes interleave without losing any.
    async fn record_flush(&self, batch: UsageBatch<'_>) -> StoreResult<()>;

    /// Adds batched usage to the keys' counters and last-used times.
    async fn record_usage(&self, usage: &[KeyUsage]) -> StoreResult<()> {
        self.record_flush(UsageBatch {
            keys: usage,
            ..UsageBatch::default()
        })
        .await
    }

    /// Subtracts what each key spent from its stored credits (see [`Self::record_flush`]).
    async fn record_credits(&self, spent: &[CreditUse]) -> StoreResult<()> {
        self.record_flush(UsageBatch {
            credits: spent,
            ..UsageBatch::default()
        })
        .await
    }

    /// The counts a query selects, summed per bucket, group and code; buckets with
    /// nothing counted are absent.
    async fn verification_counts(&self, query: &CountsQuery) -> StoreResult<Vec<CountRow>>;

    /// Each listed key's verifications over the last 24 hours (hourly buckets from
    /// `day_since`) and 30 days (daily buckets from `month_since`), in one read.
    async fn recent_use(
        &self,
        tenant: TenantId,
        keys: &[KeyId],
        day_since: i64,
        month_since: i64,
    ) -> StoreResult<Vec<(KeyId, RecentUse)>>;

    /// Deletes the buckets of one granularity that start before `before`; answers how
    /// many rows went.
    async fn prune_verifications(
        &self,
        granularity: keyward_core::analytics::Granularity,
        before: i64,
    ) -> StoreResult<u64>;
}

/// The audit log: read newest first, and pruned by retention only.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// A tenant's events (`None`: the events of no tenant, such as failed logins for
    /// unknown emails) that pass the filter, newest first.
    async fn audit_events(
        &self,
        tenant: Option<TenantId>,
        filter: &AuditFilter,
    ) -> StoreResult<AuditPage>;
    /// Deletes the events older than `before`, the one way an event ever goes; answers
    /// how many went.
    async fn prune_audit(&self, before: OffsetDateTime) -> StoreResult<u64>;
    /// The times of the latest `limit` events of `action` since `since` about `target`
    /// (its id) or from `remote_ip`, newest first: what login throttling counts, on
    /// every node alike.
    async fn recent_events(
        &self,
        action: keyward_core::audit::Action,
        about: Recent<'_>,
        since: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<OffsetDateTime>>;
}

/// Whose recent events [`AuditStore::recent_events`] counts.
#[derive(Clone, Copy, Debug)]
pub enum Recent<'a> {
    Target(uuid::Uuid),
    Address(&'a str),
}

/// The one write path.
#[async_trait]
pub trait WriteStore: Send + Sync {
    /// Commits a change and the audit events that record it in one transaction: both,
    /// or (on any error) neither. Nodes that cache what the change affects hear of it
    /// once it commits.
    async fn commit(&self, change: Mutation<'_>, events: &[AuditEvent]) -> StoreResult<Committed>;
}

#[async_trait]
pub trait Store:
    TenantStore + UserStore + KeyStore + UsageStore + AuditStore + WriteStore + 'static
{
    /// Whether the database answers (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;
    /// Waits for in-flight statements and closes the connections.
    async fn close(&self);
    /// Follows the changes every node announces (changes of keys and of users). Fails
    /// when the feed cannot be set up at all.
    async fn subscribe_changes(&self) -> StoreResult<ChangeFeed>;
}
