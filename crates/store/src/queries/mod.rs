//! The SQL both stores run, written once: `sqlite.rs` and `postgres.rs` each compile
//! this folder as a module of their own, with `Db` and `Backend` naming their database
//! and their store. Placeholders are `$1, $2, ...` in order of first use, which both
//! databases read the same way, and the schemas are kept column for column alike.
//! Writes go through each store's `writer` pool and reads through its `pool`; they are
//! one pool on PostgreSQL, and a single connection beside the readers on SQLite.
//!
//! One file per capability, each implementing its trait of `crate::traits`.

mod audit;
mod keys;
mod tenants;
mod usage;
mod users;
mod write;

use super::{Backend, Db};
use crate::sql::*;
use crate::{StoreError, StoreResult};
use keyward_core::{
    ApiKey, Door, KeyId, KeySecret, KeyShape, Page, Role, Space, SpaceId, Tenant, TenantId, User,
    UserId,
};
use sqlx::Row;

type DbRow = <Db as sqlx::Database>::Row;

#[async_trait::async_trait]
impl crate::Store for Backend {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(read_error)
    }

    async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }

    async fn subscribe_changes(&self) -> StoreResult<crate::ChangeFeed> {
        self.follow_changes().await
    }
}
type Query<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>;

pub(super) fn user_from_row(row: &DbRow, p: &str) -> StoreResult<User> {
    let col = |name: &str| format!("{p}{name}");
    let role: String = row.try_get(col("role").as_str()).map_err(read_error)?;
    let grants: String = row.try_get(col("grants").as_str()).map_err(read_error)?;
    Ok(User {
        seq: row.try_get(col("seq").as_str()).map_err(read_error)?,
        id: UserId(row.try_get(col("id").as_str()).map_err(read_error)?),
        tenant_id: TenantId(row.try_get(col("tenant_id").as_str()).map_err(read_error)?),
        email: row.try_get(col("email").as_str()).map_err(read_error)?,
        username: row.try_get(col("username").as_str()).map_err(read_error)?,
        display_name: row
            .try_get(col("display_name").as_str())
            .map_err(read_error)?,
        password_hash: row
            .try_get(col("password_hash").as_str())
            .map_err(read_error)?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role '{role}'")))?,
        active: row.try_get(col("active").as_str()).map_err(read_error)?,
        grants: grants_from_text(&grants)?,
        created_at: from_micros(
            row.try_get(col("created_at").as_str())
                .map_err(read_error)?,
        )?,
        updated_at: from_micros(
            row.try_get(col("updated_at").as_str())
                .map_err(read_error)?,
        )?,
        session_epoch: row
            .try_get(col("session_epoch").as_str())
            .map_err(read_error)?,
        ratelimits: ratelimits_from_text(
            &row.try_get::<String, _>(col("ratelimits").as_str())
                .map_err(read_error)?,
        )?,
    })
}

pub(super) fn key_from_row(row: &DbRow) -> StoreResult<ApiKey> {
    let door: String = row.try_get("door").map_err(read_error)?;
    let shape: String = row.try_get("shape").map_err(read_error)?;
    let grants: String = row.try_get("grants").map_err(read_error)?;
    let metadata: String = row.try_get("metadata").map_err(read_error)?;
    Ok(ApiKey {
        seq: row.try_get("seq").map_err(read_error)?,
        id: KeyId(row.try_get("id").map_err(read_error)?),
        tenant_id: TenantId(row.try_get("tenant_id").map_err(read_error)?),
        owner_id: UserId(row.try_get("owner_id").map_err(read_error)?),
        name: row.try_get("name").map_err(read_error)?,
        door: Door::parse(&door).ok_or_else(|| StoreError::Corrupt(format!("door '{door}'")))?,
        shape: KeyShape::parse_name(&shape)
            .ok_or_else(|| StoreError::Corrupt(format!("shape '{shape}'")))?,
        start: row.try_get("start").map_err(read_error)?,
        public_id: row.try_get("public_id").map_err(read_error)?,
        grants: grants_from_text(&grants)?,
        metadata: metadata_from_text(&metadata)?,
        enabled: row.try_get("enabled").map_err(read_error)?,
        created_at: from_micros(row.try_get("created_at").map_err(read_error)?)?,
        updated_at: from_micros(row.try_get("updated_at").map_err(read_error)?)?,
        expires_at: from_opt_micros(row.try_get("expires_at").map_err(read_error)?)?,
        revoked_at: from_opt_micros(row.try_get("revoked_at").map_err(read_error)?)?,
        last_used_at: from_opt_micros(row.try_get("last_used_at").map_err(read_error)?)?,
        use_count: row.try_get("use_count").map_err(read_error)?,
        disabled_by: row
            .try_get::<Option<uuid::Uuid>, _>("disabled_by")
            .map_err(read_error)?
            .map(UserId),
        disabled_by_admin: row.try_get("disabled_by_admin").map_err(read_error)?,
        limits: limits_from_text(&row.try_get::<String, _>("limits").map_err(read_error)?)?,
        credits: credits_from_columns(
            row.try_get("credits_base").map_err(read_error)?,
            row.try_get("credits_spent").map_err(read_error)?,
            row.try_get("credits_refill").map_err(read_error)?,
            row.try_get("credits_refilled_at").map_err(read_error)?,
        )?,
    })
}

