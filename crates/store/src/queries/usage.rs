//! Batched usage counters, and the verification counts read back as analytics.
use super::*;
use crate::{CountRow, CountsQuery, CreditUse, RecentUse, UsageBatch, VerificationCount};
use async_trait::async_trait;
use keyward_core::analytics::{Granularity, GroupBy};
use keyward_core::VerifyCode;
use std::collections::BTreeMap;
use uuid::Uuid;

#[async_trait]
impl crate::traits::UsageStore for Backend {
    async fn record_flush(&self, batch: UsageBatch<'_>) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = begin(&self.writer).await?;
        let rows = merged_usage(batch.keys);
        for chunk in statement_chunks(&rows, USAGE_ROWS_PER_STATEMENT) {
            let sql = usage_update(chunk.len());
            let mut query = sqlx::query(&sql);
            for (key, (uses, last_used)) in chunk {
                query = query.bind(key.0).bind(*uses).bind(*last_used);
            }
            query.execute(&mut *tx).await.map_err(read_error)?;
        }
        let counts = bucketed(batch.verifications);
        for chunk in statement_chunks(&counts, COUNT_ROWS_PER_STATEMENT) {
            let sql = counts_upsert(chunk.len());
            let mut query = sqlx::query(&sql);
            for ((granularity, bucket, tenant, key, code), (owner, count)) in chunk {
                query = query
                    .bind(*granularity)
                    .bind(*bucket)
                    .bind(*tenant)
                    .bind(*key)
                    .bind(*owner)
                    .bind(*code)
                    .bind(*count);
            }
            query.execute(&mut *tx).await.map_err(read_error)?;
        }
        for usage in batch.credits {
            spend_credits(usage)
                .execute(&mut *tx)
                .await
                .map_err(read_error)?;
        }
        tx.commit().await.map_err(read_error)
    }

    async fn verification_counts(&self, q: &CountsQuery) -> StoreResult<Vec<CountRow>> {
        let group = match q.group_by {
            GroupBy::Key => "key_id",
            GroupBy::Owner => "owner_id",
            GroupBy::Code => "NULL",
        };
        // Absent filters bind NULL and match everything, as in key listings.
        let sql = format!(
            "SELECT bucket, {group} AS grp, code, CAST(SUM(count) AS BIGINT) AS n FROM verification_counts \
             WHERE tenant_id = $1 AND granularity = $2 AND bucket >= $3 AND bucket < $4 \
             AND ($5 IS NULL OR key_id = $5) AND ($6 IS NULL OR owner_id = $6) \
             GROUP BY bucket, grp, code"
        );
        let rows = sqlx::query(&sql)
            .bind(q.tenant.0)
            .bind(q.range.granularity.seconds())
            .bind(q.range.since)
            .bind(q.range.until)
            .bind(q.key.map(|k| k.0))
            .bind(q.owner.map(|o| o.0))
            .fetch_all(&self.pool)
            .await
            .map_err(read_error)?;
        rows.iter()
            .map(|row| {
                Ok(CountRow {
                    bucket: row.try_get("bucket").map_err(read_error)?,
                    group: row.try_get::<Option<Uuid>, _>("grp").map_err(read_error)?,
                    code: code_from_text(&row.try_get::<String, _>("code").map_err(read_error)?)?,
                    count: count(row.try_get("n").map_err(read_error)?),
                })
            })
            .collect()
    }

    async fn recent_use(
        &self,
        tenant: TenantId,
        keys: &[KeyId],
        day_since: i64,
        month_since: i64,
    ) -> StoreResult<Vec<(KeyId, RecentUse)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let listed: Vec<String> = (0..keys.len()).map(|i| format!("${}", i + 4)).collect();
        let sql = format!(
            "SELECT key_id, granularity, code, CAST(SUM(count) AS BIGINT) AS n FROM verification_counts \
             WHERE tenant_id = $1 AND ((granularity = {hour} AND bucket >= $2) \
             OR (granularity = {day} AND bucket >= $3)) AND key_id IN ({listed}) \
             GROUP BY key_id, granularity, code",
            hour = Granularity::Hour.seconds(),
            day = Granularity::Day.seconds(),
            listed = listed.join(", "),
        );
        let mut query = sqlx::query(&sql)
            .bind(tenant.0)
            .bind(day_since)
            .bind(month_since);
        for key in keys {
            query = query.bind(key.0);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(read_error)?;
        let mut by_key: BTreeMap<KeyId, RecentUse> = BTreeMap::new();
        for row in &rows {
            let key = KeyId(row.try_get("key_id").map_err(read_error)?);
            let granularity: i64 = row.try_get("granularity").map_err(read_error)?;
            let code = code_from_text(&row.try_get::<String, _>("code").map_err(read_error)?)?;
            let n = count(row.try_get("n").map_err(read_error)?);
            let recent = by_key.entry(key).or_default();
            let window = if granularity == Granularity::Hour.seconds() {
                &mut recent.day
            } else {
                &mut recent.month
            };
            window.add(code, n);
        }
        Ok(by_key.into_iter().collect())
    }

