//! The json and pickle backends against a real redis-server: values, TTLs and indexes
//! read straight from Redis, limits, partial clears, corruption, the clear race, and
//! sharing between processes. (flush_all and faults: tests/redis_faults.rs.)

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::Duration;

use memo_alchemy::{cache, json_cache, pickle_cache};
use redis::Commands;
use serde::{Deserialize, Serialize};
use support::{is_child, run_child, server};

/// The keys of the function whose path ends in `name`, by kind (`k`, `i`, `g`).
fn keys_of(name: &str, kind: &str) -> Vec<String> {
    server().keys(&format!("memo:*:redis_backends::{name}:*:{kind}*"))
}

static PROFILE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[json_cache(limit = 100, expire = 60)]
fn profile(id: u32) -> String {
    PROFILE_RUNS.fetch_add(1, SeqCst);
    format!("user-{id}")
}

#[test]
fn json_values_ttl_and_index_are_in_redis() {
    server();
    assert_eq!(profile(1), "user-1");
    assert_eq!(profile(1), "user-1");
    assert_eq!(PROFILE_RUNS.load(SeqCst), 1);
    let entries = keys_of("profile", "k");
    assert_eq!(entries.len(), 1, "{entries:?}");
    let mut raw = server().raw();
    let stored: String = raw.get(&entries[0]).unwrap();
    assert_eq!(stored, "e0|\"user-1\"", "the JSON value, tagged with the entry epoch");
    let ttl: i64 = raw.pttl(&entries[0]).unwrap();
    assert!((59_000..=60_000).contains(&ttl), "PX precision: {ttl} ms");
    let index = keys_of("profile", "i");
    assert_eq!(raw.zcard::<_, usize>(&index[0]).unwrap(), 1);
    assert_eq!(profile::cache_stats().hits, 1);
    // Regression: CacheStats was not Serialize.
    let stats = serde_json::to_value(profile::cache_stats()).unwrap();
    assert_eq!((stats["hits"].as_u64(), stats["len"].as_u64()), (Some(1), Some(1)), "{stats}");
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Circle { r: u128 },
    Pair(i8, i8),
}

static SHAPES_RUNS: AtomicUsize = AtomicUsize::new(0);

#[pickle_cache]
fn shapes(n: u8) -> BTreeMap<(u8, u8), Shape> {
    SHAPES_RUNS.fetch_add(1, SeqCst);
    [((n, 1), Shape::Circle { r: u128::MAX }), ((n, 2), Shape::Pair(-1, 1))].into()
}

#[test]
fn pickle_round_trips_what_json_cannot() {
    server();
    let first = shapes(3);
    assert_eq!(shapes(3), first);
    assert_eq!(SHAPES_RUNS.load(SeqCst), 1);
    let stored: Vec<u8> = server().raw().get(&keys_of("shapes", "k")[0]).unwrap();
    assert!(stored.starts_with(b"e0|MP2"), "tagged with the entry epoch");
}

static LIMITED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[json_cache(limit = 5)]
fn limited(i: u32) -> u32 {
    LIMITED_RUNS.fetch_add(1, SeqCst);
    i
}

#[test]
fn limit_evicts_the_oldest_and_bounds_the_index() {
    server();
    for i in 0..20 {
        limited(i);
    }
    let mut raw = server().raw();
    assert_eq!(raw.zcard::<_, usize>(&keys_of("limited", "i")[0]).unwrap(), 5);
    assert_eq!(keys_of("limited", "k").len(), 5);
    assert_eq!(limited::cache_stats().evictions, 15);
    let before = LIMITED_RUNS.load(SeqCst);
    limited(19);
    assert_eq!(LIMITED_RUNS.load(SeqCst), before, "the newest survive");
    limited(0);
    assert_eq!(LIMITED_RUNS.load(SeqCst), before + 1, "the oldest went first");
}

#[json_cache(limit = -1, expire = 1)]
fn short_lived(i: u32) -> u32 {
    i
}

#[test]
fn expired_entries_leave_the_index_even_without_a_limit() {
    server();
    for i in 0..10 {
        short_lived(i);
    }
    // One index on a single server; on a cluster, one per sub-index.
    let indexes = keys_of("short_lived", "i");
    let mut raw = server().raw();
    let members: usize = indexes.iter().map(|i| raw.zcard::<_, usize>(i).unwrap()).sum();
    assert_eq!(members, 10);
    // Regression: `len` was always None for json and pickle. It counts live entries.
    assert_eq!(short_lived::cache_stats().len, Some(10));
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(short_lived::cache_stats().len, Some(0), "expired entries are not counted");
    short_lived(100);
    let entries = keys_of("short_lived", "k");
    assert_eq!(entries.len(), 1, "Redis expired the values (PX)");
    let index = format!("{}:i", entries[0].rsplit_once(":k:").unwrap().0);
    assert_eq!(
        raw.zcard::<_, usize>(&index).unwrap(),
        1,
        "the write pruned the expired members of its index"
    );
}

