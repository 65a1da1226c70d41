//! The one write path: a change and its audit events in one transaction, announced to
//! every node once it commits.

use super::audit::insert_event;
use super::*;
use crate::write::{Committed, CreditChange, CreditOp, Mutation};
use crate::{Change, StoreError};
use async_trait::async_trait;
use keyward_core::audit::AuditEvent;
use keyward_core::ResourceKind;
use time::OffsetDateTime;

type Tx = sqlx::Transaction<'static, Db>;

#[async_trait]
impl crate::traits::WriteStore for Backend {
    async fn commit(&self, change: Mutation<'_>, events: &[AuditEvent]) -> StoreResult<Committed> {
        let mut tx = begin(&self.writer).await?;
        let (committed, announce) = apply(&mut tx, change).await?;
        if !committed.applied {
            // Nothing changed, so nothing is recorded: dropping `tx` rolls it back.
            return Ok(committed);
        }
        for event in events {
            insert_event(&mut tx, event).await?;
        }
        self.commit_announcing(tx, announce).await?;
        Ok(committed)
    }
}

/// Applies a change inside `tx`; answers what it made and what other nodes must hear.
async fn apply(tx: &mut Tx, change: Mutation<'_>) -> StoreResult<(Committed, Option<Change>)> {
    let done = |announce| Ok((Committed::done(), announce));
    match change {
        Mutation::Nothing => done(None),
        Mutation::CreateTenant {
            tenant,
            space,
            admin,
        } => {
            insert_tenant(tx, tenant).await?;
            insert_space(tx, space).await?;
            insert_user(tx, admin).await?;
            done(None)
        }
        Mutation::CreateSpace(space) => {
            Ok((Committed::created(insert_space(tx, space).await?), None))
        }
        Mutation::DeclareResource {
            space,
            kind,
            name,
            at,
        } => Ok((declare_resource(tx, space, kind, name, at).await?, None)),
        Mutation::CreateUser(user) => Ok((Committed::created(insert_user(tx, user).await?), None)),
        Mutation::UpdateUser { user, read_at } => {
            update_user(tx, user, read_at).await?;
            done(Some(Change::Owner(user.id)))
        }
        Mutation::CreateKey { key, secret } => {
            let seq = insert_key(tx, key).await?;
            insert_secret(tx, secret).await?;
            Ok((Committed::created(seq), None))
        }
        Mutation::ImportKeys(keys) => {
            for (key, secret) in keys {
                insert_key(tx, key).await?;
                insert_secret(tx, secret).await?;
            }
            done(None)
        }
        Mutation::UpdateKey {
            key,
            read_at,
            with_credits,
        } => {
            update_key(tx, key, read_at, with_credits).await?;
            done(Some(Change::Key(key.id)))
        }
        Mutation::ChangeCredits {
            key,
            read_at,
            change,
        } => {
            let left = change_credits(tx, key, read_at, change).await?;
            Ok((Committed::credits_left(left), Some(Change::Key(key.id))))
        }
        Mutation::RotateKey {
            key,
            secret,
            old_until,
            read_at,
        } => {
            rotate_key(tx, key, secret, old_until, read_at).await?;
            done(Some(Change::Key(key.id)))
        }
    }
}

async fn insert_tenant(tx: &mut Tx, tenant: &Tenant) -> StoreResult<()> {
    sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(tenant.id.0)
        .bind(tenant.name.as_str())
        .bind(micros(tenant.created_at))
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

async fn insert_space(tx: &mut Tx, space: &Space) -> StoreResult<i64> {
    sqlx::query(
        "INSERT INTO spaces (id, tenant_id, name, created_at) \
         VALUES ($1, $2, $3, $4) RETURNING seq",
    )
    .bind(space.id.0)
    .bind(space.tenant_id.0)
    .bind(space.name.as_str())
    .bind(micros(space.created_at))
    .fetch_one(&mut **tx)
    .await
    .map_err(db_error)?
    .try_get("seq")
    .map_err(read_error)
}

async fn declare_resource(
    tx: &mut Tx,
    space: SpaceId,
    kind: ResourceKind,
    name: &str,
    at: OffsetDateTime,
) -> StoreResult<Committed> {
    let done = sqlx::query(
        "INSERT INTO space_resources (space_id, kind, name, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(space.0)
    .bind(kind.as_str())
    .bind(name)
    .bind(micros(at))
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(Committed {
        applied: done.rows_affected() > 0,
        ..Committed::done()
    })
}

async fn insert_user(tx: &mut Tx, user: &User) -> StoreResult<i64> {
    bind_user(sqlx::query(INSERT_USER), user)
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)?
        .try_get("seq")
        .map_err(read_error)
}

async fn update_user(tx: &mut Tx, user: &User, read_at: OffsetDateTime) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE users SET email = $1, username = $2, display_name = $3, \
         password_hash = $4, role = $5, active = $6, grants = $7, \
         updated_at = $8, session_epoch = $12, ratelimits = $13 \
         WHERE id = $9 AND tenant_id = $10 AND updated_at = $11",
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
    .bind(micros(read_at))
    .bind(user.session_epoch)
    .bind(json_to_text(&user.ratelimits))
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    if done.rows_affected() == 0 {
        return Err(missing_or_stale(tx, "users", user.id.0, user.tenant_id).await);
    }
    Ok(())
}

async fn insert_key(tx: &mut Tx, key: &ApiKey) -> StoreResult<i64> {
    bind_key(sqlx::query(INSERT_KEY), key)
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)?
        .try_get("seq")
        .map_err(read_error)
}

