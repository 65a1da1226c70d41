//! Limits on how a key is used: named rate limits, usage credits with refill, and the
//! addresses a key may be used from. Only the decisions live here; the counters they
//! decide on live behind the application layer's limiter (in process, or in Redis).
//!
//! Rate limits use GCRA (the generic cell rate algorithm, as in `governor` and
//! `redis-cell`): a limit of `L` per window `P` lets a burst of `L` through at once and
//! then one every `P / L`, refilling continuously. Its whole state is one number per
//! counter, so a check is a constant-time read-modify-write (in process under one
//! shard's lock, in Redis in one script), and it is exact: at one instant, `L` and never
//! `L + 1` are admitted. Quantities are integers in milliseconds × `L`, so that
//! `P / L` is never rounded and the Redis script, whose numbers are doubles, computes
//! exactly the same (every value stays below 2^53: see [`MAX_LIMIT`]).

use crate::error::{CoreError, CoreResult};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use time::{Date, Month, OffsetDateTime, Time};

/// Rate limits on one key or one owner.
pub const MAX_RATE_LIMITS: usize = 50;
/// Requests per window: 10^6 × 30 days in ms stays below 2^53, so Redis's doubles are
/// exact.
pub const MAX_LIMIT: u64 = 1_000_000;
pub const MIN_WINDOW_MS: u64 = 1_000;
pub const MAX_WINDOW_MS: u64 = 30 * 24 * 3600 * 1000;
pub const MAX_LIMIT_NAME: usize = 64;
/// Entries of an IP allow-list.
pub const MAX_ALLOWED_NETWORKS: usize = 100;
/// Credits a key can hold, or a change can add: far beyond any use, and exact in Redis.
pub const MAX_CREDITS: u64 = 1 << 52;

/// A named rate limit: `limit` uses per `window_ms`. An `auto_apply` limit is charged on
/// every verification; the others only when a verification names them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub name: String,
    pub limit: u64,
    pub window_ms: u64,
    pub auto_apply: bool,
}

/// Checks a list of rate limits as a whole, naming `field` in what is wrong.
pub fn validate_rate_limits(field: &str, limits: &[RateLimit]) -> CoreResult<()> {
    if limits.len() > MAX_RATE_LIMITS {
        return Err(CoreError::invalid(
            field,
            format!("at most {MAX_RATE_LIMITS} rate limits"),
        ));
    }
    for (i, limit) in limits.iter().enumerate() {
        let name = &limit.name;
        let well_named = !name.is_empty()
            && name.len() <= MAX_LIMIT_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b));
        if !well_named {
            return Err(CoreError::invalid(
                field,
                format!(
                    "a rate limit's name is 1 to {MAX_LIMIT_NAME} letters, digits, '.', '_', \
                     '-' or ':'"
                ),
            ));
        }
        if limits[..i].iter().any(|other| other.name == *name) {
            return Err(CoreError::invalid(
                field,
                format!("the rate limit name '{name}' is used twice"),
            ));
        }
        if !(1..=MAX_LIMIT).contains(&limit.limit) {
            return Err(CoreError::invalid(
                field,
                format!("'{name}': limit must be 1 to {MAX_LIMIT}"),
            ));
        }
        if !(MIN_WINDOW_MS..=MAX_WINDOW_MS).contains(&limit.window_ms)
            || limit.window_ms % 1000 != 0
        {
            return Err(CoreError::invalid(
                field,
                format!("'{name}': duration_seconds must be 1 to 2592000 (30 days)"),
            ));
        }
    }
    Ok(())
}

/// One counter's state: the theoretical arrival time is `debt / limit` ms after
/// `stamp_ms` (0 when the counter is full).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcraState {
    pub stamp_ms: u64,
    pub debt: u64,
}

/// What charging a rate limit decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    /// Uses left at this instant.
    pub remaining: u64,
    /// Until the counter is full again.
    pub reset_after_ms: u64,
    /// Until a refused use of the same cost would pass (0 when allowed).
    pub retry_after_ms: u64,
}

impl RateLimit {
    /// Charges `cost` uses at `now_ms`; a refused charge leaves the counter as it was
    /// (apart from time passing). A cost of 0 only reads the counter.
    pub fn charge(&self, state: GcraState, now_ms: u64, cost: u64) -> (GcraState, RateDecision) {
        let (limit, window) = (self.limit, self.window_ms);
        let capacity = window * limit;
        let elapsed = now_ms.saturating_sub(state.stamp_ms);
        let debt = state.debt.saturating_sub(elapsed.saturating_mul(limit));
        let wanted = debt.saturating_add(cost.saturating_mul(window));
        let allowed = wanted <= capacity;
        let debt = if allowed { wanted } else { debt };
        let decision = RateDecision {
            allowed,
            remaining: (capacity - debt) / window,
            reset_after_ms: debt.div_ceil(limit),
            retry_after_ms: if allowed {
                0
            } else {
                (wanted - capacity).div_ceil(limit)
            },
        };
        let stamp_ms = now_ms.max(state.stamp_ms);
        (GcraState { stamp_ms, debt }, decision)
    }
}

