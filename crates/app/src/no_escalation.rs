//! The no-escalation rule, run where it cannot hold up other requests.
//!
//! Comparing two grant lists is bounded (core's `perm.rs`: at the limits on grants and
//! segments the worst case costs well under a millisecond), but a millisecond of CPU on
//! a thread that serves other connections still delays each of them by as much, and a
//! client can send such requests in parallel. Small comparisons, which is all ordinary
//! requests make, run inline; large ones go to the blocking pool.

use crate::error::{AppError, AppResult};
use keyward_core::{Grants, Principal, User};

/// Pairs of entries compared beyond which the check leaves the request's thread: a few
/// microseconds' work inline, more on the blocking pool (whose hand-off costs about as
/// much as the small check itself).
const INLINE_COMPARISONS: usize = 256;

/// [`Principal::check_may_grant`], inline when it is cheap and on the blocking pool
/// when it is not.
pub(crate) async fn check_may_grant(
    caller: &Principal,
    grants: &Grants,
    owner: &User,
) -> AppResult<()> {
    if comparisons(caller, grants, owner) <= INLINE_COMPARISONS {
        return Ok(caller.check_may_grant(grants, owner)?);
    }
    let (caller, grants, owner) = (caller.clone(), grants.clone(), owner.clone());
    tokio::task::spawn_blocking(move || caller.check_may_grant(&grants, &owner))
        .await
        .map_err(|err| AppError::Internal(format!("the permission check failed: {err}")))?
        .map_err(AppError::from)
}

/// About how many pairs of entries the check compares: each of `grants` against each
/// holder's entries (the user's, the key's in use, the owner's).
fn comparisons(caller: &Principal, grants: &Grants, owner: &User) -> usize {
    let holders = caller.user.effective_grants().len()
        + caller.key.as_ref().map_or(0, |key| key.grants.len())
        + owner.effective_grants().len();
    grants.len().saturating_mul(holders)
}
