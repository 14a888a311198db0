//! Methods with the receiver in the key (`is_method = false`) or left out of it
//! (`is_method = true`), and the generated `Type::m_cache*` items.

use std::sync::atomic::{AtomicUsize, Ordering};

use memo_alchemy::{cache, cache_impl};

static SHARED_RUNS: AtomicUsize = AtomicUsize::new(0);
static OWN_RUNS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, PartialEq, Eq, Hash)]
struct Counter {
    base: u32,
}

#[cache_impl]
impl Counter {
    /// All instances share entries.
    #[cache(is_method = true)]
    fn shared(&self, n: u32) -> u32 {
        SHARED_RUNS.fetch_add(1, Ordering::SeqCst);
        self.base + n
    }

    /// Each instance has its own entries.
    #[cache(is_method = false)]
    fn own(&self, n: u32) -> u32 {
        OWN_RUNS.fetch_add(1, Ordering::SeqCst);
        self.base + n
    }

    /// A receiver taken by value is part of the key too.
    #[cache]
    fn consume(self) -> u32 {
        self.base
    }
}

fn main() -> Result<(), memo_alchemy::Error> {
    let (one, two) = (Counter { base: 1 }, Counter { base: 2 });

    assert_eq!(one.shared(10), 11);
    // Shared: the first instance's value is served to the second.
    assert_eq!(two.shared(10), 11);
    assert_eq!(SHARED_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(Counter::shared_cache_stats().hits, 1);
    assert_eq!(Counter::shared_cache().stats().hits, 1);
    assert_eq!(Counter::shared_cache_clear()?, 1);

    assert_eq!(one.own(10), 11);
    assert_eq!(two.own(10), 12);
    assert_eq!(one.own(10), 11);
    assert_eq!(OWN_RUNS.load(Ordering::SeqCst), 2);
    let stats = Counter::own_cache_stats();
    assert_eq!((stats.hits, stats.misses), (1, 2));
    assert_eq!(Counter::own_cache().stats(), stats);
    assert_eq!(Counter::own_cache_clear()?, 2);

    assert_eq!(one.clone().consume(), 1);
    assert_eq!(one.consume(), 1);
    assert_eq!(Counter::consume_cache_stats().hits, 1);
    Ok(())
}
