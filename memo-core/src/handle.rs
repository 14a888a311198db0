//! The per-function cache handle: get-or-compute with single-flight, clears and stats.

use std::future::{ready, Future};
use std::hash::Hash;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::backend::{Backend, Fill, Lead, Lookup};
use crate::flight::{Flight, Flights, Outcome, Role};
use crate::key::{KeyRef, OwnedKey, Selector, StrictKeys};
use crate::mode::Mode;
use crate::observe::{observed, observed_async, Step};
use crate::stats::Counters;
use crate::{BoxFuture, CacheControl, CacheStats, CachedFunction, Config, Error, RenderTags};

/// The cache of one function: its store `B`, keys `K` (the owned argument tuple) and
/// cached values `V`. `f::cache()` returns it.
#[derive(Debug)]
pub struct FunctionCache<K, V, B> {
    function: &'static CachedFunction,
    /// `None` when caching is off (`limit` or `expire` is 0) or the store failed to open.
    pub(crate) store: Option<B>,
    /// Advanced by every clear before it removes anything; see [`Fill`].
    pub(crate) generation: AtomicU64,
    /// Renders an entry's tags (`tags = [...]`).
    tags: Option<RenderTags<K>>,
    pub(crate) flights: Flights<K, V>,
    /// Keys whose `refresh` is queued or running.
    pub(crate) queued: crate::refresh::Queued<K>,
    pub(crate) counters: Counters,
}

/// A lookup that found nothing fresh: what the computation needs to store its value,
/// and the stale value to fall back on (`stale = N`) when the body fails.
#[derive(Debug)]
pub struct Miss<K, V, T> {
    /// `None`: run the body and store nothing.
    pub(crate) fill: Option<(K, T)>,
    fallback: Option<V>,
}

