//! The per-function cache handle: get-or-compute with single-flight, clears and stats.

use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::backend::{Backend, Fill, Lookup};
use crate::flight::{Flights, Outcome, Role};
use crate::key::{KeyRef, OwnedKey, Selector, StrictKeys};
use crate::mode::Mode;
use crate::stats::Counters;
use crate::{BoxFuture, CacheControl, CacheStats, CachedFunction, Config, Error};

/// The cache of one function: its store `B`, keys `K` (the owned argument tuple) and
/// cached values `V`. `f::cache()` returns it.
#[derive(Debug)]
pub struct FunctionCache<K, V, B> {
    function: &'static CachedFunction,
    /// `None` when caching is off (`limit` or `expire` is 0) or the store failed to open.
    store: Option<B>,
    /// Advanced by every clear before it removes anything; see [`Fill`].
    generation: AtomicU64,
    flights: Flights<K, V>,
    counters: Counters,
}

/// A lookup that found nothing: what the computation needs to store its value.
#[derive(Debug)]
pub struct Miss<K, T> {
    /// `None`: run the body and store nothing.
    fill: Option<(K, T)>,
}

impl<K, V, B> FunctionCache<K, V, B>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    B: Backend<K, V>,
{
    /// Opens the handle of `function` with the limits of its attribute or the
    /// installed [`Config`]. Generated code calls this once per function.
    #[doc(hidden)]
    pub fn open(function: &'static CachedFunction, strict: Option<StrictKeys<K>>) -> Self {
        let counters = Counters::default();
        let policy = function.policy(Config::global());
        let store = policy
            .caches()
            .then(|| {
                B::open(function, policy, strict)
                    .inspect_err(|err| {
                        counters.error();
                        tracing::error!(function = function.path(), %err, "memo-alchemy: running uncached");
                    })
                    .ok()
            })
            .flatten();
        FunctionCache {
            function,
            store,
            generation: AtomicU64::new(0),
            flights: Flights::default(),
            counters,
        }
    }

