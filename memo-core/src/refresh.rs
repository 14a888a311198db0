//! `refresh = N`: a hit on an entry older than N seconds returns it at once and
//! recomputes it in the background, once per key (a key is queued once; when its
//! refresh runs it leads the key's flight, so a concurrent miss waits for it rather
//! than computing again, and a refresh finding a miss's flight does nothing). A refresh that fails
//! (an `Err`, a panic, a store error) keeps the old value and is counted as an error;
//! a later hit tries again. Blocking functions refresh on a small pool of the library's
//! own threads; `async` ones on a task their generated code spawns (on the caller's
//! runtime).

use std::future::Future;
use std::hash::Hash;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::LazyLock;

use parking_lot::Mutex;
use std::thread;

use crate::backend::{Backend, Fill, Lead, Lookup};
use crate::flight::{Leader, Role};
use crate::handle::{split, CatchUnwind, Miss};
use crate::key::OwnedKey;
use crate::mode::Mode;
use crate::{BoxFuture, FunctionCache};

type Job = Box<dyn FnOnce() + Send>;

/// Threads that run blocking refreshes.
const THREADS: usize = 2;

static POOL: LazyLock<Mutex<Sender<Job>>> = LazyLock::new(|| {
    let (jobs, queue) = channel::<Job>();
    let queue: &'static Mutex<Receiver<Job>> = Box::leak(Box::new(Mutex::new(queue)));
    for i in 0..THREADS {
        thread::Builder::new()
            .name(format!("memo-alchemy-refresh-{i}"))
            .spawn(move || loop {
                let job = queue.lock().recv();
                match job {
                    // A refresh catches its body's panics; this keeps the thread alive
                    // through any other (a user's `Clone` or `Hash`).
                    Ok(job) => drop(catch_unwind(AssertUnwindSafe(job))),
                    Err(_) => return,
                }
            })
            .expect("the OS can start memo-alchemy's refresh threads");
    }
    Mutex::new(jobs)
});

fn in_background(job: Job) {
    let pool = POOL.lock();
    // The threads never stop while the sender lives: sending cannot fail.
    drop(pool.send(job));
}

/// Runs `future` to completion on the library's refresh threads: for `async` refreshes
/// outside any tokio runtime.
pub fn block_in_background(future: BoxFuture<'static, ()>) {
    in_background(Box::new(move || block_on(future)));
}

/// Polls `future` on this thread until it is done, parking between wake-ups.
fn block_on(mut future: BoxFuture<'static, ()>) {
    struct Unpark(thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    while future.as_mut().poll(&mut cx).is_pending() {
        thread::park();
    }
}

/// A refresh that could start: the key, its fresh ticket and the flight's leadership.
struct Due<'a, K, V, T> {
    key: K,
    ticket: T,
    leader: Leader<'a, K, V>,
}

/// The keys whose refresh is queued or running, so that the hits that find an entry
/// due while its refresh waits do not queue another. A refresh takes the key's flight
/// only once it runs: a miss never waits behind a queued refresh.
#[derive(Debug)]
pub(crate) struct Queued<K> {
    keys: Mutex<std::collections::HashSet<K>>,
}

impl<K> Default for Queued<K> {
    fn default() -> Self {
        Queued { keys: Mutex::new(std::collections::HashSet::new()) }
    }
}

impl<K: Hash + Eq + Clone> Queued<K> {
    /// Whether `key` was not queued yet (it is now).
    fn claim(&self, key: &K) -> bool {
        self.keys.lock().insert(key.clone())
    }

    fn release(&self, key: &K) {
        self.keys.lock().remove(key);
    }
}

/// Releases a queued key however its refresh ends.
struct Claim<'a, K: Hash + Eq + Clone> {
    queued: &'a Queued<K>,
    key: K,
}

impl<K: Hash + Eq + Clone> Drop for Claim<'_, K> {
    fn drop(&mut self) {
        self.queued.release(&self.key);
    }
}

