//! A panic in the body stores nothing, wakes the waiters (one of them computes) and
//! poisons nothing.

use std::panic::catch_unwind;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::Duration;

use memo_alchemy::cache;

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// The first run panics after a while; later runs succeed.
#[cache]
fn flaky(a: u32) -> u32 {
    let run = RUNS.fetch_add(1, SeqCst);
    thread::sleep(Duration::from_millis(150));
    if run == 0 {
        panic!("first run fails");
    }
    a * 2
}

#[test]
fn waiters_wake_and_one_of_them_computes() {
    let results: Vec<thread::Result<u32>> = thread::scope(|s| {
        let leader = s.spawn(|| catch_unwind(|| flaky(5)));
        thread::sleep(Duration::from_millis(50));
        let waiters: Vec<_> = (0..4).map(|_| s.spawn(|| catch_unwind(|| flaky(5)))).collect();
        let mut all = vec![leader.join().unwrap()];
        all.extend(waiters.into_iter().map(|w| w.join().unwrap()));
        all
    });
    assert!(results[0].is_err(), "the leader's panic reaches its caller");
    for r in &results[1..] {
        assert_eq!(*r.as_ref().unwrap(), 10, "each waiter gets the value");
    }
    assert_eq!(RUNS.load(SeqCst), 2, "the panic run plus one retry by a waiter");
    // Nothing is poisoned: the cache still serves and clears.
    assert_eq!(flaky(5), 10);
    assert_eq!(RUNS.load(SeqCst), 2);
    assert_eq!(flaky::cache_clear().unwrap(), 1);
}

static ALWAYS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache]
fn always_panics(a: u32) -> u32 {
    ALWAYS_RUNS.fetch_add(1, SeqCst);
    panic!("no value for {a}");
}

#[test]
fn a_panic_stores_nothing() {
    assert!(catch_unwind(|| always_panics(1)).is_err());
    assert!(catch_unwind(|| always_panics(1)).is_err());
    assert_eq!(ALWAYS_RUNS.load(SeqCst), 2);
    assert_eq!(always_panics::cache_stats().len, Some(0));
}