static GLOB_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(backend = "json", strict = true, cache_key_prefix = "globs")]
fn glob(pattern: &str, n: u32) -> String {
    GLOB_RUNS.fetch_add(1, SeqCst);
    format!("{pattern}{n}")
}

#[test]
fn partial_clears_match_glob_characters_exactly() {
    server();
    let patterns = ["*", "?", "[a]", "\\", "a*", "*a", "", "x:y"];
    for p in patterns {
        for n in 0..3 {
            glob(p, n);
        }
    }
    assert!(keys_of("glob", "k").iter().all(|k| k.starts_with("memo:globs:json:")), "the function prefix");
    assert_eq!(keys_of("glob", "k").len(), 24);
    assert_eq!(glob::cache_clear_by().pattern("*").clear().unwrap(), 3);
    assert_eq!(glob::cache_clear_by().pattern("[a]").n(1_u32).clear().unwrap(), 1);
    assert_eq!(glob::cache_clear_by().n(2_u32).clear().unwrap(), 7);
    assert_eq!(glob::cache_clear_by().pattern("*").clear().unwrap(), 0);
    assert_eq!(keys_of("glob", "k").len(), 24 - 3 - 1 - 7);
    let before = GLOB_RUNS.load(SeqCst);
    glob("a*", 0);
    glob("?", 1);
    assert_eq!(GLOB_RUNS.load(SeqCst), before, "unselected entries are still cached");
}

static CORRUPT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[pickle_cache]
fn fragile(i: u64) -> Vec<u64> {
    CORRUPT_RUNS.fetch_add(1, SeqCst);
    vec![i; 3]
}

#[test]
fn a_corrupt_value_is_recomputed_overwritten_and_counted() {
    server();
    assert_eq!(fragile(4), vec![4; 3]);
    let key = keys_of("fragile", "k").remove(0);
    let mut raw = server().raw();
    let good: Vec<u8> = raw.get(&key).unwrap();
    for bad in [good[..good.len() - 1].to_vec(), b"foreign bytes".to_vec(), Vec::new()] {
        let _: () = raw.set(&key, bad).unwrap();
        assert_eq!(fragile(4), vec![4; 3]);
    }
    assert_eq!(CORRUPT_RUNS.load(SeqCst), 4);
    assert_eq!(fragile::cache_stats().errors, 3);
    let repaired: Vec<u8> = raw.get(&key).unwrap();
    assert_eq!(repaired, good, "the value was overwritten");
    assert_eq!(fragile(4), vec![4; 3]);
    assert_eq!(CORRUPT_RUNS.load(SeqCst), 4);
}

/// Build 1 of a program's value type.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct StatsV1 {
    hits: u64,
    misses: u64,
    cents: u64,
}

/// Build 2: the fields reordered, and `cents` changed from `u64` to `i64`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct StatsV2 {
    cents: i64,
    misses: u64,
    hits: u64,
}

#[pickle_cache]
fn stats_v1(id: u32) -> StatsV1 {
    StatsV1 { hits: 3, misses: 10, cents: u64::from(id) * 500 }
}

static V2_RUNS: AtomicUsize = AtomicUsize::new(0);

#[pickle_cache]
fn stats_v2(id: u32) -> StatsV2 {
    V2_RUNS.fetch_add(1, SeqCst);
    StatsV2 { cents: i64::from(id) * 500, misses: 10, hits: 3 }
}

/// Regression: pickle matched fields by position, so build 2 (fields reordered,
/// `u64` -> `i64`) read build 1's value as `misses: 3, hits: 10` and 500 cents as 250,
/// with no error counted. The bytes of build 1 planted under build 2's key now decode
/// to the same value, or are a miss.
#[test]
fn pickle_value_written_by_an_older_type_is_never_read_as_a_different_value() {
    server();
    stats_v1(1);
    stats_v2(1);
    let mut raw = server().raw();
    let old: Vec<u8> = raw.get(keys_of("stats_v1", "k").remove(0)).unwrap();
    let _: () = raw.set(keys_of("stats_v2", "k").remove(0), old).unwrap();
    assert_eq!(stats_v2(1), StatsV2 { cents: 500, misses: 10, hits: 3 });
    // Bytes of the old encoding (postcard, `MP1`) are a miss, never a value.
    let mut legacy = b"MP1".to_vec();
    legacy.extend_from_slice(&[0; 8]);
    let _: () = raw.set(keys_of("stats_v2", "k").remove(0), legacy).unwrap();
    let runs = V2_RUNS.load(SeqCst);
    assert_eq!(stats_v2(1), StatsV2 { cents: 500, misses: 10, hits: 3 });
    assert_eq!(V2_RUNS.load(SeqCst), runs + 1, "recomputed");
    assert_eq!(stats_v2::cache_stats().errors, 1, "the undecodable value is counted");
}