pub(super) fn tenant_from_row(row: &DbRow) -> StoreResult<Tenant> {
    Ok(Tenant {
        id: TenantId(row.try_get("id").map_err(read_error)?),
        name: row.try_get("name").map_err(read_error)?,
        created_at: from_micros(row.try_get("created_at").map_err(read_error)?)?,
    })
}

pub(super) fn space_from_row(row: &DbRow) -> StoreResult<Space> {
    Ok(Space {
        seq: row.try_get("seq").map_err(read_error)?,
        id: SpaceId(row.try_get("id").map_err(read_error)?),
        tenant_id: TenantId(row.try_get("tenant_id").map_err(read_error)?),
        name: row.try_get("name").map_err(read_error)?,
        created_at: from_micros(row.try_get("created_at").map_err(read_error)?)?,
    })
}

pub(super) fn page_args(page: Page) -> (i64, i64) {
    (
        i64::try_from(page.limit).unwrap_or(i64::MAX),
        i64::try_from(page.offset).unwrap_or(i64::MAX),
    )
}

pub(super) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(super) const INSERT_USER: &str = "INSERT INTO users (id, tenant_id, email, username, \
     display_name, password_hash, role, active, grants, created_at, updated_at, \
     session_epoch, ratelimits) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
     $13) RETURNING seq";

pub(super) fn bind_user<'q>(q: Query<'q>, u: &'q User) -> Query<'q> {
    q.bind(u.id.0)
        .bind(u.tenant_id.0)
        .bind(u.email.as_str())
        .bind(u.username.as_str())
        .bind(u.display_name.as_str())
        .bind(u.password_hash.as_str())
        .bind(u.role.as_str())
        .bind(u.active)
        .bind(grants_to_text(&u.grants))
        .bind(micros(u.created_at))
        .bind(micros(u.updated_at))
        .bind(u.session_epoch)
        .bind(json_to_text(&u.ratelimits))
}

/// Inserts a key with its columns in the order [`bind_key`] binds them. Bulk
/// inserts ignore the returned `seq`.
pub(super) const INSERT_KEY: &str = "INSERT INTO api_keys (id, tenant_id, owner_id, name, door, \
    shape, start, public_id, grants, metadata, enabled, created_at, updated_at, \
    expires_at, revoked_at, last_used_at, use_count, disabled_by, disabled_by_admin, limits, \
    credits_base, credits_refill, credits_refilled_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
    $18, $19, $20, $21, $22, $23) RETURNING seq";

pub(super) fn bind_key<'q>(q: Query<'q>, key: &'q ApiKey) -> Query<'q> {
    let credits = credits_to_columns(key.credits.as_ref());
    q.bind(key.id.0)
        .bind(key.tenant_id.0)
        .bind(key.owner_id.0)
        .bind(key.name.as_str())
        .bind(key.door.as_str())
        .bind(key.shape.as_str())
        .bind(key.start.as_str())
        .bind(key.public_id.as_deref())
        .bind(grants_to_text(&key.grants))
        .bind(metadata_to_text(&key.metadata))
        .bind(key.enabled)
        .bind(micros(key.created_at))
        .bind(micros(key.updated_at))
        .bind(opt_micros(key.expires_at))
        .bind(opt_micros(key.revoked_at))
        .bind(opt_micros(key.last_used_at))
        .bind(key.use_count)
        .bind(key.disabled_by.map(|u| u.0))
        .bind(key.disabled_by_admin)
        .bind(json_to_text(&key.limits))
        .bind(credits.0)
        .bind(credits.1)
        .bind(credits.2)
}

impl Backend {
    pub(super) async fn one_user(
        &self,
        condition: &str,
        bind: impl for<'q> FnOnce(Query<'q>) -> Query<'q>,
    ) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE {condition}");
        bind(sqlx::query(&sql))
            .fetch_optional(&self.pool)
            .await
            .map_err(read_error)?
            .as_ref()
            .map(|r| user_from_row(r, ""))
            .transpose()
    }

    pub(super) async fn one_key(
        &self,
        condition: &str,
        bind: impl for<'q> FnOnce(Query<'q>) -> Query<'q>,
    ) -> StoreResult<Option<ApiKey>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE {condition}");
        bind(sqlx::query(&sql))
            .fetch_optional(&self.pool)
            .await
            .map_err(read_error)?
            .as_ref()
            .map(key_from_row)
            .transpose()
    }
}

pub(super) async fn insert_secret(
    tx: &mut sqlx::Transaction<'_, Db>,
    secret: &KeySecret,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO key_secrets (hash, key_id, expires_at) VALUES ($1, $2, $3)")
        .bind(secret.hash.0.to_vec())
        .bind(secret.key_id.0)
        .bind(opt_micros(secret.expires_at))
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}
