//! Filling a store with many keys at once, for load tests (`keyward bench-load`). Not
//! reachable over HTTP: only an operator with the data directory can run it.

use crate::config::ServeConfig;
use crate::server::{bootstrap, load_or_create_secret, DEFAULT_ADMIN_EMAIL};
use anyhow::Context;
use keyward_app::import::{bench_key, import_keys};
use keyward_core::{ApiKey, KeyHasher, KeySecret, Secret};

/// Rows per transaction: large enough that commits are not the bottleneck, small
/// enough to keep each transaction's memory modest.
const BATCH: usize = 5_000;

/// Adds `count` keys owned by the first administrator (named `{prefix}-{i}`) and returns
/// the secrets of the last `keep` of them, the keys a load test presents.
pub async fn load_keys(
    config: &ServeConfig,
    count: u64,
    keep: usize,
    prefix: &str,
) -> anyhow::Result<Vec<Secret>> {
    anyhow::ensure!(count > 0, "the key count must be at least one");
    crate::server::private_data_dir(config)?;
    let hasher = KeyHasher::new(&load_or_create_secret(config)?);
    let store = keyward_store::open(&config.effective_database_url()).await?;
    bootstrap(&store, config).await?;
    let email = config.admin_email.as_deref().unwrap_or(DEFAULT_ADMIN_EMAIL);
    let tenant = store
        .tenant_by_name(crate::server::DEFAULT_TENANT)
        .await?
        .with_context(|| format!("no tenant {}", crate::server::DEFAULT_TENANT))?;
    let owner = store
        .user_by_email_in(tenant.id, email)
        .await?
        .with_context(|| format!("no user {email}"))?;
    let mut kept = Vec::new();
    let mut done = 0;
    while done < count {
        let size = (count - done).min(BATCH as u64);
        let rows: Vec<(ApiKey, KeySecret, Secret)> = (done..done + size)
            .map(|i| bench_key(&hasher, &owner, format!("{prefix}-{i}")))
            .collect();
        let (rows, secrets): (Vec<_>, Vec<_>) = rows
            .into_iter()
            .map(|(k, s, secret)| ((k, s), secret))
            .unzip();
        import_keys(&store, &owner, &rows)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        kept.extend(secrets);
        kept.drain(..kept.len().saturating_sub(keep));
        done += size;
    }
    store.close().await;
    Ok(kept)
}
