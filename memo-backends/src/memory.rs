//! The memory backend: an in-process map per function.
//!
//! Two stores, chosen by `limit`:
//!
//! - up to `EXACT_LRU_MAX` (64) entries, an exact LRU behind a mutex (a hit moves the
//!   entry to the front of the list): small caches keep the least recently used
//!   order exactly;
//! - above that, or unlimited, CLOCK maps (`second_chance`), one per shard of the
//!   keys' hashes, behind a `ReadMostly` lock: a hit takes no lock word, relinks
//!   nothing and reads the coarse clock, so two threads hitting at once do not write
//!   any line they share, and a write leaves the other shards' lines alone. Each shard
//!   holds its share of the `limit`. CLOCK approximates LRU; the `hit_ratio` bench
//!   measures how closely.

use std::hash::{BuildHasher, Hash};
use std::time::Duration;

use memo_core::{
    coarse_now_ms, now_ms, Backend, BackendKind, CachedFunction, Error, Fill, KeyRef, Lookup, Policy,
    RenderTags, StoreFor, StoreStats, StrictKeys,
};
use parking_lot::Mutex;

use crate::lru::{Found, Lru};
use crate::read_mostly::{ReadMostly, MAX_SHARDS};
use crate::second_chance::SecondChance;
use crate::sketch::Sketch;

/// The largest `limit` kept in exact LRU order; larger caches evict by CLOCK.
pub(crate) const EXACT_LRU_MAX: usize = 64;

/// How far ahead of the coarse clock an entry's expiry is checked against the precise
/// clock, so that the coarse clock's lag (a 5 ms tick, plus the ticker's wait for a
/// core) never serves an entry past its time: expiry stays exact to the millisecond
/// while the ticker is less than 15 ms late. Entries in their last 20 ms pay a precise
/// clock read per hit.
const SLACK_MS: u64 = 20;

/// Values in this process's memory, evicted least recently used first: exactly up to
/// a `limit` of 64, approximately (CLOCK) above it.
///
/// A hit hashes the borrowed arguments, finds the entry and clones the value. In a
/// CLOCK store it does so without writing anything other threads read: no lock word,
/// no list relinking, and the expiry check reads a clock that a background thread
/// advances every 5 ms (started only by a function with an `expire`), and the precise
/// clock only in an entry's last 20 ms.
#[derive(Debug)]
pub struct Memory<K, V> {
    store: Store<K, V>,
    /// The policy's expiry in milliseconds, converted once for the hit path.
    expire_ms: Option<u64>,
    /// For each entry's lifetime (`expire`, spread by `expire_jitter`).
    policy: Policy,
    strict: Option<StrictKeys<K>>,
    hasher: foldhash::fast::RandomState,
}

#[derive(Debug)]
enum Store<K, V> {
    Exact(Mutex<Counted<Lru<K, V>>>),
    Clock(ReadMostly<Counted<SecondChance<K, V>>>),
}

/// A map, its share of the limit, what it removed, and (when it has a limit) the
/// sketch that decides what a full map lets in.
#[derive(Debug)]
struct Counted<M> {
    map: M,
    limit: Option<usize>,
    evictions: u64,
    expirations: u64,
    sketch: Option<Sketch>,
}

impl<M> Counted<M> {
    fn new(map: M, limit: Option<usize>) -> Self {
        Counted { map, limit, evictions: 0, expirations: 0, sketch: limit.map(Sketch::new) }
    }

    /// Whether a new value may be stored: always while the map has room or replaces an
    /// entry; when full, only if TinyLFU prefers it to the entry it would evict.
    fn admits(
        &mut self,
        hash: u64,
        full: impl FnOnce(&M) -> bool,
        victim: impl FnOnce(&mut M) -> Option<u64>,
    ) -> bool {
        let Some(sketch) = &mut self.sketch else { return true };
        if full(&self.map) {
            sketch.admits(hash, victim(&mut self.map))
        } else {
            sketch.increment(hash);
            true
        }
    }
}

/// Shards of a CLOCK store: enough that each holds 512 entries or more, at most
/// `MAX_SHARDS` (16).
fn shard_count(limit: Option<usize>) -> usize {
    limit.map_or(MAX_SHARDS, |l| (l / 512).next_power_of_two().clamp(1, MAX_SHARDS))
}

