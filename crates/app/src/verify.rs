//! Verifying keys that a caller's own clients present to it.

use crate::verifier::Verdict;
use crate::{AppResult, Keyward};
use keyward_core::principal::KEYS_VERIFY;
use keyward_core::{ClientAddress, Principal, Query};

impl Keyward {
    /// Verifies a key presented to the caller's service, within its tenant.
    pub async fn verify_key(
        &self,
        caller: &Principal,
        presented: &str,
        query: Option<&Query>,
        client: ClientAddress<'_>,
    ) -> AppResult<Verdict> {
        caller.require(&KEYS_VERIFY)?;
        let verifying = self
            .verifier
            .verify(presented, Some(caller.tenant_id()), query, client);
        if query.is_some_and(|q| q.terms() > INLINE_QUERY_TERMS) {
            return Ok(off_the_serving_thread(verifying).await?);
        }
        Ok(verifying.await?)
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
