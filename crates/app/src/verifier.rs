//! The hot path: presented secret → verdict, from memory whenever possible.
//!
//! Parse (refuse garbage before anything else) → HMAC → per-node cache → store on a miss →
//! the core's decision. Nothing here writes to the store, and a cached verification
//! takes no lock that other keys share: the cache is sharded, and uses are counted in
//! atomics on the cached entry, then flushed in batches by [`Verifier::flush_usage`].

use crate::clock::{Clock, Now, SystemClock};
use keyward_core::analytics::{Granularity, OutcomeCounts};
use keyward_core::{
    decide, ApiKey, ClientAddress, Found, InnerHash, KeyHasher, KeyId, Principal, Query, Secret,
    TenantId, User, UserId, VerifyCode,
};
use keyward_store::{
    Change, ChangeEvent, DynStore, KeyUsage, StoreError, UsageBatch, VerificationCount,
};
use quick_cache::sync::Cache;
use quick_cache::UnitWeighter;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;
use time::OffsetDateTime;

/// How long a cached lookup is trusted before it is read again, as a bound on any
/// staleness the explicit invalidations might miss.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// Lists of entries used since the last flush. An entry joins one only on its first use
/// after a flush, so these locks are rare on the hot path; sharding keeps them apart.
const PENDING_SHARDS: usize = 16;
/// How many distinct owners are shared between cached keys.
const OWNER_CACHE: usize = 100_000;

/// Hashes an [`InnerHash`] for the cache's table by taking its first bytes: it is the
/// output of a keyed hash already, so hashing it again (foldhash, SipHash) would only
/// cost time on every verification.
#[derive(Clone, Copy, Default)]
struct DigestPrefix;

impl std::hash::BuildHasher for DigestPrefix {
    type Hasher = PrefixHasher;

    fn build_hasher(&self) -> PrefixHasher {
        PrefixHasher(0)
    }
}

/// Keeps the one `u64` an [`InnerHash`] writes; anything else written is folded in
/// (FNV-1a), so the hasher stays correct for keys it was not made for.
struct PrefixHasher(u64);

impl std::hash::Hasher for PrefixHasher {
    fn write_u64(&mut self, value: u64) {
        self.0 ^= value;
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type LookupCache = Cache<InnerHash, Arc<Lookup>, UnitWeighter, DigestPrefix, CountEvictions>;

fn cache(capacity: u64, evictions: Arc<AtomicU64>) -> LookupCache {
    let items = usize::try_from(capacity.max(1)).unwrap_or(usize::MAX);
    Cache::with(
        items,
        capacity.max(1),
        UnitWeighter,
        DigestPrefix,
        CountEvictions(evictions),
    )
}

/// Counts the entries the cache evicts to make room, for metrics (an invalidation
/// removes; it does not evict).
#[derive(Clone)]
struct CountEvictions(Arc<AtomicU64>);

impl quick_cache::Lifecycle<InnerHash, Arc<Lookup>> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _: &mut (), _: InnerHash, _: Arc<Lookup>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// How the cache is doing, for metrics: counts since the node started, and its size.
#[derive(Clone, Copy, Debug, Default)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub entries: u64,
    pub capacity: u64,
}

/// A key that a presented secret belongs to, as cached: shared, never copied per request.
pub struct Matched {
    pub key: Arc<ApiKey>,
    pub owner: Arc<User>,
    /// When this secret stops working: set for a secret replaced by rotation.
    pub secret_expires_at: Option<OffsetDateTime>,
    /// The native door's JSON answer to a valid verification of this key, rendered on
    /// first use. A cached entry never changes (a change to the key replaces it), so
    /// neither does the answer, and the hot path skips serializing it again.
    pub valid_answer: OnceLock<bytes::Bytes>,
}

/// What a presented secret led to (`found` is `None` when no key has it), when it was
/// read, and the verifications counted against it since the last flush.
pub struct Lookup {
    found: Option<Matched>,
    loaded_at: i64,
    tally: Mutex<Tally>,
}

/// Verifications of one cached entry not yet flushed, by minute and outcome. One lock
/// per entry: uncontended unless one key is verified on several threads at once, and
/// held for a few instructions.
#[derive(Default)]
struct Tally {
    /// The minute `counts` are for (Unix seconds of its start).
    minute: i64,
    counts: OutcomeCounts,
    /// Minutes counted before `minute` since the last flush.
    earlier: Vec<(i64, OutcomeCounts)>,
    /// Unix milliseconds of the latest valid use.
    last_valid_ms: Option<i64>,
    /// Whether the entry is on a pending list.
    listed: bool,
}

impl Tally {
    /// Counts one verification at `now`; answers whether the entry must be listed.
    fn count(&mut self, code: VerifyCode, now: Now) -> bool {
        let minute = Granularity::Minute.bucket(now.unix_seconds);
        // A clock read a moment earlier on another thread counts in the newer minute.
        if minute > self.minute {
            if self.counts.total() > 0 {
                self.earlier
                    .push((self.minute, std::mem::take(&mut self.counts)));
            }
            self.minute = minute;
        }
        self.counts.add(code, 1);
        if code.is_valid() {
            self.last_valid_ms = self.last_valid_ms.max(Some(now.unix_millis));
        }
        !std::mem::replace(&mut self.listed, true)
    }