/// What running the body gave.
enum Ran<V, R> {
    /// A value to store.
    Value(V),
    /// A return value not to store (an `Err`).
    Uncached(R),
    /// A panic, caught because there is a stale value to fall back on.
    Panicked(Box<dyn std::any::Any + Send>),
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
    pub fn open(
        function: &'static CachedFunction,
        strict: Option<StrictKeys<K>>,
        tags: Option<RenderTags<K>>,
    ) -> Self {
        let counters = Counters::default();
        let policy = function.policy(Config::global());
        let store = policy
            .caches()
            .then(|| {
                B::open(function, policy, strict, tags)
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
            tags,
            flights: Flights::default(),
            queued: Default::default(),
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
    pub fn lookup<Q: KeyRef<K> + ?Sized>(&self, key: &Q) -> Lookup<V, Miss<K, V, B::Ticket>> {
        let Some(store) = &self.store else { return self.uncached() };
        // A network store's round trip gets a span and a histogram; an in-process
        // store's hit nothing (the branch is decided at compile time).
        let found = match B::GET_AT_ONCE {
            true => store.get(key),
            false => observed(self.function, Step::Get, || store.get(key)),
        };
        match found {
            Ok(found) => self.count(found, || key.to_owned_key()),
            Err(err) => self.failed(&err),
        }
    }

    /// Whether an `async` function may use [`lookup`](FunctionCache::lookup): the store
    /// answers at once (see [`Backend::GET_AT_ONCE`]).
    #[doc(hidden)]
    #[inline]
    pub fn lookup_at_once(&self) -> bool {
        B::GET_AT_ONCE
    }

    /// [`lookup`](FunctionCache::lookup) for `async` functions.
    #[doc(hidden)]
    pub async fn lookup_async<Q: KeyRef<K> + Sync + ?Sized>(
        &self,
        key: &Q,
    ) -> Lookup<V, Miss<K, V, B::Ticket>> {
        let Some(store) = &self.store else { return self.uncached() };
        let found = match B::GET_AT_ONCE {
            true => store.get_async(key).await,
            false => observed_async(self.function, Step::Get, store.get_async(key)).await,
        };
        match found {
            Ok(found) => self.count(found, || key.to_owned_key()),
            Err(err) => self.failed(&err),
        }
    }

    #[inline]
    fn count(
        &self,
        found: Lookup<V, B::Ticket>,
        key: impl FnOnce() -> K,
    ) -> Lookup<V, Miss<K, V, B::Ticket>> {
        match found {
            Lookup::Hit(v) => {
                self.counters.hit();
                Lookup::Hit(v)
            }
            Lookup::Miss(ticket) => {
                self.counters.miss();
                Lookup::Miss(Miss { fill: Some((key(), ticket)), fallback: None })
            }
            Lookup::Stale(v, ticket) => {
                self.counters.miss();
                Lookup::Miss(Miss { fill: Some((key(), ticket)), fallback: Some(v) })
            }
            Lookup::Refresh(v, ticket) => {
                self.counters.hit();
                Lookup::Refresh(v, Miss { fill: Some((key(), ticket)), fallback: None })
            }
        }
    }

    fn uncached(&self) -> Lookup<V, Miss<K, V, B::Ticket>> {
        self.counters.miss();
        Lookup::Miss(Miss { fill: None, fallback: None })
    }

    #[cold]
    fn failed(&self, err: &Error) -> Lookup<V, Miss<K, V, B::Ticket>> {
        self.report(err);
        self.uncached()
    }

    /// Computes a missed value once for all concurrent callers, stores it, returns it.
    /// A return value for which `discard` holds (an `Err`) is returned and not stored.
    #[doc(hidden)]
    pub fn compute<R, M: Mode<R, Value = V>>(
        &self,
        miss: Miss<K, V, B::Ticket>,
        discard: fn(&R) -> bool,
        body: impl FnOnce() -> R,
    ) -> R {
        let (Some(store), Some((key, ticket))) = (&self.store, miss.fill) else {
            return body();
        };
        // Blocking I/O is never pending: one poll runs the whole computation.
        let computation = pin!(self.fill::<R, M, Blocking>(
            store,
            key,
            ticket,
            miss.fallback,
            discard,
            async move { body() }
        ));
        match computation.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(ret) => ret,
            Poll::Pending => unreachable!("a blocking computation is never pending"),
        }
    }

    /// [`compute`](FunctionCache::compute) for `async` functions.
    #[doc(hidden)]
    pub async fn compute_async<R, M: Mode<R, Value = V>>(
        &self,
        miss: Miss<K, V, B::Ticket>,
        discard: fn(&R) -> bool,
        body: impl Future<Output = R>,
    ) -> R {
        let (Some(store), Some((key, ticket))) = (&self.store, miss.fill) else {
            return body.await;
        };
        self.fill::<R, M, Async>(store, key, ticket, miss.fallback, discard, body).await
    }

    /// The computation of a miss, written once for blocking and `async` callers (`X`
    /// says how to wait and to reach the store): join the key's flight, lead or wait;
    /// the leader runs the body and stores its value, unless a clear began meanwhile.
    /// When the body fails (an `Err`, or a panic) and a stale value is at hand, that
    /// value is returned instead, counted as a stale hit.
    async fn fill<R, M: Mode<R, Value = V>, X: Exec<K, V, B>>(
        &self,
        store: &B,
        key: K,
        mut ticket: B::Ticket,
        fallback: Option<V>,
        discard: fn(&R) -> bool,
        body: impl Future<Output = R>,
    ) -> R {
        let leader = loop {
            match self.flights.join(&key, self.generation.load(Ordering::Acquire)) {
                Role::Lead(leader) => break leader,
                Role::Wait(flight) => match X::wait(flight).await {
                    Outcome::Value(v) => return M::join(v),
                    // Side by side with the other waiters, rather than one after another.
                    Outcome::Failed => {
                        let started = self.generation.load(Ordering::Acquire);
                        let value = match self.run::<R, M>(body, discard, fallback.is_some()).await {
                            Ran::Value(value) => value,
                            failed => return self.fall_back::<R, M, X>(store, &key, fallback, failed).await,
                        };
                        let fill = Fill::new(&self.generation, started, ticket);
                        self.put::<X>(store, key, value.clone(), fill).await;
                        return M::join(value);
                    }
                    Outcome::Abandoned => {}
                },
            }
        };
        // A leader that finished between our lookup and our join has stored its value.
        if B::RECHECK_ON_LEAD {
            match X::get(store, &OwnedKey(&key)).await {
                Ok(Lookup::Hit(v) | Lookup::Refresh(v, _)) => {
                    leader.publish(&v);
                    return M::join(v);
                }
                Ok(Lookup::Miss(fresh) | Lookup::Stale(_, fresh)) => ticket = fresh,
                Err(err) => self.report(&err),
            }
        }
        // Across processes (`single_flight = "global"`): take the key's lease, or wait
        // for the value of the process that holds it.
        match X::lead(store, &key, &mut ticket).await {
            Ok(Lead::Run | Lead::Busy) => {}
            Ok(Lead::Value(v)) => {
                leader.publish(&v);
                return M::join(v);
            }
            Err(err) => self.report(&err),
        }
        let mut holding = Holding { store, key: &key, ticket: Some(ticket) };
        let ran = self.run::<R, M>(body, discard, fallback.is_some()).await;
        let ticket = holding.ticket.take().expect("the ticket is taken once");
        drop(holding);
        let value = match ran {
            Ran::Value(value) => value,
            failed => {
                leader.fail();
                if let Err(err) = X::release(store, &key, &ticket).await {
                    self.report(&err);
                }
                return self.fall_back::<R, M, X>(store, &key, fallback, failed).await;
            }
        };
        let fill = Fill::new(&self.generation, leader.generation(), ticket);
        self.put::<X>(store, key, value.clone(), fill).await;
        leader.publish(&value);
        M::join(value)
    }

    /// Stores a computed value (a network store's write observed as a round trip); a
    /// failure is counted, and the value is still returned by the caller.
    async fn put<X: Exec<K, V, B>>(&self, store: &B, key: K, value: V, fill: Fill<'_, B::Ticket>) {
        let stored = match B::GET_AT_ONCE {
            true => X::put(store, key, value, fill).await,
            false => observed_async(self.function, Step::Put, X::put(store, key, value, fill)).await,
        };
        if let Err(err) = stored {
            self.report(&err);
        }
    }

    /// Runs the body (in its span, timed); a panic is caught only when `catch` (there
    /// is a value to fall back on).
    async fn run<R, M: Mode<R, Value = V>>(
        &self,
        body: impl Future<Output = R>,
        discard: fn(&R) -> bool,
        catch: bool,
    ) -> Ran<V, R> {
        let body = timed(self.function, observed_async(self.function, Step::Body, body));
        let ret = if catch {
            match CatchUnwind(Box::pin(body)).await {
                Ok(ret) => ret,
                Err(panic) => return Ran::Panicked(panic),
            }
        } else {
            body.await
        };
        match split::<R, M>(ret, discard) {
            Ok(value) => Ran::Value(value),
            Err(ret) => Ran::Uncached(ret),
        }
    }

    /// What a call whose body failed returns: the stale value, counted, when there was
    /// one and the store still keeps it (a clear, a tag invalidation or a remove since
    /// the lookup, here or in another process, takes it away); else the failure (a
    /// caught panic resumes).
    async fn fall_back<R, M: Mode<R, Value = V>, X: Exec<K, V, B>>(
        &self,
        store: &B,
        key: &K,
        fallback: Option<V>,
        failed: Ran<V, R>,
    ) -> R {
        if fallback.is_some() {
            match X::get(store, &OwnedKey(key)).await {
                Ok(Lookup::Stale(value, _) | Lookup::Hit(value) | Lookup::Refresh(value, _)) => {
                    self.counters.stale_hit();
                    return M::join(value);
                }
                Ok(Lookup::Miss(_)) => {}
                Err(err) => self.report(&err),
            }
        }
        match failed {
            Ran::Uncached(ret) => ret,
            Ran::Panicked(panic) => std::panic::resume_unwind(panic),
            Ran::Value(_) => unreachable!("only failures fall back"),
        }
    }

    /// Counts a store failure. The store logs its own outages, once when it goes down
    /// and at most once a second after (see [`Health`](crate::Health)): one line per
    /// failed call would flood the log while Redis is down.
    fn report(&self, err: &Error) {
        self.counters.error();
        tracing::debug!(function = self.function.path(), %err, "memo-alchemy: computing directly");
    }

    /// The values of `keys` the store has, read ahead in one go for `cache_many`, which
    /// calls the function for each `None`. Hits are counted here; the calls count the rest.
    #[doc(hidden)]
    pub fn prefetch(&self, keys: &[K]) -> Vec<Option<V>> {
        let found = match &self.store {
            Some(store) => store.get_many(keys),
            None => Ok(Vec::new()),
        };
        self.prefetched(keys.len(), found)
    }

    /// [`prefetch`](FunctionCache::prefetch) for `async` functions.
    #[doc(hidden)]
    pub async fn prefetch_async(&self, keys: &[K]) -> Vec<Option<V>> {
        let found = match &self.store {
            Some(store) => store.get_many_async(keys).await,
            None => Ok(Vec::new()),
        };
        self.prefetched(keys.len(), found)
    }

    fn prefetched(&self, n: usize, found: Result<Vec<Option<V>>, Error>) -> Vec<Option<V>> {
        let mut found = found.inspect_err(|err| self.report(err)).unwrap_or_default();
        found.resize(n, None);
        found.iter().flatten().for_each(|_| self.counters.hit());
        found
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
    pub(crate) fn begin_clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// The ticket of a running computation, whose lease (`single_flight = "global"`) is
/// given back if the computation never gets to store: its body panicked (uncaught), or
/// its future was dropped. Otherwise other processes would wait the lease out.
struct Holding<'a, K: Send + Sync + 'static, V: Send + Sync + 'static, B: Backend<K, V>> {
    store: &'a B,
    key: &'a K,
    ticket: Option<B::Ticket>,
}

impl<K: Send + Sync + 'static, V: Send + Sync + 'static, B: Backend<K, V>> Drop for Holding<'_, K, V, B> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            // Blocking, even for an `async` caller: a drop cannot wait otherwise, and
            // this happens only to computations that were cut short.
            drop(self.store.release(self.key, &ticket));
        }
    }
}