static SLOW_SOURCE: AtomicUsize = AtomicUsize::new(1);

#[json_cache]
fn slow_fill(i: u32) -> usize {
    let seen = SLOW_SOURCE.load(SeqCst);
    thread::sleep(Duration::from_millis(300));
    seen + i as usize
}

#[test]
fn a_clear_during_a_slow_fill_leaves_no_stale_value() {
    server();
    thread::scope(|s| {
        let reader = s.spawn(|| slow_fill(0));
        thread::sleep(Duration::from_millis(100));
        SLOW_SOURCE.store(2, SeqCst);
        assert_eq!(slow_fill::cache_clear().unwrap(), 0);
        assert_eq!(reader.join().unwrap(), 1);
    });
    assert!(keys_of("slow_fill", "k").is_empty(), "the stale value was refused by the script");
    assert_eq!(slow_fill(0), 2);
}

static ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(backend = "pickle", strict = true)]
async fn async_lookup(user: String, page: u32) -> Result<Vec<String>, String> {
    ASYNC_RUNS.fetch_add(1, SeqCst);
    tokio::task::yield_now().await;
    Ok(vec![user; page as usize])
}

#[tokio::test]
async fn async_functions_use_redis() {
    server();
    assert_eq!(async_lookup("a".into(), 2).await.unwrap().len(), 2);
    assert_eq!(async_lookup("a".into(), 2).await.unwrap().len(), 2);
    assert_eq!(async_lookup("b".into(), 1).await.unwrap().len(), 1);
    assert_eq!(ASYNC_RUNS.load(SeqCst), 2);
    let spawned = tokio::spawn(async_lookup("a".into(), 2)).await.unwrap();
    assert_eq!(spawned.unwrap().len(), 2);
    assert_eq!(ASYNC_RUNS.load(SeqCst), 2);
    assert_eq!(async_lookup::cache_clear_by().user("a").clear().await.unwrap(), 1);
    assert_eq!(async_lookup::cache_clear().await.unwrap(), 1);
}

// Sharing between processes.

static SHARED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[json_cache]
fn shared(i: u32) -> (u32, u32) {
    SHARED_RUNS.fetch_add(1, SeqCst);
    (i, std::process::id())
}

#[test]
fn child_fills_shared() {
    if is_child() {
        server();
        assert_eq!(shared(7).0, 7);
        assert_eq!(SHARED_RUNS.load(SeqCst), 1);
    }
}

#[test]
fn an_entry_filled_by_another_process_is_a_hit() {
    if is_child() {
        return;
    }
    server();
    assert!(run_child("child_fills_shared", &[]).wait().unwrap().success());
    let (i, pid) = shared(7);
    assert_eq!(i, 7);
    assert_ne!(pid, std::process::id(), "the value came from the child");
    assert_eq!(SHARED_RUNS.load(SeqCst), 0, "the body never ran here");
    assert_eq!(shared::cache_stats().hits, 1);
}

#[json_cache]
fn base_rate(currency: u32) -> u32 {
    currency * 2
}

#[cache(backend = "json", dependency = [base_rate])]
fn remote_report(currency: u32) -> String {
    format!("rate {}", base_rate(currency))
}

#[test]
fn child_fills_remote_report() {
    if is_child() {
        server();
        remote_report(1);
        remote_report(2);
    }
}

#[test]
fn the_cascade_reaches_a_redis_dependent_never_called_here() {
    if is_child() {
        return;
    }
    server();
    assert!(run_child("child_fills_remote_report", &[]).wait().unwrap().success());
    assert_eq!(keys_of("remote_report", "k").len(), 2);
    assert!(remote_report::cache_stats().misses == 0, "never called in this process");
    // base_rate(1) and base_rate(2) from the child, and the two reports.
    assert_eq!(base_rate::cache_clear().unwrap(), 4);
    // Unreadable at once (the epoch moved on); the keys go with the background drain.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !keys_of("remote_report", "k").is_empty() {
        assert!(std::time::Instant::now() < deadline, "the drain never removed the reports");
        thread::sleep(Duration::from_millis(20));
    }
}