    /// Everything counted, leaving the tally empty and unlisted.
    fn take(&mut self) -> Taken {
        let mut minutes = std::mem::take(&mut self.earlier);
        if self.counts.total() > 0 {
            minutes.push((self.minute, std::mem::take(&mut self.counts)));
        }
        self.listed = false;
        Taken {
            minutes,
            last_valid_ms: self.last_valid_ms.take(),
        }
    }

    /// Puts back what a failed flush took; answers whether the entry must be listed.
    fn restore(&mut self, taken: Taken) -> bool {
        self.earlier.extend(taken.minutes);
        self.last_valid_ms = self.last_valid_ms.max(taken.last_valid_ms);
        !std::mem::replace(&mut self.listed, true)
    }
}

/// What a flush took from one entry.
#[derive(Default)]
struct Taken {
    minutes: Vec<(i64, OutcomeCounts)>,
    last_valid_ms: Option<i64>,
}

impl Lookup {
    fn new(found: Option<Matched>, now: Now) -> Self {
        Lookup {
            found,
            loaded_at: now.unix_seconds,
            tally: Mutex::default(),
        }
    }

    /// Whether the entry may still be used at `now`. A clock that went backwards also
    /// ends it, so a stepped clock cannot stretch the TTL.
    fn is_fresh(&self, now: Now) -> bool {
        let age = now.unix_seconds - self.loaded_at;
        (0..CACHE_TTL.as_secs() as i64).contains(&age)
    }

    fn key_id(&self) -> Option<KeyId> {
        self.found.as_ref().map(|m| m.key.id)
    }
}

/// A credential that verified, remembered with what it led to: by one connection, for
/// its next request (see `connection.rs`). The text is zeroized when forgotten.
pub struct Recall {
    credential: Secret,
    lookup: Arc<Lookup>,
    /// [`Verifier::generation`] before the verification: any invalidation since, of
    /// any key, voids the recall.
    generation: u64,
}

/// The outcome of one verification. It is counted (for analytics and metrics) once
/// its final code is known, after limits: [`Verifier::count`].
pub struct Verdict {
    pub code: VerifyCode,
    /// The key and owner, when the secret belongs to a key (whatever its state).
    found: Option<Arc<Lookup>>,
    /// When it was made.
    at: Now,
}

impl Verdict {
    fn without_key(code: VerifyCode, at: Now) -> Self {
        Verdict {
            code,
            found: None,
            at,
        }
    }

    /// The same verdict as one that matched no key, to be counted as such.
    pub fn unmatched(&self) -> Verdict {
        Verdict::without_key(VerifyCode::NotFound, self.at)
    }

    pub fn matched(&self) -> Option<&Matched> {
        self.found.as_ref().and_then(|l| l.found.as_ref())
    }

