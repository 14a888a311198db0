//! The Redis backends on a real Redis Cluster (six `redis-server`s on loopback: three
//! primaries, one replica each), under the events a cluster has in production: a
//! failover and a slot migration in the middle of traffic. The other Redis test
//! binaries run on a cluster too (`MEMO_TEST_TOPOLOGY=cluster`, see `scripts/test`).

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use memo_alchemy::cache;
use support::{server, use_cluster};

fn cluster() -> &'static support::cluster::Cluster {
    use_cluster();
    server().cluster().expect("this binary runs on a cluster")
}

/// One at a time: each test moves the cluster around.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cache(backend = "json", limit = -1, expire = 600)]
fn spread(i: u64) -> u64 {
    i
}

#[test]
fn one_functions_entries_spread_over_every_primary() {
    let _serial = serial();
    let cluster = cluster();
    const N: u64 = 100_000;
    const THREADS: u64 = 8;
    thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                for i in (t..N).step_by(THREADS as usize) {
                    assert_eq!(spread(i), i);
                }
            });
        }
    });
    assert_eq!(spread::cache_stats().len, Some(N as usize), "every entry stored");
    let mut held = Vec::new();
    for node in cluster.primaries() {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("memo:*::spread:*:k:*")
            .query(&mut cluster.node(node.port))
            .expect("KEYS answers");
        held.push(keys.len() as u64);
    }
    println!("entries per primary: {held:?}");
    assert_eq!(held.iter().sum::<u64>(), N);
    assert!(held.iter().all(|n| *n <= N / 2), "no primary holds more than half: {held:?}");
    assert!(held.iter().all(|n| *n > 0), "every primary holds some: {held:?}");
    assert_eq!(spread::cache_clear().unwrap(), N as usize, "a clear counts them all");
}

static ERA: AtomicU64 = AtomicU64::new(0);
static ERA_RUNS: AtomicU64 = AtomicU64::new(0);

/// The value says which key it was computed for and in which era (each clear starts a
/// new era before it begins).
#[cache(backend = "json", limit = -1, expire = 600)]
fn era_value(k: u64) -> (u64, u64) {
    ERA_RUNS.fetch_add(1, SeqCst);
    // A body that takes a while, so that clears land between lookups and writes.
    thread::sleep(Duration::from_millis(1));
    (k, ERA.load(SeqCst))
}

/// What a run of calls saw while `event` happened.
#[derive(Debug, Default)]
struct Run {
    calls: u64,
    wrong: u64,
    clears_ok: u64,
    clears_err: u64,
    hits: u64,
}

/// 10,000 calls on 500 keys from four threads, a clear every 20 ms, and `event` in the
/// middle. A value is wrong if it is for another key, or from an era that a clear which
/// returned `Ok` before the call began had ended.
fn run_through(event: impl FnOnce() + Send) -> Run {
    const CALLS: u64 = 10_000;
    let (calls, wrong, floor) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let (clears_ok, clears_err) = (AtomicU64::new(0), AtomicU64::new(0));
    let done = AtomicBool::new(false);
    let hits_before = era_value::cache_stats().hits;
    let started = Instant::now();
    thread::scope(|s| {
        for t in 0..4u64 {
            let (calls, wrong, floor) = (&calls, &wrong, &floor);
            s.spawn(move || {
                let mut k = t;
                while calls.fetch_add(1, SeqCst) < CALLS {
                    k = (k * 7 + 13) % 500;
                    let at_least = floor.load(SeqCst);
                    let (key, era) = era_value(k);
                    if key != k || era < at_least {
                        eprintln!(
                            "wrong: era_value({k}) = ({key}, {era}), after a clear that ended era {at_least}"
                        );
                        wrong.fetch_add(1, SeqCst);
                    }
                }
            });
        }
        s.spawn(|| {
            while !done.load(SeqCst) && started.elapsed() < Duration::from_secs(60) {
                let next = ERA.fetch_add(1, SeqCst) + 1;
                match era_value::cache_clear() {
                    Ok(_) => {
                        floor.fetch_max(next, SeqCst);
                        clears_ok.fetch_add(1, SeqCst);
                    }
                    Err(e) => {
                        eprintln!("clear during the event: {e}");
                        clears_err.fetch_add(1, SeqCst);
                    }
                }
                thread::sleep(Duration::from_millis(20));
            }
        });
        s.spawn(|| {
            thread::sleep(Duration::from_millis(150));
            event();
            while calls.load(SeqCst) < CALLS && started.elapsed() < Duration::from_secs(60) {
                thread::sleep(Duration::from_millis(10));
            }
            done.store(true, SeqCst);
        });
    });
    Run {
        calls: calls.load(SeqCst).min(CALLS),
        wrong: wrong.load(SeqCst),
        clears_ok: clears_ok.load(SeqCst),
        clears_err: clears_err.load(SeqCst),
        hits: era_value::cache_stats().hits - hits_before,
    }
}

