//! `stale = N` (serve an expired value when the body fails) and `refresh = N`
//! (recompute old entries in the background), on memory, distributed_memory, json and
//! pickle against a real redis-server. The lifetimes are whole seconds, so these tests sleep a little over one.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant};

use memo_alchemy::cache;
use support::{server, Gate};

/// A little over one second: past a one-second `expire` or `refresh`.
const PAST_ONE_SECOND: Duration = Duration::from_millis(1_100);

static FAIL: AtomicBool = AtomicBool::new(false);
static PANIC: AtomicBool = AtomicBool::new(false);
static RATE_RUNS: AtomicUsize = AtomicUsize::new(0);

fn rate_body(id: u32) -> Result<u32, String> {
    let run = u32::try_from(RATE_RUNS.fetch_add(1, SeqCst)).unwrap();
    assert!(!PANIC.load(SeqCst), "the rates service panicked");
    if FAIL.load(SeqCst) {
        return Err("the rates service is down".into());
    }
    Ok(id * 100 + run)
}

#[cache(expire = 1, stale = 1)]
fn rate(id: u32) -> Result<u32, String> {
    rate_body(id)
}

#[cache(backend = "json", expire = 1, stale = 1)]
fn shared_rate(id: u32) -> Result<u32, String> {
    rate_body(id)
}

#[cache(backend = "distributed_memory", expire = 1, stale = 1)]
fn local_rate(id: u32) -> Result<u32, String> {
    rate_body(id)
}

/// Stale-on-failure, the same for both backends.
fn stale_values_are_served_only_on_failure_within_the_window(
    f: fn(u32) -> Result<u32, String>,
    stats: fn() -> memo_alchemy::CacheStats,
    clear: fn() -> Result<usize, memo_alchemy::Error>,
) {
    FAIL.store(false, SeqCst);
    let first = f(1).unwrap();
    assert_eq!(f(1), Ok(first), "a hit");
    sleep(PAST_ONE_SECOND);
    FAIL.store(true, SeqCst);
    assert_eq!(f(1), Ok(first), "expired, the body failed: the stale value");
    assert_eq!(stats().stale_hits, 1);
    PANIC.store(true, SeqCst);
    assert_eq!(f(1), Ok(first), "a panic is a failure too");
    PANIC.store(false, SeqCst);
    assert_eq!(stats().stale_hits, 2);
    // A clear takes the stale value away too.
    FAIL.store(false, SeqCst);
    let kept = f(2).unwrap();
    sleep(PAST_ONE_SECOND);
    clear().unwrap();
    FAIL.store(true, SeqCst);
    assert!(f(2).is_err(), "cleared: nothing to fall back on (was {kept})");
    assert_eq!(stats().stale_hits, 2);
    FAIL.store(false, SeqCst);
    let second = f(1).unwrap();
    assert_ne!(second, first, "the body succeeded: the new value");
    assert_eq!(stats().stale_hits, 2);
    sleep(PAST_ONE_SECOND * 2);
    FAIL.store(true, SeqCst);
    assert!(f(1).is_err(), "past expire + stale: the failure");
    FAIL.store(false, SeqCst);
}

#[test]
fn stale_on_memory_and_json() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    server();
    stale_values_are_served_only_on_failure_within_the_window(rate, rate::cache_stats, rate::cache_clear);
    stale_values_are_served_only_on_failure_within_the_window(
        shared_rate,
        shared_rate::cache_stats,
        shared_rate::cache_clear,
    );
    // distributed_memory serves nothing before its subscription is up.
    support::warm(|| local_rate(100), || local_rate::cache_stats().hits).unwrap();
    stale_values_are_served_only_on_failure_within_the_window(
        local_rate,
        local_rate::cache_stats,
        local_rate::cache_clear,
    );
    shared_rate(9).unwrap();
    let keys = server().keys("memo:*::shared_rate:*:k:*");
    assert_eq!(keys.len(), 1);
    let pttl: i64 = redis::cmd("PTTL").arg(&keys[0]).query(&mut server().raw()).unwrap();
    assert!(pttl > 1_000 && pttl <= 2_000, "kept for expire + stale: {pttl} ms");
}

static SERIAL: Mutex<()> = Mutex::new(());

static QUOTE_RUNS: AtomicUsize = AtomicUsize::new(0);
/// While set, a refresh waits at it: the callers must not.
static GATE: Mutex<Option<Arc<Gate>>> = Mutex::new(None);
static QUOTE_FAILS: AtomicBool = AtomicBool::new(false);

fn quote_body(id: u32) -> Result<usize, String> {
    let gate = GATE.lock().unwrap().clone();
    if let Some(gate) = gate {
        gate.pass(); // until every caller has its answer
    }
    let run = QUOTE_RUNS.fetch_add(1, SeqCst);
    assert!(!QUOTE_FAILS.load(SeqCst), "the quote service panicked");
    Ok(id as usize * 1000 + run)
}

#[cache(expire = 60, refresh = 1)]
fn quote(id: u32) -> Result<usize, String> {
    quote_body(id)
}

