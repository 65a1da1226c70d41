//! Counters shared by every node through Redis (`--redis-url`): each charge is one
//! script that Redis runs atomically, so two nodes × 16 clients against a limit of 100
//! admit exactly 100, and 500 credits spent from both nodes admit exactly 500.
//!
//! The script does core's arithmetic (`keyward_core::limits`) on Redis's clock, in
//! integers that stay below 2^53 (Lua's numbers are doubles), with divisions corrected
//! to be exact. A key's live balance starts from the store's (what its cached record
//! says) the first time any node charges it; changes through the API are applied to
//! the live balance itself (retried while Redis is unreachable). What each node spends
//! also goes to the store in its batched flush, so a Redis that lost its data starts
//! again from the store, short of at most one flush interval.

use crate::limiter::{
    rate_state, refill_interval, Charge, Charged, Counters, CountersUnavailable, Refusal,
    SpentCredits,
};
use keyward_core::limits::{RateDecision, Scope};
use keyward_core::ApiKey;
use keyward_store::{CreditOp, CreditUse};
use redis::aio::ConnectionManager;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use time::OffsetDateTime;

/// How long a charge may wait for Redis before the node decides without it.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// A live balance nobody used for this long is dropped; the store has it all by then.
const IDLE_BALANCE_MS: u64 = 7 * 24 * 3600 * 1000;

