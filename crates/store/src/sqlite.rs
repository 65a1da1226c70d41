//! The embedded default: one SQLite file in the data directory, in WAL mode with full
//! synchronous commits, so an acknowledged key survives a killed process or a power cut.

use crate::{Change, ChangeEvent, ChangeFeed, StoreError, StoreResult};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::ConnectOptions;
use std::path::Path;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

pub struct SqliteStore {
    /// Readers: WAL lets them run beside the writer.
    pub(crate) pool: sqlx::SqlitePool,
    /// The one connection that writes. SQLite admits one writer at a time anyway;
    /// writers that race for its lock on separate connections wait in its busy handler,
    /// which sleeps in growing steps and lets newcomers overtake (16 concurrent creates:
    /// p99 930-940 ms). Waiting for this pool's connection is first come, first served.
    pub(crate) writer: sqlx::SqlitePool,
    /// One SQLite file has one node, so changes only travel within this process.
    changes: broadcast::Sender<Change>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // sqlx would log a slow statement whole at WARN (a flush's is thousands of
            // placeholders long); keyward_store_query_duration_seconds tells them instead.
            .disable_statement_logging();
        let unavailable =
            |e: sqlx::Error| StoreError::Unavailable(format!("{}: {e}", path.display()));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(unavailable)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        let (changes, _) = broadcast::channel(1024);
        Ok(SqliteStore {
            pool,
            writer,
            changes,
        })
    }

    async fn commit_announcing(
        &self,
        tx: sqlx::Transaction<'_, sqlx::Sqlite>,
        change: Option<Change>,
    ) -> StoreResult<()> {
        tx.commit().await.map_err(crate::sql::read_error)?;
        // No follower is not an error: a node without a verifier (the CLI) still writes.
        if let Some(change) = change {
            let _ = self.changes.send(change);
        }
        Ok(())
    }

    async fn follow_changes(&self) -> StoreResult<ChangeFeed> {
        let mut heard = self.changes.subscribe();
        let (feed, followed) = mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                let event = match heard.recv().await {
                    Ok(change) => ChangeEvent::Changed(change),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Changes were dropped unseen: say so, then carry on.
                        if feed.send(ChangeEvent::Lost).await.is_err() {
                            return;
                        }
                        ChangeEvent::Resumed
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if feed.send(event).await.is_err() {
                    return;
                }
            }
        });
        // One process: nothing crosses a network, so there is no lag to tell.
        Ok(ChangeFeed::new(followed, Default::default()))
    }
}

/// The SQL of `src/queries/`, compiled for this database.
type Db = sqlx::Sqlite;
type Backend = SqliteStore;
// The same files are compiled once more by the other store, for its database: one body
// of SQL, two stores.
#[allow(clippy::duplicate_mod)]
#[path = "queries/mod.rs"]
mod queries;
