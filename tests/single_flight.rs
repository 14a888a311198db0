//! Concurrent misses on one key run the body once; the others wait for its value.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use memo_alchemy::cache;

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache]
fn slow(a: u32) -> u32 {
    SLOW_RUNS.fetch_add(1, SeqCst);
    thread::sleep(Duration::from_millis(200));
    a * 10
}

#[test]
fn eight_threads_one_computation() {
    let barrier = Barrier::new(8);
    let results: Vec<u32> = thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    slow(7)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results, vec![70; 8]);
    assert_eq!(SLOW_RUNS.load(SeqCst), 1);
    let stats = slow::cache_stats();
    assert_eq!(stats.hits + stats.misses, 8);
}

static INSIDE: AtomicUsize = AtomicUsize::new(0);

/// Waits (up to 5 s) until four bodies are running at once; returns whether they were.
#[cache]
fn per_key(a: u32) -> bool {
    let _ = a;
    INSIDE.fetch_add(1, SeqCst);
    let deadline = Instant::now() + Duration::from_secs(5);
    while INSIDE.load(SeqCst) < 4 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    INSIDE.load(SeqCst) >= 4
}

#[test]
fn different_keys_do_not_wait_for_each_other() {
    let all_together = thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|i| s.spawn(move || per_key(i))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(all_together, vec![true; 4], "four keys computed concurrently");
}

static ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache]
async fn slow_async(a: u32) -> u32 {
    ASYNC_RUNS.fetch_add(1, SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    a + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_tasks_one_computation() {
    let tasks: Vec<_> = (0..8).map(|_| tokio::spawn(slow_async(1))).collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 2);
    }
    assert_eq!(ASYNC_RUNS.load(SeqCst), 1);
}

static FAILING_RUNS: AtomicUsize = AtomicUsize::new(0);
static FAILING_INSIDE: AtomicUsize = AtomicUsize::new(0);
static FAILING_MOST_AT_ONCE: AtomicUsize = AtomicUsize::new(0);

/// Fails after 200 ms, recording how many runs overlap.
#[cache]
fn failing(a: u32) -> Result<u32, String> {
    FAILING_RUNS.fetch_add(1, SeqCst);
    let inside = FAILING_INSIDE.fetch_add(1, SeqCst) + 1;
    FAILING_MOST_AT_ONCE.fetch_max(inside, SeqCst);
    thread::sleep(Duration::from_millis(200));
    FAILING_INSIDE.fetch_sub(1, SeqCst);
    Err(format!("no value for {a}"))
}

/// Regression: the waiters of a leader whose body returned `Err` used to re-elect a
/// leader one at a time, so 8 callers ran the body 8 times in sequence (1.6 s).
#[test]
fn waiters_on_a_failing_leader_do_not_run_one_after_another() {
    let barrier = Barrier::new(8);
    let results: Vec<Result<u32, String>> = thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    failing(3)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.iter().all(|r| *r == Err("no value for 3".to_owned())), "{results:?}");
    assert_eq!(failing::cache_stats().len, Some(0), "an Err is never stored");
    let runs = FAILING_RUNS.load(SeqCst);
    assert!((2..=8).contains(&runs), "the leader, then the waiters: {runs} runs");
    assert!(
        FAILING_MOST_AT_ONCE.load(SeqCst) >= 2,
        "after the leader failed, the waiters computed side by side"
    );
}
