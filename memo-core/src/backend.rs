//! The `Backend` trait: the seam every store plugs into.

use std::future::{ready, Future};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::key::{KeyRef, Selector, StrictKeys};
use crate::{BoxFuture, CachedFunction, Error, Policy, RenderTags};

/// The answer to a lookup: the value, or what the store needs to fill the key later.
#[derive(Debug)]
pub enum Lookup<V, T> {
    /// The stored value.
    Hit(V),
    /// No value; the ticket goes back to the store with the computed value.
    Miss(T),
    /// A value past its lifetime, kept by `stale`: a miss, whose computation falls back
    /// on it when the body fails.
    Stale(V, T),
    /// A value older than `refresh`: served, and recomputed in the background.
    Refresh(V, T),
}

impl<V, T> Lookup<V, T> {
    /// The value a call would be served: a hit's, or one due for a refresh.
    pub fn hit(self) -> Option<V> {
        match self {
            Lookup::Hit(v) | Lookup::Refresh(v, _) => Some(v),
            Lookup::Miss(_) | Lookup::Stale(..) => None,
        }
    }

    /// A lookup of a value written at `written_ms` (a hit), as `freshness` says it is.
    pub fn of(value: V, ticket: impl FnOnce() -> T, freshness: crate::Freshness) -> Lookup<V, T> {
        match freshness {
            crate::Freshness::Fresh => Lookup::Hit(value),
            crate::Freshness::Refresh => Lookup::Refresh(value, ticket()),
            crate::Freshness::Stale => Lookup::Stale(value, ticket()),
        }
    }
}

/// What a shared store tells the leader of a miss in this process before it runs the
/// body, under `single_flight = "global"` (see [`Backend::lead`]).
#[derive(Debug)]
pub enum Lead<V> {
    /// Compute: the ticket now carries this process's lease on the key, and the store
    /// writes the value back only while the lease is still this process's.
    Run,
    /// Another process computed the value while this one waited for its lease.
    Value(V),
    /// Another process holds the lease (only for a lead that does not wait).
    Busy,
}

/// Counts a store keeps and reports through [`Backend::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Entries removed to respect `limit`.
    pub evictions: u64,
    /// Entries removed because they expired.
    pub expirations: u64,
    /// Values the store found but could not decode (counted as misses too).
    pub errors: u64,
    /// Entries stored now, where known.
    pub len: Option<usize>,
}

/// Permission to store one computed value, valid only while no clear has begun since
/// the computation started.
///
/// A store checks [`is_current`](Fill::is_current) under the same lock (or in the
/// same atomic script) as its write, and a clear advances the generation before it
/// removes anything. So a computation that began before a clear can never store its
/// value after that clear.
#[derive(Debug)]
pub struct Fill<'a, T> {
    generation: &'a AtomicU64,
    started: u64,
    /// What the store's lookup handed out with the miss.
    pub ticket: T,
}

impl<'a, T> Fill<'a, T> {
    /// A fill for a computation that started at generation `started`.
    pub fn new(generation: &'a AtomicU64, started: u64, ticket: T) -> Self {
        Fill { generation, started, ticket }
    }

    /// Whether no clear has begun since the computation started.
    pub fn is_current(&self) -> bool {
        self.generation.load(Ordering::Acquire) == self.started
    }
}