    /// Who a valid verdict authenticates: the key, acting for its owner.
    pub fn principal(&self) -> Option<Principal> {
        let m = self.matched().filter(|_| self.code.is_valid())?;
        Some(Principal {
            user: Arc::clone(&m.owner),
            key: Some(Arc::clone(&m.key)),
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Freshness {
    epoch: u64,
    /// Whether other nodes' changes are being heard. While they are not, nothing is
    /// cached: an entry could go stale without anyone saying so.
    hearing: bool,
}

/// Which cached secrets belong to which key (and whose key it is), so that an
/// invalidation removes exactly those entries. Walking a full cache (100,000 entries)
/// instead took 15 ms per changed key, holding the epoch lock, and each shard's lock in
/// turn, all the while; and every node does it for every change any node makes.
///
/// It may list more than the cache holds (an evicted entry stays listed until the next
/// pruning), never less: an entry is listed as it is cached, both under the epoch's
/// read lock, and invalidations and pruning take the write lock.
#[derive(Default)]
struct Index {
    secrets: HashMap<KeyId, Listed>,
    listed: usize,
}

/// A key's cached secrets: nearly always one, two or more during a rotation's grace.
struct Listed {
    owner: UserId,
    first: InnerHash,
    more: Vec<InnerHash>,
}

impl Listed {
    fn hashes(&self) -> impl Iterator<Item = InnerHash> + '_ {
        std::iter::once(self.first).chain(self.more.iter().copied())
    }
}

impl Index {
    fn list(&mut self, key: KeyId, owner: UserId, hash: InnerHash) {
        match self.secrets.entry(key) {
            Entry::Vacant(slot) => {
                slot.insert(Listed {
                    owner,
                    first: hash,
                    more: Vec::new(),
                });
            }
            Entry::Occupied(mut slot) => {
                let listed = slot.get_mut();
                listed.owner = owner;
                if listed.hashes().any(|h| h == hash) {
                    return;
                }
                listed.more.push(hash);
            }
        }
        self.listed += 1;
    }

    /// Unlists a key; returns the secrets it had cached.
    fn take_key(&mut self, key: KeyId) -> Vec<InnerHash> {
        let hashes: Vec<_> = self
            .secrets
            .remove(&key)
            .map(|listed| listed.hashes().collect())
            .unwrap_or_default();
        self.listed -= hashes.len();
        hashes
    }

    /// Unlists every key of an owner; returns the secrets they had cached. Scans the
    /// index, which is far cheaper than scanning the cache, and owners change rarely.
    fn take_owner(&mut self, owner: UserId) -> Vec<InnerHash> {
        let mut hashes = Vec::new();
        self.secrets.retain(|_, listed| {
            let theirs = listed.owner == owner;
            if theirs {
                hashes.extend(listed.hashes());
            }
            !theirs
        });
        self.listed -= hashes.len();
        hashes
    }

    /// Unlists the secrets that are no longer cached.
    fn prune(&mut self, cached: impl Fn(&InnerHash) -> bool) {
        self.secrets.retain(|_, listed| {
            let mut kept = listed.hashes().filter(|h| cached(h)).collect::<Vec<_>>();
            let Some(first) = kept.pop() else {
                return false;
            };
            listed.first = first;
            listed.more = kept;
            true
        });
        self.listed = self.secrets.values().map(|l| 1 + l.more.len()).sum();
    }
}

pub struct Verifier {
    hasher: KeyHasher,
    store: DynStore,
    /// Keyed by the inner half of the secret's HMAC: a hit costs one SHA-256
    /// compression, and only a miss completes the HMAC to ask the store.
    cache: LookupCache,
    hits: AtomicU64,
    evictions: Arc<AtomicU64>,
    index: Mutex<Index>,
    /// One copy of each owner for all the owner's cached keys: a user has many keys,
    /// and a copy per key would multiply the cache's memory.
    owners: Cache<UserId, Arc<User>>,
    /// Bumped by every invalidation; a miss that read the store before a bump must not
    /// put what it read into the cache. The lock orders "check and insert" against
    /// "bump and invalidate"; only misses and invalidations take it.
    epoch: RwLock<Freshness>,
    /// The epoch's number, readable without the lock, for [`Recall`]s; written under
    /// the epoch's write lock.
    generation: AtomicU64,
    /// Entries with uses not yet flushed. Holding the entry (not a copy of its
    /// counters) means an entry evicted or invalidated meanwhile still gets flushed.
    pending: Vec<Mutex<Vec<Arc<Lookup>>>>,
    /// Verifications of secrets that matched no key, by tenant, minute and code, for
    /// analytics: rare (a caller's clients sending bad keys), so one lock.
    unmatched: Mutex<HashMap<(TenantId, i64, VerifyCode), u64>>,
    /// Every verification counted, by code, for metrics.
    outcomes: [AtomicU64; VerifyCode::COUNT],
    lookups: AtomicU64,
    clock: Arc<dyn Clock>,
}

impl Verifier {
    pub fn new(hasher: KeyHasher, store: DynStore, capacity: u64) -> Self {
        Self::with_clock(hasher, store, capacity, Arc::new(SystemClock))
    }

    pub fn with_clock(
        hasher: KeyHasher,
        store: DynStore,
        capacity: u64,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let evictions = Arc::new(AtomicU64::new(0));
        Verifier {
            clock,
            hasher,
            store,
            cache: cache(capacity, evictions.clone()),
            hits: AtomicU64::new(0),
            evictions,
            index: Mutex::default(),
            owners: Cache::new(OWNER_CACHE),
            epoch: RwLock::new(Freshness {
                epoch: 0,
                hearing: true,
            }),
            generation: AtomicU64::new(0),
            pending: (0..PENDING_SHARDS).map(|_| Mutex::default()).collect(),
            unmatched: Mutex::default(),
            outcomes: Default::default(),
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
        client: ClientAddress<'_>,
    ) -> Result<Verdict, StoreError> {
        if keyward_core::keyfmt::parse(presented).is_err() {
            return Ok(Verdict::without_key(
                VerifyCode::Malformed,
                self.clock.now(),
            ));
        }
        let inner = self.hasher.inner(presented);
        let now = self.clock.now();
        let lookup = match self.cache.get(&inner) {
            Some(lookup) if lookup.is_fresh(now) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                lookup
            }
            // Boxed: the miss is the rare path, and its future would otherwise make
            // every verification's future (and the request's, which holds it) larger.
            _ => Box::pin(self.load(inner, now)).await?,
        };
        Ok(self.conclude(lookup, tenant, required, client, now))
    }

    /// The decision on what a secret led to, at `now`.
    fn conclude(
        &self,
        lookup: Arc<Lookup>,
        tenant: Option<TenantId>,
        required: Option<&Query>,
        client: ClientAddress<'_>,
        now: Now,
    ) -> Verdict {
        let Some(m) = &lookup.found else {
            return Verdict::without_key(VerifyCode::NotFound, now);
        };
        if tenant.is_some_and(|t| m.key.tenant_id != t) {
            return Verdict::without_key(VerifyCode::NotFound, now);
        }
        let found = Found {
            key: &m.key,
            secret_expires_at: m.secret_expires_at,
            owner_active: m.owner.active,
            owner_grants: m.owner.effective_grants(),
        };
        let code = decide(&found, now.utc, required, client);
        Verdict {
            code,
            found: Some(lookup),
            at: now,
        }
    }

    /// How many invalidations this node has applied: a [`Recall`] made before the
    /// latest one is void. Read it before verifying what is to be remembered.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// What to remember of a valid verdict for `credential` (the text the secret was
    /// presented in), made at `generation`; `None` for anything else, or while other
    /// nodes' changes are not heard (nothing may be remembered then, as nothing is
    /// cached).
    pub fn remember(&self, credential: &str, verdict: &Verdict, generation: u64) -> Option<Recall> {
        let lookup = verdict.found.as_ref().filter(|_| verdict.code.is_valid())?;
        if !self.epoch.read().expect("epoch lock").hearing {
            return None;
        }
        Some(Recall {
            credential: Secret::new(credential),
            lookup: Arc::clone(lookup),
            generation,
        })
    }

    /// The verdict for `credential` from what was remembered of it, if it is the same
    /// credential and nothing has been invalidated since: skips the parse, the hash and
    /// the cache, not the decision (state, expiry, TTL) nor the count of the use.
    pub fn recall(
        &self,
        recall: &Recall,
        credential: &[u8],
        client: ClientAddress<'_>,
    ) -> Option<Verdict> {
        if recall.generation != self.generation() || !recall.credential.is(credential) {
            return None;
        }
        let now = self.clock.now();
        if !recall.lookup.is_fresh(now) {
            return None;
        }
        Some(self.conclude(Arc::clone(&recall.lookup), None, None, client, now))
    }

    async fn load(&self, inner: InnerHash, now: Now) -> Result<Arc<Lookup>, StoreError> {
        let epoch_before = *self.epoch.read().expect("epoch lock");
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let hash = self.hasher.finish(&inner);
        let found = self.store.lookup_secret(&hash).await?;
        // The store matched by hash; check the stored hash again in constant time, so
        // that a lax comparison in a database (a collation, a prefix index) can never
        // let a different secret through.
        let found = found
            .filter(|m| m.secret_hash.ct_eq(&hash))
            .map(|m| Matched {
                owner: self.shared_owner(m.owner),
                key: Arc::new(m.key),
                secret_expires_at: m.secret_expires_at,
                valid_answer: OnceLock::new(),
            });
        let lookup = Arc::new(Lookup::new(found, now));
        let epoch = self.epoch.read().expect("epoch lock");
        if *epoch == epoch_before && epoch.hearing {
            if let Some(m) = &lookup.found {
                let mut index = self.index.lock().expect("index lock");
                index.list(m.key.id, m.owner.id, inner);
            }
            self.cache.insert(inner, lookup.clone());
        }
        Ok(lookup)
    }

    /// The shared copy of an owner just read from the store. A shared copy that differs
    /// from what was read is replaced: the store is the truth.
    fn shared_owner(&self, owner: User) -> Arc<User> {
        match self.owners.get(&owner.id) {
            Some(shared) if *shared == owner => shared,
            _ => {
                let shared = Arc::new(owner);
                self.owners.insert(shared.id, shared.clone());
                shared
            }
        }
    }

    /// Forgets everything cached about one key, at once for this node.
    pub fn invalidate_key(&self, key: KeyId) {
        self.invalidate(|index| index.take_key(key));
    }

    /// Forgets every key of one owner (after the owner's role, grants or state changed).
    /// An owner with every cached key (100,000) takes 180 ms this way, against 120 ms
    /// for a walk of the cache; the walk costs 15 ms however few keys the owner has.
    pub fn invalidate_owner(&self, owner: UserId) {
        self.owners.remove(&owner);
        self.invalidate(|index| index.take_owner(owner));
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
        self.generation.store(epoch.epoch, Ordering::Release);
        self.cache.clear();
        self.owners.clear();
        *self.index.lock().expect("index lock") = Index::default();
    }

    /// Drops the entries of the secrets that `unlist` takes off the index, under the
    /// epoch's write lock: a miss that read the store before this cannot cache them again.
    fn invalidate(&self, unlist: impl FnOnce(&mut Index) -> Vec<InnerHash>) {
        let mut epoch = self.epoch.write().expect("epoch lock");
        epoch.epoch += 1;
        self.generation.store(epoch.epoch, Ordering::Release);
        let hashes = unlist(&mut self.index.lock().expect("index lock"));
        for hash in hashes {
            self.cache.remove(&hash);
        }
    }

    /// Unlists evicted entries once the index lists twice as many as the cache holds,
    /// so that it stays bounded. Walks the index: rare, and off the request path.
    fn prune_index(&self) {
        let listed = self.index.lock().expect("index lock").listed as u64;
        if listed <= self.cache.capacity().saturating_mul(2) {
            return;
        }
        let _epoch = self.epoch.write().expect("epoch lock");
        let mut index = self.index.lock().expect("index lock");
        index.prune(|hash| self.cache.contains_key(hash));
    }

    /// Store reads made on cache misses so far.
    pub fn store_lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    pub fn cached_entries(&self) -> u64 {
        self.cache.len() as u64
    }

    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.store_lookups(),
            evictions: self.evictions.load(Ordering::Relaxed),
            entries: self.cached_entries(),
            capacity: self.cache.capacity(),
        }
    }

    /// Counts a verification with its final `code` (a valid verdict may end refused
    /// by its limits): against its key, or, for a secret that matched no key of
    /// `tenant`, against the tenant. Only the entry's first count since the last flush
    /// puts it on a pending list.
    pub fn count(&self, verdict: &Verdict, code: VerifyCode, tenant: Option<TenantId>) {
        self.outcomes[code.index()].fetch_add(1, Ordering::Relaxed);
        match (&verdict.found, verdict.matched()) {
            (Some(lookup), Some(_)) => {
                let listed = lookup
                    .tally
                    .lock()
                    .expect("tally lock")
                    .count(code, verdict.at);
                if listed {
                    self.mark_pending(lookup);
                }
            }
            _ => {
                if let Some(tenant) = tenant {
                    let minute = Granularity::Minute.bucket(verdict.at.unix_seconds);
                    let mut unmatched = self.unmatched.lock().expect("unmatched lock");
                    *unmatched.entry((tenant, minute, code)).or_default() += 1;
                }
            }
        }
    }

    /// Verifications counted by this node since it started, by outcome code.
    pub fn outcomes(&self) -> OutcomeCounts {
        let mut counts = OutcomeCounts::default();
        for code in VerifyCode::ALL {
            counts.add(code, self.outcomes[code.index()].load(Ordering::Relaxed));
        }
        counts
    }

    fn mark_pending(&self, lookup: &Arc<Lookup>) {
        let shard = lookup.key_id().map_or(0, |k| k.0.as_u128() as usize) % PENDING_SHARDS;
        self.pending[shard]
            .lock()
            .expect("pending lock")
            .push(lookup.clone());
    }

    /// Takes what was counted since the last flush, to be written as one batch; hand
    /// it back with [`Verifier::restore_usage`] if the write fails, so that a store
    /// outage delays counts rather than losing them.
    pub fn take_usage(&self) -> UsageTaken {
        self.prune_index();
        let mut entries = Vec::new();
        for shard in &self.pending {
            let listed = std::mem::take(&mut *shard.lock().expect("pending lock"));
            // An entry leaves its list before its tally is taken: a count that lands in
            // between is taken here; one after it lists the entry again.
            entries.extend(listed.into_iter().map(|lookup| {
                let taken = lookup.tally.lock().expect("tally lock").take();
                (lookup, taken)
            }));
        }
        let unmatched = std::mem::take(&mut *self.unmatched.lock().expect("unmatched lock"));
        UsageTaken { entries, unmatched }
    }

    pub fn restore_usage(&self, taken: UsageTaken) {
        for (lookup, counts) in taken.entries {
            if lookup.tally.lock().expect("tally lock").restore(counts) {
                self.mark_pending(&lookup);
            }
        }
        let mut unmatched = self.unmatched.lock().expect("unmatched lock");
        for (slot, n) in taken.unmatched {
            *unmatched.entry(slot).or_default() += n;
        }
    }

    /// Writes the uses counted since the last flush (without credits: the
    /// application's flush writes both in one transaction).
    pub async fn flush_usage(&self) -> Result<usize, StoreError> {
        let taken = self.take_usage();
        let (keys, verifications) = taken.rows();
        let batch = UsageBatch {
            keys: &keys,
            verifications: &verifications,
            credits: &[],
        };
        match self.store.record_flush(batch).await {
            Ok(()) => Ok(keys.len()),
            Err(err) => {
                self.restore_usage(taken);
                Err(err)
            }
        }
    }
}

/// What [`Verifier::take_usage`] took.
pub struct UsageTaken {
    entries: Vec<(Arc<Lookup>, Taken)>,
    unmatched: HashMap<(TenantId, i64, VerifyCode), u64>,
}

impl UsageTaken {
    /// The store's rows: one usage row per key (a key can have several entries: its
    /// current and its previous secret, or an entry read again after an
    /// invalidation), and one count per key, minute and code.
    pub fn rows(&self) -> (Vec<KeyUsage>, Vec<VerificationCount>) {
        let mut by_key: HashMap<KeyId, KeyUsage> = HashMap::new();
        let mut verifications = Vec::new();
        for (lookup, taken) in &self.entries {
            let Some(m) = &lookup.found else { continue };
            let key = &m.key;
            let valid: u64 = taken
                .minutes
                .iter()
                .map(|(_, c)| c.get(VerifyCode::Valid))
                .sum();
            for (minute, counts) in &taken.minutes {
                for code in VerifyCode::ALL {
                    let count = counts.get(code);
                    if count > 0 {
                        verifications.push(VerificationCount {
                            tenant_id: key.tenant_id,
                            key_id: Some(key.id),
                            owner_id: Some(key.owner_id),
                            minute: *minute,
                            code,
                            count,
                        });
                    }
                }
            }
            let Some(ms) = taken.last_valid_ms.filter(|_| valid > 0) else {
                continue;
            };
            let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            let row = by_key.entry(key.id).or_insert(KeyUsage {
                key_id: key.id,
                last_used_at: at,
                uses: 0,
            });
            row.uses += i64::try_from(valid).unwrap_or(i64::MAX);
            row.last_used_at = row.last_used_at.max(at);
        }
        for (&(tenant, minute, code), &count) in &self.unmatched {
            verifications.push(VerificationCount {
                tenant_id: tenant,
                key_id: None,
                owner_id: None,
                minute,
                code,
                count,
            });
        }
        (by_key.into_values().collect(), verifications)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::ServerSecret;
    use keyward_store::testing::UnauditedWrites;

    struct Fixture {
        verifier: Arc<Verifier>,
        store: DynStore,
        owner: User,
        secrets: Vec<(KeyId, String)>,
        _dir: tempfile::TempDir,
    }

    /// A real SQLite store with `keys` keys of one owner.
    async fn fixture(keys: usize) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        let store = keyward_store::open(&url).await.unwrap();
        let (_, owner) = crate::create_tenant(&store, "t", "a@t.test", "password-1")
            .await
            .unwrap();
        let hasher = KeyHasher::new(&ServerSecret::generate());
        let mut secrets = Vec::new();
        for i in 0..keys {
            let (key, stored, secret) = crate::import::bench_key(&hasher, &owner, format!("k{i}"));
            store.create_key(&key, &stored).await.unwrap();
            secrets.push((key.id, secret.expose().to_string()));
        }
        let verifier = Arc::new(Verifier::new(hasher, store.clone(), 1000));
        Fixture {
            verifier,
            store,
            owner,
            secrets,
            _dir: dir,
        }
    }

