//! Reading usage analytics: series of verification counts by outcome, and the recent
//! use shown on key listings. Counting happens on the hot path ([`Verifier::count`]),
//! and the batched flush writes the counts (`limits.rs`'s `flush_usage`).
//!
//! [`Verifier::count`]: crate::verifier::Verifier::count

use crate::{AppError, AppResult, Keyward};
use keyward_core::analytics::{
    BucketRange, Granularity, GroupBy, OutcomeCounts, Retention, MAX_SERIES_POINTS,
};
use keyward_core::principal::KEYS_READ;
use keyward_core::{ApiKey, KeyId, Principal, UserId};
use keyward_store::{CountsQuery, RecentUse};
use std::collections::BTreeMap;

/// What a caller asks for; times in Unix seconds.
#[derive(Clone, Copy, Debug)]
pub struct SeriesRequest {
    pub key: Option<KeyId>,
    pub owner: Option<UserId>,
    pub group_by: GroupBy,
    pub granularity: Granularity,
    pub since: i64,
    pub until: i64,
}

/// The counts of one group (a key, an owner, or everything), one entry per bucket of
/// the range, oldest first, zeros included. Grouped by key or owner, the group `None`
/// holds the verifications of secrets that matched no key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Series {
    pub group: Option<uuid::Uuid>,
    pub buckets: Vec<(i64, OutcomeCounts)>,
}

#[derive(Clone, Debug)]
pub struct SeriesAnswer {
    pub range: BucketRange,
    pub group_by: GroupBy,
    pub series: Vec<Series>,
}

impl Keyward {
    /// How long analytics buckets are kept (the defaults: 48 h, 90 d, 2 y).
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Verification counts over a range, for the caller's keys (administrators: any
    /// key, owner, or the whole tenant, including secrets that matched no key).
    pub async fn verification_series(
        &self,
        caller: &Principal,
        request: SeriesRequest,
    ) -> AppResult<SeriesAnswer> {
        caller.require(&KEYS_READ)?;
        let now = self.now().unix_timestamp();
        let range = BucketRange::new(
            request.granularity,
            request.since,
            request.until,
            &self.retention,
            now,
        )?;
        let owner = self.owner_in_view(caller, &request).await?;
        let query = CountsQuery {
            tenant: caller.tenant_id(),
            key: request.key,
            owner,
            range,
            group_by: request.group_by,
        };
        let rows = self.store.verification_counts(&query).await?;
        let mut groups: BTreeMap<Option<uuid::Uuid>, BTreeMap<i64, OutcomeCounts>> =
            BTreeMap::new();
        // The group a filter names has a series even when nothing was counted.
        let named = match request.group_by {
            GroupBy::Key => request.key.map(|k| k.0),
            GroupBy::Owner => owner.map(|o| o.0),
            GroupBy::Code => None,
        };
        if named.is_some() || request.group_by == GroupBy::Code {
            groups.entry(named).or_default();
        }
        for row in rows {
            // The nil id groups secrets that matched no key (and so no owner).
            let group = row.group.filter(|id| !id.is_nil());
            let counts = groups.entry(group).or_default();
            counts
                .entry(row.bucket)
                .or_default()
                .add(row.code, row.count);
        }
        if groups.len().saturating_mul(range.buckets()) > MAX_SERIES_POINTS {
            return Err(AppError::invalid(
                "group_by",
                format!(
                    "{} series of {} buckets is more than {MAX_SERIES_POINTS} points: filter by \
                     key_id or owner_id, or narrow since/until",
                    groups.len(),
                    range.buckets()
                ),
            ));
        }
        let series = groups
            .into_iter()
            .map(|(group, counts)| Series {
                group,
                buckets: range
                    .starts()
                    .map(|start| (start, counts.get(&start).copied().unwrap_or_default()))
                    .collect(),
            })
            .collect();
        Ok(SeriesAnswer {
            range,
            group_by: request.group_by,
            series,
        })
    }

    /// The owner a request is held to: a member sees only their own keys' counts, so
    /// their requests are for themselves; a key named must be one the caller may read.
    async fn owner_in_view(
        &self,
        caller: &Principal,
        request: &SeriesRequest,
    ) -> AppResult<Option<UserId>> {
        if let Some(key) = request.key {
            self.get_key(caller, key, false).await?;
        }
        if caller.acts_as_admin() {
            return Ok(request.owner);
        }
        match request.owner {
            Some(owner) if !caller.is_user(owner) => Err(AppError::forbidden(
                "you may read only your own keys' usage",
            )),
            _ => Ok(Some(caller.user.id)),
        }
    }

    /// Each listed key's verifications over the last 24 hours and 30 days, read in
    /// one query for the whole page.
    pub async fn recent_use(
        &self,
        caller: &Principal,
        keys: &[ApiKey],
    ) -> AppResult<BTreeMap<KeyId, RecentUse>> {
        let now = self.now().unix_timestamp();
        let day_since = Granularity::Hour.bucket(now) - 23 * Granularity::Hour.seconds();
        let month_since = Granularity::Day.bucket(now) - 29 * Granularity::Day.seconds();
        let ids: Vec<KeyId> = keys.iter().map(|k| k.id).collect();
        let rows = self
            .store
            .recent_use(caller.tenant_id(), &ids, day_since, month_since)
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// Deletes analytics buckets past their retention; answers how many rows went.
    pub async fn prune_analytics(&self) -> AppResult<u64> {
        let now = self.now().unix_timestamp();
        let mut pruned = 0;
        for granularity in Granularity::ALL {
            let before = self.retention.oldest_kept(granularity, now);
            pruned += self.store.prune_verifications(granularity, before).await?;
        }
        Ok(pruned)
    }
}
