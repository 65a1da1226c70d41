//! Keys and their secrets: reads, the hot path's lookup among them (writes are in
//! `write.rs`).
use super::*;
use crate::{KeyFilter, SecretMatch};
use async_trait::async_trait;
use keyward_core::{Paged, SecretHash};
use uuid::Uuid;

#[async_trait]
impl crate::traits::KeyStore for Backend {
    async fn key(&self, tenant: TenantId, id: KeyId) -> StoreResult<Option<ApiKey>> {
        self.one_key("tenant_id = $1 AND id = $2", |q| {
            q.bind(tenant.0).bind(id.0)
        })
        .await
    }

    async fn key_by_name(
        &self,
        tenant: TenantId,
        owner: Option<UserId>,
        name: &str,
    ) -> StoreResult<Option<ApiKey>> {
        let name = name.to_string();
        match owner {
            Some(owner) => {
                self.one_key(
                    "tenant_id = $1 AND owner_id = $2 AND name = $3 \
                     AND revoked_at IS NULL",
                    |q| q.bind(tenant.0).bind(owner.0).bind(name),
                )
                .await
            }
            None => {
                self.one_key("tenant_id = $1 AND name = $2 AND revoked_at IS NULL", |q| {
                    q.bind(tenant.0).bind(name)
                })
                .await
            }
        }
    }

    async fn key_by_seq(&self, tenant: TenantId, seq: i64) -> StoreResult<Option<ApiKey>> {
        self.one_key("tenant_id = $1 AND seq = $2", |q| {
            q.bind(tenant.0).bind(seq)
        })
        .await
    }

    async fn key_by_door_name(
        &self,
        tenant: TenantId,
        door: Door,
        name: &str,
    ) -> StoreResult<Option<ApiKey>> {
        let name = name.to_string();
        self.one_key(
            "tenant_id = $1 AND door = $2 AND name = $3 AND revoked_at IS NULL",
            |q| q.bind(tenant.0).bind(door.as_str()).bind(name),
        )
        .await
    }

    async fn key_by_public_id(&self, public_id: &str) -> StoreResult<Option<ApiKey>> {
        let public_id = public_id.to_string();
        self.one_key("public_id = $1", |q| q.bind(public_id)).await
    }

    async fn list_keys(
        &self,
        tenant: TenantId,
        filter: KeyFilter,
        page: Page,
    ) -> StoreResult<Paged<ApiKey>> {
        let (limit, offset) = page_args(page);
        // Absent filters bind NULL and match everything, so one statement
        // (and one query plan) serves every combination.
        let condition = "tenant_id = $1 AND ($2 IS NULL OR owner_id = $2) \
             AND ($3 IS NULL OR door = $3) AND ($4 OR revoked_at IS NULL) \
             AND ($5 IS NULL \
               OR ($5 = 'revoked' AND revoked_at IS NOT NULL) \
               OR ($5 = 'expired' AND revoked_at IS NULL AND expires_at <= $6) \
               OR ($5 = 'disabled' AND revoked_at IS NULL \
                   AND (expires_at IS NULL OR expires_at > $6) AND NOT enabled) \
               OR ($5 = 'active' AND revoked_at IS NULL \
                   AND (expires_at IS NULL OR expires_at > $6) AND enabled)) \
             AND ($7 IS NULL OR lower(name) LIKE $7 ESCAPE '\\' \
               OR lower(start) LIKE $7 ESCAPE '\\')";
        let owner: Option<Uuid> = filter.owner.map(|o| o.0);
        let door: Option<&str> = filter.door.map(Door::as_str);
        let state: Option<&str> = filter.state.map(|state| state.as_str());
        let as_of: i64 = filter.as_of.map_or(0, micros);
        let search: Option<String> = filter.search.as_deref().map(contains_pattern);
        let include_revoked = filter.include_revoked || state == Some("revoked");
        let select = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE {condition} \
             ORDER BY seq DESC LIMIT $8 OFFSET $9"
        );
        let counting = format!("SELECT COUNT(*) FROM api_keys WHERE {condition}");
        // Not annotated: one lifetime for both statements, which live side by side.
        let bind_filter = |sql| {
            sqlx::query(sql)
                .bind(tenant.0)
                .bind(owner)
                .bind(door)
                .bind(include_revoked)
                .bind(state)
                .bind(as_of)
                .bind(search.clone())
        };
        let rows = bind_filter(select.as_str())
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await
            .map_err(read_error)?;
        let total: i64 = bind_filter(counting.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(read_error)?
            .try_get(0)
            .map_err(read_error)?;
        Ok(Paged {
            items: rows.iter().map(key_from_row).collect::<StoreResult<_>>()?,
            total: count(total),
        })
    }

    async fn lookup_secret(&self, hash: &SecretHash) -> StoreResult<Option<SecretMatch>> {
        let row = sqlx::query(&format!(
            "SELECT s.hash AS secret_hash, s.expires_at AS secret_expires_at, k.*, \
             u.seq AS u_seq, u.id AS u_id, u.tenant_id AS u_tenant_id, \
             u.email AS u_email, u.username AS u_username, \
             u.display_name AS u_display_name, u.password_hash AS u_password_hash, \
             u.role AS u_role, u.active AS u_active, u.grants AS u_grants, \
             u.created_at AS u_created_at, u.updated_at AS u_updated_at, \
             u.session_epoch AS u_session_epoch, u.ratelimits AS u_ratelimits \
             FROM key_secrets s \
             JOIN (SELECT {KEY_COLUMNS} FROM api_keys) k ON k.id = s.key_id \
             JOIN users u ON u.id = k.owner_id \
             WHERE s.hash = $1"
        ))
        .bind(hash.0.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(read_error)?;
        let Some(row) = row else { return Ok(None) };
        let stored: Option<i64> = row.try_get("secret_expires_at").map_err(read_error)?;
        let stored_hash: Vec<u8> = row.try_get("secret_hash").map_err(read_error)?;
        Ok(Some(SecretMatch {
            secret_hash: SecretHash::from_slice(&stored_hash)
                .ok_or_else(|| StoreError::Corrupt("secret hash length".into()))?,
            key: key_from_row(&row)?,
            secret_expires_at: from_opt_micros(stored)?,
            owner: user_from_row(&row, "u_")?,
        }))
    }
}

/// A LIKE pattern matching `text` anywhere, lowercased, with `%`, `_` and the escape
/// character itself taken literally.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}
