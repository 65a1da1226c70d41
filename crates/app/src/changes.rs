//! Changes for services outside Keyward: every change this node hears (its own and
//! other nodes'), passed on to whoever watches (`GET /v0/changes`), so that a service
//! caching verifications (the Rust client's tower layer) drops them as soon as this
//! node's own cache does.

use crate::{AppResult, Keyward};
use keyward_core::principal::KEYS_VERIFY;
use keyward_core::{Principal, TenantId};
use keyward_store::{Change, ChangeEvent};
use tokio::sync::broadcast;

/// How many changes a slow watcher may fall behind before it is told it lost some.
pub const WATCH_BACKLOG: usize = 1024;

impl Keyward {
    /// Every change from now on, for a caller who verifies keys (they cache what they
    /// verified). A watcher that falls behind gets `Lagged`: anything it cached may be
    /// stale.
    pub fn watch_changes(&self, caller: &Principal) -> AppResult<broadcast::Receiver<ChangeEvent>> {
        caller.require(&KEYS_VERIFY)?;
        Ok(self.watchers.subscribe())
    }

    /// Whether a change concerns the tenant: watchers hear only their own tenant's.
    pub async fn change_in_tenant(&self, tenant: TenantId, change: Change) -> AppResult<bool> {
        Ok(match change {
            Change::Key(id) => self.store.key(tenant, id).await?.is_some(),
            Change::Owner(id) => self.store.user(tenant, id).await?.is_some(),
        })
    }

    /// Passes a heard change on to the watchers, if there are any.
    pub(crate) fn tell_watchers(&self, event: ChangeEvent) {
        if self.watchers.receiver_count() > 0 {
            let _ = self.watchers.send(event);
        }
    }
}
