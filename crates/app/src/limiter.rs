//! The counters behind rate limits and credits: one trait, [`Counters`], with an
//! in-process implementation ([`LocalCounters`], exact on one node) and a Redis one
//! (`redis_counters.rs`, exact across nodes). The decisions are core's
//! (`keyward_core::limits`); this is where their state lives.
//!
//! A charge is all or nothing: every rate limit it names and its credits pass, or
//! nothing is charged. Credits spent are also kept per key until the batched flush
//! writes them to the store ([`SpentCredits`]), whichever implementation decided them.

use keyward_core::limits::{Credits, GcraState, PlannedCharge, RateDecision, Scope};
use keyward_core::{ApiKey, KeyId, UserId};
use keyward_store::CreditUse;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use time::OffsetDateTime;

/// What one verification asks of the counters.
#[derive(Debug)]
pub struct Charge<'a> {
    pub key: &'a ApiKey,
    pub owner: UserId,
    pub rates: Vec<PlannedCharge<'a>>,
    /// The credits it costs, when the key has credits.
    pub credits: Option<u64>,
}

impl Charge<'_> {
    /// Whether there is anything to count at all (the common case is not).
    pub fn is_empty(&self) -> bool {
        self.rates.is_empty() && self.credits.is_none()
    }
}

/// A rate limit's state after a charge, as a verification reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateState {
    pub name: String,
    pub limit: u64,
    pub remaining: u64,
    /// Unix milliseconds at which the limit is whole again.
    pub reset_at_ms: i64,
    pub exceeded: bool,
    /// When a refused charge would pass (0 when it passed).
    pub retry_after_ms: u64,
}

/// What the counters decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Charged {
    pub rates: Vec<RateState>,
    /// Credits left; `None` when the key has none (unlimited).
    pub credits_left: Option<u64>,
    pub refusal: Option<Refusal>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    RateLimited,
    UsageExceeded,
}