/// How a computation waits for a flight and reaches its store: [`Blocking`] (every
/// future it returns is ready at once) or [`Async`].
trait Exec<K: Send + Sync + 'static, V: Clone + Send + Sync + 'static, B: Backend<K, V>> {
    fn wait(flight: Arc<Flight<V>>) -> impl Future<Output = Outcome<V>> + Send;
    fn get<'a, Q: KeyRef<K> + Sync + ?Sized>(
        store: &'a B,
        key: &'a Q,
    ) -> impl Future<Output = Result<Lookup<V, B::Ticket>, Error>> + Send + 'a;
    fn put<'a>(
        store: &'a B,
        key: K,
        value: V,
        fill: Fill<'a, B::Ticket>,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'a;
    fn lead<'a>(
        store: &'a B,
        key: &'a K,
        ticket: &'a mut B::Ticket,
    ) -> impl Future<Output = Result<Lead<V>, Error>> + Send + 'a;
    fn release<'a>(
        store: &'a B,
        key: &'a K,
        ticket: &'a B::Ticket,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'a;
}

/// Blocking callers: the thread waits; the store's blocking methods.
struct Blocking;

impl<K: Send + Sync + 'static, V: Clone + Send + Sync + 'static, B: Backend<K, V>> Exec<K, V, B>
    for Blocking
{
    fn wait(flight: Arc<Flight<V>>) -> impl Future<Output = Outcome<V>> + Send {
        ready(flight.wait())
    }
    fn get<'a, Q: KeyRef<K> + Sync + ?Sized>(
        store: &'a B,
        key: &'a Q,
    ) -> impl Future<Output = Result<Lookup<V, B::Ticket>, Error>> + Send + 'a {
        ready(store.get(key))
    }
    fn put<'a>(
        store: &'a B,
        key: K,
        value: V,
        fill: Fill<'a, B::Ticket>,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'a {
        ready(store.put(key, value, fill))
    }
    fn lead<'a>(
        store: &'a B,
        key: &'a K,
        ticket: &'a mut B::Ticket,
    ) -> impl Future<Output = Result<Lead<V>, Error>> + Send + 'a {
        ready(store.lead(key, ticket, true))
    }
    fn release<'a>(
        store: &'a B,
        key: &'a K,
        ticket: &'a B::Ticket,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'a {
        ready(store.release(key, ticket))
    }
}