/// What a verification asks to be charged: limits by name with their costs (beyond
/// the auto-applied ones, which cost 1 unless named), and the credits it costs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitAsk {
    pub named: Vec<(String, u64)>,
    pub credit_cost: u64,
}

impl Default for LimitAsk {
    /// A key used as a credential: its auto-applied limits, and one credit.
    fn default() -> Self {
        LimitAsk {
            named: Vec::new(),
            credit_cost: 1,
        }
    }
}

/// Whose counter a rate limit charges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Key,
    /// Shared by every key of the owner.
    Owner,
}

/// One rate limit to charge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedCharge<'a> {
    pub scope: Scope,
    pub rule: &'a RateLimit,
    pub cost: u64,
}

/// The rate limits a verification charges: every auto-applied limit of the key and of
/// its owner, and every limit the request names (with the cost it names), each once.
/// A name that neither the key nor its owner has is refused, not ignored.
pub fn plan_charges<'a>(
    key: &'a [RateLimit],
    owner: &'a [RateLimit],
    named: &[(String, u64)],
) -> CoreResult<Vec<PlannedCharge<'a>>> {
    if let Some((name, _)) = named
        .iter()
        .find(|(name, _)| !key.iter().chain(owner).any(|l| l.name == *name))
    {
        return Err(CoreError::invalid(
            "ratelimits",
            format!("the key has no rate limit named '{name}'"),
        ));
    }
    let scoped = key
        .iter()
        .map(|rule| (Scope::Key, rule))
        .chain(owner.iter().map(|rule| (Scope::Owner, rule)));
    Ok(scoped
        .filter_map(|(scope, rule)| {
            let asked = named.iter().find(|(name, _)| *name == rule.name);
            let cost = match asked {
                Some((_, cost)) => *cost,
                None if rule.auto_apply => 1,
                None => return None,
            };
            Some(PlannedCharge { scope, rule, cost })
        })
        .collect())
}

/// Usage credits: each verification spends its cost, and none passes once they are
/// spent. With a refill, the balance is set to `amount` at the start of each interval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credits {
    pub remaining: u64,
    pub refill: Option<Refill>,
    /// The start of the interval whose refill the balance reflects.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub refilled_at: Option<OffsetDateTime>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refill {
    pub amount: u64,
    pub interval: RefillInterval,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefillInterval {
    /// At 00:00 UTC.
    Daily,
    /// At 00:00 UTC on `day` (1 to 31), or the month's last day when it is shorter.
    Monthly { day: u8 },
}

impl Credits {
    /// New credits as of `now`: the current interval counts as refilled.
    pub fn new(remaining: u64, refill: Option<Refill>, now: OffsetDateTime) -> CoreResult<Self> {
        if remaining > MAX_CREDITS {
            return Err(CoreError::invalid(
                "credits",
                format!("remaining is at most {MAX_CREDITS}"),
            ));
        }
        if let Some(refill) = &refill {
            refill.validate()?;
        }
        Ok(Credits {
            remaining,
            refill,
            refilled_at: refill.map(|r| r.interval.start_of_interval(now)),
        })
    }

    /// Applies any refill due by `now`: an idle key is brought up to date on its next use.
    /// Whole seconds (at least 1) until spent credits are refilled; `None` without a
    /// refill, when only a change through the API brings them back.
    pub fn retry_after_seconds(&self, now: OffsetDateTime) -> Option<u64> {
        let refill = self.refill?;
        let wait = refill.interval.next_start(now) - now;
        Some(u64::try_from(wait.whole_seconds()).unwrap_or(0).max(1))
    }

    pub fn refilled(&self, now: OffsetDateTime) -> Credits {
        let Some(refill) = self.refill else {
            return self.clone();
        };
        let start = refill.interval.start_of_interval(now);
        if self.refilled_at.is_some_and(|at| at >= start) {
            return self.clone();
        }
        Credits {
            remaining: refill.amount,
            refill: Some(refill),
            refilled_at: Some(start),
        }
    }
}

