//! A backend from outside the crate: a kind (a unit struct implementing `BackendKind`
//! and `StoreFor`) named by path in `#[cache(backend = ...)]`, treated exactly like a
//! built-in one: its name, its store, its cold clears and its sweep. Its store can also
//! stop a `cache_entry(..).set(v)` halfway, to put a clear in the middle.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};

use memo_alchemy::backends::Memory;
use memo_alchemy::{
    cache, Backend, BackendKind, CachedFunction, Error, Fill, KeyRef, Lookup, Policy, RenderTags, Selector,
    StoreFor, StoreStats, StrictKeys,
};

static GETS: AtomicUsize = AtomicUsize::new(0);
static COLD_CLEARS: Mutex<Vec<(String, bool)>> = Mutex::new(Vec::new());
static SWEEPS: AtomicUsize = AtomicUsize::new(0);
/// When set, `reserve` (the start of a set) waits at it twice: once begun, then until
/// released.
static GATE: Mutex<Option<Arc<Barrier>>> = Mutex::new(None);

/// Values in memory, with every lookup counted.
pub struct Counting;

impl BackendKind for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn cold_clear(
        &self,
        function: &'static CachedFunction,
        selector: Option<&Selector>,
    ) -> Result<usize, Error> {
        COLD_CLEARS.lock().unwrap().push((function.name().to_owned(), selector.is_some()));
        Ok(0)
    }
    fn sweep(&self) -> Result<usize, Error> {
        SWEEPS.fetch_add(1, SeqCst);
        Ok(0)
    }
}

impl<K, V> StoreFor<K, V> for Counting
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    type Store = CountingStore<K, V>;
}

pub struct CountingStore<K, V>(Memory<K, V>);

impl<K, V> Backend<K, V> for CountingStore<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    type Ticket = ();
    fn open(
        function: &'static CachedFunction,
        policy: Policy,
        strict: Option<StrictKeys<K>>,
        tags: Option<RenderTags<K>>,
    ) -> Result<Self, Error> {
        Memory::open(function, policy, strict, tags).map(CountingStore)
    }
    fn get<Q: KeyRef<K> + ?Sized>(&self, key: &Q) -> Result<Lookup<V, ()>, Error> {
        GETS.fetch_add(1, SeqCst);
        self.0.get(key)
    }
    fn reserve(&self, key: &K) -> Result<(), Error> {
        let gate = GATE.lock().unwrap().clone();
        if let Some(gate) = gate {
            gate.wait();
            gate.wait();
        }
        self.0.reserve(key)
    }
    fn put(&self, key: K, value: V, fill: Fill<'_, ()>) -> Result<(), Error> {
        self.0.put(key, value, fill)
    }
    fn clear(&self) -> Result<usize, Error> {
        self.0.clear()
    }
    fn clear_by(&self, resolved: &[(usize, &[u8])]) -> Result<usize, Error> {
        self.0.clear_by(resolved)
    }
    fn stats(&self) -> StoreStats {
        self.0.stats()
    }
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(backend = Counting, strict = true, limit = 10)]
fn area(w: u32, h: u32) -> u32 {
    RUNS.fetch_add(1, SeqCst);
    w * h
}

/// Never called: a clear of `area` reaches it through its kind's cold clear.
#[cache(backend = Counting, strict = true, dependency = [area])]
fn volume(w: u32, h: u32, d: u32) -> u32 {
    area(w, h) * d
}

#[test]
fn a_custom_backend_is_used_like_a_built_in_one() {
    assert_eq!(area(2, 3), 6);
    let gets = GETS.load(SeqCst);
    assert_eq!(area(2, 3), 6);
    assert_eq!(RUNS.load(SeqCst), 1, "stored in the custom store, then a hit");
    assert_eq!(GETS.load(SeqCst), gets + 1, "the hit went through the custom store");
    assert_eq!(area::cache().function().backend(), "counting");
    assert_eq!(area::cache_stats().len, Some(1));

    // A partial clear cascades to the dependent that never ran here: its kind's cold clear.
    assert_eq!(area::cache_clear_by().w(2_u32).clear().unwrap(), 1);
    assert_eq!(*COLD_CLEARS.lock().unwrap(), [("volume".to_owned(), true)]);

    // flush_all sweeps each kind once.
    memo_alchemy::flush_all().unwrap();
    assert_eq!(SWEEPS.load(SeqCst), 1);
}

#[cache(backend = Counting)]
fn gated(n: u32) -> u32 {
    n
}

#[test]
fn a_set_racing_a_clear_leaves_nothing() {
    gated::cache_entry(1).get().unwrap();
    let barrier = Arc::new(Barrier::new(2));
    *GATE.lock().unwrap() = Some(Arc::clone(&barrier));
    let setter = std::thread::spawn(|| gated::cache_entry(1).set(99).unwrap());
    barrier.wait(); // the set has begun
    gated::cache_clear().unwrap();
    barrier.wait(); // the clear is done: let the set go on
    setter.join().unwrap();
    *GATE.lock().unwrap() = None;
    assert_eq!(gated::cache_entry(1).get().unwrap(), None, "the set began before the clear: not stored");
    gated::cache_entry(1).set(99).unwrap();
    assert_eq!(gated::cache_entry(1).get().unwrap(), Some(99), "a set after the clear is");
}
