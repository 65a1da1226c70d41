//! PostgreSQL, for several stateless nodes sharing one database.

use crate::{StoreError, StoreResult};
use sqlx::postgres::PgPoolOptions;
use std::time::Duration;

pub struct PostgresStore {
    pool: sqlx::PgPool,
}

impl PostgresStore {
    /// Connects and applies pending migrations. sqlx takes an advisory lock while it
    /// migrates, so several nodes starting at once apply each migration once.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        Ok(PostgresStore { pool })
    }
}

crate::sql::impl_store!(PostgresStore, sqlx::Postgres);
