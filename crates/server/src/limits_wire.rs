//! Limits as the native API spells them: rate limits with `duration_seconds`, credits
//! with a refill, IP allow-lists, and what a verification asks and is told. Numbers are
//! read signed so that a negative one is refused naming its field (422), not as JSON
//! the parser could not read.

use crate::error::Failure;
use keyward_app::limiter::{Charged, RateState};
use keyward_app::CreditsSpec;
use keyward_core::limits::{Credits, IpAllowlist, LimitAsk, RateLimit, Refill, RefillInterval};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitIn {
    name: String,
    limit: i64,
    duration_seconds: i64,
    /// Charged on every verification unless false; a limit that is not is charged only
    /// when a verification names it.
    auto_apply: Option<bool>,
}

pub fn rate_limits(list: Vec<RateLimitIn>) -> Result<Vec<RateLimit>, Failure> {
    list.into_iter()
        .map(|l| {
            Ok(RateLimit {
                limit: non_negative("ratelimits", l.limit)?,
                window_ms: non_negative("ratelimits", l.duration_seconds)?.saturating_mul(1000),
                name: l.name,
                auto_apply: l.auto_apply.unwrap_or(true),
            })
        })
        .collect()
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditsIn {
    remaining: i64,
    refill: Option<RefillIn>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefillIn {
    amount: i64,
    interval: String,
    day: Option<i64>,
}

pub fn credits(credits: CreditsIn) -> Result<CreditsSpec, Failure> {
    let refill = credits
        .refill
        .map(|r| {
            let interval = match (r.interval.as_str(), r.day) {
                ("daily", None) => RefillInterval::Daily,
                ("monthly", day) => {
                    let day = day.unwrap_or(1);
                    if !(1..=31).contains(&day) {
                        return Err(invalid("credits.refill.day", "day is 1 to 31"));
                    }
                    RefillInterval::Monthly { day: day as u8 }
                }
                ("daily", Some(_)) => {
                    return Err(invalid(
                        "credits.refill.day",
                        "day is for monthly refills only",
                    ))
                }
                (other, _) => {
                    return Err(invalid(
                        "credits.refill.interval",
                        &format!("'{other}' is not an interval: use 'daily' or 'monthly'"),
                    ))
                }
            };
            Ok(Refill {
                amount: non_negative("credits.refill.amount", r.amount)?,
                interval,
            })
        })
        .transpose()?;
    Ok(CreditsSpec {
        remaining: non_negative("credits.remaining", credits.remaining)?,
        refill,
    })
}

pub fn allowlist(entries: Vec<String>) -> Result<IpAllowlist, Failure> {
    Ok(IpAllowlist::parse("ip_allowlist", &entries)?)
}

fn non_negative(field: &str, value: i64) -> Result<u64, Failure> {
    u64::try_from(value).map_err(|_| invalid(field, "must not be negative"))
}

fn invalid(field: &str, message: &str) -> Failure {
    Failure::Validation {
        field: field.into(),
        message: format!("{field}: {message}"),
    }
}

/// `credits: null` clears; an absent field leaves them alone.
pub fn double_option_credits<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<CreditsIn>>, D::Error> {
    Option::<CreditsIn>::deserialize(d).map(Some)
}

// ---- Verification ----

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditCost {
    cost: i64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedLimit {
    name: String,
    cost: Option<i64>,
}

/// What a verification asks to be charged.
pub fn ask(
    credits: Option<CreditCost>,
    ratelimits: Option<Vec<NamedLimit>>,
) -> Result<LimitAsk, Failure> {
    let named = ratelimits
        .unwrap_or_default()
        .into_iter()
        .map(|l| Ok((l.name, non_negative("ratelimits", l.cost.unwrap_or(1))?)))
        .collect::<Result<Vec<_>, Failure>>()?;
    let credit_cost = match credits {
        Some(c) => non_negative("credits.cost", c.cost)?,
        None => 1,
    };
    Ok(LimitAsk { named, credit_cost })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RateLimitOut<'a> {
    name: &'a str,
    limit: u64,
    remaining: u64,
    /// Unix milliseconds at which the limit is whole again.
    reset_at: i64,
    exceeded: bool,
}

pub fn rate_states(charged: &Charged) -> Vec<RateLimitOut<'_>> {
    charged.rates.iter().map(rate_state).collect()
}

fn rate_state(r: &RateState) -> RateLimitOut<'_> {
    RateLimitOut {
        name: &r.name,
        limit: r.limit,
        remaining: r.remaining,
        reset_at: r.reset_at_ms,
        exceeded: r.exceeded,
    }
}

// ---- Views ----

#[derive(Serialize, utoipa::ToSchema)]
pub struct RateLimitView<'a> {
    name: &'a str,
    limit: u64,
    duration_seconds: u64,
    auto_apply: bool,
}

pub fn rate_limit_views(list: &[RateLimit]) -> Vec<RateLimitView<'_>> {
    list.iter()
        .map(|l| RateLimitView {
            name: &l.name,
            limit: l.limit,
            duration_seconds: l.window_ms / 1000,
            auto_apply: l.auto_apply,
        })
        .collect()
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreditsView {
    remaining: u64,
    refill: Option<RefillView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RefillView {
    amount: u64,
    interval: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    day: Option<u8>,
}

pub fn credits_view(credits: &Credits) -> CreditsView {
    // As of now: a refill that is due shows, though it is applied on the next use.
    let credits = credits.refilled(time::OffsetDateTime::now_utc());
    CreditsView {
        remaining: credits.remaining,
        refill: credits.refill.map(|r| match r.interval {
            RefillInterval::Daily => RefillView {
                amount: r.amount,
                interval: "daily",
                day: None,
            },
            RefillInterval::Monthly { day } => RefillView {
                amount: r.amount,
                interval: "monthly",
                day: Some(day),
            },
        }),
    }
}
