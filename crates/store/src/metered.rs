//! A store that times every operation of the store it wraps and reports it (with
//! whether it failed) to an observer: the server's metrics. It adds nothing else.

use crate::traits::*;
use crate::write::{Committed, Mutation};
use crate::{
    ChangeFeed, CountRow, CountsQuery, CreditUse, DynStore, KeyFilter, KeyUsage, RecentUse,
    SecretMatch, StoreResult, UsageBatch,
};
use keyward_core::analytics::Granularity;
use keyward_core::audit::{Action, AuditEvent, AuditFilter, AuditPage};
use keyward_core::{
    ApiKey, Door, KeyId, Page, Paged, ResourceKind, SecretHash, Space, SpaceId, Tenant, TenantId,
    User, UserId,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Told each operation's name, duration and whether it failed.
pub type Observer = Arc<dyn Fn(&'static str, Duration, bool) + Send + Sync>;

pub struct Metered {
    inner: DynStore,
    observe: Observer,
}

impl Metered {
    pub fn wrap(inner: DynStore, observe: Observer) -> DynStore {
        Arc::new(Metered { inner, observe })
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        let started = Instant::now();
        let result = call.await;
        (self.observe)(operation, started.elapsed(), result.is_err());
        result
    }
}

/// Implements a store trait by timing each of its operations on the inner store.
macro_rules! metered {
    ($trait:ident { $(fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)* }) => {
        #[async_trait::async_trait]
        impl $trait for Metered {
            $(async fn $name(&self, $($arg: $ty),*) -> StoreResult<$ret> {
                self.timed(stringify!($name), self.inner.$name($($arg),*)).await
            })*
        }
    };
}

metered!(TenantStore {
    fn tenant_count() -> u64;
    fn tenant(id: TenantId) -> Option<Tenant>;
    fn tenant_by_name(name: &str) -> Option<Tenant>;
    fn list_spaces(tenant: TenantId, page: Page) -> Paged<Space>;
    fn space_by_seq(tenant: TenantId, seq: i64) -> Option<Space>;
    fn space_by_name(tenant: TenantId, name: &str) -> Option<Space>;
    fn list_resources(space: SpaceId, kind: ResourceKind) -> Vec<String>;
});

metered!(UserStore {
    fn user(tenant: TenantId, id: UserId) -> Option<User>;
    fn users_by_email(email: &str, limit: u32) -> Vec<User>;
    fn user_by_email_in(tenant: TenantId, email: &str) -> Option<User>;
    fn user_by_username(tenant: TenantId, username: &str) -> Option<User>;
    fn user_by_seq(tenant: TenantId, seq: i64) -> Option<User>;
    fn list_users(tenant: TenantId, page: Page) -> Paged<User>;
});

metered!(KeyStore {
    fn key(tenant: TenantId, id: KeyId) -> Option<ApiKey>;
    fn key_by_name(tenant: TenantId, owner: Option<UserId>, name: &str) -> Option<ApiKey>;
    fn key_by_seq(tenant: TenantId, seq: i64) -> Option<ApiKey>;
    fn key_by_door_name(tenant: TenantId, door: Door, name: &str) -> Option<ApiKey>;
    fn key_by_public_id(public_id: &str) -> Option<ApiKey>;
    fn list_keys(tenant: TenantId, filter: KeyFilter, page: Page) -> Paged<ApiKey>;
    fn lookup_secret(hash: &SecretHash) -> Option<SecretMatch>;
});

metered!(UsageStore {
    fn record_flush(batch: UsageBatch<'_>) -> ();
    fn record_usage(usage: &[KeyUsage]) -> ();
    fn record_credits(spent: &[CreditUse]) -> ();
    fn verification_counts(query: &CountsQuery) -> Vec<CountRow>;
    fn recent_use(tenant: TenantId, keys: &[KeyId], day_since: i64, month_since: i64)
        -> Vec<(KeyId, RecentUse)>;
    fn prune_verifications(granularity: Granularity, before: i64) -> u64;
});

metered!(AuditStore {
    fn audit_events(tenant: Option<TenantId>, filter: &AuditFilter) -> AuditPage;
    fn prune_audit(before: OffsetDateTime) -> u64;
    fn recent_events(action: Action, about: Recent<'_>, since: OffsetDateTime, limit: u32)
        -> Vec<OffsetDateTime>;
});

metered!(WriteStore {
    fn commit(change: Mutation<'_>, events: &[AuditEvent]) -> Committed;
});

#[async_trait::async_trait]
impl Store for Metered {
    async fn ping(&self) -> StoreResult<()> {
        self.timed("ping", self.inner.ping()).await
    }

    async fn close(&self) {
        self.inner.close().await
    }

    async fn subscribe_changes(&self) -> StoreResult<ChangeFeed> {
        self.inner.subscribe_changes().await
    }
}
