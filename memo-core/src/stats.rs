//! Per-function counters, and the per-thread stripes that keep a hit from writing a
//! cache line that other cores share.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::LazyLock;

use parking_lot::Mutex;

/// A snapshot of one cached function's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct CacheStats {
    /// Calls served from the cache.
    pub hits: u64,
    /// Calls that did not find a value (including callers that waited for
    /// another caller's computation).
    pub misses: u64,
    /// Entries removed to keep the function within its `limit`.
    pub evictions: u64,
    /// Entries removed because they outlived `expire`.
    pub expirations: u64,
    /// Store failures that the function survived by computing directly.
    pub errors: u64,
    /// Calls whose body failed and that were served an expired value kept by `stale`
    /// (counted as misses too).
    pub stale_hits: u64,
    /// Entries recomputed in the background by `refresh`.
    pub refreshes: u64,
    /// Entries currently stored, where the backend knows it.
    pub len: Option<usize>,
}

/// The live counters behind [`CacheStats`]. Hits and misses are counted in
/// per-thread [`Stripes`], so counting one writes only the calling thread's line.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    calls: Stripes<Tally>,
    errors: AtomicU64,
    stale_hits: AtomicU64,
    refreshes: AtomicU64,
}

#[derive(Debug, Default)]
struct Tally {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Counters {
    /// Counts one hit.
    #[inline]
    pub(crate) fn hit(&self) {
        let (tally, owned) = self.calls.local();
        bump(&tally.hits, owned);
    }
    /// Counts one miss.
    pub(crate) fn miss(&self) {
        let (tally, owned) = self.calls.local();
        bump(&tally.misses, owned);
    }
    /// Counts one store error.
    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }
    /// Counts one stale value served.
    pub(crate) fn stale_hit(&self) {
        self.stale_hits.fetch_add(1, Relaxed);
    }
    /// Counts one background refresh stored.
    pub(crate) fn refreshed(&self) {
        self.refreshes.fetch_add(1, Relaxed);
    }
    /// Reads the counters, with the backend's length.
    pub(crate) fn snapshot(&self, len: Option<usize>) -> CacheStats {
        let sum = |field: fn(&Tally) -> &AtomicU64| self.calls.iter().map(|t| field(t).load(Relaxed)).sum();
        CacheStats {
            hits: sum(|t| &t.hits),
            misses: sum(|t| &t.misses),
            evictions: 0,
            expirations: 0,
            errors: self.errors.load(Relaxed),
            stale_hits: self.stale_hits.load(Relaxed),
            refreshes: self.refreshes.load(Relaxed),
            len,
        }
    }
}

/// Adds one to `counter`: a plain load and store on a stripe this thread owns, an
/// atomic add on the shared one.
#[inline]
fn bump(counter: &AtomicU64, owned: bool) {
    if owned {
        counter.store(counter.load(Relaxed).wrapping_add(1), Relaxed);
    } else {
        counter.fetch_add(1, Relaxed);
    }
}

/// A `T` per thread slot, each on its own cache lines, plus one shared by the threads
/// that have no slot of their own.
///
/// A live thread owns at most one slot (see `thread_slot`); slots below the stripe
/// count are written by their owner only, so their counters need no atomic
/// read-modify-write. Readers of the whole (stats, a writer waiting for readers) load
/// every stripe.
#[derive(Debug)]
pub struct Stripes<T> {
    /// `stripe_count()` owned stripes, then the shared one.
    cells: Box<[Padded<T>]>,
}

/// Aligned to two cache lines: the adjacent-line prefetcher pairs lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T: Default> Default for Stripes<T> {
    fn default() -> Self {
        Stripes { cells: (0..=stripe_count()).map(|_| Padded::default()).collect() }
    }
}

impl<T> Stripes<T> {
    /// The calling thread's stripe, and whether this thread is its only writer.
    #[inline]
    pub fn local(&self) -> (&T, bool) {
        let slot = thread_slot();
        let shared = self.cells.len() - 1;
        match self.cells.get(slot) {
            Some(cell) if slot < shared => (&cell.0, true),
            _ => (&self.cells[shared].0, false),
        }
    }

    /// Every stripe.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.cells.iter().map(|c| &c.0)
    }

    /// The stripes that one thread each owns.
    pub fn owned(&self) -> impl Iterator<Item = &T> {
        self.cells[..self.cells.len() - 1].iter().map(|c| &c.0)
    }

    /// The stripe that threads without one of their own share.
    pub fn shared(&self) -> &T {
        &self.cells[self.cells.len() - 1].0
    }
}

/// Owned stripes per [`Stripes`]: twice the cores, at least 4, at most 64. Threads past
/// that share one stripe, with atomic adds.
fn stripe_count() -> usize {
    static COUNT: LazyLock<usize> = LazyLock::new(|| {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        (cores * 2).next_power_of_two().clamp(4, 64)
    });
    *COUNT
}

/// Slots returned by threads that ended, reused first so that slots stay small.
static FREE_SLOTS: Mutex<Vec<usize>> = Mutex::new(Vec::new());
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
const NO_SLOT: usize = usize::MAX;

/// What `SLOT` holds once the thread's slot was given back (the thread is ending).
const ENDED: usize = usize::MAX - 1;

thread_local! {
    /// The thread's slot: a plain cell, so reading it is one thread-local load.
    static SLOT: Cell<usize> = const { Cell::new(NO_SLOT) };
    /// Gives the slot back when the thread ends (registered on the first claim).
    static RELEASE: Release = const { Release };
}

struct Release;

impl Drop for Release {
    fn drop(&mut self) {
        let slot = SLOT.with(|s| s.replace(ENDED));
        if slot < ENDED {
            FREE_SLOTS.lock().push(slot);
        }
    }
}

/// The calling thread's slot: a small number no other live thread has, or a number
/// past every stripe while the thread is ending.
#[inline]
pub(crate) fn thread_slot() -> usize {
    match SLOT.with(Cell::get) {
        NO_SLOT => claim(),
        n => n,
    }
}

#[cold]
fn claim() -> usize {
    // Registering the release fails only while the thread ends: then take no slot.
    if RELEASE.try_with(|_| ()).is_err() {
        return ENDED;
    }
    let slot = FREE_SLOTS.lock().pop().unwrap_or_else(|| NEXT_SLOT.fetch_add(1, Relaxed));
    SLOT.with(|s| s.set(slot));
    slot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up() {
        let counters = Counters::default();
        std::thread::scope(|s| {
            for _ in 0..(stripe_count() + 3) {
                s.spawn(|| {
                    for _ in 0..1000 {
                        counters.hit();
                    }
                    counters.miss();
                });
            }
        });
        let snap = counters.snapshot(None);
        assert_eq!((snap.hits, snap.misses), (1000 * (stripe_count() as u64 + 3), stripe_count() as u64 + 3));
    }

    #[test]
    fn live_threads_have_distinct_slots_and_ended_ones_give_theirs_back() {
        let barrier = std::sync::Barrier::new(4);
        let slots: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let slot = thread_slot();
                        barrier.wait();
                        slot
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = slots.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 4, "slots of live threads are distinct: {slots:?}");
        let reused = std::thread::spawn(thread_slot).join().unwrap();
        assert!(slots.contains(&reused) || FREE_SLOTS.lock().len() < 4, "an ended thread's slot is reused");
    }
}
