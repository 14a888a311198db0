//! A map evicting by CLOCK (second chance), an approximation of LRU whose reads change
//! nothing but a "referenced" bit, and that only when it is not set yet. So a hit on a
//! hot entry writes nothing at all, and reads can share the map (see `ReadMostly`).
//!
//! Entries sit in the hash table's own buckets, so a hit reads one bucket, as a bare
//! hash map does, and the referenced bit is the top bit of the entry's expiry time, so
//! it costs neither a byte nor another cache line. When the map is full, a hand sweeps
//! the buckets in order: an entry read since the hand last passed loses its bit and
//! stays, the first one not read goes.
//!
//! Expired entries that nobody reads again are reclaimed on writes: when the table is
//! full and would grow, a sweep first removes every expired entry, so memory follows
//! the live set (an unlimited cache of short-lived keys stays at about twice its live
//! entries) at an amortized cost of O(1) per insert.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use hashbrown::HashTable;

use crate::lru::Found;

/// The referenced bit, in an entry's `expiry`.
const REFERENCED: u64 = 1 << 63;
/// The expiry time of an entry that never expires (all bits but `REFERENCED`).
const NEVER: u64 = !REFERENCED;

#[derive(Debug)]
struct Entry<K, V> {
    key: K,
    value: V,
    /// `now_ms()` past which the entry is expired (`NEVER` for never), and in the top
    /// bit whether it was read since the hand last passed. Readers only ever set that
    /// bit, to the same value, under the shared lock; the rest changes under the
    /// exclusive one.
    expiry: AtomicU64,
}

impl<K, V> Entry<K, V> {
    fn new(key: K, value: V, expires_at: u64) -> Self {
        Entry { key, value, expiry: AtomicU64::new(expires_at.min(NEVER)) }
    }
}

/// What an insert removed to make room.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Removed {
    /// Live entries, to stay within the limit.
    pub(crate) evicted: u64,
    /// Expired entries, reclaimed before the table would grow.
    pub(crate) expired: u64,
}

/// The CLOCK map.
#[derive(Debug)]
pub(crate) struct SecondChance<K, V> {
    table: HashTable<Entry<K, V>>,
    /// The next bucket the hand looks at.
    hand: usize,
}

impl<K, V> SecondChance<K, V> {
    pub(crate) fn new() -> Self {
        SecondChance { table: HashTable::new(), hand: 0 }
    }

    /// Whether `key` has an entry (expired or not).
    pub(crate) fn contains(&self, hash: u64, key: &K) -> bool
    where
        K: Eq,
    {
        self.table.find(hash, |e| e.key == *key).is_some()
    }

    /// The hash of the entry a full map evicts next; the hand stays on it (clearing
    /// the referenced bits it passes, as the eviction itself would).
    pub(crate) fn victim_hash(&mut self, hash_of: impl Fn(&K) -> u64) -> Option<u64> {
        if self.len() == 0 {
            return None;
        }
        let index = self.victim();
        self.table.get_bucket(index).map(|e| hash_of(&e.key))
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// The entries not expired by `now`: a scan, for statistics.
    pub(crate) fn live(&self, now: u64) -> usize {
        self.table.iter().filter(|e| e.expiry.load(Relaxed) & NEVER > now).count()
    }

    /// Finds the entry for which `eq` holds and marks it referenced. Entries whose
    /// expiry time `expired` accepts are reported, not removed: this is the shared,
    /// read-only side.
    #[inline]
    pub(crate) fn get(
        &self,
        hash: u64,
        expired: impl Fn(u64) -> bool,
        eq: impl Fn(&K) -> bool,
    ) -> Found<'_, V> {
        let Some(entry) = self.table.find(hash, |e| eq(&e.key)) else { return Found::Absent };
        let expiry = entry.expiry.load(Relaxed);
        if expired(expiry & NEVER) {
            return Found::Expired;
        }
        // Written once per turn of the hand at most: a hot entry's line stays shared.
        if expiry & REFERENCED == 0 {
            entry.expiry.store(expiry | REFERENCED, Relaxed);
        }
        Found::Live(&entry.value, expiry & NEVER)
    }

    /// Removes the entry for which `eq` holds; its expiry time, if there was one.
    pub(crate) fn remove_key(&mut self, hash: u64, eq: impl Fn(&K) -> bool) -> Option<u64> {
        let entry = self.table.find_entry(hash, |e| eq(&e.key)).ok()?;
        let expiry = entry.get().expiry.load(Relaxed) & NEVER;
        entry.remove();
        Some(expiry)
    }

    /// The expiry time of the entry for which `eq` holds, which `update` replaces.
    pub(crate) fn expiry(
        &mut self,
        hash: u64,
        eq: impl Fn(&K) -> bool,
        update: impl FnOnce(u64) -> u64,
    ) -> Option<u64> {
        let entry = self.table.find(hash, |e| eq(&e.key))?;
        let expiry = entry.expiry.load(Relaxed);
        let old = expiry & NEVER;
        entry.expiry.store((expiry & REFERENCED) | update(old).min(NEVER), Relaxed);
        Some(old)
    }

    /// Removes the entry for which `eq` holds if it expired by `now`; whether it did.
    pub(crate) fn remove_expired(&mut self, hash: u64, now: u64, eq: impl Fn(&K) -> bool) -> bool {
        match self.table.find_entry(hash, |e| eq(&e.key)) {
            Ok(entry) if entry.get().expiry.load(Relaxed) & NEVER <= now => {
                entry.remove();
                true
            }
            _ => false,
        }
    }

