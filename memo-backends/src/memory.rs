//! The memory backend: an in-process LRU map per function, behind one lock.

use std::hash::{BuildHasher, Hash};

use memo_core::{
    now_ms, Backend, CachedFunction, Error, Fill, KeyRef, Lookup, Policy, StoreStats, StrictKeys,
};
use parking_lot::Mutex;

use crate::lru::{Found, Lru};

/// Values in this process's memory, least recently used evicted first.
///
/// A hit hashes the borrowed arguments, takes the lock, finds the slot, moves it to
/// the front of the recency list and clones the value. The clock is read only when
/// the function has an `expire`.
#[derive(Debug)]
pub struct Memory<K, V> {
    state: Mutex<State<K, V>>,
    policy: Policy,
    strict: Option<StrictKeys<K>>,
    hasher: foldhash::fast::RandomState,
}

#[derive(Debug)]
struct State<K, V> {
    lru: Lru<K, V>,
    evictions: u64,
    expirations: u64,
}

impl<K, V> Memory<K, V> {
    fn now(&self) -> u64 {
        if self.policy.expire_ms.is_some() {
            now_ms()
        } else {
            0
        }
    }
}

impl<K, V> Backend<K, V> for Memory<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    const NAME: &'static str = "memory";
    type Ticket = ();

    fn open(
        _: &'static CachedFunction,
        policy: Policy,
        strict: Option<StrictKeys<K>>,
    ) -> Result<Self, Error> {
        Ok(Memory {
            state: Mutex::new(State { lru: Lru::new(), evictions: 0, expirations: 0 }),
            policy,
            strict,
            hasher: Default::default(),
        })
    }

    #[inline]
    fn get<Q: KeyRef<K> + ?Sized>(&self, key: &Q) -> Result<Lookup<V, ()>, Error> {
        let hash = self.hasher.hash_one(key);
        let now = self.now();
        let mut state = self.state.lock();
        match state.lru.get(hash, now, |k| key.matches(k)) {
            Found::Live(v) => Ok(Lookup::Hit(v.clone())),
            Found::Expired => {
                state.expirations += 1;
                Ok(Lookup::Miss(()))
            }
            Found::Absent => Ok(Lookup::Miss(())),
        }
    }

    fn put(&self, key: K, value: V, fill: Fill<'_, ()>) -> Result<(), Error> {
        let hash = self.hasher.hash_one(&key);
        let expires_at = self.policy.expire_ms.map_or(u64::MAX, |ms| now_ms().saturating_add(ms));
        let mut state = self.state.lock();
        // Checked under the lock that clears take: see `Fill`.
        if fill.is_current() {
            let evicted = state.lru.insert(hash, key, value, expires_at, self.policy.limit);
            state.evictions += evicted;
        }
        Ok(())
    }

    fn clear(&self) -> Result<usize, Error> {
        Ok(self.state.lock().lru.clear())
    }

    fn clear_by(&self, resolved: &[(usize, &[u8])]) -> Result<usize, Error> {
        let Some(strict) = self.strict else { return self.clear() };
        Ok(self.state.lock().lru.remove_where(|k| strict.matches(k, resolved)))
    }

    fn stats(&self) -> StoreStats {
        let state = self.state.lock();
        StoreStats {
            evictions: state.evictions,
            expirations: state.expirations,
            len: Some(state.lru.len()),
            ..StoreStats::default()
        }
    }
}
