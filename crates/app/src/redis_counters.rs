//! Counters shared by every node through Redis (`--redis-url`): charges go to Redis in
//! batches, each batch one script that Redis runs atomically and that decides its
//! charges one after the other, so two nodes × 16 clients against a limit of 100 admit
//! exactly 100, and 500 credits spent from both nodes admit exactly 500.
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
-- Charges a batch of verifications, one after the other, each all or nothing.
-- ARGV[1]: how many. Then per charge, its arguments: n; per rate counter: limit,
-- window_ms, cost; then credit_cost (-1: none), the store's remaining, (unused), refill
-- amount (-1: none), the current refill interval's start (ms, -1: none), the store's
-- refilled_at (ms, -1), the balance's idle expiry. KEYS: per charge, its rate
-- counters, then its credits when charged.
-- Answers per charge: status (0 passed, 1 rate limited, 2 credits spent), credits
-- left (-1: none), then per counter: passed (1/0), remaining, reset after, retry after.
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
local out = {}
local a, k = 2, 1
for _ = 1, tonumber(ARGV[1]) do
  local n = tonumber(ARGV[a])
  local states = {}
  local results = {}
  local pass = true
  for i = 1, n do
    local limit = tonumber(ARGV[a + 3 * i - 2])
    local window = tonumber(ARGV[a + 3 * i - 1])
    local cost = tonumber(ARGV[a + 3 * i])
    local cap = window * limit
    local s = redis.call('HMGET', KEYS[k + i - 1], 's', 'd')
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
    results[#results + 1] = (retry == 0) and 1 or 0
    results[#results + 1] = idiv(cap - debt, window)
    results[#results + 1] = cdiv(debt, limit)
    results[#results + 1] = retry
  end
  local status = pass and 0 or 1
  local left = -1
  local c0 = a + 3 * n + 1
  local credit_cost = tonumber(ARGV[c0])
  if credit_cost >= 0 then
    local ck = KEYS[k + n]
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
      redis.call('HSET', KEYS[k + i - 1], 's', states[i][1], 'd', states[i][2])
      redis.call('PEXPIRE', KEYS[k + i - 1], states[i][3] + 1000)
    end
  end
  out[#out + 1] = status
  out[#out + 1] = left
  for _, v in ipairs(results) do out[#out + 1] = v end
  a = c0 + 7
  k = k + n
  if credit_cost >= 0 then k = k + 1 end
end
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

/// Charges sent to Redis in one script call at most: while a call is out, the charges
/// that arrive queue and go together in the next, so a busy node pays one round trip
/// for many verifications.
const MAX_BATCH: usize = 64;
/// Script calls a node has out at once. One: measured on two nodes, four calls in
/// flight averaged 1.3 charges per call and 12-15k verifications/s; one call averaged
/// 3.2 charges per call and 17k/s, with a lower p99 (docs/benchmarks.md).
const MAX_IN_FLIGHT: usize = 1;

/// One charge, as the script reads it, and where its answer goes.
struct Queued {
    keys: Vec<String>,
    args: Vec<i64>,
    answer: tokio::sync::oneshot::Sender<Result<Vec<i64>, String>>,
}

/// Counters in Redis, shared by every node that names the same Redis.
pub struct RedisCounters {
    connection: ConnectionManager,
    queue: tokio::sync::mpsc::Sender<Queued>,
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
        let (queue, queued) = tokio::sync::mpsc::channel(MAX_BATCH * MAX_IN_FLIGHT * 4);
        tokio::spawn(send_batches(queued, connection.clone()));
        Ok(RedisCounters {
            connection,
            queue,
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

/// Sends queued charges to Redis in batches, up to [`MAX_IN_FLIGHT`] calls at once,
/// until every sender is gone.
async fn send_batches(
    mut queued: tokio::sync::mpsc::Receiver<Queued>,
    connection: ConnectionManager,
) {
    let script = std::sync::Arc::new(redis::Script::new(CHARGE));
    let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = queued.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queued.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (script, mut connection) = (script.clone(), connection.clone());
        tokio::spawn(async move {
            let mut invocation = script.prepare_invoke();
            invocation.arg(batch.len());
            for queued in &batch {
                for key in &queued.keys {
                    invocation.key(key);
                }
                for arg in &queued.args {
                    invocation.arg(*arg);
                }
            }
            let reply: Result<Vec<i64>, _> = invocation.invoke_async(&mut connection).await;
            drop(permit);
            answer_batch(batch, reply);
        });
    }
}

/// Hands each charge of a batch its part of the script's answer.
fn answer_batch(batch: Vec<Queued>, reply: redis::RedisResult<Vec<i64>>) {
    let reply = match reply {
        Ok(reply) => reply,
        Err(err) => {
            for queued in batch {
                let _ = queued.answer.send(Err(err.to_string()));
            }
            return;
        }
    };
    let mut rest = &reply[..];
    for queued in batch {
        let rates = usize::try_from(queued.args[0]).unwrap_or(0);
        let size = 2 + 4 * rates;
        if rest.len() < size {
            let _ = queued.answer.send(Err("a short answer from Redis".into()));
            continue;
        }
        let (mine, others) = rest.split_at(size);
        let _ = queued.answer.send(Ok(mine.to_vec()));
        rest = others;
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
        let mut keys = Vec::with_capacity(charge.rates.len() + 1);
        let mut args = Vec::with_capacity(3 * charge.rates.len() + 8);
        args.push(charge.rates.len() as i64);
        for planned in &charge.rates {
            keys.push(counter_key(charge, planned.scope, &planned.rule.name));
            // A cost past the limit is refused whatever the state: capped, the
            // script's numbers stay exact.
            let cost = planned.cost.min(planned.rule.limit + 1);
            args.extend([
                planned.rule.limit as i64,
                planned.rule.window_ms as i64,
                cost as i64,
            ]);
        }
        let credits = charge.credits.zip(charge.key.credits.as_ref());
        match credits {
            Some((cost, stored)) => {
                let current = stored.refilled(now);
                keys.push(credits_key(charge.key));
                args.extend([
                    cost.min(keyward_core::limits::MAX_CREDITS) as i64,
                    stored.remaining as i64,
                    basis(charge.key),
                    stored.refill.map_or(-1, |r| r.amount as i64),
                    unix_ms(current.refilled_at),
                    unix_ms(stored.refilled_at),
                    IDLE_BALANCE_MS as i64,
                ]);
            }
            None => args.extend([-1, 0, 0, -1, -1, -1, 0]),
        }
        let (answer, answered) = tokio::sync::oneshot::channel();
        let queued = Queued { keys, args, answer };
        self.queue
            .send(queued)
            .await
            .map_err(|_| self.unavailable("the Redis batcher is gone"))?;
        let reply = tokio::time::timeout(2 * RESPONSE_TIMEOUT, answered)
            .await
            .map_err(|_| self.unavailable("no answer from Redis in time"))?
            .map_err(|_| self.unavailable("the Redis batcher is gone"))?
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
            op: op.as_str(),
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