    /// A key with several cached secrets (a rotation's grace) lists each once, and
    /// gives them all up when it changes; pruning keeps exactly the cached ones.
    #[test]
    fn the_index_lists_every_secret_of_a_key_once() {
        let (key, other, owner) = (KeyId::generate(), KeyId::generate(), UserId::generate());
        let hash = |n: u8| InnerHash([n; 32]);
        let mut index = Index::default();
        for n in [1, 2, 1, 3, 2] {
            index.list(key, owner, hash(n));
        }
        index.list(other, UserId::generate(), hash(9));
        assert_eq!(index.listed, 4);
        index.prune(|h| *h != hash(1));
        assert_eq!(index.listed, 3);
        let mut taken = index.take_key(key);
        taken.sort_by_key(|h| h.0);
        assert_eq!(taken, vec![hash(2), hash(3)]);
        assert_eq!(index.take_owner(owner), vec![]);
        assert_eq!(index.listed, 1);
        index.prune(|_| false);
        assert!(index.secrets.is_empty());
        assert_eq!(index.listed, 0);
    }

    /// Whether verifying `secret` now reads the store (a miss) rather than the cache.
    async fn misses(verifier: &Verifier, secret: &str) -> bool {
        let before = verifier.store_lookups();
        let verdict = verifier.verify(secret, None, None, &|| None).await.unwrap();
        assert!(verdict.code.is_valid());
        verifier.store_lookups() > before
    }

