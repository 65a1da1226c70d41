//! Users: reads (writes are in `write.rs`).
use super::*;
use async_trait::async_trait;
use keyward_core::Paged;

#[async_trait]
impl crate::traits::UserStore for Backend {
    async fn user(&self, tenant: TenantId, id: UserId) -> StoreResult<Option<User>> {
        self.one_user("tenant_id = $1 AND id = $2", |q| {
            q.bind(tenant.0).bind(id.0)
        })
        .await
    }

    async fn users_by_email(&self, email: &str, limit: u32) -> StoreResult<Vec<User>> {
        let sql =
            format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1 ORDER BY seq LIMIT $2");
        let rows = sqlx::query(&sql)
            .bind(email)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(read_error)?;
        rows.iter().map(|r| user_from_row(r, "")).collect()
    }

    async fn user_by_email_in(&self, tenant: TenantId, email: &str) -> StoreResult<Option<User>> {
        self.one_user("tenant_id = $1 AND email = $2", |q| {
            q.bind(tenant.0).bind(email.to_string())
        })
        .await
    }

    async fn user_by_username(
        &self,
        tenant: TenantId,
        username: &str,
    ) -> StoreResult<Option<User>> {
        self.one_user("tenant_id = $1 AND username = $2", |q| {
            q.bind(tenant.0).bind(username.to_string())
        })
        .await
    }

    async fn user_by_seq(&self, tenant: TenantId, seq: i64) -> StoreResult<Option<User>> {
        self.one_user("tenant_id = $1 AND seq = $2", |q| {
            q.bind(tenant.0).bind(seq)
        })
        .await
    }

    async fn list_users(&self, tenant: TenantId, page: Page) -> StoreResult<Paged<User>> {
        let (limit, offset) = page_args(page);
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 \
             ORDER BY seq LIMIT $2 OFFSET $3"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant.0)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await
            .map_err(read_error)?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE tenant_id = $1")
            .bind(tenant.0)
            .fetch_one(&self.pool)
            .await
            .map_err(read_error)?;
        Ok(Paged {
            items: rows
                .iter()
                .map(|r| user_from_row(r, ""))
                .collect::<StoreResult<_>>()?,
            total: count(total),
        })
    }
}
