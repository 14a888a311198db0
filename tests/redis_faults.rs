//! Redis misbehaving: killed, frozen, dropping connections, restarted. Cached
//! functions keep returning correct values within the timeout; clears report errors.
//! One test, in phases, because the phases share and break the one server.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread::sleep;
use std::time::{Duration, Instant};

use memo_alchemy::{distributed_memory_cache, flush_all, flush_all_async, json_cache};
use redis::Commands;
use support::server;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[json_cache]
fn square(i: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    i * i
}

static ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[json_cache]
async fn cube(i: u64) -> u64 {
    ASYNC_RUNS.fetch_add(1, SeqCst);
    i * i * i
}

static LOCAL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[distributed_memory_cache]
fn local_square(i: u64) -> u64 {
    LOCAL_RUNS.fetch_add(1, SeqCst);
    i * i
}

/// The configured timeout (300 ms) plus scheduling slack on a loaded machine.
const BOUND: Duration = Duration::from_millis(1500);

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

fn wait_for_breaker_cooldown() {
    sleep(Duration::from_millis(600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_faults_never_produce_wrong_values() {
    server();

    // flush_all removes everything under the prefix and nothing outside it.
    let mut raw = server().raw();
    for foreign in ["other:key", "memorable", "memo"] {
        let _: () = raw.set(foreign, 1).unwrap();
    }
    square(999);
    assert_eq!(flush_all().unwrap(), 1);
    assert!(server().keys("memo:*:k:*").is_empty());
    // Regression: generation counters were never removed, even by flush_all. They now
    // expire (after an hour, so that fills in flight stay refused until then).
    let generations = server().keys("memo:*:g");
    assert!(!generations.is_empty(), "the clears above left counters");
    for generation in generations {
        let ttl: i64 = redis::cmd("PTTL").arg(&generation).query(&mut raw).unwrap();
        assert!(ttl > 0, "{generation} expires: {ttl}");
    }
    for foreign in ["other:key", "memorable", "memo"] {
        assert!(raw.exists::<_, bool>(foreign).unwrap(), "{foreign} survives flush_all");
    }
    // Regression: there was no async flush_all.
    square(998);
    assert_eq!(cube(998).await, 998 * 998 * 998);
    assert_eq!(flush_all_async().await.unwrap(), 2);
    assert!(server().keys("memo:*:k:*").is_empty());
    for foreign in ["other:key", "memorable", "memo"] {
        assert!(raw.exists::<_, bool>(foreign).unwrap(), "{foreign} survives flush_all_async");
    }

    // Healthy: computed once, then hits (distributed_memory once subscribed).
    let runs = RUNS.load(SeqCst);
    let deadline = Instant::now() + Duration::from_secs(5);
    while local_square::cache_stats().hits == 0 {
        assert_eq!(local_square(3), 9);
        assert!(Instant::now() < deadline, "the subscription never came up");
        sleep(Duration::from_millis(5));
    }
    assert_eq!(square(3), 9);
    assert_eq!(square(3), 9);
    assert_eq!(cube(2).await, 8);
    assert_eq!(RUNS.load(SeqCst), runs + 1);

    // Killed: correct values, computed directly, within the timeout; errors counted.
    server().kill();
    let errors_before = square::cache_stats().errors;
    for i in 0..6 {
        let (v, took) = timed(|| square(i));
        assert_eq!(v, i * i);
        assert!(took < BOUND, "square({i}) took {took:?}");
    }
    let start = Instant::now();
    assert_eq!(cube(3).await, 27);
    assert!(start.elapsed() < BOUND, "cube took {:?}", start.elapsed());
    assert!(square::cache_stats().errors > errors_before);
    // distributed_memory: no subscription, so no local value is served: computed.
    sleep(Duration::from_millis(100));
    let local_runs = LOCAL_RUNS.load(SeqCst);
    assert_eq!(local_square(3), 9);
    assert_eq!(LOCAL_RUNS.load(SeqCst), local_runs + 1, "not served from memory while unsubscribed");
    assert!(local_square::cache_clear().is_err(), "a clear that reaches no one is an error");
    // Regression: distributed_memory's outages were invisible in its stats.
    assert!(local_square::cache_stats().errors > 0, "calls computed during the outage are counted");
    // A clear that cannot reach Redis is an error, never a silent success.
    wait_for_breaker_cooldown();
    let (cleared, took) = timed(square::cache_clear);
    assert!(cleared.is_err(), "{cleared:?}");
    assert!(took < BOUND);
    assert!(cube::cache_clear().await.is_err());

    // Restarted: after the breaker's cool-down, hits again.
    server().start();
    wait_for_breaker_cooldown();
    let runs = RUNS.load(SeqCst);
    assert_eq!(square(5), 25);
    assert_eq!(square(5), 25);
    assert_eq!(RUNS.load(SeqCst), runs + 1, "stored after the restart, then a hit");
    assert_eq!(cube(4).await, 64);
    assert_eq!(cube(4).await, 64);

    // Frozen (SIGSTOP): calls return correct values within the timeout.
    server().pause();
    let (v, took) = timed(|| square(7));
    server().resume();
    assert_eq!(v, 49);
    assert!(took < BOUND, "square(7) took {took:?} against a frozen server");
    wait_for_breaker_cooldown();

    // Connections dropped by the server: the next calls reconnect or compute.
    let _: () =
        redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal").query(&mut server().raw()).unwrap_or(());
    assert_eq!(square(5), 25);
    assert_eq!(cube(4).await, 64);
    wait_for_breaker_cooldown();
    let runs = RUNS.load(SeqCst);
    assert_eq!(square(5), 25);
    assert_eq!(RUNS.load(SeqCst), runs, "hits again once reconnected");
}
