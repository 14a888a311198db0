//! `limit` keeps the entries used most: recently and often. A recently read entry
//! survives a new key; a key asked for once does not push out one in use (TinyLFU
//! admission), and a key asked for again gets in, evicting the least recently used.

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
fn recently_read_entry_survives_and_a_key_asked_for_again_gets_in() {
    square(1);
    square(2);
    square(3);
    // Reading 1 and 3 makes 2 the least recently used.
    assert_eq!(runs_for(1), 0);
    assert_eq!(runs_for(3), 0);
    // 4, asked for once, does not push out an entry in use.
    assert_eq!(runs_for(4), 1);
    assert_eq!(square::cache_stats().len, Some(3));
    assert_eq!(runs_for(1), 0, "1 was read recently and survives");
    assert_eq!(runs_for(3), 0, "3 was read recently and survives");
    // Asked for again and again, 4 gets in, and 2, the least recently used, goes.
    let mut asked = 1;
    while runs_for(4) == 1 {
        asked += 1;
        assert!(asked <= 6, "4 was asked for {asked} times and never admitted");
    }
    let stats = square::cache_stats();
    assert_eq!((stats.len, stats.evictions), (Some(3), 1));
    assert_eq!(runs_for(1), 0, "1 survives");
    assert_eq!(runs_for(3), 0, "3 survives");
    assert_eq!(runs_for(2), 1, "2 was the least recently used and was evicted");
}