#[json_cache(limit = 10, expire = -1)]
fn contended(i: u32) -> u32 {
    i
}

#[test]
fn child_writes_contended() {
    if is_child() {
        server();
        let offset: u32 = std::env::var("OFFSET").unwrap().parse().unwrap();
        thread::scope(|s| {
            for t in 0..10 {
                s.spawn(move || {
                    for i in 0..100 {
                        contended(offset + t * 1000 + i);
                    }
                });
            }
        });
    }
}

#[test]
fn the_limit_holds_with_20_writers_across_2_processes() {
    if is_child() {
        return;
    }
    server();
    let children: Vec<_> =
        [0, 500].iter().map(|o| run_child("child_writes_contended", &[("OFFSET", o.to_string())])).collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let mut raw = server().raw();
    assert_eq!(raw.zcard::<_, usize>(&keys_of("contended", "i")[0]).unwrap(), 10);
    assert_eq!(keys_of("contended", "k").len(), 10, "no entry outlived its eviction");
}

static GEN_RUNS: AtomicUsize = AtomicUsize::new(0);

#[json_cache]
fn generation_victim(i: u32) -> u32 {
    GEN_RUNS.fetch_add(1, SeqCst);
    i
}

/// Regression: garbage in a function's generation key made every clear of it fail
/// ("value is not an integer") until fixed by hand. It is now reset.
#[test]
fn garbage_in_the_generation_key_is_a_reset_not_a_failed_clear() {
    server();
    generation_victim(1);
    generation_victim(2);
    let mut raw = server().raw();
    let generation = keys_of("generation_victim", "g");
    assert_eq!(generation.len(), 0, "no clear yet, no counter");
    assert_eq!(generation_victim::cache_clear().unwrap(), 2);
    let generation = keys_of("generation_victim", "g").remove(0);
    let _: () = raw.set(&generation, "garbage").unwrap();
    generation_victim(3);
    assert_eq!(generation_victim::cache_clear().unwrap(), 1, "the clear succeeds (it used to fail)");
    let reset: String = raw.get(&generation).unwrap();
    assert!(reset.parse::<i64>().is_ok(), "reset to a number: {reset}");
    generation_victim(3);
    generation_victim(3);
    assert_eq!(GEN_RUNS.load(SeqCst), 4, "caching works again after the reset");
    assert_eq!(generation_victim::cache_clear().unwrap(), 1);
}

#[json_cache(expire = 100, expire_jitter = 20)]
fn jittered_json(i: u32) -> u32 {
    i
}

/// `expire_jitter = 20` in Redis: each entry's `PX` is 80 to 120 s, spread.
#[test]
fn jitter_spreads_the_ttl_of_entries_in_redis() {
    server();
    for i in 0..50 {
        jittered_json(i);
    }
    let mut raw = server().raw();
    let ttls: Vec<i64> =
        keys_of("jittered_json", "k").iter().map(|k| raw.pttl::<_, i64>(k).unwrap()).collect();
    assert_eq!(ttls.len(), 50);
    assert!(ttls.iter().all(|t| (79_000..=120_000).contains(t)), "{ttls:?}");
    let (min, max) = (ttls.iter().min().unwrap(), ttls.iter().max().unwrap());
    assert!(max - min > 20_000, "spread over more than 20 s: {min}..{max}");
    assert_eq!(jittered_json::cache_stats().len, Some(50), "all live, counted");
}

static EPOCH_RUNS: AtomicUsize = AtomicUsize::new(0);

#[json_cache(expire = -1)]
fn epoch_keeper(i: u32) -> u32 {
    EPOCH_RUNS.fetch_add(1, SeqCst);
    i
}

/// Regression (review): the entry epoch went back to 1 after its key was lost (deleted
/// by `flush_all`'s sweep, evicted, removed by hand), so a value written before a clear
/// could be read after it. The epoch now never goes back.
#[test]
fn a_lost_epoch_key_never_makes_an_old_value_current_again() {
    server();
    epoch_keeper::cache_clear().unwrap();
    assert_eq!(epoch_keeper(2), 2);
    assert_eq!(EPOCH_RUNS.load(SeqCst), 1);
    let epoch = keys_of("epoch_keeper", "e").pop().expect("the clear wrote an epoch");
    let _: () = server().raw().del(&epoch).unwrap();
    epoch_keeper::cache_clear().unwrap();
    assert_eq!(epoch_keeper(2), 2);
    assert_eq!(EPOCH_RUNS.load(SeqCst), 2, "the value from before the clear was not read");
}
