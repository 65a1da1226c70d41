//! A fresh PostgreSQL database per test, on the server `KEYWARD_TEST_POSTGRES_URL`
//! names, dropped when the test is done (even when it fails).

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;

pub struct PgDatabase {
    admin_url: String,
    pub name: String,
    /// The URL nodes connect to.
    pub url: String,
}

impl PgDatabase {
    pub async fn create() -> PgDatabase {
        let admin_url = std::env::var("KEYWARD_TEST_POSTGRES_URL").unwrap_or_else(|_| {
            panic!(
                "KEYWARD_TEST_POSTGRES_URL is not set: run ./scripts/test, or export \
                 KEYWARD_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
            )
        });
        let name = format!("keyward_node_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin(&admin_url).connect().await.unwrap_or_else(|e| {
            panic!("PostgreSQL is not reachable at {admin_url} (run ./scripts/test): {e}")
        });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        conn.close().await.ok();
        let url = with_database(&admin_url, &name);
        PgDatabase {
            admin_url,
            name,
            url,
        }
    }
}

impl Drop for PgDatabase {
    /// Best effort, on a thread of its own because the test's runtime may be gone.
    fn drop(&mut self) {
        let admin = admin(&self.admin_url);
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(mut conn) = admin.connect().await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    if let Err(e) = sqlx::query(&drop).execute(&mut conn).await {
                        eprintln!("warning: could not drop test database {name}: {e}");
                    }
                }
            });
        })
        .join();
    }
}

/// Every row of every table of the database, as text.
pub async fn all_rows(url: &str) -> Vec<u8> {
    let mut conn = admin(url).connect().await.expect("connect");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("list tables");
    let mut rows = Vec::new();
    for table in tables {
        let sql = format!("SELECT t::text FROM \"{table}\" t");
        let texts: Vec<String> = sqlx::query_scalar(&sql)
            .fetch_all(&mut conn)
            .await
            .expect("read rows");
        for text in texts {
            rows.extend_from_slice(text.as_bytes());
            rows.push(b'\n');
        }
    }
    conn.close().await.ok();
    rows
}

fn admin(url: &str) -> PgConnectOptions {
    PgConnectOptions::from_str(url)
        .unwrap_or_else(|e| panic!("KEYWARD_TEST_POSTGRES_URL is not a PostgreSQL URL: {e}"))
}

/// The admin URL with its database (path) replaced, query string kept.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{database}{query}", &base[..authority_end])
}
