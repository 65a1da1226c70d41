//! Verifying keys that a caller's own clients present to it.

use crate::verifier::Verdict;
use crate::{AppResult, Keyward};
use keyward_core::principal::KEYS_VERIFY;
use keyward_core::{Principal, Query};

impl Keyward {
    /// Verifies a key presented to the caller's service, within its tenant.
    pub async fn verify_key(
        &self,
        caller: &Principal,
        presented: &str,
        query: Option<&Query>,
    ) -> AppResult<Verdict> {
        caller.require(&KEYS_VERIFY)?;
        Ok(self
            .verifier
            .verify(presented, Some(caller.tenant_id()), query)
            .await?)
    }
}
