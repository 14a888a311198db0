//! Single-flight: concurrent misses on one key run the body once. The first caller
//! leads and computes; the others wait for its value, blocking or as a future.
//!
//! A leader whose body returns an error [fails](Leader::fail) its flight: the waiters
//! wake and each computes for itself, side by side, so that callers of a failing body
//! never queue behind one another. A leader that panics or is dropped (a cancelled
//! future) abandons its flight: the waiters wake and one of them leads the next attempt.

use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use hashbrown::HashTable;
use parking_lot::{Condvar, Mutex};

/// One in-flight computation in the table: its key's hash, the key, the computation.
type Entry<K, V> = (u64, K, Slot<V>);

/// A computation under way. Its [`Flight`], what waiters wait on, is made only when a
/// second caller arrives: most misses have none, and skip its allocation.
#[derive(Debug)]
struct Slot<V> {
    /// Tells this computation from a later one for the same key.
    id: u64,
    /// The clear generation the computation started in.
    generation: u64,
    flight: Option<Arc<Flight<V>>>,
}

/// One shard's table.
type Table<K, V> = Mutex<HashTable<Entry<K, V>>>;

/// Tables of in-flight computations per function: misses of different keys rarely
/// meet on one lock.
const SHARDS: usize = 16;

/// The in-flight computations of one function, by key, in 16 tables.
#[derive(Debug)]
pub(crate) struct Flights<K, V> {
    tables: [CachePadded<Table<K, V>>; SHARDS],
    hasher: foldhash::fast::RandomState,
    next_id: std::sync::atomic::AtomicU64,
}

/// A lock on cache lines of its own, so that two shards' locks never share a line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct CachePadded<T>(T);

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Flights {
            tables: std::array::from_fn(|_| CachePadded(Mutex::new(HashTable::new()))),
            hasher: Default::default(),
            next_id: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl<K, V> Flights<K, V> {
    fn table(&self, hash: u64) -> &Table<K, V> {
        // The top bits: the tables' own probing uses the low ones.
        &self.tables[(hash >> 60) as usize % SHARDS].0
    }
}

/// One computation that callers may wait for.
#[derive(Debug)]
pub(crate) struct Flight<V> {
    state: Mutex<State<V>>,
    done: Condvar,
}

#[derive(Debug)]
enum State<V> {
    Running(Vec<Waker>),
    Done(V),
    /// The body returned an error: every waiter computes for itself.
    Failed,
    /// The leader panicked or was dropped: one waiter leads the next attempt.
    Abandoned,
}

/// How a flight ended, for a caller that waited on it.
#[derive(Debug)]
pub(crate) enum Outcome<V> {
    /// The leader's value.
    Value(V),
    /// The leader's body failed: compute without waiting for anyone.
    Failed,
    /// The leader gave up: join again (one waiter will lead).
    Abandoned,
}

impl<V: Clone> State<V> {
    /// The outcome of a finished flight, `None` while it runs.
    fn outcome(&self) -> Option<Outcome<V>> {
        match self {
            State::Running(_) => None,
            State::Done(v) => Some(Outcome::Value(v.clone())),
            State::Failed => Some(Outcome::Failed),
            State::Abandoned => Some(Outcome::Abandoned),
        }
    }
}

/// What a caller is to do about a missed key.
#[derive(Debug)]
pub(crate) enum Role<'a, K, V> {
    /// Compute; the guard publishes the value or, dropped, abandons the flight.
    Lead(Leader<'a, K, V>),
    /// Wait for the leader.
    Wait(Arc<Flight<V>>),
}

impl<K: Hash + Eq + Clone, V: Clone> Flights<K, V> {
    /// Joins the flight for `key` started in `generation`, or starts one.
    pub(crate) fn join(&self, key: &K, generation: u64) -> Role<'_, K, V> {
        let hash = self.hasher.hash_one(key);
        let mut table = self.table(hash).lock();
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Made only when leading: a dropped `Leader` takes this table's lock.
        let lead = || Role::Lead(Leader { flights: self, hash, id, generation, finished: false });
        let fresh = Slot { id, generation, flight: None };
        match table.find_mut(hash, |(_, k, _)| k == key) {
            // Entries leave the table when their computation ends: this one runs.
            Some((_, _, slot)) if slot.generation == generation => {
                let flight = slot.flight.get_or_insert_with(|| {
                    Arc::new(Flight { state: Mutex::new(State::Running(Vec::new())), done: Condvar::new() })
                });
                Role::Wait(Arc::clone(flight))
            }
            // A computation from before a clear: its waiters join again, and find this one.
            Some((_, _, slot)) => {
                if let Some(old) = std::mem::replace(slot, fresh).flight {
                    old.finish(State::Abandoned);
                }
                drop(table);
                lead()
            }
            None => {
                table.insert_unique(hash, (hash, key.clone(), fresh), |(h, _, _)| *h);
                drop(table);
                lead()
            }
        }
    }
}