/// A backend as a type: a unit struct that `#[cache(backend = ...)]` names (the
/// built-in names map to the built-in kinds), which names the backend and does what
/// needs no opened store. Each function records its kind, so that clears and
/// `flush_all` reach its entries even in a process that never called it.
///
/// ```
/// use memo_core::{Backend, BackendKind, CachedFunction, Error, StoreFor};
/// # use memo_core::{Fill, KeyRef, Lookup, Policy, RenderTags, StoreStats, StrictKeys};
///
/// /// `#[cache(backend = Nowhere)]`: stores nothing.
/// pub struct Nowhere;
///
/// impl BackendKind for Nowhere {
///     fn name(&self) -> &'static str {
///         "nowhere"
///     }
/// }
///
/// impl<K: Send + Sync + 'static, V: Send + Sync + 'static> StoreFor<K, V> for Nowhere {
///     type Store = NowhereStore;
/// }
///
/// pub struct NowhereStore;
///
/// impl<K: Send + Sync + 'static, V: Send + Sync + 'static> Backend<K, V> for NowhereStore {
///     type Ticket = ();
///     fn open(_: &'static CachedFunction, _: Policy, _: Option<StrictKeys<K>>, _: Option<RenderTags<K>>) -> Result<Self, Error> {
///         Ok(NowhereStore)
///     }
///     fn get<Q: KeyRef<K> + ?Sized>(&self, _: &Q) -> Result<Lookup<V, ()>, Error> {
///         Ok(Lookup::Miss(()))
///     }
///     fn reserve(&self, _: &K) -> Result<(), Error> {
///         Ok(())
///     }
///     fn put(&self, _: K, _: V, _: Fill<'_, ()>) -> Result<(), Error> {
///         Ok(())
///     }
///     fn clear(&self) -> Result<usize, Error> {
///         Ok(0)
///     }
///     fn clear_by(&self, _: &[(usize, &[u8])]) -> Result<usize, Error> {
///         Ok(0)
///     }
///     fn stats(&self) -> StoreStats {
///         StoreStats::default()
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a backend kind",
    note = "a built-in backend needs its cargo feature of memo-alchemy: `redis` (on by default) for \
            `json`, `pickle` and `distributed_memory`, `postgres` for `postgres`",
    note = "a backend of your own is a unit struct implementing `BackendKind` and `StoreFor<K, V>`"
)]
pub trait BackendKind: Send + Sync + 'static {
    /// The backend's name: `memory`, `json`, ... It appears in Redis keys, in
    /// [`CachedFunction::backend`] and in errors.
    fn name(&self) -> &'static str;

    /// Whether a clear in another process reaches this kind's entries without this
    /// process (a shared store, or a bus). Entries that are private to each process
    /// (the default) are cleared here when another process's clear reaches a function
    /// upstream of them.
    fn is_shared(&self) -> bool {
        false
    }

    /// Clears `function`, which this process never opened: its entries may still be in
    /// a shared store, or in other processes. `selector` is `None` for a full clear.
    /// The default does nothing, which suits stores private to a process.
    ///
    /// # Errors
    /// When the shared store cannot be reached.
    fn cold_clear(
        &self,
        function: &'static CachedFunction,
        selector: Option<&Selector>,
    ) -> Result<usize, Error> {
        let _ = (function, selector);
        Ok(0)
    }

    /// Removes every entry left under the configured prefix, for `flush_all`; runs once
    /// per kind that some registered function uses. The default does nothing.
    ///
    /// # Errors
    /// When the shared store cannot be reached.
    fn sweep(&self) -> Result<usize, Error> {
        Ok(0)
    }

    /// [`sweep`](BackendKind::sweep) for `flush_all_async`.
    fn sweep_async(&self) -> BoxFuture<'static, Result<usize, Error>> {
        let swept = self.sweep();
        Box::pin(async move { swept })
    }

    /// Removes the entries carrying any of `tags` that live outside this process (in a
    /// shared store, in other processes), whichever function wrote them; runs once per
    /// kind that some registered function uses, for [`invalidate_tags`](crate::invalidate_tags).
    /// Returns the entries removed from a shared store. The default does nothing, which
    /// suits stores private to a process (their handles remove tagged entries through
    /// [`Backend::clear_tagged`]).
    ///
    /// # Errors
    /// When the shared store cannot be reached.
    fn invalidate_tags(&self, tags: &[String]) -> Result<usize, Error> {
        let _ = tags;
        Ok(0)
    }

    /// The state of the store this kind uses, probed now, for [`health`](crate::health);
    /// `None` (the default) for stores inside the process, which cannot be down.
    fn health(&self) -> Option<crate::StoreHealth> {
        None
    }

    /// [`invalidate_tags`](BackendKind::invalidate_tags) for `async` callers.
    fn invalidate_tags_async(&self, tags: Vec<String>) -> BoxFuture<'static, Result<usize, Error>> {
        let removed = self.invalidate_tags(&tags);
        Box::pin(async move { removed })
    }
}

/// The store a backend kind gives a function whose keys are `K` and values `V`; its
/// bounds are what the backend needs of them (`Serialize`, ...).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is no backend kind for these arguments and this return type",
    note = "a built-in backend needs its cargo feature of memo-alchemy: `redis` (on by default) for \
            `json`, `pickle` and `distributed_memory`, `postgres` for `postgres`",
    note = "a backend of your own is a unit struct implementing `BackendKind` and `StoreFor<K, V>`"
)]
pub trait StoreFor<K: Send + Sync + 'static, V: Send + Sync + 'static>: BackendKind {
    /// The store.
    type Store: Backend<K, V>;
}

