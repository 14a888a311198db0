//! A value whose computation began before a clear completed is not stored after it.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::Duration;

use memo_alchemy::cache;

static SOURCE: AtomicUsize = AtomicUsize::new(1);
static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Reads the source at the start, then takes a while.
#[cache]
fn slow_read(key: u32) -> usize {
    let _ = key;
    RUNS.fetch_add(1, SeqCst);
    let seen = SOURCE.load(SeqCst);
    thread::sleep(Duration::from_millis(300));
    seen
}

#[test]
fn clear_during_compute_leaves_no_stale_value() {
    thread::scope(|s| {
        let reader = s.spawn(|| slow_read(1));
        thread::sleep(Duration::from_millis(100));
        // The data changes and the cache is cleared while the read is in flight.
        SOURCE.store(2, SeqCst);
        assert_eq!(slow_read::cache_clear().unwrap(), 0);
        assert_eq!(reader.join().unwrap(), 1, "the in-flight caller gets what it computed");
    });
    assert_eq!(slow_read::cache_stats().len, Some(0), "the stale value was not stored");
    assert_eq!(slow_read(1), 2);
    assert_eq!(RUNS.load(SeqCst), 2);
}

static PARTIAL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(strict = true)]
fn slow_partial(key: u32) -> usize {
    PARTIAL_RUNS.fetch_add(1, SeqCst);
    let seen = SOURCE.load(SeqCst);
    thread::sleep(Duration::from_millis(300));
    seen + key as usize
}

#[test]
fn partial_clear_during_compute_leaves_no_stale_value() {
    thread::scope(|s| {
        let reader = s.spawn(|| slow_partial(10));
        let _ = &reader;
        thread::sleep(Duration::from_millis(100));
        slow_partial::cache_clear_by().key(10_u32).clear().unwrap();
    });
    assert_eq!(slow_partial::cache_stats().len, Some(0));
}

static ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache]
async fn slow_async(key: u32) -> usize {
    let _ = key;
    ASYNC_RUNS.fetch_add(1, SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    ASYNC_RUNS.load(SeqCst)
}

#[tokio::test]
async fn async_clear_during_compute_leaves_no_stale_value() {
    let reader = tokio::spawn(slow_async(1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(slow_async::cache_clear().await.unwrap(), 0);
    assert_eq!(reader.await.unwrap(), 1);
    assert_eq!(slow_async::cache_stats().len, Some(0));
    assert_eq!(slow_async(1).await, 2);
}