impl<K, V> Flights<K, V> {
    /// Takes computation `id` out of the table, unless a later one replaced it; its
    /// flight, if anyone waits.
    fn remove(&self, hash: u64, id: u64) -> Option<Arc<Flight<V>>> {
        let mut table = self.table(hash).lock();
        let entry = table.find_entry(hash, |(_, _, slot)| slot.id == id).ok()?;
        entry.remove().0 .2.flight
    }
}

impl<V: Clone> Flight<V> {
    /// Blocks until the leader finishes.
    pub(crate) fn wait(&self) -> Outcome<V> {
        let mut state = self.state.lock();
        loop {
            match state.outcome() {
                Some(outcome) => return outcome,
                None => self.done.wait(&mut state),
            }
        }
    }

    /// Waits without blocking a thread.
    pub(crate) fn wait_async(self: Arc<Self>) -> WaitFuture<V> {
        WaitFuture { flight: self }
    }
}

impl<V> Flight<V> {
    fn finish(&self, outcome: State<V>) {
        let wakers = match std::mem::replace(&mut *self.state.lock(), outcome) {
            State::Running(wakers) => wakers,
            _ => Vec::new(),
        };
        self.done.notify_all();
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// The future of [`Flight::wait_async`].
#[derive(Debug)]
pub(crate) struct WaitFuture<V> {
    flight: Arc<Flight<V>>,
}

impl<V: Clone> Future for WaitFuture<V> {
    type Output = Outcome<V>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<V>> {
        let mut state = self.flight.state.lock();
        if let State::Running(wakers) = &mut *state {
            if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                wakers.push(cx.waker().clone());
            }
            return Poll::Pending;
        }
        Poll::Ready(state.outcome().expect("a flight that is not running has an outcome"))
    }
}

/// The leader's side of a flight. Dropping it without [`publish`](Leader::publish) or
/// [`fail`](Leader::fail) (a panic, a cancelled future) wakes the waiters to try again.
#[derive(Debug)]
pub(crate) struct Leader<'a, K, V> {
    flights: &'a Flights<K, V>,
    hash: u64,
    id: u64,
    generation: u64,
    finished: bool,
}

impl<K, V> Leader<'_, K, V> {
    /// The generation the computation started in.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Hands `value` to every waiter (cloned only if someone waits).
    pub(crate) fn publish(mut self, value: &V)
    where
        V: Clone,
    {
        if let Some(flight) = self.close() {
            flight.finish(State::Done(value.clone()));
        }
    }

    /// Tells every waiter that the body failed: each computes for itself.
    pub(crate) fn fail(mut self) {
        if let Some(flight) = self.close() {
            flight.finish(State::Failed);
        }
    }

    /// Takes the computation out of the table, so that no one joins it any more; its
    /// flight if anyone joined (then it must be finished for them). Most misses have no
    /// waiter: they skip the flight, its allocation, lock and wake-ups.
    fn close(&mut self) -> Option<Arc<Flight<V>>> {
        self.finished = true;
        self.flights.remove(self.hash, self.id)
    }
}

impl<K, V> Drop for Leader<'_, K, V> {
    fn drop(&mut self) {
        if !self.finished {
            if let Some(flight) = self.close() {
                flight.finish(State::Abandoned);
            }
        }
    }
}
