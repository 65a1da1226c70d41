//! Usage analytics: the buckets verifications are counted in, how long each kind is
//! kept, and what a request for a series may ask. Pure decisions; the counting is in
//! the application's verifier and the rows in the store.

use crate::error::{CoreError, CoreResult};
use crate::verify::VerifyCode;

/// The width of a bucket. Every verification is counted in one bucket of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Granularity {
    Minute,
    Hour,
    Day,
}

impl Granularity {
    pub const ALL: [Granularity; 3] = [Granularity::Minute, Granularity::Hour, Granularity::Day];

    /// The bucket's width in seconds, which is also how the store names it.
    pub fn seconds(self) -> i64 {
        match self {
            Granularity::Minute => 60,
            Granularity::Hour => 3_600,
            Granularity::Day => 86_400,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == text)
    }

    /// The start of the bucket holding `unix_seconds` (UTC: days start at midnight UTC).
    pub fn bucket(self, unix_seconds: i64) -> i64 {
        unix_seconds.div_euclid(self.seconds()) * self.seconds()
    }
}

/// How long each granularity's buckets are kept, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub minutes: i64,
    pub hours: i64,
    pub days: i64,
}

impl Default for Retention {
    /// Minutes for 48 hours, hours for 90 days, days for 2 years (731 days).
    fn default() -> Self {
        Retention {
            minutes: 48 * 3_600,
            hours: 90 * 86_400,
            days: 731 * 86_400,
        }
    }
}

impl Retention {
    pub fn of(&self, granularity: Granularity) -> i64 {
        match granularity {
            Granularity::Minute => self.minutes,
            Granularity::Hour => self.hours,
            Granularity::Day => self.days,
        }
    }

    /// The oldest bucket start still kept at `now`.
    pub fn oldest_kept(&self, granularity: Granularity, now: i64) -> i64 {
        granularity.bucket(now - self.of(granularity))
    }
}

/// What a series is split by: one series per key, per owner, or (`Code`, the default)
/// one series for everything matched. Every bucket carries its counts by outcome code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    Key,
    Owner,
    Code,
}

impl GroupBy {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "key" => Some(GroupBy::Key),
            "owner" => Some(GroupBy::Owner),
            "code" => Some(GroupBy::Code),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Key => "key",
            GroupBy::Owner => "owner",
            GroupBy::Code => "code",
        }
    }
}

/// The most buckets one series may have.
pub const MAX_SERIES_BUCKETS: i64 = 10_000;
/// The most points (buckets × series) one answer may have: a series per key over a
/// long range is refused rather than built.
pub const MAX_SERIES_POINTS: usize = 200_000;

/// A time range of whole buckets, `[since, until)`, in Unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketRange {
    pub granularity: Granularity,
    pub since: i64,
    pub until: i64,
}

impl BucketRange {
    /// The range from `since` (rounded down to its bucket) to `until` (rounded up, so
    /// the bucket holding it is included), checked against the retention at `now`:
    /// each refusal names its parameter.
    pub fn new(
        granularity: Granularity,
        since: i64,
        until: i64,
        retention: &Retention,
        now: i64,
    ) -> CoreResult<Self> {
        if since > until {
            return Err(CoreError::invalid("since", "since is after until"));
        }
        let width = granularity.seconds();
        let oldest = retention.oldest_kept(granularity, now);
        if since < oldest {
            return Err(CoreError::invalid(
                "since",
                format!(
                    "{} buckets are kept for {} hours: since may go back to {} (Unix seconds)",
                    granularity.as_str(),
                    retention.of(granularity) / 3_600,
                    oldest
                ),
            ));
        }
        let start = granularity.bucket(since);
        let end = granularity.bucket(until) + width;
        let buckets = (end - start) / width;
        if buckets > MAX_SERIES_BUCKETS {
            return Err(CoreError::invalid(
                "granularity",
                format!(
                    "the range holds {buckets} {} buckets, more than {MAX_SERIES_BUCKETS}: \
                     narrow since/until or choose a coarser granularity",
                    granularity.as_str()
                ),
            ));
        }
        Ok(BucketRange {
            granularity,
            since: start,
            until: end,
        })
    }

    pub fn buckets(&self) -> usize {
        ((self.until - self.since) / self.granularity.seconds()) as usize
    }

    /// Each bucket's start, oldest first.
    pub fn starts(&self) -> impl Iterator<Item = i64> {
        (self.since..self.until).step_by(self.granularity.seconds() as usize)
    }
}

/// Counts by outcome code, indexed by [`VerifyCode::index`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutcomeCounts(pub [u64; VerifyCode::COUNT]);

impl OutcomeCounts {
    pub fn add(&mut self, code: VerifyCode, count: u64) {
        let slot = &mut self.0[code.index()];
        *slot = slot.saturating_add(count);
    }

    pub fn get(&self, code: VerifyCode) -> u64 {
        self.0[code.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().fold(0u64, |sum, n| sum.saturating_add(*n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn buckets_round_down_and_days_start_at_midnight_utc() {
        assert_eq!(Granularity::Minute.bucket(119), 60);
        assert_eq!(Granularity::Hour.bucket(-1), -3_600);
        assert_eq!(Granularity::Day.bucket(NOW) % 86_400, 0);
    }

    #[test]
    fn a_range_includes_the_bucket_holding_until() {
        let r = BucketRange::new(
            Granularity::Hour,
            NOW - 7_200,
            NOW,
            &Retention::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(r.buckets(), 3);
        assert_eq!(r.starts().count(), 3);
        assert_eq!(r.until, Granularity::Hour.bucket(NOW) + 3_600);
    }

    #[test]
    fn refusals_name_their_parameter() {
        let field = |r: CoreResult<BucketRange>| match r {
            Err(CoreError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let keep = Retention::default();
        let minute = Granularity::Minute;
        assert_eq!(
            field(BucketRange::new(minute, NOW, NOW - 1, &keep, NOW)),
            "since"
        );
        assert_eq!(
            field(BucketRange::new(minute, NOW - 49 * 3_600, NOW, &keep, NOW)),
            "since"
        );
        // 7 days of minutes is 10,081 buckets, within retention only if it is raised.
        let long = Retention {
            minutes: 8 * 86_400,
            ..keep
        };
        assert_eq!(
            field(BucketRange::new(minute, NOW - 7 * 86_400, NOW, &long, NOW)),
            "granularity"
        );
        assert!(BucketRange::new(minute, NOW - 6 * 86_400, NOW, &long, NOW).is_ok());
    }
}
