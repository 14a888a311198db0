//! `distributed_memory` across processes: the test binary re-runs itself as a child
//! process, and the two coordinate through keys on the shared redis-server.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memo_alchemy::{cache, distributed_memory_cache};
use redis::Commands;
use support::{is_child, run_child, server, signal, wait_for, warm};

static PRICE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Returns how many times this process has run the body: a recompute changes it.
#[distributed_memory_cache(strict = true)]
fn price(sku: u32, region: &str) -> usize {
    let _ = (sku, region);
    PRICE_RUNS.fetch_add(1, SeqCst) + 1
}

#[cache(strict = true)]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

static DOUBLE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(backend = "distributed_memory", dependency = [add])]
fn add_and_double(a: i64, b: i64) -> (i64, usize) {
    (add(a, b) * 2, DOUBLE_RUNS.fetch_add(1, SeqCst) + 1)
}

fn price_hits() -> u64 {
    price::cache_stats().hits
}

/// The parent's tests run one at a time: they count Redis commands, kill
/// subscriptions and time deliveries, which concurrent scenarios would disturb.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The parent's half of a scenario: start the child, let it warm up, act, tell it.
fn scenario(child: &str, act: impl FnOnce()) {
    let tag = child.to_owned();
    let _: () = server().raw().del(&[format!("{tag}:ready"), format!("{tag}:acted")]).unwrap();
    let mut process = run_child(child, &[]);
    wait_for(&format!("{tag}:ready"));
    act();
    signal(&format!("{tag}:acted"));
    assert!(process.wait().unwrap().success(), "the child {child} failed");
}

fn commands_total() -> u64 {
    // Less the probes' own (`INFO`, `CLUSTER NODES`) and a cluster's replication.
    let library = |c: &str| c != "info" && c != "replconf" && !c.starts_with("cluster|");
    server().command_calls().into_iter().filter(|(c, _)| library(c)).map(|(_, n)| n).sum()
}

#[test]
fn a_hit_sends_no_command_to_redis() {
    if is_child() {
        return;
    }
    let _serial = serial();
    server();
    warm(|| price(100, "eu"), price_hits);
    let before = commands_total();
    for _ in 0..1000 {
        price(100, "eu");
    }
    assert_eq!(commands_total(), before, "1000 hits, no Redis command");
    assert_eq!(scenario_hits_in_child(), 1000);
}

#[test]
fn child_hits_silently() {
    if is_child() {
        server();
        warm(|| price(101, "eu"), price_hits);
        signal("child_hits_silently:ready");
        wait_for("child_hits_silently:acted");
        let before = commands_total();
        for _ in 0..1000 {
            price(101, "eu");
        }
        // INFO from this check is excluded; nothing else may have run.
        assert_eq!(commands_total(), before);
        signal("child_hits_silently:done");
    }
}

fn scenario_hits_in_child() -> u64 {
    scenario("child_hits_silently", || {});
    wait_for("child_hits_silently:done");
    1000
}