    /// Invalidations find their entries through the index, which follows evictions: it
    /// is pruned once it lists twice what the cache holds, and never loses a cached
    /// entry, so an entry evicted, cached again and then invalidated is really gone.
    #[tokio::test]
    async fn the_index_follows_evictions_and_invalidations() {
        let f = fixture(160).await;
        let verifier = Verifier::new(f.verifier.hasher().clone(), f.store.clone(), 75);
        for (_, secret) in &f.secrets {
            assert!(misses(&verifier, secret).await);
        }
        assert_eq!(verifier.index.lock().unwrap().listed, 160);
        verifier.flush_usage().await.unwrap();
        let listed = verifier.index.lock().unwrap().listed;
        assert!(
            listed <= verifier.cache.len(),
            "{listed} listed after pruning"
        );
        for (hash, lookup) in verifier.cache.iter() {
            let key = lookup.key_id().unwrap();
            let index = verifier.index.lock().unwrap();
            assert!(
                index.secrets[&key].hashes().any(|h| h == hash),
                "a cached entry is unlisted"
            );
        }

        // Evicted long ago, cached again: invalidating the key forgets it.
        let (first, secret) = &f.secrets[0];
        misses(&verifier, secret).await;
        assert!(!misses(&verifier, secret).await, "cached");
        verifier.invalidate_key(*first);
        assert!(misses(&verifier, secret).await, "forgotten");

        // Every cached key of the owner, forgotten with the owner.
        let cached: Vec<_> = f.secrets.iter().take(70).collect();
        for (_, secret) in &cached {
            verifier.verify(secret, None, None, &|| None).await.unwrap();
        }
        verifier.invalidate_owner(f.owner.id);
        assert!(verifier.index.lock().unwrap().secrets.is_empty());
        for (_, secret) in &cached {
            assert!(misses(&verifier, secret).await, "forgotten with the owner");
        }
    }