/// `async` callers: the future waits; the store's `*_async` methods.
struct Async;

impl<K: Send + Sync + 'static, V: Clone + Send + Sync + 'static, B: Backend<K, V>> Exec<K, V, B> for Async {
    fn wait(flight: Arc<Flight<V>>) -> impl Future<Output = Outcome<V>> + Send {
        flight.wait_async()
    }
    fn get<'a, Q: KeyRef<K> + Sync + ?Sized>(
        store: &'a B,
        key: &'a Q,
    ) -> impl Future<Output = Result<Lookup<V, B::Ticket>, Error>> + Send + 'a {
        store.get_async(key)
    }
    fn put<'a>(
        store: &'a B,
        key: K,
        value: V,
        fill: Fill<'a, B::Ticket>,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'a {
        store.put_async(key, value, fill)
    }
    fn lead<'a>(
        store: &'a B,
        key: &'a K,
        ticket: &'a mut B::Ticket,
    ) -> impl Future<Output = Result<Lead<V>, Error>> + Send + 'a {
        store.lead_async(key, ticket, true)
    }
    fn release<'a>(
        store: &'a B,
        key: &'a K,
        ticket: &'a B::Ticket,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'a {
        store.release_async(key, ticket)
    }
}

/// `body`, whose run time is recorded for `refresh = "early"` (see [`BodyTime`](crate::BodyTime)).
pub(crate) async fn timed<R>(function: &'static CachedFunction, body: impl Future<Output = R>) -> R {
    if !function.refreshes_early() {
        return body.await;
    }
    let started = std::time::Instant::now();
    let ret = body.await;
    function.body_time().record(started.elapsed());
    ret
}

/// A future that turns a panic while polling into an `Err`.
pub(crate) struct CatchUnwind<F>(pub(crate) std::pin::Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(ret)) => Poll::Ready(Ok(ret)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// The value to cache, or the return value to hand back uncached.
pub(crate) fn split<R, M: Mode<R>>(ret: R, discard: fn(&R) -> bool) -> Result<M::Value, R> {
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

    fn clear_own_tagged(&self, tags: &[String]) -> Result<usize, Error> {
        let Some(render) = self.tags else { return Ok(0) };
        self.begin_clear();
        let tagged = |key: &K| render(key).iter().any(|t| tags.contains(t));
        self.store.as_ref().map_or(Ok(0), |s| s.clear_tagged(&tagged))
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
