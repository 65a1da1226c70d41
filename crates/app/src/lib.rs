//! Keyward's application layer: every operation of every door, with no HTTP in it.
//!
//! A door parses its vendor's request into a call on [`Keyward`] made by a [`Caller`]
//! (who, through which door, from where), and renders the answer or the [`AppError`] in
//! its vendor's shape. Every rule lives here or in the core: who may do what, what a key
//! gets by default, which spaces a caller sees. Every change of state goes through the
//! store's one write path with the audit event that records it (`audit.rs`).
//!
//! The operations are split by capability: [`auth`] (logins, sessions, credentials),
//! [`keys`], [`users`], [`spaces`] (and the names of their resources), [`verify`]
//! (verifying keys presented to a caller's service), [`audit`] (reading the log), and
//! [`tenants`] (creating one, which happens outside any request).

pub mod analytics;
pub mod audit;
pub mod auth;
pub mod changes;
pub mod clock;
pub mod error;
pub mod import;
pub mod keys;
pub mod limiter;
pub mod limits;
mod no_escalation;
pub mod passwords;
pub mod redis_counters;
pub mod sessions;
pub mod spaces;
pub mod tenants;
pub mod users;
pub mod verifier;
pub mod verify;

pub use auth::Credential;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{AppError, AppResult, Entity, Field};
pub use keys::{CreditsSpec, IssuedKey, KeyPatch, NewKey};
pub use tenants::{create_tenant, DEFAULT_SPACE};
pub use users::{NewUser, UserPatch};
pub use verifier::{Verdict, Verifier};

use keyward_core::audit::{Actor, AuditEvent, Changes, Target};
use keyward_core::{Door, Principal, Tenant, TenantId, UserId};
use keyward_store::{ChangeEvent, ChangeFeed, DynStore};
use sessions::Sessions;
use std::net::IpAddr;
use std::sync::Arc;

/// Who is asking: the authenticated principal, the door the request came through, and
/// the address it came from. Every operation that changes state takes one, so that its
/// audit event says who did it and how.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    pub door: Door,
    pub remote_ip: Option<IpAddr>,
}

impl std::ops::Deref for Caller {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl Caller {
    /// Who the audit log says acted: the key when one was used, else the user.
    pub fn actor(&self) -> Actor {
        match &self.principal.key {
            Some(key) => Actor::Key(key.id),
            None => Actor::User(self.principal.user.id),
        }
    }
}

/// Where an unauthenticated request (a login) came from.
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    pub door: Door,
    pub remote_ip: Option<IpAddr>,
}

pub struct Keyward {
    store: DynStore,
    verifier: Arc<Verifier>,
    sessions: Sessions,
    clock: Arc<dyn Clock>,
    passwords: passwords::PasswordPool,
    logins: auth::LoginThrottle,
    /// Tenants never change once made, so every node may keep them.
    tenants: quick_cache::sync::Cache<TenantId, Arc<Tenant>>,
    /// Rate-limit and credit counters: in this process, or shared through Redis.
    counters: Arc<dyn limiter::Counters>,
    /// What to do when the counters cannot be reached.
    limits_fail: limits::FailurePolicy,
    /// Proxies whose `X-Forwarded-For` is believed.
    trusted_proxies: Vec<ipnet::IpNet>,
    /// How long analytics buckets are kept.
    retention: keyward_core::analytics::Retention,
    /// Services following changes (`changes.rs`).
    watchers: tokio::sync::broadcast::Sender<ChangeEvent>,
}

/// How many tenants a node keeps in memory.
const TENANT_CACHE: usize = 10_000;

impl Keyward {
    pub fn new(
        store: DynStore,
        verifier: Arc<Verifier>,
        sessions: Sessions,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Keyward {
            store,
            verifier,
            sessions,
            clock,
            passwords: passwords::PasswordPool::for_this_machine(),
            logins: auth::LoginThrottle::default(),
            tenants: quick_cache::sync::Cache::new(TENANT_CACHE),
            counters: Arc::new(limiter::LocalCounters::default()),
            limits_fail: limits::FailurePolicy::default(),
            trusted_proxies: Vec::new(),
            retention: Default::default(),
            watchers: tokio::sync::broadcast::channel(changes::WATCH_BACKLOG).0,
        }
    }