impl Refill {
    pub fn validate(&self) -> CoreResult<()> {
        if self.amount > MAX_CREDITS {
            return Err(CoreError::invalid(
                "credits.refill.amount",
                format!("at most {MAX_CREDITS}"),
            ));
        }
        if let RefillInterval::Monthly { day } = self.interval {
            if !(1..=31).contains(&day) {
                return Err(CoreError::invalid(
                    "credits.refill.day",
                    "a monthly refill's day is 1 to 31",
                ));
            }
        }
        Ok(())
    }
}

impl RefillInterval {
    /// The first refill time after `now`.
    pub fn next_start(self, now: OffsetDateTime) -> OffsetDateTime {
        let now = now.to_offset(time::UtcOffset::UTC);
        let midnight = |date: Date| date.with_time(Time::MIDNIGHT).assume_utc();
        match self {
            RefillInterval::Daily => midnight(now.date()) + time::Duration::DAY,
            RefillInterval::Monthly { day } => {
                let this_month = refill_day(now.year(), now.month(), day);
                if midnight(this_month) > now {
                    return midnight(this_month);
                }
                let (year, month) = match now.month() {
                    Month::December => (now.year() + 1, Month::January),
                    month => (now.year(), month.next()),
                };
                midnight(refill_day(year, month, day))
            }
        }
    }

    /// The latest refill time at or before `now`.
    pub fn start_of_interval(self, now: OffsetDateTime) -> OffsetDateTime {
        let now = now.to_offset(time::UtcOffset::UTC);
        let midnight = |date: Date| date.with_time(Time::MIDNIGHT).assume_utc();
        match self {
            RefillInterval::Daily => midnight(now.date()),
            RefillInterval::Monthly { day } => {
                let this_month = refill_day(now.year(), now.month(), day);
                if midnight(this_month) <= now {
                    return midnight(this_month);
                }
                let (year, month) = match now.month() {
                    Month::January => (now.year() - 1, Month::December),
                    month => (now.year(), month.previous()),
                };
                midnight(refill_day(year, month, day))
            }
        }
    }
}

/// `day` of the month, clamped to its last day.
fn refill_day(year: i32, month: Month, day: u8) -> Date {
    let last = month.length(year);
    Date::from_calendar_date(year, month, day.min(last)).expect("a day within the month")
}

/// What limits one key's use besides its credits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyLimits {
    #[serde(default)]
    pub ratelimits: Vec<RateLimit>,
    #[serde(default)]
    pub ip_allowlist: IpAllowlist,
}

impl KeyLimits {
    pub fn is_empty(&self) -> bool {
        self.ratelimits.is_empty() && self.ip_allowlist.is_empty()
    }
}

/// The networks a key may be used from; empty means anywhere.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpAllowlist(Vec<ipnet::IpNet>);

impl Serialize for IpAllowlist {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_strings().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for IpAllowlist {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = Vec::<String>::deserialize(deserializer)?;
        IpAllowlist::parse("ip_allowlist", &entries).map_err(serde::de::Error::custom)
    }
}

