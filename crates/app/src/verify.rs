//! Verifying keys that a caller's own clients present to it.

use crate::limits::Checked;
use crate::verifier::Verdict;
use crate::{AppResult, Keyward};
use keyward_core::limits::LimitAsk;
use keyward_core::principal::KEYS_VERIFY;
use keyward_core::{ClientAddress, Principal, Query, TenantId};

impl Keyward {
    /// Verifies a key presented to the caller's service, within its tenant, and
    /// charges its limits (`ask`): the verdict, and the final code with what was
    /// charged. The verification is counted with that code.
    pub async fn verify_key(
        &self,
        caller: &Principal,
        presented: &str,
        query: Option<&Query>,
        ask: &LimitAsk,
        client: ClientAddress<'_>,
    ) -> AppResult<(Verdict, Checked)> {
        caller.require(&KEYS_VERIFY)?;
        self.verify_and_charge(presented, Some(caller.tenant_id()), query, ask, client)
            .await
    }

    /// Verifies a key a reverse proxy asks about (forward-auth): in whichever tenant
    /// it belongs to, against the route's permissions, charging its limits; counted
    /// like every verification.
    pub async fn verify_forwarded(
        &self,
        presented: &str,
        query: Option<&Query>,
        ask: &LimitAsk,
        client: ClientAddress<'_>,
    ) -> AppResult<(Verdict, Checked)> {
        self.verify_and_charge(presented, None, query, ask, client)
            .await
    }

    /// Verifies (within `tenant`, if given), charges the key's limits and counts the
    /// verification with its final code.
    async fn verify_and_charge(
        &self,
        presented: &str,
        tenant: Option<TenantId>,
        query: Option<&Query>,
        ask: &LimitAsk,
        client: ClientAddress<'_>,
    ) -> AppResult<(Verdict, Checked)> {
        let verifying = self.verifier.verify(presented, tenant, query, client);
        let verdict = if query.is_some_and(|q| q.terms() > INLINE_QUERY_TERMS) {
            off_the_serving_thread(verifying).await?
        } else {
            verifying.await?
        };
        let checked = self.check_limits(&verdict, ask).await?;
        self.verifier.count(&verdict, checked.code, tenant);
        Ok((verdict, checked))
    }
}

/// Requirements in a query beyond which evaluating it (against up to 64 grants, up to
/// half a millisecond at the limits: docs/security.md) leaves the serving thread.
const INLINE_QUERY_TERMS: usize = 16;

/// Runs `work` on this thread after handing the thread's other tasks to the runtime's
/// other workers, so that they do not wait behind it. On a single-threaded runtime
/// (tests) there is nowhere to hand them, and it simply runs.
async fn off_the_serving_thread<F: std::future::Future>(work: F) -> F::Output {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let handle = Handle::current();
    if handle.runtime_flavor() == RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(|| handle.block_on(work))
    } else {
        work.await
    }
}