impl Charged {
    /// The rate limit that refused, if one did, with the longest wait.
    pub fn binding_limit(&self) -> Option<&RateState> {
        self.rates
            .iter()
            .filter(|r| r.exceeded)
            .max_by_key(|r| r.retry_after_ms)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the limit counters are unavailable: {0}")]
pub struct CountersUnavailable(pub String);

/// Where rate-limit and credit counters live.
#[async_trait::async_trait]
pub trait Counters: Send + Sync {
    /// Charges everything in `charge` at `now`, all or nothing.
    async fn charge(
        &self,
        charge: &Charge<'_>,
        now: OffsetDateTime,
    ) -> Result<Charged, CountersUnavailable>;

    /// Charges without waiting, when the counters are in this process: the hot path
    /// then pays no boxed future. `None`: use [`Counters::charge`].
    fn charge_here(&self, _charge: &Charge<'_>, _now: OffsetDateTime) -> Option<Charged> {
        None
    }

    /// A key's credits were changed through the API (`key` is its record after the
    /// change, which the store holds): forget what this node knows of them, or apply
    /// the change where the live balance is kept elsewhere.
    async fn credits_changed(&self, key: &ApiKey, op: keyward_store::CreditOp, value: u64);

    /// Credits spent since the last call, for the store.
    fn take_spent(&self) -> Vec<CreditUse>;

    /// Puts back what a failed flush took.
    fn restore_spent(&self, spent: Vec<CreditUse>);

    /// Drops state that no longer matters (counters full again, idle balances).
    fn prune(&self, now: OffsetDateTime);

    /// How many times the counters could not be reached.
    fn unavailable_count(&self) -> u64 {
        0
    }
}

/// A key and the refill interval its spending belongs to (none without a refill).
type SpentOn = (KeyId, Option<OffsetDateTime>);
/// What was spent on each, with the refill's amount.
type Spending = HashMap<SpentOn, (u64, Option<u64>)>;

/// Credits spent per key and refill interval, with the refill's amount, until the
/// flush takes them. Sharded by key, like the counters: spending takes no lock that
/// other keys share.
pub struct SpentCredits {
    shards: Box<[Mutex<Spending>]>,
}

impl Default for SpentCredits {
    fn default() -> Self {
        SpentCredits {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl SpentCredits {
    fn shard(&self, key: KeyId) -> std::sync::MutexGuard<'_, Spending> {
        self.shards[shard_of(&key.0)].lock().expect("spent lock")
    }

    /// Records `cost` spent from `key`'s credits as refilled at `refill` (the interval
    /// and amount, when the node refilled them).
    pub fn add(&self, key: KeyId, refill: Option<(OffsetDateTime, u64)>, cost: u64) {
        if cost == 0 {
            return;
        }
        let mut spent = self.shard(key);
        let entry = spent
            .entry((key, refill.map(|r| r.0)))
            .or_insert((0, refill.map(|r| r.1)));
        entry.0 = entry.0.saturating_add(cost);
    }

    pub fn take(&self) -> Vec<CreditUse> {
        let mut uses: Vec<CreditUse> = self
            .shards
            .iter()
            .flat_map(|shard| std::mem::take(&mut *shard.lock().expect("spent lock")))
            .map(|((key_id, period), (spent, amount))| CreditUse {
                key_id,
                spent,
                refill: period.zip(amount),
            })
            .collect();
        // Earlier intervals first, so a later refill is applied after them.
        uses.sort_by_key(|u| (u.key_id, u.refill.map(|r| r.0)));
        uses
    }

    pub fn restore(&self, uses: Vec<CreditUse>) {
        for use_ in uses {
            self.add(use_.key_id, use_.refill, use_.spent);
        }
    }

    /// What `key` spent that the store does not hold yet.
    fn unflushed(&self, key: KeyId) -> u64 {
        self.shard(key)
            .iter()
            .filter(|((k, _), _)| *k == key)
            .map(|(_, (spent, _))| *spent)
            .sum()
    }
}

/// Shards of the in-process counters: a charge locks the shard of its key and then,
/// for shared limits, the shard of its owner (always in that order), so unrelated keys
/// never wait for each other and no global lock is taken.
const SHARDS: usize = 64;

/// Keys are UUIDs whose last bytes are random: enough of a hash on their own.
#[derive(Clone, Copy, Default)]
struct IdHash;

impl BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

fn shard_of(id: &uuid::Uuid) -> usize {
    (id.as_u128() as usize) % SHARDS
}

/// One key's counters on this node.
#[derive(Default)]
struct KeyCounters {
    rates: Vec<(String, GcraState)>,
    credits: Option<LiveCredits>,
}

/// A key's credits as this node spends them: based on the store's balance when the key
/// was last changed, less what this node spent since.
struct LiveCredits {
    /// The key's `updated_at` the balance was based on: a change through the API
    /// (credits set, added, taken) bumps it, and the balance is based on the store again.
    basis: OffsetDateTime,
    credits: Credits,
    last_used: OffsetDateTime,
}

/// Counters by key id or owner id.
type Shard = Mutex<HashMap<uuid::Uuid, KeyCounters, IdHash>>;

/// Counters in this process: exact for one node; each node of several counts alone.
pub struct LocalCounters {
    keys: Box<[Shard]>,
    owners: Box<[Shard]>,
    spent: SpentCredits,
}

impl Default for LocalCounters {
    fn default() -> Self {
        let shards = || (0..SHARDS).map(|_| Mutex::default()).collect();
        LocalCounters {
            keys: shards(),
            owners: shards(),
            spent: SpentCredits::default(),
        }
    }
}

fn unix_ms(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

impl LocalCounters {
    fn charge_now(&self, charge: &Charge<'_>, now: OffsetDateTime) -> Charged {
        let now_ms = unix_ms(now);
        let mut keys = self.keys[shard_of(&charge.key.id.0)]
            .lock()
            .expect("counter lock");
        let shares_owner = charge.rates.iter().any(|c| c.scope == Scope::Owner);
        let mut owners = shares_owner.then(|| {
            self.owners[shard_of(&charge.owner.0)]
                .lock()
                .expect("counter lock")
        });
        let key_counters = keys.entry(charge.key.id.0).or_default();
        // Decide every rate limit before changing any.
        let mut decided: Vec<(GcraState, RateDecision)> = Vec::with_capacity(charge.rates.len());
        for planned in &charge.rates {
            let counters = match planned.scope {
                Scope::Key => &*key_counters,
                Scope::Owner => owners
                    .as_mut()
                    .expect("locked")
                    .entry(charge.owner.0)
                    .or_default(),
            };
            let state = state_of(counters, &planned.rule.name);
            decided.push(planned.rule.charge(state, now_ms, planned.cost));
        }
        let rates_pass = decided.iter().all(|(_, d)| d.allowed);
        let mut credits_left = None;
        let mut refusal = (!rates_pass).then_some(Refusal::RateLimited);
        if let (Some(cost), Some(stored)) = (charge.credits, &charge.key.credits) {
            let live = self.live_credits(key_counters, charge.key, stored, now);
            let balance = live.credits.refilled(now);
            if rates_pass && balance.remaining >= cost {
                live.credits = Credits {
                    remaining: balance.remaining - cost,
                    ..balance
                };
                self.spent
                    .add(charge.key.id, refill_interval(&live.credits), cost);
                live.last_used = now;
            } else if rates_pass {
                refusal = Some(Refusal::UsageExceeded);
            }
            credits_left = Some(live.credits.refilled(now).remaining);
        }
        let rates = charge
            .rates
            .iter()
            .zip(&decided)
            .map(|(planned, (_, d))| rate_state(planned, d, now_ms))
            .collect();
        if refusal.is_none() {
            for (planned, (state, _)) in charge.rates.iter().zip(&decided) {
                let counters = match planned.scope {
                    Scope::Key => &mut *key_counters,
                    Scope::Owner => owners
                        .as_mut()
                        .expect("locked")
                        .entry(charge.owner.0)
                        .or_default(),
                };
                set_state(counters, &planned.rule.name, *state);
            }
        }
        Charged {
            rates,
            credits_left,
            refusal,
        }
    }

    /// The key's live balance, based on the store's anew when the key changed.
    fn live_credits<'c>(
        &self,
        counters: &'c mut KeyCounters,
        key: &ApiKey,
        stored: &Credits,
        now: OffsetDateTime,
    ) -> &'c mut LiveCredits {
        let stale = counters
            .credits
            .as_ref()
            .is_none_or(|live| live.basis != key.updated_at);
        if stale {
            // What this node spent and has not flushed is not in the store's balance.
            let unflushed = self.spent.unflushed(key.id);
            counters.credits = Some(LiveCredits {
                basis: key.updated_at,
                credits: Credits {
                    remaining: stored.remaining.saturating_sub(unflushed),
                    ..stored.clone()
                },
                last_used: now,
            });
        }
        counters.credits.as_mut().expect("just set")
    }
}

/// The refill a balance stands on, as the flush names it: the store applies it first
/// if it has not yet (this node refilled the key lazily), and ignores it otherwise.
pub(crate) fn refill_interval(credits: &Credits) -> Option<(OffsetDateTime, u64)> {
    credits.refilled_at.zip(credits.refill.map(|r| r.amount))
}

fn state_of(counters: &KeyCounters, name: &str) -> GcraState {
    counters
        .rates
        .iter()
        .find(|(n, _)| n == name)
        .map_or_else(GcraState::default, |(_, s)| *s)
}

fn set_state(counters: &mut KeyCounters, name: &str, state: GcraState) {
    match counters.rates.iter_mut().find(|(n, _)| n == name) {
        Some((_, s)) => *s = state,
        None => counters.rates.push((name.to_string(), state)),
    }
}

pub(crate) fn rate_state(planned: &PlannedCharge<'_>, d: &RateDecision, now_ms: u64) -> RateState {
    RateState {
        name: planned.rule.name.clone(),
        limit: planned.rule.limit,
        remaining: d.remaining,
        reset_at_ms: i64::try_from(now_ms.saturating_add(d.reset_after_ms)).unwrap_or(i64::MAX),
        exceeded: !d.allowed,
        retry_after_ms: d.retry_after_ms,
    }
}

#[async_trait::async_trait]
impl Counters for LocalCounters {
    async fn charge(
        &self,
        charge: &Charge<'_>,
        now: OffsetDateTime,
    ) -> Result<Charged, CountersUnavailable> {
        Ok(self.charge_now(charge, now))
    }

    fn charge_here(&self, charge: &Charge<'_>, now: OffsetDateTime) -> Option<Charged> {
        Some(self.charge_now(charge, now))
    }

    async fn credits_changed(&self, key: &ApiKey, _op: keyward_store::CreditOp, _value: u64) {
        let mut keys = self.keys[shard_of(&key.id.0)].lock().expect("counter lock");
        if let Some(counters) = keys.get_mut(&key.id.0) {
            counters.credits = None;
        }
    }

    fn take_spent(&self) -> Vec<CreditUse> {
        self.spent.take()
    }

    fn restore_spent(&self, spent: Vec<CreditUse>) {
        self.spent.restore(spent)
    }

    fn prune(&self, now: OffsetDateTime) {
        let now_ms = unix_ms(now);
        // A balance idle this long is read again from the store (by then the cached key
        // has been reloaded, and this node's spending flushed).
        let idle = time::Duration::minutes(2);
        for shard in self.keys.iter().chain(self.owners.iter()) {
            shard.lock().expect("counter lock").retain(|_, counters| {
                counters.rates.retain(|(_, s)| !recovered(s, now_ms));
                if counters
                    .credits
                    .as_ref()
                    .is_some_and(|live| now - live.last_used > idle)
                {
                    counters.credits = None;
                }
                !counters.rates.is_empty() || counters.credits.is_some()
            });
        }
    }
}

/// Whether a counter has fully recovered by `now_ms`, whatever its limit: its debt,
/// in ms × limit, is at most the elapsed ms × 1 only if the limit is 1, so this is
/// conservative for larger limits; counters are kept a little longer, never dropped
/// early.
fn recovered(state: &GcraState, now_ms: u64) -> bool {
    now_ms.saturating_sub(state.stamp_ms) >= state.debt
}