#[cache(backend = "json", expire = 60, refresh = 1)]
fn shared_quote(id: u32) -> Result<usize, String> {
    quote_body(id)
}

#[cache(backend = "pickle", expire = 60, refresh = 1)]
fn pickled_quote(id: u32) -> Result<usize, String> {
    quote_body(id)
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        sleep(Duration::from_millis(5));
    }
}

fn refresh_runs_once_in_the_background(
    f: fn(u32) -> Result<usize, String>,
    stats: fn() -> memo_alchemy::CacheStats,
) {
    let runs = QUOTE_RUNS.load(SeqCst);
    let old = f(7).unwrap();
    assert_eq!(f(7), Ok(old));
    sleep(PAST_ONE_SECOND);
    // The refresh waits at the gate until every caller has its answer.
    let gate = Arc::new(Gate::default());
    *GATE.lock().unwrap() = Some(Arc::clone(&gate));
    let (answers, answered) = std::sync::mpsc::channel();
    for _ in 0..8 {
        let answers = answers.clone();
        std::thread::spawn(move || answers.send(f(7)).unwrap());
    }
    gate.arrived(); // the refresh is running, and held
    for _ in 0..8 {
        let answer = answered.recv_timeout(Duration::from_secs(10)).expect("a caller waited for the refresh");
        assert_eq!(answer, Ok(old), "callers get the old value at once");
    }
    *GATE.lock().unwrap() = None;
    gate.release();
    wait_until("the refresh is stored", || stats().refreshes == 1);
    assert_eq!(QUOTE_RUNS.load(SeqCst), runs + 2, "one computation, one refresh");
    let new = f(7).unwrap();
    assert_ne!(new, old, "the refreshed value");

    // A refresh that panics keeps the old value, poisons nothing, and is tried again.
    sleep(PAST_ONE_SECOND);
    QUOTE_FAILS.store(true, SeqCst);
    let errors = stats().errors;
    assert_eq!(f(7), Ok(new));
    wait_until("the failed refresh is counted", || stats().errors == errors + 1);
    QUOTE_FAILS.store(false, SeqCst);
    assert_eq!(f(7), Ok(new), "the old value stays");
    wait_until("a later hit refreshes", || stats().refreshes == 2);
    assert_ne!(f(7), Ok(new));
}

#[test]
fn refresh_on_memory_and_json() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    server();
    refresh_runs_once_in_the_background(quote, quote::cache_stats);
    refresh_runs_once_in_the_background(shared_quote, shared_quote::cache_stats);
    refresh_runs_once_in_the_background(pickled_quote, pickled_quote::cache_stats);
}

static ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(backend = "json", expire = 60, refresh = 1)]
async fn fetch(id: u32) -> usize {
    tokio::time::sleep(Duration::from_millis(1)).await;
    id as usize * 10 + ASYNC_RUNS.fetch_add(1, SeqCst)
}

#[test]
fn async_refresh_runs_on_the_callers_runtime() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    server();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let old = fetch(1).await;
        sleep(PAST_ONE_SECOND);
        assert_eq!(fetch(1).await, old, "served at once");
        let deadline = Instant::now() + Duration::from_secs(10);
        while fetch::cache_stats().refreshes == 0 {
            assert!(Instant::now() < deadline, "never refreshed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_ne!(fetch(1).await, old);
    });
}

static OUTAGE_RUNS: AtomicUsize = AtomicUsize::new(0);
static OUTAGE_GATE: Mutex<Option<Arc<Gate>>> = Mutex::new(None);

#[cache(backend = "json", expire = 60, refresh = 1)]
fn priced(id: u32) -> usize {
    let gate = OUTAGE_GATE.lock().unwrap().clone();
    if let Some(gate) = gate {
        gate.pass(); // until Redis is frozen
    }
    id as usize * 1000 + OUTAGE_RUNS.fetch_add(1, SeqCst)
}

#[test]
fn a_refresh_that_cannot_reach_redis_keeps_the_old_value() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    server();
    let old = priced(3);
    sleep(PAST_ONE_SECOND);
    let gate = Arc::new(Gate::default());
    *OUTAGE_GATE.lock().unwrap() = Some(Arc::clone(&gate));
    let errors = priced::cache_stats().errors;
    assert_eq!(priced(3), old, "due: served, and the refresh starts");
    gate.arrived();
    server().pause();
    gate.release();
    wait_until("the refresh's failed write is counted", || priced::cache_stats().errors > errors);
    server().resume();
    *OUTAGE_GATE.lock().unwrap() = None;
    assert_eq!(priced::cache_stats().refreshes, 0, "a failed write is not a refresh");
    // The probes above (stats read the length from Redis) opened the breaker: wait it out.
    wait_until("Redis answers again", || priced::cache_entry(3).get().is_ok());
    // The old value, or the refresh's own (a write that timed out may still have been
    // applied when Redis thawed): never nothing, never another key's.
    let stored = priced::cache_entry(3).get().unwrap().expect("the entry is still there");
    assert!(stored == old || stored == old + 1, "{stored} (old {old})");
}
