//! The postgres backend when the database goes away mid-run: calls still return the
//! right values within bounded waits, clears return `Err` and are retried until the
//! database is back, and no value a failed clear was meant to remove is served.

#[path = "support/postgres.rs"]
mod pg;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use memo_alchemy::postgres_cache;
use pg::server;
use support::warm;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[postgres_cache]
fn price(id: u32) -> u32 {
    RUNS.fetch_add(1, SeqCst);
    id * 1000 + u32::try_from(RUNS.load(SeqCst)).unwrap()
}

static ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[postgres_cache]
async fn quote(id: u32) -> u32 {
    ASYNC_RUNS.fetch_add(1, SeqCst);
    id
}

/// The tests stop or freeze the one server: one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

static FROZEN_RUNS: AtomicUsize = AtomicUsize::new(0);

#[postgres_cache]
fn stock(id: u32) -> u32 {
    FROZEN_RUNS.fetch_add(1, SeqCst);
    id * 1000 + u32::try_from(FROZEN_RUNS.load(SeqCst)).unwrap()
}

/// A frozen server (connections open, nothing answers): each call waits at most about
/// one timeout (400 ms), then none once the breaker opens; a clear fails within the
/// timeout; after the thaw the clear goes through and the table is used again.
#[test]
fn a_frozen_server_bounds_every_wait() {
    let _serial = serial();
    server();
    let first = stock(1);
    assert_eq!(stock(1), first);
    let frozen = server().pause();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let call = Instant::now();
        assert_eq!(stock(2) / 1000, 2);
        slowest = slowest.max(call.elapsed());
    }
    let call = Instant::now();
    let cleared = stock::cache_clear();
    let clear_took = call.elapsed();
    server().resume(&frozen);
    assert!(slowest < Duration::from_millis(1000), "a call waited {slowest:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(cleared.is_err(), "a clear of a frozen server is an error");
    assert!(clear_took < Duration::from_millis(1000), "the clear waited {clear_took:?}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while memo_alchemy::postgres::pending_clears() != 0 {
        assert!(Instant::now() < deadline, "the pending clear never went through");
        thread::sleep(Duration::from_millis(50));
    }
    let fresh = warm(|| stock(1), || stock::cache_stats().hits);
    assert_ne!(fresh, first, "the cleared value is not served again");
}

#[test]
fn a_stopped_server_gives_right_values_bounded_waits_and_failed_clears() {
    let _serial = serial();
    server();
    let first = price(1);
    assert_eq!(price(1), first);
    assert_eq!(RUNS.load(SeqCst), 1);

    server().stop();
    // Right values, computed directly, each within the timeout (400 ms) and soon
    // without waiting at all (the breaker opens after 3 failures).
    let started = Instant::now();
    for _ in 0..20 {
        let call = Instant::now();
        assert_eq!(price(2) / 1000, 2);
        assert!(call.elapsed() < Duration::from_millis(1500), "a call waited {:?}", call.elapsed());
    }
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(price::cache_stats().errors >= 1, "the failures are counted");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let call = Instant::now();
    assert_eq!(runtime.block_on(quote(3)), 3);
    assert!(call.elapsed() < Duration::from_millis(1500), "an async call waited {:?}", call.elapsed());

    // A clear cannot reach the database: an error, never a silent success.
    let err = price::cache_clear().unwrap_err().to_string();
    assert!(err.contains("retried"), "{err}");
    assert!(memo_alchemy::postgres::pending_clears() >= 1);

    server().start();
    // The clear goes through in the background; meanwhile nothing is served from the table.
    let deadline = Instant::now() + Duration::from_secs(15);
    while memo_alchemy::postgres::pending_clears() != 0 {
        assert!(Instant::now() < deadline, "the pending clear never went through");
        thread::sleep(Duration::from_millis(50));
    }
    let rows =
        server().scalar("SELECT count(*) FROM memo_test.memo_entries WHERE namespace LIKE 'memo:%::price:%'");
    assert_eq!(rows, "0", "the clear removed the row written before the outage");
    let runs = RUNS.load(SeqCst);
    let fresh = price(1);
    assert_ne!(fresh, first, "the cleared value is not served again");
    assert_eq!(RUNS.load(SeqCst), runs + 1);
    // Back to normal once the breaker's cool-down is over.
    assert_eq!(warm(|| price(1), || price::cache_stats().hits), fresh);
}
