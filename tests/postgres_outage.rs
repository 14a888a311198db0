//! The postgres backend when the database goes away mid-run: calls still return the
//! right values within bounded waits, clears return `Err` and are retried until the
//! database is back, and no value a failed clear was meant to remove is served.

#[path = "support/postgres.rs"]
mod pg;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use memo_alchemy::postgres_cache;
use pg::server;

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

#[test]
fn a_stopped_server_gives_right_values_bounded_waits_and_failed_clears() {
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
        server().scalar("SELECT count(*) FROM memo_test.memo_entries WHERE namespace LIKE '%::price:%'");
    assert_eq!(rows, "0", "the clear removed the row written before the outage");
    let runs = RUNS.load(SeqCst);
    let fresh = price(1);
    assert_ne!(fresh, first, "the cleared value is not served again");
    assert_eq!(RUNS.load(SeqCst), runs + 1);
    // Back to normal once the breaker's cool-down is over.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = price::cache_stats().hits;
        assert_eq!(price(1), fresh);
        if price::cache_stats().hits > before {
            break;
        }
        assert!(Instant::now() < deadline, "never served from PostgreSQL again");
        thread::sleep(Duration::from_millis(50));
    }
}