    /// Inserts or replaces at time `now`; returns how many entries were removed to make
    /// room: evicted to stay within `limit`, and reclaimed because they expired.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        expires_at: u64,
        now: u64,
        limit: Option<usize>,
        hash_of: impl Fn(&K) -> u64,
    ) -> Removed
    where
        K: Eq,
    {
        if let Some(entry) = self.table.find_mut(hash, |e| e.key == key) {
            *entry = Entry::new(key, value, expires_at);
            return Removed::default();
        }
        let mut removed = Removed::default();
        if self.len() == self.table.capacity() {
            // The table would grow: reclaim the expired entries first.
            let before = self.len();
            self.table.retain(|e| e.expiry.load(Relaxed) & NEVER > now);
            removed.expired = (before - self.len()) as u64;
        }
        let cap = limit.unwrap_or(usize::MAX);
        let mut evicted = 0;
        while self.len() >= cap && self.len() > 0 {
            let victim = self.victim();
            if let Ok(entry) = self.table.get_bucket_entry(victim) {
                entry.remove();
                evicted += 1;
            }
            self.hand = victim + 1;
        }
        self.table.insert_unique(hash, Entry::new(key, value, expires_at), |e| hash_of(&e.key));
        removed.evicted = evicted;
        removed
    }

    /// The next bucket to evict: the first occupied one, from the hand on, not read
    /// since the hand last passed. Two turns at most: the first clears every bit.
    fn victim(&mut self) -> usize {
        let buckets = self.table.num_buckets();
        loop {
            if self.hand >= buckets {
                self.hand = 0;
            }
            let index = self.hand;
            let Some(entry) = self.table.get_bucket_mut(index) else {
                self.hand += 1;
                continue;
            };
            let expiry = entry.expiry.get_mut();
            if *expiry & REFERENCED == 0 {
                // The hand stays on the victim until it is removed.
                return index;
            }
            *expiry &= NEVER;
            self.hand += 1;
        }
    }

    /// Removes every entry, keeping the table's memory for the entries to come;
    /// returns how many were live (not expired by `now`).
    pub(crate) fn clear(&mut self, now: u64) -> usize {
        let n = self.live(now);
        self.table.clear();
        self.hand = 0;
        n
    }

    /// Removes every entry whose key satisfies `doomed`; returns how many.
    pub(crate) fn remove_where(&mut self, mut doomed: impl FnMut(&K) -> bool) -> usize {
        let before = self.len();
        self.table.retain(|e| !doomed(&e.key));
        before - self.len()
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    fn hash(k: &u64) -> u64 {
        foldhash::fast::FixedState::with_seed(7).hash_one(k)
    }

    fn insert(map: &mut SecondChance<u64, u64>, k: u64, limit: usize) -> u64 {
        map.insert(hash(&k), k, k * 10, u64::MAX, 0, Some(limit), hash).evicted
    }

    fn has(map: &SecondChance<u64, u64>, k: u64) -> bool {
        matches!(map.get(hash(&k), |_| false, |x| *x == k), Found::Live(..))
    }

    #[test]
    fn a_read_entry_survives_evictions_that_unread_ones_do_not() {
        let mut map = SecondChance::new();
        for k in 0..100 {
            insert(&mut map, k, 100);
        }
        for round in 0..20 {
            assert!(has(&map, 7), "7 is read before every insert (round {round})");
            assert_eq!(insert(&mut map, 1_000 + round, 100), 1);
        }
        assert_eq!(map.len(), 100);
    }

    #[test]
    fn stays_within_its_limit_and_finds_what_it_keeps() {
        let mut map = SecondChance::new();
        let mut evicted = 0;
        for k in 0..10_000 {
            evicted += insert(&mut map, k % 3_000, 1_000);
            if k % 7 == 0 {
                has(&map, k / 2 % 3_000);
            }
        }
        assert_eq!(map.len(), 1_000);
        let found = (0..3_000).filter(|&k| has(&map, k)).count();
        assert_eq!(found, 1_000, "every entry is found ({evicted} evicted)");
    }

    #[test]
    fn expired_entries_are_reported_then_removed() {
        let mut map = SecondChance::new();
        map.insert(hash(&1), 1, 10, 50, 0, None, hash);
        assert!(matches!(map.get(hash(&1), |at| at <= 49, |x| *x == 1), Found::Live(10, _)));
        assert!(matches!(map.get(hash(&1), |at| at <= 50, |x| *x == 1), Found::Expired));
        assert!(!map.remove_expired(hash(&1), 49, |x| *x == 1));
        assert!(map.remove_expired(hash(&1), 50, |x| *x == 1));
        assert!(matches!(map.get(hash(&1), |_| false, |x| *x == 1), Found::Absent));
        assert_eq!(map.remove_where(|_| true), 0);
    }

    /// Regression: with no limit, expired entries that nobody read again stayed, and
    /// memory followed every key ever written (4,000,000 entries for 1,000,000 live).
    #[test]
    fn expired_entries_are_reclaimed_before_the_table_grows() {
        let mut map = SecondChance::new();
        let (lifetime, per_ms) = (10_u64, 1_000_u64);
        let mut reclaimed = 0;
        for k in 0..100_000_u64 {
            let now = k / per_ms; // 1,000 new keys a millisecond, each living 10 ms
            reclaimed += map.insert(hash(&k), k, k, now + lifetime, now, None, hash).expired;
        }
        let now = 100_000 / per_ms;
        let live = map.live(now);
        assert!(live <= (lifetime + 1) as usize * per_ms as usize, "{live} live");
        assert!(map.len() <= 4 * live, "{} entries held for {live} live", map.len());
        assert!(reclaimed >= 50_000, "{reclaimed} reclaimed");
        assert_eq!(map.clear(now), live, "a clear counts live entries only");
    }
}
