//! `expire` with millisecond precision.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread::sleep;
use std::time::{Duration, Instant};

use memo_alchemy::cache;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(expire = 1)]
fn stamp(a: u32) -> u32 {
    RUNS.fetch_add(1, SeqCst);
    a
}

#[test]
fn entry_lives_for_expire_seconds() {
    let start = Instant::now();
    stamp(1);
    sleep(Duration::from_millis(700));
    stamp(1);
    assert!(start.elapsed() < Duration::from_millis(1000), "the machine stalled; the check is void");
    assert_eq!(RUNS.load(SeqCst), 1, "alive at 700 ms");
    sleep(
        Duration::from_millis(1000) - start.elapsed().min(Duration::from_millis(1000))
            + Duration::from_millis(50),
    );
    stamp(1);
    assert_eq!(RUNS.load(SeqCst), 2, "expired just after 1000 ms");
    let stats = stamp::cache_stats();
    assert_eq!((stats.expirations, stats.len), (1, Some(1)));
}
