//! PostgreSQL, for several stateless nodes sharing one database.
//!
//! Nodes learn of each other's changes through LISTEN/NOTIFY: the writing transaction
//! sends the notification, so PostgreSQL delivers it exactly when the change commits.

use crate::{Change, ChangeEvent, ChangeFeed, NoticeLags, StoreError, StoreResult};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::mpsc;

/// The notification channel every node listens on.
const CHANNEL: &str = "keyward_changes";
/// Every node says "ping" on the channel this often, and a listener that hears nothing
/// at all for `SILENCE_LIMIT` treats its connection as dead. That catches a connection
/// that died without a reset reaching us (which TCP alone may take minutes to notice),
/// within the one-second promise.
const PING_EVERY: Duration = Duration::from_millis(150);
const SILENCE_LIMIT: Duration = Duration::from_millis(600);
const PING: &str = "ping";
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

pub struct PostgresStore {
    pub(crate) pool: sqlx::PgPool,
    /// The same pool: PostgreSQL takes concurrent writers as they come.
    pub(crate) writer: sqlx::PgPool,
}

impl PostgresStore {
    /// Connects and applies pending migrations. sqlx's migrator holds a PostgreSQL
    /// advisory lock (`pg_advisory_lock`) for the whole run, so several nodes starting at
    /// once apply each migration once; the others wait, then find nothing to do.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        use sqlx::ConnectOptions;
        let options = url
            .parse::<PgConnectOptions>()
            .map_err(|e| StoreError::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?
            // sqlx would log a slow statement whole at WARN (a flush's is thousands of
            // placeholders long); keyward_store_query_duration_seconds tells them instead.
            .disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            // Connections past their prime are replaced, so a database fail-over or a
            // restarted proxy is picked up without restarting the node.
            .max_lifetime(Duration::from_secs(30 * 60))
            .idle_timeout(Duration::from_secs(10 * 60))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        Ok(PostgresStore {
            writer: pool.clone(),
            pool,
        })
    }

    async fn commit_announcing(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
        change: Option<Change>,
    ) -> StoreResult<()> {
        if let Some(change) = change {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(change.to_payload(now_micros()))
                .execute(&mut *tx)
                .await
                .map_err(crate::sql::read_error)?;
        }
        tx.commit().await.map_err(crate::sql::read_error)
    }

    /// Listens on a connection of its own. The first connection is made here, so a node
    /// that cannot listen does not start; later losses are reported and retried.
    async fn follow_changes(&self) -> StoreResult<ChangeFeed> {
        let options = (*self.pool.connect_options()).clone();
        let listener = listen(&options).await?;
        let (feed, followed) = mpsc::channel(1024);
        let lags = Arc::new(NoticeLags::default());
        tokio::spawn(ping(self.pool.clone(), feed.clone()));
        tokio::spawn(follow(options, listener, feed, lags.clone()));
        Ok(ChangeFeed::new(followed, lags))
    }
}

/// Listens on a fresh connection from a pool of its own: the listener never takes one of
/// the query pool's connections, and a connection it gave up on (possibly hung) is
/// never handed out again.
async fn listen(options: &PgConnectOptions) -> StoreResult<PgListener> {
    let own = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(SILENCE_LIMIT * 4)
        .connect_lazy_with(options.clone());
    let mut listener = PgListener::connect_with(&own)
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot listen for changes: {e}")))?;
    listener
        .listen(CHANNEL)
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot listen for changes: {e}")))?;
    Ok(listener)
}

async fn follow(
    options: PgConnectOptions,
    mut listener: PgListener,
    feed: mpsc::Sender<ChangeEvent>,
    lags: Arc<NoticeLags>,
) {
    loop {
        if relay(&mut listener, &feed, &lags).await.is_err() {
            return;
        }
        if feed.send(ChangeEvent::Lost).await.is_err() {
            return;
        }
        listener = match reconnect(&options, &feed).await {
            Some(listener) => listener,
            None => return,
        };
        if feed.send(ChangeEvent::Resumed).await.is_err() {
            return;
        }
    }
}

/// Keeps the channel from falling silent while this node's feed is followed. A failed
/// ping is not reported: the silence it leaves is.
async fn ping(pool: sqlx::PgPool, feed: mpsc::Sender<ChangeEvent>) {
    let mut ticker = tokio::time::interval(PING_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !feed.is_closed() {
        ticker.tick().await;
        let _ = tokio::time::timeout(
            SILENCE_LIMIT,
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(format!("{PING}@{}", now_micros()))
                .execute(&pool),
        )
        .await;
    }
}

/// Passes notifications on until the connection is lost or silent (`Ok`) or nobody
/// follows any more (`Err`).
async fn relay(
    listener: &mut PgListener,
    feed: &mpsc::Sender<ChangeEvent>,
    lags: &NoticeLags,
) -> Result<(), ()> {
    loop {
        // Abandoning `try_recv` midway is harmless here: the listener is dropped.
        let Ok(heard) = tokio::time::timeout(SILENCE_LIMIT, listener.try_recv()).await else {
            tracing::warn!("the change feed fell silent; reconnecting");
            return Ok(());
        };
        match heard {
            Ok(Some(note)) => {
                let (text, sent) = crate::split_sent(note.payload());
                if let Some(sent) = sent {
                    lags.heard(sent, OffsetDateTime::now_utc());
                }
                if text == PING {
                    continue;
                }
                match Change::from_payload(note.payload()) {
                    Some((change, _)) => feed
                        .send(ChangeEvent::Changed(change))
                        .await
                        .map_err(|_| ())?,
                    None => tracing::warn!(payload = note.payload(), "unreadable change notice"),
                }
            }
            Ok(None) => {
                tracing::warn!("lost the change feed connection; reconnecting");
                return Ok(());
            }
            Err(err) => {
                tracing::warn!(%err, "change feed failed; reconnecting");
                return Ok(());
            }
        }
    }
}

async fn reconnect(
    options: &PgConnectOptions,
    feed: &mpsc::Sender<ChangeEvent>,
) -> Option<PgListener> {
    let mut delay = RECONNECT_FIRST;
    loop {
        if feed.is_closed() {
            return None;
        }
        match listen(options).await {
            Ok(listener) => return Some(listener),
            Err(err) => tracing::warn!(%err, "change feed still down"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}

fn now_micros() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000) as i64
}

/// The SQL of `src/queries/`, compiled for this database.
type Db = sqlx::Postgres;
type Backend = PostgresStore;
// The same files are compiled once more by the other store, for its database: one body
// of SQL, two stores.
#[allow(clippy::duplicate_mod)]
#[path = "queries/mod.rs"]
mod queries;
