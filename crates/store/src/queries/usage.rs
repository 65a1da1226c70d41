//! Batched usage counters.
use super::*;
use crate::KeyUsage;
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
}