async fn update_key(
    tx: &mut Tx,
    key: &ApiKey,
    read_at: OffsetDateTime,
    with_credits: bool,
) -> StoreResult<()> {
    // Credits are written only when they are set whole: otherwise the balance a flush
    // lowered since the key was read would be put back.
    let credits = if with_credits {
        ", credits_base = CASE WHEN $15 IS NULL THEN NULL ELSE $15 + credits_spent END, \
         credits_refill = $16, credits_refilled_at = $17"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE api_keys SET name = $1, grants = $2, metadata = $3, \
         enabled = $4, updated_at = $5, expires_at = $6, revoked_at = $7, \
         start = $8, disabled_by = $12, disabled_by_admin = $13, limits = $14{credits} \
         WHERE id = $9 AND tenant_id = $10 AND updated_at = $11"
    );
    let (base, refill, refilled_at) = credits_to_columns(key.credits.as_ref());
    let query = sqlx::query(&sql)
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
        .bind(micros(read_at))
        .bind(key.disabled_by.map(|u| u.0))
        .bind(key.disabled_by_admin)
        .bind(json_to_text(&key.limits));
    let query = if with_credits {
        query.bind(base).bind(refill).bind(refilled_at)
    } else {
        query
    };
    let done = query.execute(&mut **tx).await.map_err(db_error)?;
    if done.rows_affected() == 0 {
        return Err(missing_or_stale(tx, "api_keys", key.id.0, key.tenant_id).await);
    }
    Ok(())
}

/// Applies a change of a key's credits in one statement, against the balance as stored
/// (flushes included), and answers what is left. `key` carries the new `updated_at`
/// and, for a refill that is due, the interval it is for.
async fn change_credits(
    tx: &mut Tx,
    key: &ApiKey,
    read_at: OffsetDateTime,
    change: CreditChange,
) -> StoreResult<i64> {
    // What is left before the change: the refill's amount if one is due, else the
    // stored balance. $5 is the refill amount when one is due (NULL otherwise).
    let left = "(CASE WHEN $5 IS NOT NULL THEN $5 \
                ELSE CASE WHEN credits_base > credits_spent \
                THEN credits_base - credits_spent ELSE 0 END END)";
    let new_left = match change.op {
        CreditOp::Set => "$4".to_string(),
        CreditOp::Increment => format!("{left} + $4"),
        CreditOp::Decrement => format!("(CASE WHEN {left} > $4 THEN {left} - $4 ELSE 0 END)"),
    };
    let sql = format!(
        "UPDATE api_keys SET credits_base = credits_spent + {new_left}, updated_at = $6, \
         credits_refilled_at = CASE WHEN $7 IS NOT NULL THEN $7 ELSE credits_refilled_at END \
         WHERE id = $1 AND tenant_id = $2 AND updated_at = $3 \
         RETURNING credits_base - credits_spent AS left_over"
    );
    let row = sqlx::query(&sql)
        .bind(key.id.0)
        .bind(key.tenant_id.0)
        .bind(micros(read_at))
        .bind(i64::try_from(change.value).unwrap_or(i64::MAX))
        .bind(
            change
                .refill_amount
                .map(|a| i64::try_from(a).unwrap_or(i64::MAX)),
        )
        .bind(micros(key.updated_at))
        .bind(opt_micros(change.refilled_at))
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?;
    match row {
        Some(row) => row.try_get("left_over").map_err(read_error),
        None => Err(missing_or_stale(tx, "api_keys", key.id.0, key.tenant_id).await),
    }
}

async fn rotate_key(
    tx: &mut Tx,
    key: &ApiKey,
    secret: &KeySecret,
    old_until: OffsetDateTime,
    read_at: OffsetDateTime,
) -> StoreResult<()> {
    // The key first: an unknown key (or one of another tenant) is NotFound before its
    // secrets are touched, and its row lock orders rotations.
    let done = sqlx::query(
        "UPDATE api_keys SET start = $1, updated_at = $2 \
         WHERE id = $3 AND tenant_id = $4 AND updated_at = $5",
    )
    .bind(key.start.as_str())
    .bind(micros(key.updated_at))
    .bind(key.id.0)
    .bind(key.tenant_id.0)
    .bind(micros(read_at))
    .execute(&mut **tx)
    .await
    .map_err(read_error)?;
    if done.rows_affected() == 0 {
        return Err(missing_or_stale(tx, "api_keys", key.id.0, key.tenant_id).await);
    }
    sqlx::query(
        "UPDATE key_secrets SET expires_at = $1 \
         WHERE key_id = $2 AND (expires_at IS NULL OR expires_at > $1)",
    )
    .bind(micros(old_until))
    .bind(key.id.0)
    .execute(&mut **tx)
    .await
    .map_err(read_error)?;
    sqlx::query("DELETE FROM key_secrets WHERE key_id = $1 AND expires_at <= $2")
        .bind(key.id.0)
        .bind(micros(key.updated_at))
        .execute(&mut **tx)
        .await
        .map_err(read_error)?;
    insert_secret(tx, secret).await
}

/// Why a conditional update changed no row: the record is gone (or in another tenant),
/// or it changed since it was read.
async fn missing_or_stale(
    tx: &mut Tx,
    table: &'static str,
    id: uuid::Uuid,
    tenant: TenantId,
) -> StoreError {
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE id = $1 AND tenant_id = $2");
    match sqlx::query_scalar::<_, i64>(&sql)
        .bind(id)
        .bind(tenant.0)
        .fetch_one(&mut **tx)
        .await
    {
        Ok(0) => StoreError::NotFound,
        Ok(_) => StoreError::Stale,
        Err(err) => read_error(err),
    }
}