/// Splits `limit` over `shards` exactly: shard `i`'s share.
pub(crate) fn share(limit: Option<usize>, shards: usize, i: usize) -> Option<usize> {
    limit.map(|l| l / shards + usize::from(i < l % shards))
}

/// The shard of a hash (bits that hashbrown uses for neither the bucket nor the tag).
#[inline]
fn shard_of(hash: u64, shards: usize) -> usize {
    (hash >> 40) as usize & (shards - 1)
}

/// `backend = "memory"` (the default): values in this process's memory.
#[derive(Debug, Clone, Copy)]
pub struct MemoryBackend;

impl BackendKind for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }
}

impl<K, V> StoreFor<K, V> for MemoryBackend
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    type Store = Memory<K, V>;
}

impl<K, V> Memory<K, V> {
    /// The precise clock for writes, clears and statistics: 0 without `expire` (nothing
    /// expires then).
    fn now(&self) -> u64 {
        if self.expire_ms.is_some() {
            now_ms()
        } else {
            0
        }
    }

    /// The clock for expiry checks: coarse, and 0 (never read) without `expire`.
    #[inline]
    fn coarse_now(&self) -> u64 {
        if self.expire_ms.is_some() {
            coarse_now_ms()
        } else {
            0
        }
    }
}

/// Whether an entry expiring at `expires_at` has expired, given the coarse time: only
/// entries close to their expiry read the precise clock.
#[inline]
fn expired(expires_at: u64, coarse: u64) -> bool {
    expires_at <= coarse.saturating_add(SLACK_MS) && expires_at <= now_ms()
}

