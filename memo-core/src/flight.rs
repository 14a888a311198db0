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

/// One in-flight computation in the table: its key's hash, the key, the flight.
type Entry<K, V> = (u64, K, Arc<Flight<V>>);

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
    /// The clear generation the computation started in.
    generation: u64,
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
        let fresh = || {
            Arc::new(Flight {
                generation,
                state: Mutex::new(State::Running(Vec::new())),
                done: Condvar::new(),
            })
        };
        match table.find_mut(hash, |(_, k, _)| k == key) {
            Some((_, _, flight)) if flight.generation == generation && flight.is_running() => {
                Role::Wait(Arc::clone(flight))
            }
            // A flight from before a clear, or one that just ended: lead a new one.
            Some((_, _, flight)) => {
                *flight = fresh();
                Role::Lead(Leader { flights: self, hash, flight: Arc::clone(flight), finished: false })
            }
            None => {
                let flight = fresh();
                table.insert_unique(hash, (hash, key.clone(), Arc::clone(&flight)), |(h, _, _)| *h);
                Role::Lead(Leader { flights: self, hash, flight, finished: false })
            }
        }
    }
}

impl<K, V> Flights<K, V> {
    /// Forgets `flight`, unless a newer flight for its key replaced it.
    fn remove(&self, hash: u64, flight: &Arc<Flight<V>>) {
        let mut table = self.table(hash).lock();
        if let Ok(entry) = table.find_entry(hash, |(_, _, f)| Arc::ptr_eq(f, flight)) {
            entry.remove();
        }
    }
}

impl<V: Clone> Flight<V> {
    fn is_running(&self) -> bool {
        matches!(*self.state.lock(), State::Running(_))
    }

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
    flight: Arc<Flight<V>>,
    finished: bool,
}

impl<K, V> Leader<'_, K, V> {
    /// The generation the computation started in.
    pub(crate) fn generation(&self) -> u64 {
        self.flight.generation
    }

    /// Hands `value` to every waiter (cloned only if someone waits).
    pub(crate) fn publish(mut self, value: &V)
    where
        V: Clone,
    {
        if self.close() {
            self.flight.finish(State::Done(value.clone()));
        }
    }

    /// Tells every waiter that the body failed: each computes for itself.
    pub(crate) fn fail(mut self) {
        if self.close() {
            self.flight.finish(State::Failed);
        }
    }

    /// Takes the flight out of the table, so that no one joins it any more; whether
    /// anyone had joined (then the flight must be finished for them). Most misses have
    /// no waiter: they skip the finish, its lock and its wake-ups.
    fn close(&mut self) -> bool {
        self.finished = true;
        self.flights.remove(self.hash, &self.flight);
        Arc::strong_count(&self.flight) > 1
    }
}

impl<K, V> Drop for Leader<'_, K, V> {
    fn drop(&mut self) {
        if !self.finished {
            self.flight.finish(State::Abandoned);
            self.flights.remove(self.hash, &self.flight);
        }
    }
}
