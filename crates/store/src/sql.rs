//! What both stores' SQL shares that does not depend on the database: how values are
//! encoded in columns, how driver errors map to [`StoreError`], and statement texts
//! built at run time. The statements themselves are in `src/queries/`.

use crate::{Constraint, StoreError, StoreResult};
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

/// Maps a driver error; a broken uniqueness rule is named by its constraint.
pub(crate) fn db_error(err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        if db.is_unique_violation() {
            if let Some(rule) = constraint(db.constraint(), db.message()) {
                return StoreError::Conflict(rule);
            }
        }
    }
    StoreError::Unavailable(err.to_string())
}

/// PostgreSQL names the constraint; SQLite names none, only the columns of the index
/// in its message (`UNIQUE constraint failed: users.email`), which identify it as well.
fn constraint(name: Option<&str>, message: &str) -> Option<Constraint> {
    const RULES: [(&str, &str, Constraint); 8] = [
        ("tenants_name_key", "tenants.name", Constraint::TenantName),
        (
            "spaces_tenant_id_name_key",
            "spaces.tenant_id, spaces.name",
            Constraint::SpaceName,
        ),
        (
            "users_tenant_id_email_key",
            "users.tenant_id, users.email",
            Constraint::Email,
        ),
        (
            "users_tenant_id_username_key",
            "users.tenant_id, users.username",
            Constraint::Username,
        ),
        (
            "api_keys_live_name",
            "api_keys.tenant_id, api_keys.owner_id, api_keys.name",
            Constraint::KeyName,
        ),
        (
            "api_keys_macrometa_keyid",
            "api_keys.tenant_id, api_keys.name",
            Constraint::MacrometaKeyid,
        ),
        (
            "api_keys_public_id_key",
            "api_keys.public_id",
            Constraint::PublicId,
        ),
        (
            "key_secrets_pkey",
            "key_secrets.hash",
            Constraint::SecretHash,
        ),
    ];
    let sqlite_columns = message.strip_prefix("UNIQUE constraint failed: ");
    RULES
        .iter()
        .find(|(pg, columns, _)| name == Some(*pg) || sqlite_columns == Some(*columns))
        .map(|(_, _, rule)| *rule)
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

pub(crate) fn json_to_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("JSON values serialize")
}

pub(crate) const USER_COLUMNS: &str = "seq, id, tenant_id, email, username, display_name, \
     password_hash, role, active, grants, created_at, updated_at, session_epoch, ratelimits";

pub(crate) const KEY_COLUMNS: &str = "seq, id, tenant_id, owner_id, name, door, shape, start, \
     public_id, grants, metadata, enabled, created_at, updated_at, expires_at, revoked_at, \
     last_used_at, use_count, disabled_by, disabled_by_admin, limits, credits_base, \
     credits_spent, credits_refill, credits_refilled_at";

/// Keys updated by one statement when usage is flushed: 3 parameters each, well under
/// both databases' limits on parameters.
pub(crate) const USAGE_ROWS_PER_STATEMENT: usize = 512;

/// `rows` in chunks of `max`, then the rest in chunks of powers of two: a batch
/// statement's text depends on its row count, so this keeps the distinct texts (and
/// the statements each connection prepares and caches) to a dozen, instead of
/// preparing a statement of thousands of placeholders anew on every flush.
pub(crate) fn statement_chunks<T>(rows: &[T], max: usize) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let mut rest = rows;
    while !rest.is_empty() {
        let size = if rest.len() >= max {
            max
        } else {
            1 << (usize::BITS - 1 - rest.len().leading_zeros())
        };
        let (chunk, tail) = rest.split_at(size);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

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

/// A key's credits as stored: what is left is the base less what was spent.
pub(crate) fn credits_from_columns(
    base: Option<i64>,
    spent: i64,
    refill: Option<String>,
    refilled_at: Option<i64>,
) -> StoreResult<Option<keyward_core::limits::Credits>> {
    let Some(base) = base else {
        return Ok(None);
    };
    let refill = refill
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("credits refill: {e}")))?;
    Ok(Some(keyward_core::limits::Credits {
        remaining: u64::try_from(base.saturating_sub(spent)).unwrap_or(0),
        refill,
        refilled_at: from_opt_micros(refilled_at)?,
    }))
}

/// The columns a key's credits are written to when they are set whole: the base is
/// what is left (the spent count starts again from 0).
pub(crate) fn credits_to_columns(
    credits: Option<&keyward_core::limits::Credits>,
) -> (Option<i64>, Option<String>, Option<i64>) {
    match credits {
        None => (None, None, None),
        Some(c) => (
            Some(i64::try_from(c.remaining).unwrap_or(i64::MAX)),
            c.refill.as_ref().map(json_to_text),
            opt_micros(c.refilled_at),
        ),
    }
}

pub(crate) fn limits_from_text(text: &str) -> StoreResult<keyward_core::limits::KeyLimits> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("key limits: {e}")))
}

pub(crate) fn ratelimits_from_text(
    text: &str,
) -> StoreResult<Vec<keyward_core::limits::RateLimit>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("rate limits: {e}")))
}

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

#[cfg(test)]
mod chunk_tests {
    #[test]
    fn chunks_are_the_maximum_then_powers_of_two() {
        let rows: Vec<u32> = (0..2_013).collect();
        let sizes: Vec<usize> = super::statement_chunks(&rows, 1_000)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [1_000, 1_000, 8, 4, 1]);
        assert!(super::statement_chunks::<u32>(&[], 10).is_empty());
    }
}
