//! Batched usage counters.
use super::*;
use crate::{CreditUse, KeyUsage};
use async_trait::async_trait;

#[async_trait]
impl crate::traits::UsageStore for Backend {
    async fn record_usage(&self, usage: &[KeyUsage]) -> StoreResult<()> {
        if usage.is_empty() {
            return Ok(());
        }
        let rows = merged_usage(usage);
        let mut tx = begin(&self.writer).await?;
        for chunk in rows.chunks(USAGE_ROWS_PER_STATEMENT) {
            let sql = usage_update(chunk.len());
            let mut query = sqlx::query(&sql);
            for (key, (uses, last_used)) in chunk {
                query = query.bind(key.0).bind(*uses).bind(*last_used);
            }
            query.execute(&mut *tx).await.map_err(read_error)?;
        }
        tx.commit().await.map_err(read_error)
    }

    async fn record_credits(&self, spent: &[CreditUse]) -> StoreResult<()> {
        if spent.is_empty() {
            return Ok(());
        }
        // $3 is the interval a refill is for, $4 its amount: due when the stored
        // balance was last refilled for an earlier one. Then what is left becomes the
        // amount less what was spent since; else the balance less what was spent.
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
        let mut tx = begin(&self.writer).await?;
        for usage in spent {
            let (period, amount) = usage.refill.unzip();
            sqlx::query(SQL)
                .bind(usage.key_id.0)
                .bind(i64::try_from(usage.spent).unwrap_or(i64::MAX))
                .bind(opt_micros(period))
                .bind(amount.map(|a| i64::try_from(a).unwrap_or(i64::MAX)))
                .execute(&mut *tx)
                .await
                .map_err(read_error)?;
        }
        tx.commit().await.map_err(read_error)
    }
}
