//! Tenants, spaces and resource names: reads (writes are in `write.rs`).
use super::*;
use async_trait::async_trait;
use keyward_core::{Paged, ResourceKind};

#[async_trait]
impl crate::traits::TenantStore for Backend {
    async fn tenant_count(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenants")
            .fetch_one(&self.pool)
            .await
            .map_err(read_error)?;
        Ok(count(n))
    }

    async fn tenant(&self, id: TenantId) -> StoreResult<Option<Tenant>> {
        sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(read_error)?
            .as_ref()
            .map(tenant_from_row)
            .transpose()
    }

    async fn tenant_by_name(&self, name: &str) -> StoreResult<Option<Tenant>> {
        sqlx::query("SELECT id, name, created_at FROM tenants WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(read_error)?
            .as_ref()
            .map(tenant_from_row)
            .transpose()
    }

    async fn list_spaces(&self, tenant: TenantId, page: Page) -> StoreResult<Paged<Space>> {
        let (limit, offset) = page_args(page);
        let rows = sqlx::query(
            "SELECT seq, id, tenant_id, name, created_at FROM spaces \
             WHERE tenant_id = $1 ORDER BY seq LIMIT $2 OFFSET $3",
        )
        .bind(tenant.0)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await
        .map_err(read_error)?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM spaces WHERE tenant_id = $1")
            .bind(tenant.0)
            .fetch_one(&self.pool)
            .await
            .map_err(read_error)?;
        Ok(Paged {
            items: rows
                .iter()
                .map(space_from_row)
                .collect::<StoreResult<_>>()?,
            total: count(total),
        })
    }

    async fn space_by_seq(&self, tenant: TenantId, seq: i64) -> StoreResult<Option<Space>> {
        sqlx::query(
            "SELECT seq, id, tenant_id, name, created_at FROM spaces \
             WHERE tenant_id = $1 AND seq = $2",
        )
        .bind(tenant.0)
        .bind(seq)
        .fetch_optional(&self.pool)
        .await
        .map_err(read_error)?
        .as_ref()
        .map(space_from_row)
        .transpose()
    }

    async fn space_by_name(&self, tenant: TenantId, name: &str) -> StoreResult<Option<Space>> {
        sqlx::query(
            "SELECT seq, id, tenant_id, name, created_at FROM spaces \
             WHERE tenant_id = $1 AND name = $2",
        )
        .bind(tenant.0)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(read_error)?
        .as_ref()
        .map(space_from_row)
        .transpose()
    }

    async fn list_resources(&self, space: SpaceId, kind: ResourceKind) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT name FROM space_resources WHERE space_id = $1 AND kind = $2 \
             ORDER BY name",
        )
        .bind(space.0)
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(read_error)
    }
}