    /// Where rate-limit and credit counters live (in this process by default), and what
    /// to do when they cannot be reached.
    pub fn with_counters(
        mut self,
        counters: Arc<dyn limiter::Counters>,
        on_failure: limits::FailurePolicy,
    ) -> Self {
        self.counters = counters;
        self.limits_fail = on_failure;
        self
    }

    /// Proxies in front of this node whose `X-Forwarded-For` names the client.
    pub fn with_trusted_proxies(mut self, proxies: Vec<ipnet::IpNet>) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// How many failed logins an account or an address may have before more are refused.
    pub fn with_login_throttle(mut self, logins: auth::LoginThrottle) -> Self {
        self.logins = logins;
        self
    }

    /// The verification cache, for the HTTP layer's per-connection memory of it.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// A tenant by id, from memory after the first read.
    pub async fn tenant(&self, id: TenantId) -> AppResult<Option<Arc<Tenant>>> {
        if let Some(tenant) = self.tenants.get(&id) {
            return Ok(Some(tenant));
        }
        let Some(tenant) = self.store.tenant(id).await? else {
            return Ok(None);
        };
        let tenant = Arc::new(tenant);
        self.tenants.insert(id, tenant.clone());
        Ok(Some(tenant))
    }

    /// The name of the caller's tenant.
    pub async fn tenant_name(&self, caller: &Principal) -> AppResult<String> {
        self.tenant(caller.tenant_id())
            .await?
            .map(|t| t.name.clone())
            .ok_or_else(|| AppError::Internal("a user's tenant is missing".into()))
    }

    /// A stable identifier derived from this deployment's server secret (Octopus shows
    /// one as its installation id): the same on every node, secret-free.
    pub fn deployment_id(&self, label: &str) -> [u8; 32] {
        self.verifier.hasher().hash(label).0
    }

    /// A value only this deployment can compute from a session token, the same on every
    /// node: the console's CSRF token, which a page from another site cannot know.
    pub fn session_proof(&self, session_token: &str) -> [u8; 32] {
        self.verifier
            .hasher()
            .hash(&format!("keyward/console/csrf/v1/{session_token}"))
            .0
    }

    // ---- Node housekeeping, for the server that runs this layer ----

    /// Whether the store answers.
    pub async fn ready(&self) -> AppResult<()> {
        Ok(self.store.ping().await?)
    }

    /// Follows every node's changes, for [`Keyward::apply_change`].
    pub async fn subscribe_changes(&self) -> AppResult<ChangeFeed> {
        Ok(self.store.subscribe_changes().await?)
    }

    /// Applies a change heard from some node to this node's cache.
    pub fn apply_change(&self, event: ChangeEvent) {
        self.verifier.apply(event);
        self.tell_watchers(event);
    }

    /// Flushes usage and closes the store.
    pub async fn close(&self) {
        if let Err(err) = self.flush_usage().await {
            tracing::warn!(%err, "could not flush usage counters at shutdown");
        }
        self.store.close().await;
    }

    // ---- Shared by the operations ----

    /// An event of the caller's, about `target`, to commit with the change it records.
    fn event(
        &self,
        caller: &Caller,
        action: keyward_core::audit::Action,
        target: Target,
        target_owner: Option<UserId>,
        changes: Changes,
    ) -> AuditEvent {
        AuditEvent {
            id: uuid::Uuid::now_v7(),
            time: self.clock.stored_now(),
            tenant_id: Some(caller.tenant_id()),
            actor: caller.actor(),
            door: Some(caller.door),
            remote_ip: caller.remote_ip,
            action,
            target,
            changes,
            details: Default::default(),
            actor_user: Some(caller.user.id),
            target_owner,
        }
    }

    fn now(&self) -> time::OffsetDateTime {
        self.clock.stored_now()
    }

    /// An `updated_at` for a change of a record read with `read`: after it, even when
    /// the clock has not moved (or moved back), so a conditional write can tell them
    /// apart.
    fn next_update_time(&self, read: time::OffsetDateTime) -> time::OffsetDateTime {
        self.now().max(read + time::Duration::microseconds(1))
    }
}

/// How many times an operation redoes a change whose record changed under it before it
/// gives up with a retryable error. Each retry means another writer committed, so the
/// operation only runs out under a sustained storm of edits of one record.
const MAX_ATTEMPTS: usize = 100;