const CHARGE: &str = r#"
-- KEYS: the rate counters, then the key's credits when charged.
-- ARGV: n; per counter: limit, window_ms, cost; then credit_cost (-1: none), the
-- store's remaining, (unused), refill amount (-1: none), the current refill interval's
-- start (ms, -1: none), the store's refilled_at (ms, -1), the balance's idle expiry.
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end
local function cdiv(a, b)
  local q = idiv(a, b)
  if q * b < a then q = q + 1 end
  return q
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + idiv(tonumber(t[2]), 1000)
local n = tonumber(ARGV[1])
local out = {}
local states = {}
local pass = true
for i = 1, n do
  local limit = tonumber(ARGV[3 * i - 1])
  local window = tonumber(ARGV[3 * i])
  local cost = tonumber(ARGV[3 * i + 1])
  local cap = window * limit
  local s = redis.call('HMGET', KEYS[i], 's', 'd')
  local stamp = tonumber(s[1]) or 0
  local debt = tonumber(s[2]) or 0
  if debt > cap then debt = cap end
  local elapsed = now - stamp
  if elapsed < 0 then elapsed = 0 end
  if elapsed >= cdiv(debt, limit) then debt = 0 else debt = debt - elapsed * limit end
  local wanted = debt + cost * window
  local retry = 0
  if wanted <= cap then
    debt = wanted
  else
    pass = false
    retry = cdiv(wanted - cap, limit)
  end
  if stamp < now then stamp = now end
  states[i] = {stamp, debt, cdiv(debt, limit)}
  out[#out + 1] = (retry == 0) and 1 or 0
  out[#out + 1] = idiv(cap - debt, window)
  out[#out + 1] = cdiv(debt, limit)
  out[#out + 1] = retry
end
local status = pass and 0 or 1
local left = -1
local c0 = 3 * n + 2
local credit_cost = tonumber(ARGV[c0])
if credit_cost >= 0 then
  local ck = KEYS[n + 1]
  local c = redis.call('HMGET', ck, 'r', 'p')
  local r = tonumber(c[1])
  local p = tonumber(c[2]) or -1
  if r == nil then
    r = tonumber(ARGV[c0 + 1])
    p = tonumber(ARGV[c0 + 5])
  end
  local amount = tonumber(ARGV[c0 + 3])
  local period = tonumber(ARGV[c0 + 4])
  if amount >= 0 and period > p then
    r = amount
    p = period
  end
  if pass then
    if r >= credit_cost then r = r - credit_cost else status = 2 end
  end
  left = r
  redis.call('HSET', ck, 'r', r, 'p', p)
  redis.call('PEXPIRE', ck, tonumber(ARGV[c0 + 6]))
end
if status == 0 then
  for i = 1, n do
    redis.call('HSET', KEYS[i], 's', states[i][1], 'd', states[i][2])
    redis.call('PEXPIRE', KEYS[i], states[i][3] + 1000)
  end
end
table.insert(out, 1, left)
table.insert(out, 1, status)
return out
"#;

const CHANGE_CREDITS: &str = r#"
-- KEYS[1]: a key's credits. ARGV: op, value, (unused), refill amount (-1), interval
-- start (-1). A key nobody charged yet has no live balance: its first charge reads
-- the store's, which has the change.
local c = redis.call('HMGET', KEYS[1], 'r', 'p')
if not c[1] then return -1 end
local r = tonumber(c[1])
local p = tonumber(c[2]) or -1
local amount = tonumber(ARGV[4])
local period = tonumber(ARGV[5])
if amount >= 0 and period > p then r = amount; p = period end
local value = tonumber(ARGV[2])
if ARGV[1] == 'set' then r = value
elseif ARGV[1] == 'increment' then r = r + value
elseif r > value then r = r - value
else r = 0 end
if ARGV[1] == 'set' and tonumber(ARGV[5]) > p then p = tonumber(ARGV[5]) end
redis.call('HSET', KEYS[1], 'r', r, 'p', p)
return r
"#;

/// How many times (a second apart) a credits change is retried while Redis is away.
const CHANGE_RETRIES: u32 = 600;

/// A change of a key's credits made through the API, for its live balance.
struct CreditsChange {
    key: String,
    op: &'static str,
    value: u64,
    refill_amount: i64,
    interval: i64,
}

impl CreditsChange {
    async fn apply(
        &self,
        mut connection: ConnectionManager,
        script: &redis::Script,
    ) -> redis::RedisResult<i64> {
        let applied = script
            .key(&self.key)
            .arg(self.op)
            .arg(self.value)
            .arg(0)
            .arg(self.refill_amount)
            .arg(self.interval)
            .invoke_async(&mut connection)
            .await;
        if let Err(err) = &applied {
            tracing::warn!(%err, key = %self.key, "could not apply a credits change in Redis");
        }
        applied
    }
}

/// Counters in Redis, shared by every node that names the same Redis.
pub struct RedisCounters {
    connection: ConnectionManager,
    charge: redis::Script,
    change_credits: redis::Script,
    spent: SpentCredits,
    unavailable: AtomicU64,
}

impl RedisCounters {
    /// Prepares counters in the Redis at `url`; the connection is made on first use and
    /// remade whenever it breaks, so a node starts and answers while Redis is down.
    pub fn new(url: &str) -> Result<Self, CountersUnavailable> {
        let client = redis::Client::open(url)
            .map_err(|e| CountersUnavailable(format!("the Redis URL '{url}': {e}")))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| CountersUnavailable(e.to_string()))?;
        Ok(RedisCounters {
            connection,
            charge: redis::Script::new(CHARGE),
            change_credits: redis::Script::new(CHANGE_CREDITS),
            spent: SpentCredits::default(),
            unavailable: AtomicU64::new(0),
        })
    }

    fn unavailable(&self, err: impl std::fmt::Display) -> CountersUnavailable {
        self.unavailable.fetch_add(1, Ordering::Relaxed);
        CountersUnavailable(err.to_string())
    }
}

fn counter_key(charge: &Charge<'_>, scope: Scope, name: &str) -> String {
    match scope {
        Scope::Key => format!("keyward:rl:k:{}:{name}", charge.key.id),
        Scope::Owner => format!("keyward:rl:o:{}:{name}", charge.owner),
    }
}

fn credits_key(key: &ApiKey) -> String {
    format!("keyward:cr:{}", key.id)
}

fn unix_ms(t: Option<OffsetDateTime>) -> i64 {
    t.map_or(-1, |t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn basis(key: &ApiKey) -> i64 {
    (key.updated_at.unix_timestamp_nanos() / 1_000) as i64
}

#[async_trait::async_trait]
impl Counters for RedisCounters {
    async fn charge(
        &self,
        charge: &Charge<'_>,
        now: OffsetDateTime,
    ) -> Result<Charged, CountersUnavailable> {
        let mut invocation = self.charge.prepare_invoke();
        invocation.arg(charge.rates.len());
        for planned in &charge.rates {
            invocation.key(counter_key(charge, planned.scope, &planned.rule.name));
            // A cost past the limit is refused whatever the state: capped, the
            // script's numbers stay exact.
            let cost = planned.cost.min(planned.rule.limit + 1);
            invocation
                .arg(planned.rule.limit)
                .arg(planned.rule.window_ms)
                .arg(cost);
        }
        let credits = charge.credits.zip(charge.key.credits.as_ref());
        match credits {
            Some((cost, stored)) => {
                let current = stored.refilled(now);
                invocation
                    .key(credits_key(charge.key))
                    .arg(cost.min(keyward_core::limits::MAX_CREDITS))
                    .arg(stored.remaining)
                    .arg(basis(charge.key))
                    .arg(stored.refill.map_or(-1, |r| r.amount as i64))
                    .arg(unix_ms(current.refilled_at))
                    .arg(unix_ms(stored.refilled_at))
                    .arg(IDLE_BALANCE_MS);
            }
            None => {
                invocation
                    .arg(-1)
                    .arg(0)
                    .arg(0)
                    .arg(-1)
                    .arg(-1)
                    .arg(-1)
                    .arg(0);
            }
        }
        let mut connection = self.connection.clone();
        let reply: Vec<i64> = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|e| self.unavailable(e))?;
        let (status, left) = (reply[0], reply[1]);
        let now_ms = (now.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
        let rates = charge
            .rates
            .iter()
            .zip(reply[2..].chunks(4))
            .map(|(planned, r)| {
                let decision = RateDecision {
                    allowed: r[0] == 1,
                    remaining: r[1].max(0) as u64,
                    reset_after_ms: r[2].max(0) as u64,
                    retry_after_ms: r[3].max(0) as u64,
                };
                rate_state(planned, &decision, now_ms)
            })
            .collect();
        if status == 0 {
            if let Some((cost, stored)) = credits {
                let current = stored.refilled(now);
                self.spent
                    .add(charge.key.id, refill_interval(&current), cost);
            }
        }
        Ok(Charged {
            rates,
            credits_left: credits.map(|_| left.max(0) as u64),
            refusal: match status {
                0 => None,
                1 => Some(Refusal::RateLimited),
                _ => Some(Refusal::UsageExceeded),
            },
        })
    }

    async fn credits_changed(&self, key: &ApiKey, op: CreditOp, value: u64) {
        let now = OffsetDateTime::now_utc();
        let current = key.credits.as_ref().map(|c| c.refilled(now));
        let change = CreditsChange {
            key: credits_key(key),
            op: match op {
                CreditOp::Set => "set",
                CreditOp::Increment => "increment",
                CreditOp::Decrement => "decrement",
            },
            value,
            refill_amount: current
                .as_ref()
                .and_then(|c| c.refill)
                .map_or(-1, |r| r.amount as i64),
            interval: unix_ms(current.and_then(|c| c.refilled_at)),
        };
        let (connection, script) = (self.connection.clone(), self.change_credits.clone());
        if change.apply(connection.clone(), &script).await.is_ok() {
            return;
        }
        self.unavailable.fetch_add(1, Ordering::Relaxed);
        // The store has the change; the live balance must get it too, or it would go
        // on from the old one. Retried in the background while Redis is away.
        tokio::spawn(async move {
            for _ in 0..CHANGE_RETRIES {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if change.apply(connection.clone(), &script).await.is_ok() {
                    return;
                }
            }
            tracing::error!(key = %change.key, "gave up applying a credits change in Redis");
        });
    }

    fn take_spent(&self) -> Vec<CreditUse> {
        self.spent.take()
    }

    fn restore_spent(&self, spent: Vec<CreditUse>) {
        self.spent.restore(spent)
    }

    fn prune(&self, _now: OffsetDateTime) {}

    fn unavailable_count(&self) -> u64 {
        self.unavailable.load(Ordering::Relaxed)
    }
}
