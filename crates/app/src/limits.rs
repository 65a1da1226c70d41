//! Limits at work: charging a verified key's rate limits and credits (when it is
//! verified for a caller's service, and when it is used as a credential through any
//! door), changing credits through the API, and working out the client's address.
//!
//! The order of checks is the issue's: the key's state, then the address (both in
//! core's `decide`), then permissions, then rate limits, then credits; credits are
//! spent only when everything else passed, and a refusal charges nothing.

use crate::keys::rfc3339;
use crate::limiter::{Charge, Charged, Refusal};
use crate::verifier::Verdict;
use crate::{AppError, AppResult, Caller, Keyward, MAX_ATTEMPTS};
use keyward_core::audit::{note_change, Action, Changes, Target};
use keyward_core::limits::{plan_charges, LimitAsk};
use keyward_core::{ApiKey, Entity, KeyId, Principal, VerifyCode};
use keyward_store::{CreditChange, CreditOp, Mutation, StoreError, UsageBatch};
use std::net::IpAddr;

/// What a verification's limits said.
pub struct Checked {
    /// The code to report: the verdict's, or a limit's refusal.
    pub code: VerifyCode,
    /// Set when the key has limits or credits.
    pub charged: Option<Charged>,
}

impl Keyward {
    /// The address a request came from: the TCP peer, or what trusted proxies in front
    /// of this node say in `X-Forwarded-For` (`--trusted-proxies`).
    pub fn client_address(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: Option<&str>,
    ) -> Option<IpAddr> {
        let peer = peer?;
        Some(keyward_core::limits::client_address(
            peer,
            forwarded_for,
            &self.trusted_proxies,
        ))
    }

    /// Charges and changes that could not reach the shared counters (Redis), since the
    /// node started.
    pub fn limit_counter_errors(&self) -> u64 {
        self.counters.unavailable_count()
    }

    /// Whether this peer is one of the trusted proxies, whose `X-Forwarded-*` headers
    /// are believed.
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }

    /// Whether any proxy's `X-Forwarded-For` is believed.
    pub fn trusts_proxies(&self) -> bool {
        !self.trusted_proxies.is_empty()
    }

    /// Charges a verdict's key for what `ask` names, if it is valid and has anything
    /// to charge. A limit named that the key does not have is refused (422).
    pub async fn check_limits(&self, verdict: &Verdict, ask: &LimitAsk) -> AppResult<Checked> {
        let code = verdict.code;
        let Some(matched) = verdict.matched().filter(|_| code.is_valid()) else {
            return Ok(Checked {
                code,
                charged: None,
            });
        };
        let (key, owner) = (&*matched.key, &*matched.owner);
        if !has_limits(key, &owner.ratelimits) && ask.named.is_empty() {
            return Ok(Checked {
                code,
                charged: None,
            });
        }
        let charge = Charge {
            key,
            owner: owner.id,
            rates: plan_charges(&key.limits.ratelimits, &owner.ratelimits, &ask.named)?,
            credits: key.credits.as_ref().map(|_| ask.credit_cost),
        };
        let charged = self.charge(&charge).await?;
        let code = match charged.refusal {
            None => code,
            Some(Refusal::RateLimited) => VerifyCode::RateLimited,
            Some(Refusal::UsageExceeded) => VerifyCode::UsageExceeded,
        };
        Ok(Checked {
            code,
            charged: Some(charged),
        })
    }

    /// The principal a verdict authenticates as a credential at a door, once its key's
    /// auto-applied limits and one credit are charged: a refused address is 403, a spent
    /// limit or spent credits 429. The verification is counted with its final code.
    pub async fn admit_key(&self, verdict: &Verdict) -> AppResult<Principal> {
        if let Some(admitted) = self.admit_unlimited(verdict) {
            return admitted;
        }
        let principal = crate::auth::principal_from_verdict(verdict)?;
        let checked = self.check_limits(verdict, &LimitAsk::default()).await?;
        self.verifier.count(verdict, checked.code, None);
        match checked.charged.and_then(|c| c.refusal.map(|r| (r, c))) {
            None => Ok(principal),
            Some((Refusal::UsageExceeded, _)) => Err(AppError::UsageExceeded {
                retry_after_seconds: crate::limits::refill_wait(verdict, self.now()),
            }),
            Some((Refusal::RateLimited, charged)) => {
                let binding = charged.binding_limit().cloned().expect("a refusing limit");
                Err(AppError::RateLimited(Box::new(binding)))
            }
        }
    }

    /// [`Keyward::admit_key`] without waiting, for a verdict with nothing to charge: a
    /// refusal, or a key without limits (the common case). `None` when there are
    /// limits to charge. Counts the verification when it answers.
    pub fn admit_unlimited(&self, verdict: &Verdict) -> Option<AppResult<Principal>> {
        let limited = verdict.code.is_valid()
            && verdict
                .matched()
                .is_some_and(|m| has_limits(&m.key, &m.owner.ratelimits));
        if limited {
            return None;
        }
        self.verifier.count(verdict, verdict.code, None);
        Some(crate::auth::principal_from_verdict(verdict))
    }

    async fn charge(&self, charge: &Charge<'_>) -> AppResult<Charged> {
        let now = self.now();
        if let Some(charged) = self.counters.charge_here(charge, now) {
            return Ok(charged);
        }
        match self.counters.charge(charge, now).await {
            Ok(charged) => Ok(charged),
            Err(err) => {
                tracing::warn!(%err, key_id = %charge.key.id, "limit counters unavailable");
                self.limits_fail.on_unavailable(charge)
            }
        }
    }

    /// Changes a key's credits (`set`, `increment`, `decrement`) against its balance as
    /// stored, and answers what is left.
    pub async fn change_credits(
        &self,
        caller: &Caller,
        id: KeyId,
        op: CreditOp,
        value: u64,
    ) -> AppResult<u64> {
        if value > keyward_core::limits::MAX_CREDITS {
            return Err(AppError::invalid(
                "value",
                format!("at most {}", keyward_core::limits::MAX_CREDITS),
            ));
        }
        // This node's spending goes to the store first, so that the change applies to
        // a balance that includes it.
        self.flush_usage().await?;
        for _ in 0..MAX_ATTEMPTS {
            let before = self.get_key(caller, id, true).await?;
            let now = self.now();
            let change = credit_change(&before, op, value, now)?;
            let mut key = before.clone();
            key.updated_at = self.next_update_time(before.updated_at);
            let mut changes = Changes::new();
            note_change(&mut changes, "credits.op", &None, &Some(op.as_str()));
            note_change(&mut changes, "credits.value", &None, &Some(value));
            let event = self.event(
                caller,
                Action::KeyCreditsChanged,
                Target::Key(key.id),
                Some(key.owner_id),
                changes,
            );
            let mutation = Mutation::ChangeCredits {
                key: &key,
                read_at: before.updated_at,
                change,
            };
            let result = self.store.commit(mutation, &[event]).await;
            self.verifier.invalidate_key(key.id);
            match result {
                Ok(done) => {
                    let left = u64::try_from(done.credits_left.unwrap_or(0)).unwrap_or(0);
                    self.counters.credits_changed(&key, op, value).await;
                    tracing::info!(key_id = %key.id, op = op.as_str(), value, left, at = %rfc3339(now), "credits changed");
                    return Ok(left);
                }
                Err(StoreError::Stale) => tokio::task::yield_now().await,
                Err(StoreError::NotFound) => return Err(AppError::NotFound(Entity::ApiKey)),
                Err(err) => return Err(err.into()),
            }
        }
        Err(AppError::Unavailable(
            "the key kept changing; try again".into(),
        ))
    }

    /// Writes what this node counted since the last flush in one transaction: keys'
    /// uses and last-used times, verification counts, and credits spent. On failure
    /// everything is put back for the next flush. Answers what was written.
    pub async fn flush_usage(&self) -> AppResult<Flushed> {
        let taken = self.verifier.take_usage();
        let spent = self.counters.take_spent();
        let (keys, verifications) = taken.rows();
        let batch = UsageBatch {
            keys: &keys,
            verifications: &verifications,
            credits: &spent,
        };
        let flushed = Flushed {
            keys: keys.len(),
            verification_rows: verifications.len(),
            credit_rows: spent.len(),
        };
        match self.store.record_flush(batch).await {
            Ok(()) => {
                self.counters.prune(self.now());
                Ok(flushed)
            }
            Err(err) => {
                self.verifier.restore_usage(taken);
                self.counters.restore_spent(spent);
                Err(err.into())
            }
        }
    }
}