impl<K, V> Backend<K, V> for Memory<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    type Ticket = ();

    fn open(
        _: &'static CachedFunction,
        policy: Policy,
        strict: Option<StrictKeys<K>>,
        _: Option<RenderTags<K>>,
    ) -> Result<Self, Error> {
        let limit = policy.limit.max();
        let store = match limit {
            Some(max) if max <= EXACT_LRU_MAX => Store::Exact(Mutex::new(Counted::new(Lru::new(), limit))),
            limit => {
                let n = shard_count(limit);
                Store::Clock(ReadMostly::new(
                    (0..n).map(|i| Counted::new(SecondChance::new(), share(limit, n, i))),
                ))
            }
        };
        let expire_ms = policy.expire.after_ms();
        if expire_ms.is_some() {
            coarse_now_ms(); // starts the ticker now rather than on the first hit
        }
        Ok(Memory { store, expire_ms, policy, strict, hasher: Default::default() })
    }

    #[inline]
    fn get<Q: KeyRef<K> + ?Sized>(&self, key: &Q) -> Result<Lookup<V, ()>, Error> {
        let hash = self.hasher.hash_one(key);
        let coarse = self.coarse_now();
        let is_expired = |at| expired(at, coarse);
        let found = match &self.store {
            Store::Clock(lock) => lock.read(shard_of(hash, lock.shards()), |c| {
                match c.map.get(hash, is_expired, |k| key.matches(k)) {
                    Found::Live(v, at) => Some(Some((v.clone(), at))),
                    Found::Expired => Some(None),
                    Found::Absent => None,
                }
            }),
            Store::Exact(lock) => {
                let mut guard = lock.lock();
                let state = &mut *guard;
                match state.map.get(hash, is_expired, |k| key.matches(k)) {
                    Found::Live(v, at) => {
                        // Under the lock anyway: hits count towards admission too.
                        if let Some(sketch) = &mut state.sketch {
                            sketch.increment(hash);
                        }
                        Some(Some((v.clone(), at)))
                    }
                    Found::Expired => {
                        state.expirations += 1;
                        None
                    }
                    Found::Absent => None,
                }
            }
        };
        Ok(match found {
            Some(Some((v, at))) if self.policy.tracks_freshness() => self.judged(v, at, hash),
            Some(Some((v, _))) => Lookup::Hit(v),
            Some(None) => {
                self.remove_expired(hash, key);
                Lookup::Miss(())
            }
            None => Lookup::Miss(()),
        })
    }

    fn put(&self, key: K, value: V, fill: Fill<'_, ()>) -> Result<(), Error> {
        let hash = self.hasher.hash_one(&key);
        let now = self.now();
        let expires_at = self.policy.retention_ms(hash).map_or(u64::MAX, |ms| now.saturating_add(ms));
        // Checked under the lock that clears take: see `Fill`.
        match &self.store {
            Store::Exact(lock) => {
                let mut state = lock.lock();
                let limit = state.limit;
                let full = |m: &Lru<K, V>| limit.is_some_and(|l| m.len() >= l) && !m.contains(hash, &key);
                if fill.is_current() && state.admits(hash, full, |m| m.victim_hash()) {
                    state.evictions += state.map.insert(hash, key, value, expires_at, limit);
                }
            }
            Store::Clock(lock) => lock.write(shard_of(hash, lock.shards()), |c| {
                let limit = c.limit;
                let hash_of = |k: &K| self.hasher.hash_one(k);
                let full =
                    |m: &SecondChance<K, V>| limit.is_some_and(|l| m.len() >= l) && !m.contains(hash, &key);
                if fill.is_current() && c.admits(hash, full, |m| m.victim_hash(hash_of)) {
                    let removed = c.map.insert(hash, key, value, expires_at, now, limit, hash_of);
                    c.evictions += removed.evicted;
                    c.expirations += removed.expired;
                }
            }),
        }
        Ok(())
    }

    fn reserve(&self, _: &K) -> Result<(), Error> {
        Ok(())
    }

    fn remove(&self, key: &K) -> Result<bool, Error> {
        let now = self.now();
        let expires_at = self.with_map(key, |map, hash| match map {
            Map::Exact(lru) => lru.remove_key(hash, |k| k == key),
            Map::Clock(clock) => clock.remove_key(hash, |k| k == key),
        });
        Ok(expires_at.is_some_and(|at| self.alive(at, now)))
    }

    fn ttl(&self, key: &K) -> Result<Option<Duration>, Error> {
        let now = self.now();
        let expires_at = self.with_map(key, |map, hash| match map {
            Map::Exact(lru) => lru.expiry(hash, |k| k == key, |at| at),
            Map::Clock(clock) => clock.expiry(hash, |k| k == key, |at| at),
        });
        // The entry is kept `stale` past its lifetime.
        let lifetime_end = expires_at.filter(|&at| at < NEVER_MS).map(|at| at - self.policy.stale_ms);
        Ok(lifetime_end.filter(|&end| end > now).map(|end| Duration::from_millis(end - now)))
    }

    fn touch(&self, key: &K) -> Result<bool, Error> {
        let now = self.now();
        let hash = self.hasher.hash_one(key);
        let renewed = self.policy.retention_ms(hash).map_or(u64::MAX, |ms| now.saturating_add(ms));
        let restart = |at: u64| if self.alive(at, now) { renewed } else { at };
        let expires_at = self.with_map(key, |map, hash| match map {
            Map::Exact(lru) => lru.expiry(hash, |k| k == key, restart),
            Map::Clock(clock) => clock.expiry(hash, |k| k == key, restart),
        });
        Ok(expires_at.is_some_and(|at| self.alive(at, now)))
    }

    fn clear(&self) -> Result<usize, Error> {
        let now = self.now();
        let removed = match &self.store {
            Store::Exact(lock) => lock.lock().map.clear(now),
            // In place: the tables keep their memory for the entries to come.
            Store::Clock(lock) => (0..lock.shards()).map(|i| lock.write(i, |c| c.map.clear(now))).sum(),
        };
        Ok(removed)
    }

    fn clear_by(&self, resolved: &[(usize, &[u8])]) -> Result<usize, Error> {
        let Some(strict) = self.strict else { return self.clear() };
        self.clear_tagged(&|k: &K| strict.matches(k, resolved))
    }

    fn clear_tagged(&self, doomed: &(dyn Fn(&K) -> bool + Sync)) -> Result<usize, Error> {
        Ok(match &self.store {
            Store::Exact(lock) => lock.lock().map.remove_where(doomed),
            Store::Clock(lock) => {
                (0..lock.shards()).map(|i| lock.write(i, |c| c.map.remove_where(doomed))).sum()
            }
        })
    }

    fn stats(&self) -> StoreStats {
        let stats = |evictions, expirations, len| StoreStats {
            evictions,
            expirations,
            len: Some(len),
            ..StoreStats::default()
        };
        let now = self.now();
        match &self.store {
            Store::Exact(lock) => {
                let s = lock.lock();
                stats(s.evictions, s.expirations, s.map.live(now))
            }
            Store::Clock(lock) => (0..lock.shards())
                .map(|i| lock.read(i, |s| (s.evictions, s.expirations, s.map.live(now))))
                .fold(stats(0, 0, 0), |total, (ev, ex, len)| {
                    stats(total.evictions + ev, total.expirations + ex, total.len.unwrap_or(0) + len)
                }),
        }
    }
}

