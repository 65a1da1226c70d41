//! The time, as the hot path needs it: read once per verification, in the three forms
//! it uses, without redoing calendar arithmetic on every request.
//!
//! `OffsetDateTime::now_utc()` turns the system time into a calendar date each time it
//! is called (about 160 instructions), and verification then needs Unix seconds for the
//! cache's TTL and Unix milliseconds for last-used times. Each thread remembers the date
//! of the last whole second it saw; within that second only the nanoseconds change.

//!
//! [`Clock`] is the application layer's one source of "now": the system's in a server,
//! one a test moves by hand where windows, expiries and retention are tested.

use std::cell::Cell;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use time::{OffsetDateTime, PrimitiveDateTime};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Now;

    /// The time as the store keeps it (UTC, whole microseconds), so that what a write
    /// answers is what later reads show.
    fn stored_now(&self) -> OffsetDateTime {
        as_stored(self.now().utc)
    }
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Now {
        now()
    }
}

/// A clock that stands still until moved.
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn at(time: OffsetDateTime) -> Self {
        ManualClock(Mutex::new(time))
    }

    pub fn advance(&self, by: std::time::Duration) {
        let mut time = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *time += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Now {
        Now::at(*self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A time as the store keeps it: UTC, whole microseconds.
pub fn as_stored(t: OffsetDateTime) -> OffsetDateTime {
    // A time past year 9999 in UTC cannot be converted; validation refuses those first.
    let t = t.checked_to_offset(time::UtcOffset::UTC).unwrap_or(t);
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

/// One reading of the system clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    pub utc: OffsetDateTime,
    pub unix_seconds: i64,
    pub unix_millis: i64,
}

impl Now {
    pub fn at(utc: OffsetDateTime) -> Now {
        Now {
            utc,
            unix_seconds: utc.unix_timestamp(),
            unix_millis: (utc.unix_timestamp_nanos() / 1_000_000) as i64,
        }
    }
}

thread_local! {
    /// The last whole second this thread read, and its date.
    static SECOND: Cell<Option<(i64, OffsetDateTime)>> = const { Cell::new(None) };
}

/// Reads the clock. A clock set before 1970 reads as 1970.
pub fn now() -> Now {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
    let nanos = since_epoch.subsec_nanos();
    let whole = SECOND.with(|last| match last.get() {
        Some((second, date)) if second == seconds => date,
        _ => {
            let date = OffsetDateTime::from_unix_timestamp(seconds)
                .unwrap_or(PrimitiveDateTime::MAX.assume_utc());
            last.set(Some((seconds, date)));
            date
        }
    });
    Now {
        utc: whole.replace_nanosecond(nanos).unwrap_or(whole),
        unix_seconds: seconds,
        unix_millis: seconds.saturating_mul(1000) + i64::from(nanos / 1_000_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form of a reading agrees with the others and with `time`'s own clock.
    #[test]
    fn a_reading_agrees_with_itself_and_with_time() {
        for _ in 0..3 {
            let before = OffsetDateTime::now_utc();
            let now = now();
            let after = OffsetDateTime::now_utc();
            assert!(
                before <= now.utc && now.utc <= after,
                "{before} {now:?} {after}"
            );
            assert_eq!(now.utc.unix_timestamp(), now.unix_seconds);
            assert_eq!(
                (now.utc.unix_timestamp_nanos() / 1_000_000) as i64,
                now.unix_millis
            );
            std::thread::sleep(std::time::Duration::from_millis(600));
        }
    }
}