/// A store for one cached function's entries.
///
/// `K` is the function's owned argument tuple and `V` the value it caches. The
/// function handle drives a backend; single-flight, statistics and the clear-versus-fill
/// generation live in the handle, so a backend only stores, finds and removes.
/// The `*_async` methods default to the blocking ones, which suits in-process stores;
/// network stores override them.
///
/// An error from [`get`](Backend::get) or [`put`](Backend::put) makes the call compute
/// directly and is counted, not logged per call: a store that can go down logs its own
/// outages through a [`Health`](crate::Health), once down, at most once a second, once
/// back.
pub trait Backend<K: Send + Sync + 'static, V: Send + Sync + 'static>: Send + Sync + Sized + 'static {
    /// What a miss hands to the later fill.
    type Ticket: Send + 'static;
    /// Whether a caller that becomes the leader of a computation looks the key up
    /// again first, in case a previous leader stored it a moment ago. Worth it when a
    /// lookup is cheap; a network store may prefer an occasional duplicate computation.
    const RECHECK_ON_LEAD: bool = true;
    /// Whether [`get`](Backend::get) answers at once, without waiting on I/O (an
    /// in-process store): an `async` caller then calls it directly, as cheaply as a
    /// blocking one. Network stores set it to `false`, and `async` callers use
    /// [`get_async`](Backend::get_async).
    const GET_AT_ONCE: bool = true;

    /// Opens the store of `function`, under `policy` (never `Off`: a function whose
    /// caching is off opens no store). `strict` is given for `strict = true` functions.
    ///
    /// # Errors
    /// When the store cannot be used; the function then runs uncached.
    /// `tags` renders an entry's tags, for functions declared with `tags = [...]`.
    fn open(
        function: &'static CachedFunction,
        policy: Policy,
        strict: Option<StrictKeys<K>>,
        tags: Option<RenderTags<K>>,
    ) -> Result<Self, Error>;

    /// Finds the value of `key`.
    ///
    /// # Errors
    /// When the store cannot be read; the call then computes directly.
    fn get<Q: KeyRef<K> + ?Sized>(&self, key: &Q) -> Result<Lookup<V, Self::Ticket>, Error>;

    /// Stores `value` under `key` if `fill` is still current.
    ///
    /// # Errors
    /// When the store cannot be written; the computed value is still returned.
    fn put(&self, key: K, value: V, fill: Fill<'_, Self::Ticket>) -> Result<(), Error>;

    /// Removes every entry; returns how many there were.
    ///
    /// # Errors
    /// When the store cannot be reached: a clear never fails silently.
    fn clear(&self) -> Result<usize, Error>;

    /// Removes the entries whose argument `index` encodes to `bytes`, for every
    /// `(index, bytes)` in `resolved`. Only called on strict functions.
    ///
    /// # Errors
    /// As for [`clear`](Backend::clear).
    fn clear_by(&self, resolved: &[(usize, &[u8])]) -> Result<usize, Error>;

    /// Evictions, expirations and length.
    fn stats(&self) -> StoreStats;

    /// The stored values of `keys`, in order, for `cache_many`, which calls the function
    /// for each `None`: a network store reads them all in one round trip. The default
    /// reads nothing ahead (each call then looks its key up), which suits in-process
    /// stores.
    ///
    /// # Errors
    /// When the store cannot be read; the calls then look up and compute as usual.
    fn get_many(&self, keys: &[K]) -> Result<Vec<Option<V>>, Error> {
        Ok(keys.iter().map(|_| None).collect())
    }

    /// [`get_many`](Backend::get_many) for `async` callers.
    fn get_many_async<'a>(
        &'a self,
        keys: &'a [K],
    ) -> impl Future<Output = Result<Vec<Option<V>>, Error>> + Send + 'a {
        ready(self.get_many(keys))
    }

    /// Prepares a direct write of `key` (`cache_entry(..).set(v)`): a fill that began
    /// before (in this process or, for a shared store, in another) must not store after
    /// it, and other processes' copies of the entry must go; returns the ticket to write
    /// with, as a miss of `key` would hand out.
    ///
    /// # Errors
    /// When the store cannot be reached.
    fn reserve(&self, key: &K) -> Result<Self::Ticket, Error>;

    /// Before the leader of a miss in this process runs the body: with
    /// `single_flight = "global"`, a shared store takes a lease on `key` for this
    /// process (recorded in `ticket`, which [`put`](Backend::put) then checks: a value
    /// whose lease was taken over, or that a clear or a tag invalidation overtook, is
    /// not stored), or waits while another process holds it, for its value, until the
    /// lease runs out. With `wait = false` (a background refresh), a held lease is
    /// [`Lead::Busy`] at once. The default, for stores private to a process, is
    /// [`Lead::Run`].
    ///
    /// # Errors
    /// When the store cannot be reached; the caller then computes.
    fn lead(&self, key: &K, ticket: &mut Self::Ticket, wait: bool) -> Result<Lead<V>, Error> {
        let _ = (key, ticket, wait);
        Ok(Lead::Run)
    }

    /// Gives up the lease a [`lead`](Backend::lead) took, when the body failed and
    /// nothing will be stored, so that other processes need not wait it out.
    ///
    /// # Errors
    /// When the store cannot be reached (the lease then runs out by itself).
    fn release(&self, key: &K, ticket: &Self::Ticket) -> Result<(), Error> {
        let _ = (key, ticket);
        Ok(())
    }

    /// [`lead`](Backend::lead) for `async` callers.
    fn lead_async<'a>(
        &'a self,
        key: &'a K,
        ticket: &'a mut Self::Ticket,
        wait: bool,
    ) -> impl Future<Output = Result<Lead<V>, Error>> + Send + 'a {
        ready(self.lead(key, ticket, wait))
    }

    /// [`release`](Backend::release) for `async` callers.
    fn release_async<'a>(
        &'a self,
        key: &'a K,
        ticket: &'a Self::Ticket,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'a {
        ready(self.release(key, ticket))
    }

    /// Removes the entry of `key`, so that no fill that began before stores it again;
    /// returns whether a live one was there. The default clears everything, which is
    /// safe.
    ///
    /// # Errors
    /// When the store cannot be reached.
    fn remove(&self, key: &K) -> Result<bool, Error> {
        let _ = key;
        self.clear().map(|n| n > 0)
    }

    /// The lifetime left to the live entry of `key`; `None` when there is none or it
    /// never expires. The default, for a store that keeps no lifetimes, is `None`.
    ///
    /// # Errors
    /// When the store cannot be reached.
    fn ttl(&self, key: &K) -> Result<Option<Duration>, Error> {
        let _ = key;
        Ok(None)
    }

    /// Restarts the lifetime of the live entry of `key`; whether there was one. The
    /// default, for a store that keeps no lifetimes, is `false`.
    ///
    /// # Errors
    /// When the store cannot be reached.
    fn touch(&self, key: &K) -> Result<bool, Error> {
        let _ = key;
        Ok(false)
    }

    /// Removes the entries of this process for which `tagged` holds (their tags meet an
    /// [`invalidate_tags`](crate::invalidate_tags)); returns how many. The default
    /// clears everything, which is safe. A store whose entries live outside the process
    /// returns 0: its kind's [`invalidate_tags`](BackendKind::invalidate_tags) removes
    /// them, once for every function.
    ///
    /// # Errors
    /// As for [`clear`](Backend::clear).
    fn clear_tagged(&self, tagged: &(dyn Fn(&K) -> bool + Sync)) -> Result<usize, Error> {
        let _ = tagged;
        self.clear()
    }

    /// [`get`](Backend::get) for `async` callers.
    fn get_async<'a, Q: KeyRef<K> + Sync + ?Sized>(
        &'a self,
        key: &'a Q,
    ) -> impl Future<Output = Result<Lookup<V, Self::Ticket>, Error>> + Send + 'a {
        ready(self.get(key))
    }

    /// [`put`](Backend::put) for `async` callers.
    fn put_async<'a>(
        &'a self,
        key: K,
        value: V,
        fill: Fill<'a, Self::Ticket>,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'a {
        ready(self.put(key, value, fill))
    }

    /// [`clear`](Backend::clear) for `async` callers.
    fn clear_async(&self) -> impl Future<Output = Result<usize, Error>> + Send + '_ {
        ready(self.clear())
    }

    /// [`reserve`](Backend::reserve) for `async` callers.
    fn reserve_async<'a>(
        &'a self,
        key: &'a K,
    ) -> impl Future<Output = Result<Self::Ticket, Error>> + Send + 'a {
        ready(self.reserve(key))
    }

    /// [`remove`](Backend::remove) for `async` callers.
    fn remove_async<'a>(&'a self, key: &'a K) -> impl Future<Output = Result<bool, Error>> + Send + 'a {
        ready(self.remove(key))
    }

    /// [`ttl`](Backend::ttl) for `async` callers.
    fn ttl_async<'a>(
        &'a self,
        key: &'a K,
    ) -> impl Future<Output = Result<Option<Duration>, Error>> + Send + 'a {
        ready(self.ttl(key))
    }

    /// [`touch`](Backend::touch) for `async` callers.
    fn touch_async<'a>(&'a self, key: &'a K) -> impl Future<Output = Result<bool, Error>> + Send + 'a {
        ready(self.touch(key))
    }

    /// [`clear_by`](Backend::clear_by) for `async` callers.
    fn clear_by_async<'a>(
        &'a self,
        resolved: &'a [(usize, &'a [u8])],
    ) -> impl Future<Output = Result<usize, Error>> + Send + 'a {
        ready(self.clear_by(resolved))
    }
}