    async fn prune_verifications(&self, granularity: Granularity, before: i64) -> StoreResult<u64> {
        let done =
            sqlx::query("DELETE FROM verification_counts WHERE granularity = $1 AND bucket < $2")
                .bind(granularity.seconds())
                .bind(before)
                .execute(&self.writer)
                .await
                .map_err(read_error)?;
        Ok(done.rows_affected())
    }
}

/// A spend of credits, as one `UPDATE` that reads nothing first. $3 is the interval a
/// refill is for, $4 its amount: due when the stored balance was last refilled for an
/// earlier one. Then what is left becomes the amount less what was spent since; else
/// the balance less what was spent.
fn spend_credits(usage: &CreditUse) -> Query<'static> {
    const SQL: &str = "UPDATE api_keys SET \
        credits_base = CASE \
          WHEN $3 IS NOT NULL AND (credits_refilled_at IS NULL OR credits_refilled_at < $3) \
            THEN credits_spent + CASE WHEN $4 > $2 THEN $4 ELSE $2 END \
          WHEN credits_base < credits_spent + $2 THEN credits_spent + $2 \
          ELSE credits_base END, \
        credits_refilled_at = CASE \
          WHEN $3 IS NOT NULL AND (credits_refilled_at IS NULL OR credits_refilled_at < $3) \
            THEN $3 ELSE credits_refilled_at END, \
        credits_spent = credits_spent + $2 \
        WHERE id = $1 AND credits_base IS NOT NULL";
    let (period, amount) = usage.refill.unzip();
    sqlx::query(SQL)
        .bind(usage.key_id.0)
        .bind(i64::try_from(usage.spent).unwrap_or(i64::MAX))
        .bind(opt_micros(period))
        .bind(amount.map(|a| i64::try_from(a).unwrap_or(i64::MAX)))
}

/// Rows per upsert statement: 7 parameters each, within SQLite's 32,766.
const COUNT_ROWS_PER_STATEMENT: usize = 512;

/// (granularity, bucket, tenant, key, code) → (owner, count).
type Bucketed = ((i64, i64, Uuid, Uuid, &'static str), (Uuid, i64));

/// Each count in its minute, hour and day bucket, merged so that no statement names a
/// row twice (PostgreSQL refuses an upsert that would update one row twice).
fn bucketed(counts: &[VerificationCount]) -> Vec<Bucketed> {
    let mut merged = BTreeMap::new();
    for c in counts {
        let key = c.key_id.map_or(Uuid::nil(), |k| k.0);
        let owner = c.owner_id.map_or(Uuid::nil(), |o| o.0);
        for granularity in Granularity::ALL {
            let slot = merged
                .entry((
                    granularity.seconds(),
                    granularity.bucket(c.minute),
                    c.tenant_id.0,
                    key,
                    c.code.as_str(),
                ))
                .or_insert((owner, 0i64));
            slot.1 = slot
                .1
                .saturating_add(i64::try_from(c.count).unwrap_or(i64::MAX));
        }
    }
    merged.into_iter().collect()
}

/// Adds `rows` counts to their buckets in one statement.
fn counts_upsert(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let p: Vec<String> = (1..=7).map(|i| format!("${}", 7 * row + i)).collect();
            format!("({})", p.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO verification_counts \
         (granularity, bucket, tenant_id, key_id, owner_id, code, count) VALUES {} \
         ON CONFLICT (tenant_id, granularity, key_id, bucket, code) \
         DO UPDATE SET count = verification_counts.count + excluded.count",
        values.join(", ")
    )
}

fn code_from_text(text: &str) -> StoreResult<VerifyCode> {
    VerifyCode::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("verification code '{text}'")))
}
