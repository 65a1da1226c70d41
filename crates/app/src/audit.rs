//! Reading the audit log, and its retention. Events are written by the operations
//! themselves, each with its change (see `Keyward::event`).

use crate::{AppError, AppResult, Keyward};
use keyward_core::audit::{AuditFilter, AuditPage};
use keyward_core::Principal;
use time::OffsetDateTime;

/// The most events one page may hold.
pub const MAX_PAGE: u32 = 1000;

impl Keyward {
    /// Events newest first: an administrator sees the tenant's, a member only the ones
    /// they made (in person or through a key) and the ones about their keys and account.
    pub async fn audit_events(
        &self,
        caller: &Principal,
        mut filter: AuditFilter,
    ) -> AppResult<AuditPage> {
        if filter.limit == 0 || filter.limit > MAX_PAGE {
            return Err(AppError::invalid(
                "limit",
                format!("limit must be between 1 and {MAX_PAGE}"),
            ));
        }
        if let (Some(since), Some(until)) = (filter.since, filter.until) {
            if since > until {
                return Err(AppError::invalid("since", "since must not be after until"));
            }
        }
        caller.require(&keyward_core::principal::KEYS_READ)?;
        if !caller.acts_as_admin() {
            filter.involving = Some(caller.user.id);
        }
        Ok(self
            .store
            .audit_events(Some(caller.tenant_id()), &filter)
            .await?)
    }

    /// Deletes events older than `days`; answers how many went.
    pub async fn prune_audit(&self, days: u32) -> AppResult<u64> {
        let before: OffsetDateTime = self.now() - time::Duration::days(i64::from(days));
        Ok(self.store.prune_audit(before).await?)
    }
}