    /// A recall stands for exactly the credential remembered, is decided again each time
    /// (and counted), and is void after any invalidation, of any key, or while other
    /// nodes' changes go unheard.
    #[tokio::test]
    async fn a_recall_stands_until_anything_changes() {
        let f = fixture(2).await;
        let v = &f.verifier;
        let (key, secret) = &f.secrets[0];
        let header = format!("Bearer {secret}");
        let remembered = || async {
            let generation = v.generation();
            let verdict = v.verify(secret, None, None, &|| None).await.unwrap();
            v.count(&verdict, verdict.code, None);
            v.remember(&header, &verdict, generation)
                .expect("a valid key is remembered")
        };
        let recall = remembered().await;
        let verdict = v
            .recall(&recall, header.as_bytes(), &|| None)
            .expect("recalled");
        v.count(&verdict, verdict.code, None);
        assert!(verdict.code.is_valid());
        assert_eq!(verdict.matched().unwrap().key.id, *key);
        assert!(
            v.recall(&recall, secret.as_bytes(), &|| None).is_none(),
            "another text"
        );
        let mut altered = header.clone().into_bytes();
        *altered.last_mut().unwrap() ^= 1;
        assert!(
            v.recall(&recall, &altered, &|| None).is_none(),
            "one bit off"
        );
        v.flush_usage().await.unwrap();
        assert_eq!(recorded_uses(&f, *key).await, 2, "recalls are counted");

        v.invalidate_key(f.secrets[1].0);
        assert!(
            v.recall(&recall, header.as_bytes(), &|| None).is_none(),
            "any invalidation"
        );
        let recall = remembered().await;
        v.apply(ChangeEvent::Lost);
        assert!(
            v.recall(&recall, header.as_bytes(), &|| None).is_none(),
            "feed lost"
        );
        let generation = v.generation();
        let verdict = v.verify(secret, None, None, &|| None).await.unwrap();
        assert!(
            v.remember(&header, &verdict, generation).is_none(),
            "not while deaf"
        );
        v.apply(ChangeEvent::Resumed);

        let unknown = keyward_core::KeyShape::Native.generate();
        let verdict = v
            .verify(unknown.expose(), None, None, &|| None)
            .await
            .unwrap();
        assert!(
            v.remember("Bearer x", &verdict, v.generation()).is_none(),
            "a refusal"
        );
        // Remembered before an invalidation it did not see: void.
        let generation = v.generation();
        let verdict = v.verify(secret, None, None, &|| None).await.unwrap();
        v.invalidate_owner(f.owner.id);
        let stale = v.remember(&header, &verdict, generation).unwrap();
        assert!(
            v.recall(&stale, header.as_bytes(), &|| None).is_none(),
            "made stale"
        );
    }

