//! The hot path: presented secret → verdict, from memory whenever possible.
//!
//! Parse (refuse garbage before anything else) → HMAC → per-node cache → store on a miss →
//! the core's decision. Nothing here writes to the store: uses are counted in memory and
//! flushed in batches by [`Verifier::flush_usage`].

use keyward_core::{
    decide, Found, KeyHasher, KeyId, Query, SecretHash, TenantId, UserId, VerifyCode,
};
use keyward_store::{Change, ChangeEvent, DynStore, KeyUsage, SecretMatch, StoreError};
use moka::sync::Cache;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use time::OffsetDateTime;

/// How long a cached lookup is trusted before it is read again, as a bound on any
/// staleness the explicit invalidations might miss.
const CACHE_TTL: Duration = Duration::from_secs(60);
const USAGE_SHARDS: usize = 16;

/// What a presented secret led to: `None` when no key has it.
type Entry = Arc<Option<SecretMatch>>;

/// The outcome of one verification.
pub struct Verdict {
    pub code: VerifyCode,
    /// The key and owner, when the secret belongs to a key (whatever its state).
    pub found: Option<Arc<Option<SecretMatch>>>,
}

impl Verdict {
    pub fn matched(&self) -> Option<&SecretMatch> {
        self.found.as_deref().and_then(Option::as_ref)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Freshness {
    epoch: u64,
    /// Whether other nodes' changes are being heard. While they are not, nothing is
    /// cached: an entry could go stale without anyone saying so.
    hearing: bool,
}

pub struct Verifier {
    hasher: KeyHasher,
    store: DynStore,
    cache: Cache<SecretHash, Entry>,
    /// Bumped by every invalidation; a miss that read the store before a bump must not
    /// put what it read into the cache. The lock orders "check and insert" against
    /// "bump and invalidate"; only misses and invalidations take it.
    epoch: RwLock<Freshness>,
    usage: Vec<Mutex<HashMap<KeyId, KeyUsage>>>,
    lookups: AtomicU64,
}

impl Verifier {
    pub fn new(hasher: KeyHasher, store: DynStore, capacity: u64) -> Self {
        Verifier {
            hasher,
            store,
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(CACHE_TTL)
                .support_invalidation_closures()
                .build(),
            epoch: RwLock::new(Freshness {
                epoch: 0,
                hearing: true,
            }),
            usage: (0..USAGE_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            lookups: AtomicU64::new(0),
        }
    }

    pub fn hasher(&self) -> &KeyHasher {
        &self.hasher
    }

    /// Verifies a presented secret, optionally against a permission query. With a
    /// `tenant`, a key of any other tenant is reported as not found.
    pub async fn verify(
        &self,
        presented: &str,
        tenant: Option<TenantId>,
        required: Option<&Query>,
    ) -> Result<Verdict, StoreError> {
        if keyward_core::keyfmt::parse(presented).is_err() {
            return Ok(Verdict {
                code: VerifyCode::Malformed,
                found: None,
            });
        }
        let hash = self.hasher.hash(presented);
        let entry = match self.cache.get(&hash) {
            Some(entry) => entry,
            None => self.load(hash).await?,
        };
        let now = OffsetDateTime::now_utc();
        if tenant.is_some_and(|t| {
            entry
                .as_ref()
                .as_ref()
                .is_some_and(|m| m.key.tenant_id != t)
        }) {
            return Ok(Verdict {
                code: VerifyCode::NotFound,
                found: None,
            });
        }
        let code = match entry.as_ref() {
            None => VerifyCode::NotFound,
            Some(m) => {
                // Only a permission query reads the owner's grants; building them
                // clones a list, which a plain check need not pay for.
                let owner_grants = match required {
                    Some(_) => m.owner.effective_grants(),
                    None => keyward_core::Grants::default(),
                };
                let found = Found {
                    key: &m.key,
                    secret_expires_at: m.secret_expires_at,
                    owner_active: m.owner.active,
                    owner_grants: &owner_grants,
                };
                decide(&found, now, required)
            }
        };
        if code.is_valid() {
            if let Some(m) = entry.as_ref() {
                self.count_use(m.key.id, now);
            }
        }
        Ok(Verdict {
            code,
            found: Some(entry),
        })
    }

    async fn load(&self, hash: SecretHash) -> Result<Entry, StoreError> {
        let epoch_before = *self.epoch.read().expect("epoch lock");
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let found = self.store.lookup_secret(&hash).await?;
        // The store matched by hash; check the stored hash again in constant time, so
        // that a lax comparison in a database (a collation, a prefix index) can never
        // let a different secret through.
        let found = found.filter(|m| m.secret_hash.ct_eq(&hash));
        let entry: Entry = Arc::new(found);
        let epoch = self.epoch.read().expect("epoch lock");
        if *epoch == epoch_before && epoch.hearing {
            self.cache.insert(hash, entry.clone());
        }
        Ok(entry)
    }

    /// Forgets everything cached about one key, at once for this node.
    pub fn invalidate_key(&self, key: KeyId) {
        self.invalidate(move |m| m.key.id == key);
    }

    /// Forgets every key of one owner (after the owner's role, grants or state changed).
    pub fn invalidate_owner(&self, owner: UserId) {
        self.invalidate(move |m| m.owner.id == owner);
    }

    /// Acts on what the store's change feed reports from any node.
    pub fn apply(&self, event: ChangeEvent) {
        match event {
            ChangeEvent::Changed(Change::Key(key)) => self.invalidate_key(key),
            ChangeEvent::Changed(Change::Owner(owner)) => self.invalidate_owner(owner),
            ChangeEvent::Lost => self.forget_all(false),
            ChangeEvent::Resumed => self.forget_all(true),
        }
    }

    /// Drops every entry. Entries are also dropped on `Resumed`: they were cached
    /// before the loss, and changes made during it were never heard.
    fn forget_all(&self, hearing: bool) {
        let mut epoch = self.epoch.write().expect("epoch lock");
        epoch.epoch += 1;
        epoch.hearing = hearing;
        self.cache.invalidate_all();
    }

    fn invalidate(&self, matches: impl Fn(&SecretMatch) -> bool + Send + Sync + 'static) {
        let mut epoch = self.epoch.write().expect("epoch lock");
        epoch.epoch += 1;
        self.cache
            .invalidate_entries_if(move |_, entry| entry.as_ref().as_ref().is_some_and(&matches))
            .expect("invalidation closures are enabled");
    }

    /// Store reads made on cache misses so far.
    pub fn store_lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    pub fn cached_entries(&self) -> u64 {
        self.cache.entry_count()
    }

    fn count_use(&self, key: KeyId, at: OffsetDateTime) {
        let shard = (key.0.as_u128() as usize) % USAGE_SHARDS;
        let mut pending = self.usage[shard].lock().expect("usage lock");
        let usage = pending.entry(key).or_insert(KeyUsage {
            key_id: key,
            last_used_at: at,
            uses: 0,
        });
        usage.uses += 1;
        usage.last_used_at = usage.last_used_at.max(at);
    }

    /// Writes the uses counted since the last flush. On failure they are put back, so a
    /// store outage delays counters rather than losing them.
    pub async fn flush_usage(&self) -> Result<usize, StoreError> {
        let mut batch = Vec::new();
        for shard in &self.usage {
            batch.extend(shard.lock().expect("usage lock").drain().map(|(_, u)| u));
        }
        if batch.is_empty() {
            return Ok(0);
        }
        match self.store.record_usage(&batch).await {
            Ok(()) => Ok(batch.len()),
            Err(err) => {
                for usage in batch {
                    let shard = (usage.key_id.0.as_u128() as usize) % USAGE_SHARDS;
                    let mut pending = self.usage[shard].lock().expect("usage lock");
                    let slot = pending
                        .entry(usage.key_id)
                        .or_insert(KeyUsage { uses: 0, ..usage });
                    slot.uses += usage.uses;
                    slot.last_used_at = slot.last_used_at.max(usage.last_used_at);
                }
                Err(err)
            }
        }
    }
}
