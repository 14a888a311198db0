//! Clearing a function with many entries in Redis: the caller waits one round trip,
//! whatever the size (the entries are unreadable from then on), and a background drain
//! removes the old keys in batches that never stall Redis, finishing even the drain of
//! a process that crashed halfway.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use memo_alchemy::json_cache;
use redis::Commands;
use support::{is_child, run_child, server};

static BIG_RUNS: AtomicUsize = AtomicUsize::new(0);

#[json_cache(limit = -1, expire = -1)]
fn big(i: u64) -> u64 {
    BIG_RUNS.fetch_add(1, SeqCst);
    i
}

const ENTRIES: u64 = 1_000_000;

/// Waits until no draining index of `function` is listed (without `KEYS`, which would
/// stall Redis on a million keys), then checks that no entry is left; how long it took.
fn drained(function: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut raw = server().raw();
    loop {
        let listed: Vec<String> = raw.smembers("memo:__memo:drains").unwrap();
        if !listed.iter().any(|d| d.contains(&format!("::{function}:"))) {
            break;
        }
        assert!(start.elapsed() < limit, "{function} was still draining after {limit:?}");
        thread::sleep(Duration::from_millis(50));
    }
    let took = start.elapsed();
    let pattern = format!("memo:*:redis_big_clear::{function}:*");
    let left: Vec<String> = server()
        .keys(&pattern)
        .into_iter()
        .filter(|k| k.contains(":k:") || k.contains(":draining:"))
        .collect();
    assert!(left.len() <= 1, "left behind: {:?}", &left[..left.len().min(5)]);
    took
}

/// The tests fill and clear hundreds of thousands of keys: one at a time, so that one's
/// fill does not stall the other's clear.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn a_full_clear_returns_at_once_and_the_drain_never_stalls_redis() {
    if is_child() {
        return;
    }
    let _serial = serial();
    server();
    big(0);
    let index = server().fill("big", ENTRIES);
    let mut raw = server().raw();
    assert_eq!(raw.zcard::<_, u64>(&index).unwrap(), ENTRIES);

    let done = AtomicBool::new(false);
    let (removed, took, keys_left, drain_took, worst_ping) = thread::scope(|s| {
        let pinger = s.spawn(|| {
            let mut conn = server().raw();
            let mut worst = Duration::ZERO;
            while !done.load(SeqCst) {
                let start = Instant::now();
                let _: String = redis::cmd("PING").query(&mut conn).unwrap();
                worst = worst.max(start.elapsed());
                thread::sleep(Duration::from_millis(5));
            }
            worst
        });
        let start = Instant::now();
        let removed = big::cache_clear().unwrap();
        let took = start.elapsed();
        let keys_left: u64 = redis::cmd("DBSIZE").query(&mut server().raw()).unwrap();
        let drain_took = drained("big", Duration::from_secs(120));
        done.store(true, SeqCst);
        (removed, took, keys_left, drain_took, pinger.join().unwrap())
    });
    println!(
        "cleared {removed} entries: the caller waited {took:?}; {keys_left} keys were left to the \
         drain, which took {drain_took:?}; the slowest PING meanwhile took {worst_ping:?}"
    );
    assert_eq!(removed as u64, ENTRIES, "the count is exact");
    // The caller did not remove the keys itself: the drain did, afterwards.
    assert!(keys_left > ENTRIES / 2, "only {keys_left} keys were left when the clear returned");
    // Yet nothing written before the clear is read after it.
    let runs = BIG_RUNS.load(SeqCst);
    assert_eq!(big(0), 0);
    assert_eq!(BIG_RUNS.load(SeqCst), runs + 1, "big(0) was cleared at once");
    assert!(worst_ping < Duration::from_secs(1), "Redis stalled for {worst_ping:?}");
    assert!(server().keys("memo:*:redis_big_clear::big:*:i:draining:*").is_empty());
}

#[json_cache(limit = -1, expire = -1)]
fn crashy(i: u64) -> u64 {
    i
}

const CRASHY_ENTRIES: u64 = 200_000;

#[test]
fn child_clears_and_crashes() {
    if !is_child() {
        return;
    }
    server();
    // Connected first (a cluster's client discovers the nodes on its first call, within
    // the same short timeout the tests give every call).
    assert_eq!(crashy(0), 0);
    assert_eq!(crashy::cache_clear().unwrap() as u64, CRASHY_ENTRIES);
    // Dies before its drain has done much: no unwinding, no destructors.
    std::process::abort();
}

#[test]
fn a_drain_interrupted_by_a_crash_is_finished_by_another_process() {
    if is_child() {
        return;
    }
    let _serial = serial();
    server();
    crashy(0); // opens the store here: this process's drain runs
    server().fill("crashy", CRASHY_ENTRIES);
    let status = run_child("child_clears_and_crashes", &[]).wait().unwrap();
    // Killed by SIGABRT (no exit code): a failed assertion would exit with 101.
    assert_eq!(status.code(), None, "the child cleared every entry, then aborted");
    let left: u64 = redis::cmd("DBSIZE").query(&mut server().raw()).unwrap();
    println!("{left} keys (of {CRASHY_ENTRIES} entries) were in Redis when the child crashed");
    let took = drained("crashy", Duration::from_secs(120));
    println!("this process finished the drain in {took:?}");
    assert!(server().keys("memo:*:redis_big_clear::crashy:*:i:draining:*").is_empty());
    let listed: Vec<String> = server().raw().smembers("memo:__memo:drains").unwrap();
    assert!(listed.iter().all(|d| !d.contains("crashy")), "{listed:?}");
}
