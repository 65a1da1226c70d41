//! The SQL both stores run. `impl_store!` expands the same statements for SQLite and
//! for PostgreSQL: placeholders are `$1, $2, ...` in order of first use, which both
//! databases read the same way, and the schemas are kept column for column alike.
//! Writes go through each store's `writer` pool and reads through its `pool`; they are
//! one pool on PostgreSQL, and a single connection beside the readers on SQLite.

use crate::{StoreError, StoreResult};
use keyward_core::{Grants, Metadata};
use time::OffsetDateTime;

pub(crate) fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

pub(crate) fn opt_micros(t: Option<OffsetDateTime>) -> Option<i64> {
    t.map(micros)
}

pub(crate) fn from_micros(us: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .map_err(|e| StoreError::Corrupt(format!("timestamp {us}: {e}")))
}

pub(crate) fn from_opt_micros(us: Option<i64>) -> StoreResult<Option<OffsetDateTime>> {
    us.map(from_micros).transpose()
}

pub(crate) fn grants_to_text(grants: &Grants) -> String {
    serde_json::to_string(grants).expect("grants serialize")
}

pub(crate) fn grants_from_text(text: &str) -> StoreResult<Grants> {
    let entries: Vec<String> =
        serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("grants: {e}")))?;
    Grants::parse(&entries).map_err(|e| StoreError::Corrupt(format!("grants: {e}")))
}

pub(crate) fn metadata_to_text(metadata: &Metadata) -> String {
    serde_json::to_string(metadata).expect("a JSON map serializes")
}

pub(crate) fn metadata_from_text(text: &str) -> StoreResult<Metadata> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("metadata: {e}")))
}

/// Maps a driver error, naming the uniqueness rule it broke if it broke one.
pub(crate) fn db_error(err: sqlx::Error, conflict: &'static str) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(conflict),
        _ => StoreError::Unavailable(err.to_string()),
    }
}

/// Starts a transaction that a cancelled caller cannot leak. sqlx (0.8.6, and 0.9.0)
/// counts a PostgreSQL transaction as open only once `BEGIN` has been answered, so a
/// future dropped while waiting for that answer (a client hanging up mid-request) hands
/// the connection back to the pool inside a transaction that nothing will end, and the
/// next borrower's statements run in it (transact-rs/sqlx#4393). On a task of its own
/// the wait always completes; a transaction nobody takes is dropped, and so rolled back.
pub(crate) async fn begin<DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
) -> StoreResult<sqlx::Transaction<'static, DB>> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.begin().await })
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot start a transaction: {e}")))?
        .map_err(read_error)
}

pub(crate) fn read_error(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Corrupt(err.to_string())
        }
        other => StoreError::Unavailable(other.to_string()),
    }
}

pub(crate) const USER_COLUMNS: &str = "seq, id, tenant_id, email, username, display_name, \
     password_hash, role, active, grants, created_at, updated_at";

pub(crate) const KEY_COLUMNS: &str = "seq, id, tenant_id, owner_id, name, door, shape, start, \
     public_id, grants, metadata, enabled, created_at, updated_at, expires_at, revoked_at, \
     last_used_at, use_count";

/// Keys updated by one statement when usage is flushed: 3 parameters each, well under
/// both databases' limits on parameters.
pub(crate) const USAGE_ROWS_PER_STATEMENT: usize = 500;

/// One row per key, as the update needs them (its `FROM` may match each key once): the
/// uses summed, the latest use kept, in Unix microseconds.
pub(crate) fn merged_usage(usage: &[crate::KeyUsage]) -> Vec<(keyward_core::KeyId, (i64, i64))> {
    let mut merged = std::collections::BTreeMap::new();
    for u in usage {
        let (uses, last) = merged.entry(u.key_id).or_insert((0i64, i64::MIN));
        *uses = uses.saturating_add(u.uses);
        *last = (*last).max(micros(u.last_used_at));
    }
    merged.into_iter().collect()
}

