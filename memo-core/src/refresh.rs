//! `refresh = N`: a hit on an entry older than N seconds returns it at once and
//! recomputes it in the background, once per key (the key's flight keeps a second
//! refresh, or a concurrent miss, from running the body again). A refresh that fails
//! (an `Err`, a panic, a store error) keeps the old value and is counted as an error;
//! a later hit tries again. Blocking functions refresh on a small pool of the library's
//! own threads; `async` ones on a task their generated code spawns (on the caller's
//! runtime).

use std::future::Future;
use std::hash::Hash;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{LazyLock, Mutex};
use std::thread;

use crate::backend::{Backend, Fill, Lookup};
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
                let job = match queue.lock() {
                    Ok(queue) => queue.recv(),
                    Err(poisoned) => poisoned.into_inner().recv(),
                };
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            })
            .expect("the OS can start memo-alchemy's refresh threads");
    }
    Mutex::new(jobs)
});

fn in_background(job: Job) {
    let pool = POOL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
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
struct Due<K: 'static, V: 'static, T> {
    key: K,
    ticket: T,
    leader: Leader<'static, K, V>,
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
        let Role::Lead(leader) = self.flights.join(&key, self.generation.load(Ordering::Acquire)) else {
            return; // already being computed
        };
        in_background(Box::new(move || {
            let Some(store) = &self.store else { return };
            let Some(due) = self.still_due(store.get(&OwnedKey(&key)), key, leader) else { return };
            let ran = catch_unwind(AssertUnwindSafe(|| compute(due.key.clone())));
            let Some(value) = self.refreshed::<R, M>(ran, discard) else {
                due.leader.fail();
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
        let Role::Lead(leader) = self.flights.join(&key, self.generation.load(Ordering::Acquire)) else {
            return;
        };
        spawn(Box::pin(async move {
            let Some(store) = &self.store else { return };
            let found = store.get_async(&OwnedKey(&key)).await;
            let Some(due) = self.still_due(found, key, leader) else { return };
            let ran = CatchUnwind(Box::pin(compute(due.key.clone()))).await;
            let Some(value) = self.refreshed::<R, M>(ran, discard) else {
                due.leader.fail();
                return;
            };
            let fill = Fill::new(&self.generation, due.leader.generation(), due.ticket);
            self.stored(store.put_async(due.key, value.clone(), fill).await);
            due.leader.publish(&value);
        }));
    }

    /// Whether the entry still needs its refresh (another may have stored it since the
    /// hit that asked for it), with a fresh ticket.
    fn still_due(
        &self,
        found: Result<Lookup<V, B::Ticket>, crate::Error>,
        key: K,
        leader: Leader<'static, K, V>,
    ) -> Option<Due<K, V, B::Ticket>> {
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
