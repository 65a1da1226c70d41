//! The native door's usage analytics: `GET /v0/analytics/verifications`, series of
//! verification counts by outcome code, gap-free.

use crate::door::{Authed, QueryOf};
use crate::error::{ApiResult, Failure};
use crate::native::{rfc3339, Native};
use crate::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use keyward_app::analytics::{Series, SeriesAnswer, SeriesRequest};
use keyward_core::analytics::{Granularity, GroupBy, OutcomeCounts};
use keyward_core::{KeyId, UserId, VerifyCode};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v0/analytics/verifications", get(verifications))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SeriesQuery {
    /// Only this key's verifications.
    #[param(format = Uuid)]
    key_id: Option<String>,
    /// Only the verifications of this user's keys.
    #[param(format = Uuid)]
    owner_id: Option<String>,
    /// key, owner or code (the default: one series, every code counted per bucket).
    #[param(pattern = "^(key|owner|code)$")]
    group_by: Option<String>,
    /// minute, hour (the default) or day.
    #[param(pattern = "^(minute|hour|day)$")]
    granularity: Option<String>,
    /// RFC 3339, Unix seconds, or a span before now (`90m`, `24h`, `7d`); by default 24
    /// hours ago (30 days for daily buckets).
    since: Option<String>,
    /// As `since`; by default now.
    until: Option<String>,
}

/// Verification counts over time by outcome, gap-free.
#[utoipa::path(
    get,
    path = "/v0/analytics/verifications",
    tag = "analytics",
    params(SeriesQuery),
    security(("session" = []), ("api_key" = []), ("x_api_key" = [])),
    responses(
        (status = 200, description = "One series per group, one bucket per interval", body = SeriesAnswerSchema),
        crate::openapi::Refusals,
    )
)]
pub(crate) async fn verifications(
    State(app): State<AppState>,
    Authed(caller, _): Authed<Native>,
    QueryOf(q, _): QueryOf<Native, SeriesQuery>,
) -> ApiResult<Response> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let request = series_request(&q, now)?;
    let answer = app.verification_series(&caller, request).await?;
    Ok(Json(SeriesView(&answer)).into_response())
}

/// The request a query string makes: an hourly series of the last 24 hours unless it
/// says otherwise (the last 30 days for daily buckets).
fn series_request(q: &SeriesQuery, now: i64) -> Result<SeriesRequest, Failure> {
    let granularity = match q.granularity.as_deref() {
        None => Granularity::Hour,
        Some(text) => Granularity::parse(text)
            .ok_or_else(|| invalid("granularity", "granularity must be minute, hour or day"))?,
    };
    let group_by = match q.group_by.as_deref() {
        None => GroupBy::Code,
        Some(text) => GroupBy::parse(text)
            .ok_or_else(|| invalid("group_by", "group_by must be key, owner or code"))?,
    };
    let until = q
        .until
        .as_deref()
        .map(|t| instant(t, "until", now))
        .transpose()?
        .unwrap_or(now);
    let default_span = match granularity {
        Granularity::Day => 29 * 86_400,
        _ => 23 * 3_600,
    };
    let since = q
        .since
        .as_deref()
        .map(|t| instant(t, "since", now))
        .transpose()?
        .unwrap_or(until - default_span);
    Ok(SeriesRequest {
        key: q
            .key_id
            .as_deref()
            .map(|t| id(t, "key_id").map(KeyId))
            .transpose()?,
        owner: q
            .owner_id
            .as_deref()
            .map(|t| id(t, "owner_id").map(UserId))
            .transpose()?,
        group_by,
        granularity,
        since,
        until,
    })
}

fn invalid(field: &str, message: impl Into<String>) -> Failure {
    Failure::Validation {
        field: field.into(),
        message: message.into(),
    }
}

fn id(text: &str, field: &str) -> Result<uuid::Uuid, Failure> {
    uuid::Uuid::parse_str(text).map_err(|_| invalid(field, format!("{field} must be a UUID")))
}

/// A time as Unix seconds: RFC 3339 (`2026-12-01T00:00:00Z`), Unix seconds, or a span
/// before now (`90m`, `24h`, `7d`).
pub fn instant(text: &str, field: &str, now: i64) -> Result<i64, Failure> {
    let text = text.trim();
    if let Ok(t) = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    let ago = span_seconds(text).ok_or_else(|| {
        invalid(
            field,
            format!(
                "{field} must be an RFC 3339 time (2026-12-01T00:00:00Z), Unix seconds, or a \
                 span before now such as 90m, 24h or 7d"
            ),
        )
    })?;
    Ok(now - ago)
}

