//! `limit` keeps the most recently used entries.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use memo_alchemy::cache;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(limit = 3)]
fn square(a: u32) -> u32 {
    RUNS.fetch_add(1, SeqCst);
    a * a
}

fn runs_for(a: u32) -> usize {
    let before = RUNS.load(SeqCst);
    square(a);
    RUNS.load(SeqCst) - before
}

#[test]
fn recently_read_entry_survives_and_least_recent_goes() {
    square(1);
    square(2);
    square(3);
    // Reading 1 makes 2 the least recently used.
    assert_eq!(runs_for(1), 0);
    square(4);
    let stats = square::cache_stats();
    assert_eq!((stats.len, stats.evictions), (Some(3), 1));
    assert_eq!(runs_for(1), 0, "1 was read recently and survives");
    assert_eq!(runs_for(3), 0);
    assert_eq!(runs_for(4), 0);
    assert_eq!(runs_for(2), 1, "2 was the least recently used and was evicted");
    // Inserting 2 evicted 1, now the least recently used.
    assert_eq!(runs_for(1), 1);
    assert_eq!(square::cache_stats().evictions, 3);
}
