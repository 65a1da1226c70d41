//! Copying a SQLite deployment into PostgreSQL, row for row.
//!
//! Rows are copied as stored, `seq` numbers and secret hashes included: secrets are
//! never known to the store, so keeping their keyed hashes (and the same server secret)
//! is what keeps every key valid after the move.

use crate::sql::read_error;
use crate::{PostgresStore, SqliteStore, StoreError, StoreResult};
use sqlx::Row;
use uuid::Uuid;

#[derive(Clone, Copy)]
enum Kind {
    Uuid,
    OptUuid,
    Text,
    OptText,
    Int,
    OptInt,
    Bool,
    Bytes,
}

use Kind::*;

/// Every table, parents before children, with every column. A column the SQLite
/// schema has and this list lacks stops the copy rather than being dropped silently.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "tenants",
        &[("id", Uuid), ("name", Text), ("created_at", Int)],
    ),
    (
        "spaces",
        &[
            ("seq", Int),
            ("id", Uuid),
            ("tenant_id", Uuid),
            ("name", Text),
            ("created_at", Int),
        ],
    ),
    (
        "users",
        &[
            ("seq", Int),
            ("id", Uuid),
            ("tenant_id", Uuid),
            ("email", Text),
            ("username", Text),
            ("display_name", Text),
            ("password_hash", Text),
            ("role", Text),
            ("active", Bool),
            ("grants", Text),
            ("created_at", Int),
            ("updated_at", Int),
            ("session_epoch", Int),
            ("ratelimits", Text),
        ],
    ),
    (
        "api_keys",
        &[
            ("seq", Int),
            ("id", Uuid),
            ("tenant_id", Uuid),
            ("owner_id", Uuid),
            ("name", Text),
            ("door", Text),
            ("shape", Text),
            ("start", Text),
            ("public_id", OptText),
            ("grants", Text),
            ("metadata", Text),
            ("enabled", Bool),
            ("created_at", Int),
            ("updated_at", Int),
            ("expires_at", OptInt),
            ("revoked_at", OptInt),
            ("last_used_at", OptInt),
            ("use_count", Int),
            ("disabled_by", OptUuid),
            ("disabled_by_admin", Bool),
            ("limits", Text),
            ("credits_base", OptInt),
            ("credits_spent", Int),
            ("credits_refill", OptText),
            ("credits_refilled_at", OptInt),
        ],
    ),
    (
        "key_secrets",
        &[("hash", Bytes), ("key_id", Uuid), ("expires_at", OptInt)],
    ),
    (
        "space_resources",
        &[
            ("space_id", Uuid),
            ("kind", Text),
            ("name", Text),
            ("created_at", Int),
        ],
    ),
    (
        "audit_events",
        &[
            ("seq", Int),
            ("id", Uuid),
            ("at", Int),
            ("tenant_id", OptUuid),
            ("actor_type", Text),
            ("actor_id", OptUuid),
            ("actor_user_id", OptUuid),
            ("door", OptText),
            ("remote_ip", OptText),
            ("action", Text),
            ("target_type", Text),
            ("target_id", OptUuid),
            ("target_owner_id", OptUuid),
            ("changes", Text),
            ("details", Text),
        ],
    ),
    (
        "verification_counts",
        &[
            ("granularity", Int),
            ("bucket", Int),
            ("tenant_id", Uuid),
            ("key_id", Uuid),
            ("owner_id", Uuid),
            ("code", Text),
            ("count", Int),
        ],
    ),
];

/// Tables whose `seq` PostgreSQL numbers: after the copy, new rows continue after the
/// copied ones.
const SEQUENCED: &[&str] = &["spaces", "users", "api_keys", "audit_events"];

enum Value {
    Uuid(Option<Uuid>),
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
    Bytes(Vec<u8>),
}

/// How many rows each table had.
pub type CopyCounts = Vec<(&'static str, u64)>;

/// Copies everything from `from` into `to`, in one transaction. Refuses a target that
/// already has a tenant: merging two deployments is not a copy.
pub async fn copy_sqlite_to_postgres(
    from: &SqliteStore,
    to: &PostgresStore,
) -> StoreResult<CopyCounts> {
    let tenants: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenants")
        .fetch_one(&to.pool)
        .await
        .map_err(read_error)?;
    if tenants > 0 {
        return Err(StoreError::Conflict(crate::Constraint::TenantName));
    }
    let mut tx = to.pool.begin().await.map_err(read_error)?;
    let mut counts = Vec::new();
    for (table, columns) in TABLES {
        check_columns(from, table, columns).await?;
        let rows = read_table(from, table, columns).await?;
        counts.push((*table, rows.len() as u64));
        write_table(&mut tx, table, columns, rows).await?;
    }
    for table in SEQUENCED {
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'seq'), \
             COALESCE((SELECT MAX(seq) FROM {table}), 0) + 1, false)"
        );
        sqlx::query(&sql)
            .execute(&mut *tx)
            .await
            .map_err(read_error)?;
    }
    tx.commit().await.map_err(read_error)?;
    Ok(counts)
}

async fn check_columns(
    from: &SqliteStore,
    table: &str,
    columns: &[(&str, Kind)],
) -> StoreResult<()> {
    let present: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
        .bind(table)
        .fetch_all(&from.pool)
        .await
        .map_err(read_error)?;
    match present
        .iter()
        .find(|name| !columns.iter().any(|(known, _)| known == name))
    {
        Some(unknown) => Err(StoreError::Corrupt(format!(
            "the copy does not know the column {table}.{unknown}; upgrade keyward"
        ))),
        None => Ok(()),
    }
}

async fn read_table(
    from: &SqliteStore,
    table: &str,
    columns: &[(&str, Kind)],
) -> StoreResult<Vec<Vec<Value>>> {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    // In insertion order; a WITHOUT ROWID table (its primary key is the table) in the
    // order of that key.
    let order = match table {
        "verification_counts" => "tenant_id, granularity, key_id, bucket, code",
        _ => "rowid",
    };
    let sql = format!("SELECT {} FROM {table} ORDER BY {order}", names.join(", "));
    let rows = sqlx::query(&sql)
        .fetch_all(&from.pool)
        .await
        .map_err(read_error)?;
    rows.iter()
        .map(|row| {
            columns
                .iter()
                .map(|(name, kind)| {
                    Ok(match kind {
                        Uuid | OptUuid => Value::Uuid(row.try_get(*name).map_err(read_error)?),
                        Text | OptText => Value::Text(row.try_get(*name).map_err(read_error)?),
                        Int | OptInt => Value::Int(row.try_get(*name).map_err(read_error)?),
                        Bool => Value::Bool(row.try_get(*name).map_err(read_error)?),
                        Bytes => Value::Bytes(row.try_get(*name).map_err(read_error)?),
                    })
                })
                .collect()
        })
        .collect()
}

async fn write_table(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    table: &str,
    columns: &[(&str, Kind)],
    rows: Vec<Vec<Value>>,
) -> StoreResult<()> {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let marks: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        names.join(", "),
        marks.join(", ")
    );
    for row in rows {
        let mut insert = sqlx::query(&sql);
        for value in row {
            insert = match value {
                Value::Uuid(v) => insert.bind(v),
                Value::Text(v) => insert.bind(v),
                Value::Int(v) => insert.bind(v),
                Value::Bool(v) => insert.bind(v),
                Value::Bytes(v) => insert.bind(v),
            };
        }
        insert
            .execute(&mut **tx)
            .await
            .map_err(|e| StoreError::Unavailable(format!("copying {table}: {e}")))?;
    }
    Ok(())
}