/// The hash slot of one of `era_value`'s sub-indexes that holds entries.
fn a_busy_slot() -> u16 {
    for k in 0..500 {
        era_value(k);
    }
    let key = server().keys("memo:*::era_value:*:k:*").pop().expect("era_value stored entries");
    redis::cmd("CLUSTER").arg("KEYSLOT").arg(&key).query(&mut server().raw()).expect("KEYSLOT answers")
}

/// After the event: a clear goes through and takes effect (the retries of those that
/// failed too), and the function serves from the cache again.
fn settles() {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let next = ERA.fetch_add(1, SeqCst) + 1;
        if era_value::cache_clear().is_ok() && memo_alchemy::pending_clears() == 0 {
            assert_eq!(era_value(3), (3, next), "recomputed after the clear");
            assert_eq!(era_value(3), (3, next), "then served");
            break;
        }
        assert!(Instant::now() < deadline, "the cluster never took a clear again");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_failover_during_traffic_serves_no_wrong_value_and_loses_no_clear() {
    let _serial = serial();
    let cluster = cluster();
    let slot = a_busy_slot();
    let mut promoted = 0;
    let run = run_through(|| promoted = cluster.failover(slot));
    println!("failover of slot {slot} to port {promoted}: {run:?}");
    assert_eq!(run.wrong, 0, "no wrong value: {run:?}");
    assert_eq!(run.calls, 10_000);
    assert!(run.clears_ok > 0 && run.hits > 0, "the cache worked around the event: {run:?}");
    assert_eq!(cluster.owner(slot).port, promoted, "the replica serves the slot now");
    cluster.wait_healthy();
    settles();
}

#[test]
fn a_slot_migration_during_traffic_serves_no_wrong_value_and_loses_no_clear() {
    let _serial = serial();
    let cluster = cluster();
    let slot = a_busy_slot();
    let from = cluster.owner(slot).port;
    let (mut to, mut split) = (0, false);
    // Half-way through the migration, the slot's keys are split between two primaries
    // for 300 ms of traffic (scripts over both get TRYAGAIN, single keys ASK).
    let run = run_through(|| {
        (to, split) = cluster.migrate_slot(slot, || thread::sleep(Duration::from_millis(300)));
    });
    println!("migration of slot {slot} from port {from} to port {to}: {run:?}");
    assert!(split, "the slot's keys were split between the two primaries during the traffic");
    // A clear's script over a split slot gets TRYAGAIN: an `Err` (then retried), never
    // an `Ok` that left entries behind.
    assert!(run.clears_err > 0, "clears during the split returned Err: {run:?}");
    assert_eq!(run.wrong, 0, "no wrong value: {run:?}");
    assert_eq!(run.calls, 10_000);
    assert!(run.clears_ok > 0 && run.hits > 0, "the cache worked around the event: {run:?}");
    assert_eq!(cluster.owner(slot).port, to, "the slot moved");
    settles();
}

#[cache(backend = "json", limit = -1, tags = ["user:{id}"])]
fn tagged(id: u64, part: u64) -> u64 {
    id * 100 + part
}

#[test]
fn flush_all_and_tags_reach_every_primary() {
    let _serial = serial();
    let cluster = cluster();
    for part in 0..200 {
        tagged(part % 4, part);
        spread(part);
    }
    let holders = |pattern: &str| {
        cluster
            .primaries()
            .iter()
            .filter(|n| {
                let keys: Vec<String> =
                    redis::cmd("KEYS").arg(pattern).query(&mut cluster.node(n.port)).unwrap();
                !keys.is_empty()
            })
            .count()
    };
    assert_eq!(holders("memo:*::tagged:*:k:*"), 3, "the tagged entries are on every primary");
    assert_eq!(memo_alchemy::invalidate_tags(["user:1"]).unwrap(), 50, "every entry of user 1");
    let misses = tagged::cache_stats().misses;
    tagged(1, 5);
    tagged(2, 6);
    assert_eq!(tagged::cache_stats().misses, misses + 1, "user 1's went, user 2's stayed");
    // Keys of a function this program does not have, on every primary: only the sweep
    // of each primary reaches them.
    let mut raw = server().raw();
    for i in 0..60 {
        let () = redis::cmd("SET").arg(format!("memo:other:k:{i}")).arg(i).query(&mut raw).unwrap();
    }
    let () = redis::cmd("SET").arg("elsewhere:k:1").arg(1).query(&mut raw).unwrap();
    assert_eq!(holders("memo:other:k:*"), 3, "the foreign keys are on every primary");
    memo_alchemy::flush_all().unwrap();
    assert_eq!(holders("memo:*:k:*"), 0, "no entry left on any primary");
    assert_eq!(holders("elsewhere:*"), 1, "nothing outside the prefix is touched");
}