    async fn recorded_uses(f: &Fixture, key: KeyId) -> i64 {
        f.store
            .key(f.owner.tenant_id, key)
            .await
            .unwrap()
            .unwrap()
            .use_count
    }

    /// Uses counted while flushes and invalidations run concurrently are all recorded,
    /// once each: the counters live on cache entries that come and go meanwhile.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_use_is_recorded_once_under_concurrent_flushes() {
        let f = fixture(3).await;
        let rounds = 2000;
        let mut tasks = Vec::new();
        for worker in 0..4 {
            let verifier = f.verifier.clone();
            let secrets = f.secrets.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..rounds {
                    let (id, secret) = &secrets[(i + worker) % secrets.len()];
                    let verdict = verifier.verify(secret, None, None, &|| None).await.unwrap();
                    assert!(verdict.code.is_valid());
                    verifier.count(&verdict, verdict.code, None);
                    if i % 97 == 0 {
                        verifier.invalidate_key(*id);
                    }
                }
            }));
        }
        let flusher = {
            let verifier = f.verifier.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    verifier.flush_usage().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        for task in tasks {
            task.await.unwrap();
        }
        flusher.await.unwrap();
        f.verifier.flush_usage().await.unwrap();
        let mut total = 0;
        for (id, _) in &f.secrets {
            total += recorded_uses(&f, *id).await;
        }
        assert_eq!(total, 4 * rounds as i64);
        assert_eq!(
            f.verifier.flush_usage().await.unwrap(),
            0,
            "nothing left over"
        );
    }

    #[tokio::test]
    async fn refused_and_unknown_secrets_count_nothing() {
        let f = fixture(1).await;
        let (id, secret) = &f.secrets[0];
        let unknown = keyward_core::KeyShape::Native.generate();
        for _ in 0..3 {
            let verdict = f
                .verifier
                .verify(unknown.expose(), None, None, &|| None)
                .await
                .unwrap();
            assert_eq!(verdict.code, VerifyCode::NotFound);
            let verdict = f
                .verifier
                .verify("garbage", None, None, &|| None)
                .await
                .unwrap();
            assert_eq!(verdict.code, VerifyCode::Malformed);
        }
        // Another tenant's view of the key: not found, and not counted.
        let other = TenantId::generate();
        let verdict = f
            .verifier
            .verify(secret, Some(other), None, &|| None)
            .await
            .unwrap();
        assert_eq!(verdict.code, VerifyCode::NotFound);
        assert_eq!(f.verifier.flush_usage().await.unwrap(), 0);
        assert_eq!(recorded_uses(&f, *id).await, 0);
    }

    #[tokio::test]
    async fn a_cached_entry_is_read_again_after_its_ttl() {
        let f = fixture(1).await;
        let (_, secret) = &f.secrets[0];
        f.verifier
            .verify(secret, None, None, &|| None)
            .await
            .unwrap();
        f.verifier
            .verify(secret, None, None, &|| None)
            .await
            .unwrap();
        assert_eq!(f.verifier.store_lookups(), 1, "the second use is cached");
        let lookup = f
            .verifier
            .cache
            .get(&f.verifier.hasher.inner(secret))
            .unwrap();
        let now = crate::clock::now();
        let at = |seconds: i64| Now {
            unix_seconds: now.unix_seconds + seconds,
            ..now
        };
        assert!(lookup.is_fresh(now));
        assert!(lookup.is_fresh(at(CACHE_TTL.as_secs() as i64 - 1)));
        assert!(!lookup.is_fresh(at(CACHE_TTL.as_secs() as i64)));
        assert!(!lookup.is_fresh(at(-5)), "clock stepped back");
    }

    #[tokio::test]
    async fn keys_of_one_owner_share_one_copy_until_the_owner_changes() {
        let f = fixture(2).await;
        let owner_of = |verdict: &Verdict| verdict.matched().unwrap().owner.clone();
        let a = f
            .verifier
            .verify(&f.secrets[0].1, None, None, &|| None)
            .await
            .unwrap();
        let b = f
            .verifier
            .verify(&f.secrets[1].1, None, None, &|| None)
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&owner_of(&a), &owner_of(&b)));

        let mut changed = f.owner.clone();
        changed.display_name = "renamed".into();
        f.store.update_user(&changed).await.unwrap();
        f.verifier.invalidate_owner(changed.id);
        let c = f
            .verifier
            .verify(&f.secrets[0].1, None, None, &|| None)
            .await
            .unwrap();
        assert_eq!(owner_of(&c).display_name, "renamed");
        assert!(!Arc::ptr_eq(&owner_of(&a), &owner_of(&c)));
    }
}