    /// The function this handle caches.
    pub fn function(&self) -> &'static CachedFunction {
        self.function
    }

    /// Looks `key` up; a miss carries what the computation needs to store its value.
    #[doc(hidden)]
    #[inline]
    pub fn lookup<Q: KeyRef<K> + ?Sized>(&self, key: &Q) -> Lookup<V, Miss<K, B::Ticket>> {
        let Some(store) = &self.store else { return self.uncached() };
        match store.get(key) {
            Ok(found) => self.count(found, || key.to_owned_key()),
            Err(err) => self.failed(&err),
        }
    }

    /// [`lookup`](FunctionCache::lookup) for `async` functions.
    #[doc(hidden)]
    pub async fn lookup_async<Q: KeyRef<K> + Sync + ?Sized>(&self, key: &Q) -> Lookup<V, Miss<K, B::Ticket>> {
        let Some(store) = &self.store else { return self.uncached() };
        match store.get_async(key).await {
            Ok(found) => self.count(found, || key.to_owned_key()),
            Err(err) => self.failed(&err),
        }
    }

    #[inline]
    fn count(&self, found: Lookup<V, B::Ticket>, key: impl FnOnce() -> K) -> Lookup<V, Miss<K, B::Ticket>> {
        match found {
            Lookup::Hit(v) => {
                self.counters.hit();
                Lookup::Hit(v)
            }
            Lookup::Miss(ticket) => {
                self.counters.miss();
                Lookup::Miss(Miss { fill: Some((key(), ticket)) })
            }
        }
    }

    fn uncached(&self) -> Lookup<V, Miss<K, B::Ticket>> {
        self.counters.miss();
        Lookup::Miss(Miss { fill: None })
    }

    #[cold]
    fn failed(&self, err: &Error) -> Lookup<V, Miss<K, B::Ticket>> {
        self.report(err);
        self.uncached()
    }

    /// Computes a missed value once for all concurrent callers, stores it, returns it.
    /// A return value for which `discard` holds (an `Err`) is returned and not stored.
    #[doc(hidden)]
    pub fn compute<R, M: Mode<R, Value = V>>(
        &self,
        miss: Miss<K, B::Ticket>,
        discard: fn(&R) -> bool,
        body: impl FnOnce() -> R,
    ) -> R {
        let (Some(store), Some((key, mut ticket))) = (&self.store, miss.fill) else {
            return body();
        };
        let leader = loop {
            match self.flights.join(&key, self.generation.load(Ordering::Acquire)) {
                Role::Lead(leader) => break leader,
                Role::Wait(flight) => match flight.wait() {
                    Outcome::Value(v) => return M::join(v),
                    // Side by side with the other waiters, rather than one after another.
                    Outcome::Failed => return self.compute_alone::<R, M>(store, key, ticket, discard, body),
                    Outcome::Abandoned => {}
                },
            }
        };
        // A leader that finished between our lookup and our join has stored its value.
        if B::RECHECK_ON_LEAD {
            match store.get(&OwnedKey(&key)) {
                Ok(Lookup::Hit(v)) => {
                    leader.publish(v.clone());
                    return M::join(v);
                }
                Ok(Lookup::Miss(fresh)) => ticket = fresh,
                Err(err) => self.report(&err),
            }
        }
        let value = match split::<R, M>(body(), discard) {
            Ok(value) => value,
            Err(uncached) => {
                leader.fail();
                return uncached;
            }
        };
        let fill = Fill::new(&self.generation, leader.generation(), ticket);
        if let Err(err) = store.put(key, value.clone(), fill) {
            self.report(&err);
        }
        leader.publish(value.clone());
        M::join(value)
    }

    /// Runs the body without single-flight (its leader's body failed) and stores an
    /// `Ok` value as a leader would.
    fn compute_alone<R, M: Mode<R, Value = V>>(
        &self,
        store: &B,
        key: K,
        ticket: B::Ticket,
        discard: fn(&R) -> bool,
        body: impl FnOnce() -> R,
    ) -> R {
        let started = self.generation.load(Ordering::Acquire);
        let value = match split::<R, M>(body(), discard) {
            Ok(value) => value,
            Err(uncached) => return uncached,
        };
        if let Err(err) = store.put(key, value.clone(), Fill::new(&self.generation, started, ticket)) {
            self.report(&err);
        }
        M::join(value)
    }

    /// [`compute`](FunctionCache::compute) for `async` functions.
    #[doc(hidden)]
    pub async fn compute_async<R, M: Mode<R, Value = V>>(
        &self,
        miss: Miss<K, B::Ticket>,
        discard: fn(&R) -> bool,
        body: impl Future<Output = R>,
    ) -> R {
        let (Some(store), Some((key, mut ticket))) = (&self.store, miss.fill) else {
            return body.await;
        };
        let leader = loop {
            match self.flights.join(&key, self.generation.load(Ordering::Acquire)) {
                Role::Lead(leader) => break leader,
                Role::Wait(flight) => match flight.wait_async().await {
                    Outcome::Value(v) => return M::join(v),
                    Outcome::Failed => {
                        let started = self.generation.load(Ordering::Acquire);
                        let value = match split::<R, M>(body.await, discard) {
                            Ok(value) => value,
                            Err(uncached) => return uncached,
                        };
                        let fill = Fill::new(&self.generation, started, ticket);
                        if let Err(err) = store.put_async(key, value.clone(), fill).await {
                            self.report(&err);
                        }
                        return M::join(value);
                    }
                    Outcome::Abandoned => {}
                },
            }
        };
        if B::RECHECK_ON_LEAD {
            match store.get_async(&OwnedKey(&key)).await {
                Ok(Lookup::Hit(v)) => {
                    leader.publish(v.clone());
                    return M::join(v);
                }
                Ok(Lookup::Miss(fresh)) => ticket = fresh,
                Err(err) => self.report(&err),
            }
        }
        let value = match split::<R, M>(body.await, discard) {
            Ok(value) => value,
            Err(uncached) => {
                leader.fail();
                return uncached;
            }
        };
        let fill = Fill::new(&self.generation, leader.generation(), ticket);
        if let Err(err) = store.put_async(key, value.clone(), fill).await {
            self.report(&err);
        }
        leader.publish(value.clone());
        M::join(value)
    }

    /// Counts a store failure. The store logs its own outages, once when it goes down
    /// and at most once a second after (see [`Health`](crate::Health)): one line per
    /// failed call would flood the log while Redis is down.
    fn report(&self, err: &Error) {
        self.counters.error();
        tracing::debug!(function = self.function.path(), %err, "memo-alchemy: computing directly");
    }

    /// Clears this function, then everything downstream of it.
    ///
    /// # Errors
    /// The first store that could not be cleared.
    pub fn clear(&self) -> Result<usize, Error> {
        self.function.clear()
    }

    /// The function's counters.
    pub fn stats(&self) -> CacheStats {
        CacheControl::stats(self)
    }

    /// Starts a clear: no fill that began before this point may store afterwards.
    fn begin_clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// The value to cache, or the return value to hand back uncached.
fn split<R, M: Mode<R>>(ret: R, discard: fn(&R) -> bool) -> Result<M::Value, R> {
    if discard(&ret) {
        Err(ret)
    } else {
        M::split(ret)
    }
}

impl<K, V, B> CacheControl for FunctionCache<K, V, B>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    B: Backend<K, V>,
{
    fn clear_own(&self) -> Result<usize, Error> {
        self.begin_clear();
        self.store.as_ref().map_or(Ok(0), B::clear)
    }

    fn clear_own_by(&self, selector: &Selector) -> Result<usize, Error> {
        let Some(resolved) = self.function.resolve(selector) else { return self.clear_own() };
        self.begin_clear();
        self.store.as_ref().map_or(Ok(0), |s| s.clear_by(&resolved))
    }

    fn clear_own_async(&self) -> BoxFuture<'_, Result<usize, Error>> {
        Box::pin(async move {
            self.begin_clear();
            match &self.store {
                Some(store) => store.clear_async().await,
                None => Ok(0),
            }
        })
    }

    fn clear_own_by_async<'a>(&'a self, selector: &'a Selector) -> BoxFuture<'a, Result<usize, Error>> {
        Box::pin(async move {
            let Some(resolved) = self.function.resolve(selector) else { return self.clear_own_async().await };
            self.begin_clear();
            match &self.store {
                Some(store) => store.clear_by_async(&resolved).await,
                None => Ok(0),
            }
        })
    }

    fn stats(&self) -> CacheStats {
        let mut stats = self.counters.snapshot(Some(0));
        if let Some(store) = &self.store {
            let s = store.stats();
            stats.evictions = s.evictions;
            stats.expirations = s.expirations;
            stats.errors += s.errors;
            stats.len = s.len;
        }
        stats
    }
}