impl IpAllowlist {
    /// Parses CIDRs and single addresses, naming `field` in what is wrong.
    pub fn parse<S: AsRef<str>>(field: &str, entries: &[S]) -> CoreResult<Self> {
        if entries.len() > MAX_ALLOWED_NETWORKS {
            return Err(CoreError::invalid(
                field,
                format!("at most {MAX_ALLOWED_NETWORKS} networks"),
            ));
        }
        entries
            .iter()
            .map(|entry| parse_network(entry.as_ref()))
            .collect::<Option<Vec<_>>>()
            .map(IpAllowlist)
            .ok_or_else(|| {
                CoreError::invalid(
                    field,
                    "each entry is an IPv4 or IPv6 address or CIDR, like 203.0.113.0/24",
                )
            })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `address` may use the key; any address when the list is empty.
    pub fn allows(&self, address: Option<IpAddr>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let Some(address) = address.map(|a| a.to_canonical()) else {
            return false;
        };
        self.0.iter().any(|network| network.contains(&address))
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

/// Parses one network: a CIDR (its host bits cleared) or one address.
pub fn parse_network(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    if let Ok(network) = text.parse::<ipnet::IpNet>() {
        return Some(network.trunc());
    }
    text.parse::<IpAddr>()
        .ok()
        .map(|a| ipnet::IpNet::from(a.to_canonical()))
}

/// The address a request came from: the TCP peer, or, when the peer is a trusted
/// proxy, the first hop of `X-Forwarded-For` (read from the right, as each proxy
/// appends) that is not itself a trusted proxy. Anything unparseable in the header
/// stops the walk at the last address that was trustworthy.
pub fn client_address(
    peer: IpAddr,
    forwarded_for: Option<&str>,
    trusted: &[ipnet::IpNet],
) -> IpAddr {
    let is_trusted = |a: &IpAddr| trusted.iter().any(|n| n.contains(&a.to_canonical()));
    let mut client = peer.to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    let Some(header) = forwarded_for else {
        return client;
    };
    for hop in header.rsplit(',') {
        let Ok(hop) = hop.trim().parse::<IpAddr>() else {
            return client;
        };
        client = hop.to_canonical();
        if !is_trusted(&client) {
            return client;
        }
    }
    client
}

#[cfg(test)]
mod refill_tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_next_refill_is_after_now() {
        let daily = RefillInterval::Daily;
        let now = datetime!(2026-12-31 23:59:30 UTC);
        assert_eq!(daily.next_start(now), datetime!(2027-01-01 00:00 UTC));
        let on_31st = RefillInterval::Monthly { day: 31 };
        assert_eq!(
            on_31st.next_start(datetime!(2026-02-10 00:00 UTC)),
            datetime!(2026-02-28 00:00 UTC)
        );
        assert_eq!(
            on_31st.next_start(datetime!(2026-12-31 00:00 UTC)),
            datetime!(2027-01-31 00:00 UTC)
        );
        let credits = Credits {
            remaining: 0,
            refill: Some(Refill {
                amount: 5,
                interval: daily,
            }),
            refilled_at: None,
        };
        assert_eq!(credits.retry_after_seconds(now), Some(30));
        assert_eq!(
            Credits {
                refill: None,
                ..credits
            }
            .retry_after_seconds(now),
            None
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn per(limit: u64, window_s: u64) -> RateLimit {
        RateLimit {
            name: "requests".into(),
            limit,
            window_ms: window_s * 1000,
            auto_apply: true,
        }
    }

    #[test]
    fn a_burst_admits_exactly_the_limit_then_refills_steadily() {
        let limit = per(100, 60);
        let mut state = GcraState::default();
        let now = 1_000_000;
        for i in 0..100 {
            let (next, d) = limit.charge(state, now, 1);
            assert!(d.allowed, "use {i}");
            assert_eq!(d.remaining, 99 - i);
            state = next;
        }
        let (_, refused) = limit.charge(state, now, 1);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_ms, 600);
        assert_eq!(refused.reset_after_ms, 60_000);
        let (_, later) = limit.charge(state, now + 599, 1);
        assert!(!later.allowed);
        let (_, later) = limit.charge(state, now + 600, 1);
        assert!(later.allowed);
        let (_, full) = limit.charge(state, now + 60_000, 0);
        assert_eq!(full.remaining, 100);
    }

    proptest! {
        /// At one instant, however the costs fall, what is admitted never exceeds the
        /// limit, and it reaches it when costs of 1 keep coming.
        #[test]
        fn never_more_than_the_limit_at_once(
            limit in 1u64..2000, window_s in 1u64..2_592_000, costs in prop::collection::vec(0u64..5, 0..300)
        ) {
            let rule = per(limit, window_s);
            let mut state = GcraState::default();
            let mut admitted = 0;
            for cost in costs {
                let (next, d) = rule.charge(state, 5_000, cost);
                if d.allowed { admitted += cost; }
                state = next;
            }
            prop_assert!(admitted <= limit);
            let mut ones = 0;
            while rule.charge(state, 5_000, 1).1.allowed {
                state = rule.charge(state, 5_000, 1).0;
                ones += 1;
            }
            prop_assert_eq!(admitted + ones, limit);
        }
    }

    #[test]
    fn rate_limits_are_validated() {
        let ok = vec![per(1, 1), per(1_000_000, 2_592_000)];
        let ok: Vec<_> = ok
            .into_iter()
            .enumerate()
            .map(|(i, mut l)| {
                l.name = format!("l{i}");
                l
            })
            .collect();
        validate_rate_limits("ratelimits", &ok).unwrap();
        for bad in [
            vec![per(0, 60)],
            vec![per(1, 0)],
            vec![per(1, 2_592_001)],
            vec![per(1_000_001, 60)],
            vec![per(1, 60), per(2, 60)],
            vec![RateLimit {
                name: "".into(),
                ..per(1, 1)
            }],
            vec![RateLimit {
                name: "a b".into(),
                ..per(1, 1)
            }],
        ] {
            let err = validate_rate_limits("ratelimits", &bad).unwrap_err();
            assert!(
                matches!(&err, CoreError::Invalid { field, .. } if field == "ratelimits"),
                "{err}"
            );
        }
        let fifty_one: Vec<_> = (0..51)
            .map(|i| RateLimit {
                name: format!("l{i}"),
                ..per(1, 1)
            })
            .collect();
        assert!(validate_rate_limits("ratelimits", &fifty_one).is_err());
    }

    #[test]
    fn charges_are_planned_from_auto_applied_and_named_limits() {
        let key = vec![
            per(10, 60),
            RateLimit {
                name: "tokens".into(),
                auto_apply: false,
                ..per(1000, 60)
            },
        ];
        let owner = vec![RateLimit {
            name: "team".into(),
            ..per(100, 60)
        }];
        let plan = plan_charges(&key, &owner, &[]).unwrap();
        let names: Vec<_> = plan
            .iter()
            .map(|c| (c.rule.name.as_str(), c.cost))
            .collect();
        assert_eq!(names, [("requests", 1), ("team", 1)]);
        let plan = plan_charges(&key, &owner, &[("tokens".into(), 40)]).unwrap();
        let names: Vec<_> = plan
            .iter()
            .map(|c| (c.rule.name.as_str(), c.cost))
            .collect();
        assert_eq!(names, [("requests", 1), ("tokens", 40), ("team", 1)]);
        assert_eq!(plan[2].scope, Scope::Owner);
        assert!(plan_charges(&key, &owner, &[("nope".into(), 1)]).is_err());
    }

    #[test]
    fn monthly_refills_clamp_to_the_months_last_day() {
        let on_31st = RefillInterval::Monthly { day: 31 };
        assert_eq!(
            on_31st.start_of_interval(datetime!(2026-02-28 00:00 UTC)),
            datetime!(2026-02-28 00:00 UTC)
        );
        assert_eq!(
            on_31st.start_of_interval(datetime!(2026-02-27 23:59:59 UTC)),
            datetime!(2026-01-31 00:00 UTC)
        );
        assert_eq!(
            RefillInterval::Monthly { day: 1 }.start_of_interval(datetime!(2026-01-01 00:00 UTC)),
            datetime!(2026-01-01 00:00 UTC)
        );
        assert_eq!(
            RefillInterval::Monthly { day: 15 }.start_of_interval(datetime!(2026-01-10 12:00 UTC)),
            datetime!(2025-12-15 00:00 UTC)
        );
        assert_eq!(
            RefillInterval::Daily.start_of_interval(datetime!(2026-03-05 23:59:59 -01:00)),
            datetime!(2026-03-06 00:00 UTC)
        );
    }

    #[test]
    fn credits_refill_lazily_at_the_boundary() {
        let refill = Refill {
            amount: 1000,
            interval: RefillInterval::Daily,
        };
        let mut credits =
            Credits::new(1000, Some(refill), datetime!(2026-12-03 10:00 UTC)).unwrap();
        credits.remaining = 3;
        let same_day = credits.refilled(datetime!(2026-12-03 23:59:59 UTC));
        assert_eq!(same_day.remaining, 3);
        let next_day = credits.refilled(datetime!(2026-12-04 00:00 UTC));
        assert_eq!(next_day.remaining, 1000);
        assert_eq!(next_day.refilled_at, Some(datetime!(2026-12-04 00:00 UTC)));
        assert!(Refill {
            amount: 1,
            interval: RefillInterval::Monthly { day: 0 }
        }
        .validate()
        .is_err());
    }

    #[test]
    fn allowlists_match_v4_v6_and_mapped_addresses() {
        let list = IpAllowlist::parse(
            "ip_allowlist",
            &["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"],
        )
        .unwrap();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(list.allows(ip("203.0.113.9")));
        assert!(list.allows(ip("::ffff:203.0.113.9")));
        assert!(list.allows(ip("2001:db8:1::5")));
        assert!(list.allows(ip("198.51.100.7")));
        assert!(!list.allows(ip("198.51.100.8")));
        assert!(!list.allows(None));
        assert!(IpAllowlist::default().allows(None));
        for bad in ["10.0.0.0/33", "10.0.0", "", "::g", "10.0.0.1/"] {
            assert!(IpAllowlist::parse("ip_allowlist", &[bad]).is_err(), "{bad}");
        }
        assert_eq!(
            IpAllowlist::parse("x", &["10.1.2.3/8"])
                .unwrap()
                .to_strings(),
            ["10.0.0.0/8"]
        );
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = [parse_network("10.0.0.0/8").unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let xff = Some("198.51.100.7, 203.0.113.5, 10.0.0.2");
        assert_eq!(
            client_address(ip("192.0.2.1"), xff, &trusted),
            ip("192.0.2.1")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), xff, &trusted),
            ip("203.0.113.5")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), None, &trusted),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), Some("junk, 10.0.0.3"), &trusted),
            ip("10.0.0.3")
        );
    }
}