/// Seconds until a verdict's key has its credits refilled, if they refill.
pub fn refill_wait(verdict: &Verdict, now: time::OffsetDateTime) -> Option<u64> {
    let credits = verdict.matched()?.key.credits.as_ref()?;
    credits.retry_after_seconds(now)
}

/// What one flush wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Keys whose uses and last-used times were written.
    pub keys: usize,
    /// Verification counts (key, minute, code) written.
    pub verification_rows: usize,
    /// Keys whose spent credits were written.
    pub credit_rows: usize,
}

impl Flushed {
    pub fn rows(&self) -> usize {
        self.keys + self.verification_rows + self.credit_rows
    }
}

/// Whether a key (with its owner's shared limits) has anything to count.
fn has_limits(key: &ApiKey, owner_limits: &[keyward_core::limits::RateLimit]) -> bool {
    !key.limits.ratelimits.is_empty() || key.credits.is_some() || !owner_limits.is_empty()
}

/// The store's change for `op` on `key` at `now`, with the refill that is due, if one
/// is. Adding to or taking from a key without credits (unlimited) is refused.
fn credit_change(
    key: &ApiKey,
    op: CreditOp,
    value: u64,
    now: time::OffsetDateTime,
) -> AppResult<CreditChange> {
    let Some(credits) = &key.credits else {
        if op == CreditOp::Set {
            return Ok(CreditChange {
                op,
                value,
                refill_amount: None,
                refilled_at: None,
            });
        }
        return Err(AppError::invalid(
            "op",
            "the key's credits are unlimited: set them first",
        ));
    };
    let refilled = credits.refilled(now);
    let due = refilled.refilled_at != credits.refilled_at;
    Ok(CreditChange {
        op,
        value,
        refill_amount: refilled.refill.filter(|_| due).map(|r| r.amount),
        // A set counts as this interval's balance; so does a refill applied now.
        refilled_at: refilled.refilled_at.filter(|_| due || op == CreditOp::Set),
    })
}

/// What a node does with a charge when its counters cannot be reached (Redis down):
/// per deployment, closed (refuse) or open (admit) for rate limits and for credits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailurePolicy {
    pub rate_limits_open: bool,
    pub credits_open: bool,
}

impl Default for FailurePolicy {
    /// Open for rate limits (an outage should not stop every request), closed for
    /// credits (they are paid for).
    fn default() -> Self {
        FailurePolicy {
            rate_limits_open: true,
            credits_open: false,
        }
    }
}

impl FailurePolicy {
    fn on_unavailable(&self, charge: &Charge<'_>) -> AppResult<Charged> {
        let refuse = (charge.credits.is_some() && !self.credits_open)
            || (!charge.rates.is_empty() && !self.rate_limits_open);
        if refuse {
            return Err(AppError::Unavailable(
                "the limit counters are unavailable".into(),
            ));
        }
        Ok(Charged::default())
    }
}