#[test]
fn child_sees_a_full_clear() {
    if is_child() {
        server();
        let old = warm(|| price(1, "eu"), price_hits);
        signal("child_sees_a_full_clear:ready");
        wait_for("child_sees_a_full_clear:acted");
        // The message may still be on its way to this process's subscriber.
        let deadline = Instant::now() + Duration::from_secs(5);
        while price(1, "eu") == old {
            assert!(Instant::now() < deadline, "recomputed after the other process cleared");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[test]
fn a_full_clear_in_one_process_forces_a_recompute_in_another() {
    if is_child() {
        return;
    }
    let _serial = serial();
    server();
    scenario("child_sees_a_full_clear", || {
        price::cache_clear().unwrap();
    });
}

#[test]
fn child_sees_a_partial_clear() {
    if is_child() {
        server();
        let a = warm(|| price(7, "eu"), price_hits);
        let b = warm(|| price(7, "us"), price_hits);
        let c = warm(|| price(8, "eu"), price_hits);
        signal("child_sees_a_partial_clear:ready");
        wait_for("child_sees_a_partial_clear:acted");
        // The message may still be on its way to this process's subscriber.
        let deadline = Instant::now() + Duration::from_secs(5);
        while price(7, "eu") == a {
            assert!(Instant::now() < deadline, "the partial clear never arrived");
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_ne!(price(7, "us"), b);
        assert_eq!(price(8, "eu"), c, "sku 8 was not selected and stays cached");
    }
}

#[test]
fn a_partial_clear_removes_only_matching_entries_elsewhere() {
    if is_child() {
        return;
    }
    let _serial = serial();
    server();
    scenario("child_sees_a_partial_clear", || {
        price::cache_clear_by().sku(7_u32).clear().unwrap();
    });
}

#[test]
fn child_sees_a_cascade() {
    if is_child() {
        server();
        let old = warm(|| add_and_double(1, 2), || add_and_double::cache_stats().hits);
        signal("child_sees_a_cascade:ready");
        wait_for("child_sees_a_cascade:acted");
        assert_ne!(add_and_double(1, 2), old);
    }
}

#[test]
fn the_cascade_crosses_processes() {
    if is_child() {
        return;
    }
    let _serial = serial();
    server();
    scenario("child_sees_a_cascade", || {
        // add_and_double never ran here: the cascade publishes for it anyway.
        add::cache_clear().unwrap();
    });
}

#[test]
fn child_survives_a_lost_subscription() {
    if is_child() {
        server();
        let old = warm(|| price(9, "eu"), price_hits);
        signal("child_survives_a_lost_subscription:ready");
        wait_for("child_survives_a_lost_subscription:acted");
        assert_ne!(price(9, "eu"), old, "no stale value after the subscription was killed");
        // And it recovers: served from the cache again.
        warm(|| price(9, "eu"), price_hits);
    }
}

#[test]
fn a_killed_subscription_serves_no_stale_value() {
    if is_child() {
        return;
    }
    let _serial = serial();
    server();
    scenario("child_survives_a_lost_subscription", || {
        let _: () =
            redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub").query(&mut server().raw()).unwrap();
        // Published while the child may not be subscribed: it must not matter.
        price::cache_clear().unwrap();
    });
}

fn micros_now() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros()).unwrap()
}

const ROUNDS: usize = 100;

#[test]
fn child_measures_invalidation_latency() {
    if is_child() {
        server();
        let mut last = warm(|| price(42, "lat"), price_hits);
        signal("child_measures_invalidation_latency:ready");
        let mut raw = server().raw();
        for round in 0..ROUNDS {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let v = price(42, "lat");
                if v != last {
                    last = v;
                    break;
                }
                assert!(Instant::now() < deadline, "round {round}: the clear never arrived");
            }
            let _: () = raw.set(format!("lat:seen:{round}"), micros_now()).unwrap();
        }
        wait_for("child_measures_invalidation_latency:acted");
    }
}

#[test]
fn a_clear_reaches_another_process_quickly() {
    if is_child() {
        return;
    }
    let _serial = serial();
    server();
    let mut raw = server().raw();
    let mut delays = Vec::new();
    scenario("child_measures_invalidation_latency", || {
        for round in 0..ROUNDS {
            let sent = micros_now();
            price::cache_clear().unwrap();
            let seen_key = format!("lat:seen:{round}");
            wait_for(&seen_key);
            let seen: u64 = raw.get(&seen_key).unwrap();
            delays.push(seen.saturating_sub(sent));
            sleep(Duration::from_millis(2));
        }
    });
    delays.sort_unstable();
    let p50 = delays[ROUNDS / 2];
    let p99 = delays[ROUNDS * 99 / 100];
    println!(
        "clear -> other process stops serving the old value: p50 {p50} us, p99 {p99} us, max {} us",
        delays[ROUNDS - 1]
    );
    assert_eq!(delays.len(), ROUNDS);
}

// Regression: messages were split on `|`, so a key prefix holding one (accepted by
// `Config`) made every full clear unreadable: 0 of 5 reached the other process.

const PIPED_PREFIX: &str = "a|b";
const PIPED_ROUNDS: usize = 5;

#[test]
fn child_sees_clears_under_a_piped_prefix() {
    if !is_child() || std::env::var("MEMO_TEST_KEY_PREFIX").ok().as_deref() != Some(PIPED_PREFIX) {
        return;
    }
    server();
    for round in 0..PIPED_ROUNDS {
        let old = warm(|| price(1, "x"), price_hits);
        signal(&format!("piped:ready:{round}"));
        wait_for(&format!("piped:cleared:{round}"));
        let deadline = Instant::now() + Duration::from_secs(3);
        while price(1, "x") == old {
            assert!(Instant::now() < deadline, "full clear {round} never arrived");
            sleep(Duration::from_millis(2));
        }
    }
}

#[test]
fn child_clears_under_a_piped_prefix() {
    if !is_child() || std::env::var("MEMO_TEST_KEY_PREFIX").ok().as_deref() != Some(PIPED_PREFIX) {
        return;
    }
    server();
    for round in 0..PIPED_ROUNDS {
        wait_for(&format!("piped:ready:{round}"));
        price::cache_clear().unwrap();
        signal(&format!("piped:cleared:{round}"));
    }
}

#[test]
fn full_clears_reach_other_processes_when_the_key_prefix_holds_a_pipe() {
    if is_child() {
        return;
    }
    let _serial = serial();
    server();
    let signals: Vec<String> =
        (0..PIPED_ROUNDS).flat_map(|r| [format!("piped:ready:{r}"), format!("piped:cleared:{r}")]).collect();
    let _: () = server().raw().del(&signals).unwrap();
    let env = [("MEMO_TEST_KEY_PREFIX", PIPED_PREFIX.to_owned())];
    let mut observer = run_child("child_sees_clears_under_a_piped_prefix", &env);
    let mut clearer = run_child("child_clears_under_a_piped_prefix", &env);
    assert!(clearer.wait().unwrap().success(), "the clearing child failed");
    assert!(observer.wait().unwrap().success(), "a full clear did not reach the other process");
}