/// `<n>m`, `<n>h` or `<n>d` in seconds, up to ten years.
fn span_seconds(text: &str) -> Option<i64> {
    let unit = match text.as_bytes().last()? {
        b'm' => 60,
        b'h' => 3_600,
        b'd' => 86_400,
        _ => return None,
    };
    let n: i64 = text[..text.len() - 1].parse().ok()?;
    (0..=3_660 * 86_400 / unit).contains(&n).then_some(n * unit)
}

/// The shape `SeriesView` writes (a test holds the two together).
#[derive(utoipa::ToSchema)]
#[schema(as = VerificationSeries)]
#[allow(dead_code)]
pub(crate) struct SeriesAnswerSchema {
    /// minute, hour or day.
    granularity: String,
    /// key, owner or code.
    group_by: String,
    since: OffsetDateTime,
    until: OffsetDateTime,
    series: Vec<SeriesSchema>,
}

#[derive(utoipa::ToSchema)]
#[schema(as = VerificationSeriesGroup)]
#[allow(dead_code)]
struct SeriesSchema {
    /// With group_by=key: the key (null: secrets that matched no key).
    key_id: Option<uuid::Uuid>,
    /// With group_by=owner: the owner.
    owner_id: Option<uuid::Uuid>,
    buckets: Vec<BucketSchema>,
}

/// One interval's verifications, by outcome.
#[derive(utoipa::ToSchema)]
#[schema(as = VerificationBucket)]
#[allow(dead_code)]
struct BucketSchema {
    time: OffsetDateTime,
    total: u64,
    valid: u64,
    not_found: u64,
    malformed: u64,
    expired: u64,
    revoked: u64,
    disabled: u64,
    insufficient_permissions: u64,
    forbidden: u64,
    rate_limited: u64,
    usage_exceeded: u64,
}

struct SeriesView<'a>(&'a SeriesAnswer);

impl Serialize for SeriesView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = self.0;
        let mut map = s.serialize_map(Some(5))?;
        map.serialize_entry("granularity", a.range.granularity.as_str())?;
        map.serialize_entry("group_by", a.group_by.as_str())?;
        map.serialize_entry("since", &time_text(a.range.since))?;
        map.serialize_entry("until", &time_text(a.range.until))?;
        let series: Vec<_> = a.series.iter().map(|s| OneSeries(s, a.group_by)).collect();
        map.serialize_entry("series", &series)?;
        map.end()
    }
}

struct OneSeries<'a>(&'a Series, GroupBy);

impl Serialize for OneSeries<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        match self.1 {
            GroupBy::Key => map.serialize_entry("key_id", &self.0.group)?,
            GroupBy::Owner => map.serialize_entry("owner_id", &self.0.group)?,
            GroupBy::Code => {}
        }
        let buckets: Vec<_> = self.0.buckets.iter().map(|(t, c)| Bucket(*t, c)).collect();
        map.serialize_entry("buckets", &buckets)?;
        map.end()
    }
}

/// `{time, total, valid, not_found, ...}`: every code's count, zeros included.
struct Bucket<'a>(i64, &'a OutcomeCounts);

impl Serialize for Bucket<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(VerifyCode::COUNT + 2))?;
        map.serialize_entry("time", &time_text(self.0))?;
        map.serialize_entry("total", &self.1.total())?;
        for code in VerifyCode::ALL {
            map.serialize_entry(code.field_name(), &self.1.get(code))?;
        }
        map.end()
    }
}

fn time_text(unix_seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix_seconds)
        .map(rfc3339)
        .unwrap_or_default()
}

/// A key's verifications in the last 24 hours and 30 days, as key listings show them.
#[derive(Serialize, Default, utoipa::ToSchema)]
pub struct RecentUseView {
    pub verifications_24h: u64,
    pub valid_24h: u64,
    pub verifications_30d: u64,
    pub valid_30d: u64,
}

impl RecentUseView {
    pub fn of(recent: Option<&keyward_store::RecentUse>) -> Self {
        let Some(r) = recent else {
            return RecentUseView::default();
        };
        RecentUseView {
            verifications_24h: r.day.total(),
            valid_24h: r.day.get(VerifyCode::Valid),
            verifications_30d: r.month.total(),
            valid_30d: r.month.get(VerifyCode::Valid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_three_spellings() {
        let now = 1_800_000_000;
        assert_eq!(instant("24h", "since", now).unwrap(), now - 86_400);
        assert_eq!(instant("90m", "since", now).unwrap(), now - 5_400);
        assert_eq!(instant("1700000000", "since", now).unwrap(), 1_700_000_000);
        assert_eq!(
            instant("2026-12-01T00:00:00Z", "since", now).unwrap(),
            1_796_083_200
        );
        for bad in ["yesterday", "5w", "-3h", "h", "99999999d"] {
            let err = instant(bad, "until", now).unwrap_err();
            assert!(matches!(err, Failure::Validation { ref field, .. } if field == "until"));
        }
    }
}