/// Adds the uses of `rows` keys in one statement, moving each key's last use forward
/// only. One statement per batch, not one per key: a flush of 1,000 keys was 1,000
/// round trips, enough to cost PostgreSQL nodes 3% of their verification throughput.
/// `VALUES` columns are `column1..3` in both databases.
pub(crate) fn usage_update(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|row| format!("(${}, ${}, ${})", 3 * row + 1, 3 * row + 2, 3 * row + 3))
        .collect();
    format!(
        "UPDATE api_keys SET use_count = use_count + u.column2, \
         last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < u.column3 \
         THEN u.column3 ELSE last_used_at END \
         FROM (VALUES {}) AS u WHERE api_keys.id = u.column1",
        values.join(", ")
    )
}

macro_rules! impl_store {
    ($store:ident, $db:ty) => {
        mod generated {
            use super::$store;
            use crate::sql::*;
            use crate::{
                Change, ChangeFeed, KeyFilter, KeyUsage, SecretMatch, Store, StoreError,
                StoreResult,
            };
            use async_trait::async_trait;
            use keyward_core::{
                ApiKey, Door, KeyId, KeySecret, KeyShape, Page, Paged, ResourceKind, Role,
                SecretHash, Space, SpaceId, Tenant, TenantId, User, UserId,
            };
            use sqlx::Row;
            use time::OffsetDateTime;
            use uuid::Uuid;

            type DbRow = <$db as sqlx::Database>::Row;

            fn user_from_row(row: &DbRow, p: &str) -> StoreResult<User> {
                let col = |name: &str| format!("{p}{name}");
                let role: String = row.try_get(col("role").as_str()).map_err(read_error)?;
                let grants: String = row.try_get(col("grants").as_str()).map_err(read_error)?;
                Ok(User {
                    seq: row.try_get(col("seq").as_str()).map_err(read_error)?,
                    id: UserId(row.try_get(col("id").as_str()).map_err(read_error)?),
                    tenant_id: TenantId(
                        row.try_get(col("tenant_id").as_str()).map_err(read_error)?,
                    ),
                    email: row.try_get(col("email").as_str()).map_err(read_error)?,
                    username: row.try_get(col("username").as_str()).map_err(read_error)?,
                    display_name: row
                        .try_get(col("display_name").as_str())
                        .map_err(read_error)?,
                    password_hash: row
                        .try_get(col("password_hash").as_str())
                        .map_err(read_error)?,
                    role: Role::parse(&role)
                        .ok_or_else(|| StoreError::Corrupt(format!("role '{role}'")))?,
                    active: row.try_get(col("active").as_str()).map_err(read_error)?,
                    grants: grants_from_text(&grants)?,
                    created_at: from_micros(
                        row.try_get(col("created_at").as_str()).map_err(read_error)?,
                    )?,
                    updated_at: from_micros(
                        row.try_get(col("updated_at").as_str()).map_err(read_error)?,
                    )?,
                })
            }

            fn key_from_row(row: &DbRow) -> StoreResult<ApiKey> {
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
                    door: Door::parse(&door)
                        .ok_or_else(|| StoreError::Corrupt(format!("door '{door}'")))?,
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
                    last_used_at: from_opt_micros(
                        row.try_get("last_used_at").map_err(read_error)?,
                    )?,
                    use_count: row.try_get("use_count").map_err(read_error)?,
                })
            }

            fn tenant_from_row(row: &DbRow) -> StoreResult<Tenant> {
                Ok(Tenant {
                    id: TenantId(row.try_get("id").map_err(read_error)?),
                    name: row.try_get("name").map_err(read_error)?,
                    created_at: from_micros(row.try_get("created_at").map_err(read_error)?)?,
                })
            }

            fn space_from_row(row: &DbRow) -> StoreResult<Space> {
                Ok(Space {
                    seq: row.try_get("seq").map_err(read_error)?,
                    id: SpaceId(row.try_get("id").map_err(read_error)?),
                    tenant_id: TenantId(row.try_get("tenant_id").map_err(read_error)?),
                    name: row.try_get("name").map_err(read_error)?,
                    created_at: from_micros(row.try_get("created_at").map_err(read_error)?)?,
                })
            }

            fn page_args(page: Page) -> (i64, i64) {
                (
                    i64::try_from(page.limit).unwrap_or(i64::MAX),
                    i64::try_from(page.offset).unwrap_or(i64::MAX),
                )
            }

            fn count(n: i64) -> u64 {
                u64::try_from(n).unwrap_or(0)
            }

            const INSERT_USER: &str = "INSERT INTO users (id, tenant_id, email, username, \
                 display_name, password_hash, role, active, grants, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING seq";

            fn bind_user<'q>(
                q: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>,
                u: &'q User,
            ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
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
            }

            /// Inserts a key with its columns in the order [`bind_key`] binds them. Bulk
            /// inserts ignore the returned `seq`.
            const INSERT_KEY: &str = "INSERT INTO api_keys (id, tenant_id, owner_id, name, door, \
                shape, start, public_id, grants, metadata, enabled, created_at, updated_at, \
                expires_at, revoked_at, last_used_at, use_count) VALUES ($1, $2, $3, $4, $5, $6, \
                $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING seq";

            fn bind_key<'q>(
                q: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>,
                key: &'q ApiKey,
            ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
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
            }

            fn user_conflict(err: sqlx::Error) -> StoreError {
                let text = err.to_string();
                if text.contains("username") {
                    db_error(err, "username")
                } else {
                    db_error(err, "email")
                }
            }

            #[async_trait]
            impl Store for $store {
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

                async fn create_tenant(
                    &self,
                    tenant: &Tenant,
                    space: &Space,
                    admin: &User,
                ) -> StoreResult<()> {
                    let mut tx = begin(&self.writer).await?;
                    sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
                        .bind(tenant.id.0)
                        .bind(tenant.name.as_str())
                        .bind(micros(tenant.created_at))
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| db_error(e, "tenant name"))?;
                    sqlx::query(
                        "INSERT INTO spaces (id, tenant_id, name, created_at) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(space.id.0)
                    .bind(space.tenant_id.0)
                    .bind(space.name.as_str())
                    .bind(micros(space.created_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_error(e, "space name"))?;
                    bind_user(sqlx::query(INSERT_USER), admin)
                        .execute(&mut *tx)
                        .await
                        .map_err(user_conflict)?;
                    tx.commit().await.map_err(read_error)
                }

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

                async fn list_spaces(
                    &self,
                    tenant: TenantId,
                    page: Page,
                ) -> StoreResult<Paged<Space>> {
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
                    let total: i64 =
                        sqlx::query_scalar("SELECT COUNT(*) FROM spaces WHERE tenant_id = $1")
                            .bind(tenant.0)
                            .fetch_one(&self.pool)
                            .await
                            .map_err(read_error)?;
                    Ok(Paged {
                        items: rows.iter().map(space_from_row).collect::<StoreResult<_>>()?,
                        total: count(total),
                    })
                }

                async fn space_by_seq(
                    &self,
                    tenant: TenantId,
                    seq: i64,
                ) -> StoreResult<Option<Space>> {
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

                async fn space_by_name(
                    &self,
                    tenant: TenantId,
                    name: &str,
                ) -> StoreResult<Option<Space>> {
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

                async fn create_space(&self, space: &Space) -> StoreResult<Space> {
                    let seq: i64 = sqlx::query(
                        "INSERT INTO spaces (id, tenant_id, name, created_at) \
                         VALUES ($1, $2, $3, $4) RETURNING seq",
                    )
                    .bind(space.id.0)
                    .bind(space.tenant_id.0)
                    .bind(space.name.as_str())
                    .bind(micros(space.created_at))
                    .fetch_one(&self.writer)
                    .await
                    .map_err(|e| db_error(e, "space name"))?
                    .try_get("seq")
                    .map_err(read_error)?;
                    Ok(Space { seq, ..space.clone() })
                }

                async fn register_resource(
                    &self,
                    space: SpaceId,
                    kind: ResourceKind,
                    name: &str,
                ) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO space_resources (space_id, kind, name, created_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    )
                    .bind(space.0)
                    .bind(kind.as_str())
                    .bind(name)
                    .bind(micros(OffsetDateTime::now_utc()))
                    .execute(&self.writer)
                    .await
                    .map_err(read_error)?;
                    Ok(())
                }

                async fn list_resources(
                    &self,
                    space: SpaceId,
                    kind: ResourceKind,
                ) -> StoreResult<Vec<String>> {
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

                async fn create_user(&self, user: &User) -> StoreResult<User> {
                    let seq: i64 = bind_user(sqlx::query(INSERT_USER), user)
                        .fetch_one(&self.writer)
                        .await
                        .map_err(user_conflict)?
                        .try_get("seq")
                        .map_err(read_error)?;
                    Ok(User { seq, ..user.clone() })
                }

                async fn user(&self, tenant: TenantId, id: UserId) -> StoreResult<Option<User>> {
                    self.one_user("tenant_id = $1 AND id = $2", |q| q.bind(tenant.0).bind(id.0))
                        .await
                }

                async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
                    self.one_user("email = $1", |q| q.bind(email.to_string())).await
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

                async fn user_by_seq(
                    &self,
                    tenant: TenantId,
                    seq: i64,
                ) -> StoreResult<Option<User>> {
                    self.one_user("tenant_id = $1 AND seq = $2", |q| q.bind(tenant.0).bind(seq))
                        .await
                }

                async fn list_users(
                    &self,
                    tenant: TenantId,
                    page: Page,
                ) -> StoreResult<Paged<User>> {
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
                    let total: i64 =
                        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE tenant_id = $1")
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

                async fn update_user(&self, user: &User) -> StoreResult<()> {
                    let mut tx = begin(&self.writer).await?;
                    let done = sqlx::query(
                        "UPDATE users SET email = $1, username = $2, display_name = $3, \
                         password_hash = $4, role = $5, active = $6, grants = $7, \
                         updated_at = $8 WHERE id = $9 AND tenant_id = $10",
                    )
                    .bind(user.email.as_str())
                    .bind(user.username.as_str())
                    .bind(user.display_name.as_str())
                    .bind(user.password_hash.as_str())
                    .bind(user.role.as_str())
                    .bind(user.active)
                    .bind(grants_to_text(&user.grants))
                    .bind(micros(user.updated_at))
                    .bind(user.id.0)
                    .bind(user.tenant_id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(user_conflict)?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    self.commit_announcing(tx, Change::Owner(user.id)).await
                }

                async fn create_key(&self, key: &ApiKey, secret: &KeySecret) -> StoreResult<ApiKey> {
                    let mut tx = begin(&self.writer).await?;
                    let seq: i64 = bind_key(sqlx::query(INSERT_KEY), key)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| db_error(e, "key name"))?
                        .try_get("seq")
                        .map_err(read_error)?;
                    insert_secret(&mut tx, secret).await?;
                    tx.commit().await.map_err(read_error)?;
                    Ok(ApiKey { seq, ..key.clone() })
                }

                async fn create_keys(&self, keys: &[(ApiKey, KeySecret)]) -> StoreResult<()> {
                    let mut tx = begin(&self.writer).await?;
                    for (key, secret) in keys {
                        bind_key(sqlx::query(INSERT_KEY), key)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| db_error(e, "key name"))?;
                        insert_secret(&mut tx, secret).await?;
                    }
                    tx.commit().await.map_err(read_error)?;
                    Ok(())
                }

                async fn key(&self, tenant: TenantId, id: KeyId) -> StoreResult<Option<ApiKey>> {
                    self.one_key("tenant_id = $1 AND id = $2", |q| q.bind(tenant.0).bind(id.0))
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
                            self.one_key(
                                "tenant_id = $1 AND name = $2 AND revoked_at IS NULL",
                                |q| q.bind(tenant.0).bind(name),
                            )
                            .await
                        }
                    }
                }

                async fn key_by_seq(
                    &self,
                    tenant: TenantId,
                    seq: i64,
                ) -> StoreResult<Option<ApiKey>> {
                    self.one_key("tenant_id = $1 AND seq = $2", |q| q.bind(tenant.0).bind(seq))
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
                         AND ($3 IS NULL OR door = $3) AND ($4 OR revoked_at IS NULL)";
                    let owner: Option<Uuid> = filter.owner.map(|o| o.0);
                    let door: Option<&str> = filter.door.map(Door::as_str);
                    let sql = format!(
                        "SELECT {KEY_COLUMNS} FROM api_keys WHERE {condition} \
                         ORDER BY seq DESC LIMIT $5 OFFSET $6"
                    );
                    let rows = sqlx::query(&sql)
                        .bind(tenant.0)
                        .bind(owner)
                        .bind(door)
                        .bind(filter.include_revoked)
                        .bind(limit)
                        .bind(offset)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_error)?;
                    let total: i64 = sqlx::query_scalar(&format!(
                        "SELECT COUNT(*) FROM api_keys WHERE {condition}"
                    ))
                    .bind(tenant.0)
                    .bind(owner)
                    .bind(door)
                    .bind(filter.include_revoked)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(read_error)?;
                    Ok(Paged {
                        items: rows.iter().map(key_from_row).collect::<StoreResult<_>>()?,
                        total: count(total),
                    })
                }

                async fn update_key(&self, key: &ApiKey) -> StoreResult<()> {
                    let mut tx = begin(&self.writer).await?;
                    let done = sqlx::query(
                        "UPDATE api_keys SET name = $1, grants = $2, metadata = $3, \
                         enabled = $4, updated_at = $5, expires_at = $6, revoked_at = $7, \
                         start = $8 WHERE id = $9 AND tenant_id = $10",
                    )
                    .bind(key.name.as_str())
                    .bind(grants_to_text(&key.grants))
                    .bind(metadata_to_text(&key.metadata))
                    .bind(key.enabled)
                    .bind(micros(key.updated_at))
                    .bind(opt_micros(key.expires_at))
                    .bind(opt_micros(key.revoked_at))
                    .bind(key.start.as_str())
                    .bind(key.id.0)
                    .bind(key.tenant_id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_error(e, "key name"))?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    self.commit_announcing(tx, Change::Key(key.id)).await
                }

                async fn rotate_key(
                    &self,
                    key: &ApiKey,
                    secret: &KeySecret,
                    old_until: OffsetDateTime,
                ) -> StoreResult<()> {
                    let until = micros(old_until);
                    let mut tx = begin(&self.writer).await?;
                    // The key first: an unknown key (or one of another tenant) is NotFound
                    // before its secrets are touched, and its row lock orders rotations.
                    let done = sqlx::query(
                        "UPDATE api_keys SET start = $1, updated_at = $2 \
                         WHERE id = $3 AND tenant_id = $4",
                    )
                    .bind(key.start.as_str())
                    .bind(micros(key.updated_at))
                    .bind(key.id.0)
                    .bind(key.tenant_id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(read_error)?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    sqlx::query(
                        "UPDATE key_secrets SET expires_at = $1 \
                         WHERE key_id = $2 AND (expires_at IS NULL OR expires_at > $1)",
                    )
                    .bind(until)
                    .bind(key.id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(read_error)?;
                    sqlx::query(
                        "DELETE FROM key_secrets WHERE key_id = $1 AND expires_at <= $2",
                    )
                    .bind(key.id.0)
                    .bind(micros(key.updated_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(read_error)?;
                    insert_secret(&mut tx, secret).await?;
                    self.commit_announcing(tx, Change::Key(key.id)).await
                }

                async fn lookup_secret(
                    &self,
                    hash: &SecretHash,
                ) -> StoreResult<Option<SecretMatch>> {
                    let row = sqlx::query(&format!(
                        "SELECT s.hash AS secret_hash, s.expires_at AS secret_expires_at, k.*, \
                         u.seq AS u_seq, u.id AS u_id, u.tenant_id AS u_tenant_id, \
                         u.email AS u_email, u.username AS u_username, \
                         u.display_name AS u_display_name, u.password_hash AS u_password_hash, \
                         u.role AS u_role, u.active AS u_active, u.grants AS u_grants, \
                         u.created_at AS u_created_at, u.updated_at AS u_updated_at \
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
                    let stored: Option<i64> =
                        row.try_get("secret_expires_at").map_err(read_error)?;
                    let stored_hash: Vec<u8> = row.try_get("secret_hash").map_err(read_error)?;
                    Ok(Some(SecretMatch {
                        secret_hash: SecretHash::from_slice(&stored_hash)
                            .ok_or_else(|| StoreError::Corrupt("secret hash length".into()))?,
                        key: key_from_row(&row)?,
                        secret_expires_at: from_opt_micros(stored)?,
                        owner: user_from_row(&row, "u_")?,
                    }))
                }

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

                async fn subscribe_changes(&self) -> StoreResult<ChangeFeed> {
                    self.follow_changes().await
                }
            }

            type Query<'q> =
                sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>;

            impl $store {
                async fn one_user(
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

                async fn one_key(
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

            async fn insert_secret(
                tx: &mut sqlx::Transaction<'_, $db>,
                secret: &KeySecret,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO key_secrets (hash, key_id, expires_at) VALUES ($1, $2, $3)",
                )
                .bind(secret.hash.0.to_vec())
                .bind(secret.key_id.0)
                .bind(opt_micros(secret.expires_at))
                .execute(&mut **tx)
                .await
                .map_err(|e| db_error(e, "secret"))?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_store;

#[cfg(test)]
mod tests {
    use super::begin;
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    use std::str::FromStr;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{watch, Notify};

    /// A TCP relay to PostgreSQL that, once the client sends `BEGIN`, holds the server's
    /// answers back until released: the window in which transact-rs/sqlx#4393 leaks.
    struct HoldingRelay {
        port: u16,
        begin_sent: Arc<Notify>,
        hold: watch::Sender<bool>,
    }

    impl HoldingRelay {
        async fn start(server: String) -> HoldingRelay {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let port = listener.local_addr().expect("address").port();
            let begin_sent = Arc::new(Notify::new());
            let (hold, held) = watch::channel(false);
            let relay = HoldingRelay {
                port,
                begin_sent: begin_sent.clone(),
                hold: hold.clone(),
            };
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let upstream = TcpStream::connect(&server).await.expect("PostgreSQL");
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = upstream.into_split();
                    tokio::spawn(to_server(
                        client_read,
                        server_write,
                        hold.clone(),
                        begin_sent.clone(),
                    ));
                    tokio::spawn(to_client(server_read, client_write, held.clone()));
                }
            });
            relay
        }

        fn release(&self) {
            self.hold.send_replace(false);
        }
    }

    /// Forwards the client's bytes; a `BEGIN` turns the hold on before it goes out, so
    /// that its answer cannot slip through.
    async fn to_server(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        hold: watch::Sender<bool>,
        begin_sent: Arc<Notify>,
    ) {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let Ok(n) = from.read(&mut buffer).await else {
                return;
            };
            if n == 0 {
                return;
            }
            let begins = buffer[..n].windows(6).any(|w| w == b"BEGIN\0");
            if begins {
                hold.send_replace(true);
            }
            if to.write_all(&buffer[..n]).await.is_err() {
                return;
            }
            if begins {
                begin_sent.notify_one();
            }
        }
    }

    /// Forwards the server's bytes, waiting while the hold is on.
    async fn to_client(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        mut held: watch::Receiver<bool>,
    ) {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let Ok(n) = from.read(&mut buffer).await else {
                return;
            };
            if n == 0 || held.wait_for(|on| !on).await.is_err() {
                return;
            }
            if to.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    }

    /// A caller that gives up while `BEGIN` awaits its answer (a client hanging up
    /// mid-request) must not leave the pooled connection inside a transaction: the next
    /// borrower's statements would run in it, and a lone write might never commit.
    #[tokio::test]
    async fn a_transaction_abandoned_while_beginning_is_not_left_open() {
        let url = std::env::var("KEYWARD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let options = PgConnectOptions::from_str(&url).expect("a PostgreSQL URL");
        let relay =
            HoldingRelay::start(format!("{}:{}", options.get_host(), options.get_port())).await;
        // One connection: whatever the abandoned BEGIN leaves on it, the next borrower
        // gets.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.host("127.0.0.1").port(relay.port))
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {url} through the relay: {e}"));

        tokio::select! {
            _ = begin(&pool) => panic!("BEGIN was answered while the relay held it"),
            _ = relay.begin_sent.notified() => {}
        }
        // The caller is gone; now the answer arrives.
        relay.release();

        let mut connection = pool.acquire().await.expect("the connection comes back");
        let outside = sqlx::query("SAVEPOINT probe")
            .execute(&mut *connection)
            .await
            .expect_err("the connection is still inside the abandoned transaction");
        assert!(
            outside.to_string().contains("transaction blocks"),
            "unexpected error: {outside}"
        );
    }
}