/// The map that holds one key, under its lock, for the operations on one entry.
enum Map<'a, K, V> {
    Exact(&'a mut Lru<K, V>),
    Clock(&'a mut SecondChance<K, V>),
}

/// An expiry time at or past this is "never" in both maps.
const NEVER_MS: u64 = u64::MAX >> 1;

impl<K, V> Memory<K, V>
where
    K: Hash + Eq,
{
    /// A live value, judged by its age for `stale` and `refresh`: it was written its
    /// retention before it expires at `at`.
    #[cold]
    fn judged(&self, value: V, at: u64, hash: u64) -> Lookup<V, ()> {
        match self.policy.retention_ms(hash) {
            Some(retention) if at < NEVER_MS => {
                Lookup::of(value, || (), self.policy.freshness(at - retention, self.now(), hash))
            }
            _ => Lookup::Hit(value),
        }
    }

    /// Whether an entry kept until `at` is within its lifetime at `now` (not past it, in
    /// the `stale` window).
    fn alive(&self, at: u64, now: u64) -> bool {
        at.saturating_sub(self.policy.stale_ms) > now
    }

    /// Runs `f` on the map that holds `key`, with `key`'s hash, under its lock.
    fn with_map<R>(&self, key: &K, f: impl FnOnce(Map<'_, K, V>, u64) -> R) -> R {
        let hash = self.hasher.hash_one(key);
        match &self.store {
            Store::Exact(lock) => f(Map::Exact(&mut lock.lock().map), hash),
            Store::Clock(lock) => {
                lock.write(shard_of(hash, lock.shards()), |c| f(Map::Clock(&mut c.map), hash))
            }
        }
    }

    /// Removes the entry of `key` if it is (still) expired, counting it once.
    #[cold]
    fn remove_expired<Q: KeyRef<K> + ?Sized>(&self, hash: u64, key: &Q) {
        if let Store::Clock(lock) = &self.store {
            lock.write(shard_of(hash, lock.shards()), |c| {
                if c.map.remove_expired(hash, now_ms(), |k| key.matches(k)) {
                    c.expirations += 1;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn limits_split_exactly_over_shards() {
        for limit in [65, 511, 512, 1000, 10_000, 1_000_003] {
            let n = shard_count(Some(limit));
            assert!((1..=MAX_SHARDS).contains(&n) && n.is_power_of_two());
            assert_eq!((0..n).map(|i| share(Some(limit), n, i).unwrap_or(0)).sum::<usize>(), limit);
        }
        assert_eq!(shard_count(None), MAX_SHARDS);
    }

    /// Readers, writers and clears at once on a sharded CLOCK store: every value read
    /// belongs to its key, and no shard outgrows its share.
    #[test]
    fn concurrent_reads_writes_and_clears_stay_consistent() {
        let (limit, n) = (Some(600), 4);
        let lock = ReadMostly::new((0..n).map(|i| Counted::new(SecondChance::new(), share(limit, n, i))));
        let hasher = foldhash::fast::FixedState::with_seed(3);
        std::thread::scope(|s| {
            for t in 0..4_u64 {
                let (lock, hasher) = (&lock, &hasher);
                s.spawn(move || {
                    let mut x = t + 1;
                    for i in 0..40_000_u64 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let key = x % 2_000;
                        let hash = hasher.hash_one(key);
                        let shard = shard_of(hash, n);
                        let found = lock.read(shard, |c| match c.map.get(hash, |_| false, |k| *k == key) {
                            Found::Live(v, _) => Some(*v),
                            _ => None,
                        });
                        match found {
                            Some(v) => assert_eq!(v, key * 3, "a value read belongs to its key"),
                            None => lock.write(shard, |c| {
                                let limit = c.limit;
                                c.evictions += c
                                    .map
                                    .insert(hash, key, key * 3, u64::MAX, 0, limit, |k| hasher.hash_one(k))
                                    .evicted;
                            }),
                        }
                        if t == 0 && i % 5_000 == 0 {
                            for shard in 0..n {
                                lock.write(shard, |c| c.map.clear(0));
                            }
                        }
                    }
                });
            }
        });
        for i in 0..n {
            lock.read(i, |c| assert!(c.map.len() <= c.limit.unwrap_or(usize::MAX)));
        }
    }
}