impl<K, V, B> FunctionCache<K, V, B>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    B: Backend<K, V>,
{
    /// Recomputes, in the background, the entry whose lookup said it is due for a
    /// refresh: `compute` runs the function's body for the key. Returns at once.
    #[doc(hidden)]
    pub fn refresh<R: 'static, M: Mode<R, Value = V>>(
        &'static self,
        miss: Miss<K, V, B::Ticket>,
        discard: fn(&R) -> bool,
        compute: impl FnOnce(K) -> R + Send + 'static,
    ) {
        let Some((key, _)) = miss.fill else { return };
        if !self.queued.claim(&key) {
            return; // already queued
        }
        in_background(Box::new(move || {
            let claim = Claim { queued: &self.queued, key };
            let Some(store) = &self.store else { return };
            let Role::Lead(leader) = self.flights.join(&claim.key, self.generation.load(Ordering::Acquire))
            else {
                return; // being computed by a miss
            };
            let found = store.get(&OwnedKey(&claim.key));
            let Some(mut due) = self.still_due(found, claim.key.clone(), leader) else { return };
            let lead = store.lead(&due.key, &mut due.ticket, false);
            let Some(due) = self.may_refresh(lead, due) else { return };
            let started = std::time::Instant::now();
            let ran = catch_unwind(AssertUnwindSafe(|| compute(due.key.clone())));
            self.timed(started);
            let Some(value) = self.refreshed::<R, M>(ran, discard) else {
                due.leader.fail();
                self.released(store.release(&due.key, &due.ticket));
                return;
            };
            let fill = Fill::new(&self.generation, due.leader.generation(), due.ticket);
            self.stored(store.put(due.key, value.clone(), fill));
            due.leader.publish(&value);
        }));
    }

    /// [`refresh`](FunctionCache::refresh) for `async` functions: `spawn` runs the
    /// refresh (the generated code passes one that spawns on the caller's runtime).
    #[doc(hidden)]
    pub fn refresh_async<R: 'static, M, F>(
        &'static self,
        miss: Miss<K, V, B::Ticket>,
        discard: fn(&R) -> bool,
        compute: impl FnOnce(K) -> F + Send + 'static,
        spawn: fn(BoxFuture<'static, ()>),
    ) where
        M: Mode<R, Value = V>,
        F: Future<Output = R> + Send + 'static,
    {
        let Some((key, _)) = miss.fill else { return };
        if !self.queued.claim(&key) {
            return;
        }
        spawn(Box::pin(async move {
            let claim = Claim { queued: &self.queued, key };
            let Some(store) = &self.store else { return };
            let Role::Lead(leader) = self.flights.join(&claim.key, self.generation.load(Ordering::Acquire))
            else {
                return;
            };
            let found = store.get_async(&OwnedKey(&claim.key)).await;
            let Some(mut due) = self.still_due(found, claim.key.clone(), leader) else { return };
            let lead = store.lead_async(&due.key, &mut due.ticket, false).await;
            let Some(due) = self.may_refresh(lead, due) else { return };
            let started = std::time::Instant::now();
            let ran = CatchUnwind(Box::pin(compute(due.key.clone()))).await;
            self.timed(started);
            let Some(value) = self.refreshed::<R, M>(ran, discard) else {
                due.leader.fail();
                self.released(store.release_async(&due.key, &due.ticket).await);
                return;
            };
            let fill = Fill::new(&self.generation, due.leader.generation(), due.ticket);
            self.stored(store.put_async(due.key, value.clone(), fill).await);
            due.leader.publish(&value);
        }));
    }

    /// Whether the entry still needs its refresh (another may have stored it since the
    /// hit that asked for it), with a fresh ticket.
    fn still_due<'a>(
        &self,
        found: Result<Lookup<V, B::Ticket>, crate::Error>,
        key: K,
        leader: Leader<'a, K, V>,
    ) -> Option<Due<'a, K, V, B::Ticket>> {
        match found {
            Ok(Lookup::Hit(v)) => {
                leader.publish(&v);
                None
            }
            Ok(Lookup::Refresh(_, ticket) | Lookup::Miss(ticket) | Lookup::Stale(_, ticket)) => {
                Some(Due { key, ticket, leader })
            }
            Err(err) => {
                self.counters.error();
                tracing::debug!(function = self.function().path(), %err, "memo-alchemy: refresh skipped");
                leader.fail();
                None
            }
        }
    }

    /// Whether this process refreshes the key: a shared store's lease on it is this
    /// process's (or the store keeps none). When another process holds it, that one
    /// refreshes, and the flight here gives way.
    fn may_refresh<'a>(
        &self,
        lead: Result<Lead<V>, crate::Error>,
        due: Due<'a, K, V, B::Ticket>,
    ) -> Option<Due<'a, K, V, B::Ticket>> {
        match lead {
            Ok(Lead::Run) => return Some(due),
            Ok(Lead::Value(v)) => due.leader.publish(&v),
            Ok(Lead::Busy) => due.leader.fail(),
            Err(err) => {
                self.counters.error();
                tracing::debug!(function = self.function().path(), %err, "memo-alchemy: refresh skipped");
                due.leader.fail();
            }
        }
        None
    }

    /// Records a refresh's run time, for `refresh = "early"`.
    fn timed(&self, started: std::time::Instant) {
        if self.function().refreshes_early() {
            self.function().body_time().record(started.elapsed());
        }
    }

    fn released(&self, released: Result<(), crate::Error>) {
        if let Err(err) = released {
            self.counters.error();
            tracing::debug!(function = self.function().path(), %err, "memo-alchemy: lease not released");
        }
    }

    /// The value a refresh computed, or `None` (counted as an error) when the body
    /// returned an `Err` or panicked: the old value stays.
    fn refreshed<R, M: Mode<R, Value = V>>(
        &self,
        ran: std::thread::Result<R>,
        discard: fn(&R) -> bool,
    ) -> Option<V> {
        match ran.map(|ret| split::<R, M>(ret, discard)) {
            Ok(Ok(value)) => Some(value),
            _ => {
                self.counters.error();
                None
            }
        }
    }

    fn stored(&self, put: Result<(), crate::Error>) {
        match put {
            Ok(()) => self.counters.refreshed(),
            Err(err) => {
                self.counters.error();
                tracing::debug!(function = self.function().path(), %err, "memo-alchemy: refresh not stored");
            }
        }
    }
}
