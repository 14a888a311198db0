//! Hit ratios on a Zipf workload: ours beside a true LRU (the `lru` crate; the `cached`
//! crate's store is an exact LRU too) and the other peers, on one request sequence. Not a timing: it prints the ratios and writes
//! them to `target/bench-hit-ratio.tsv` for `scripts/bench`'s report.
//!
//! Run with `cargo bench --bench hit_ratio`.

mod common;

use std::fmt::Write as _;
use std::num::NonZeroUsize;

use common::Rng;
use memo_alchemy::cache;

/// Distinct keys the requests draw from.
const ITEMS: usize = 100_000;
/// Zipf exponent: item `i` (from 0) is requested with weight `1 / (i + 1)^S`.
const S: f64 = 0.99;
const WARM_UP: usize = 500_000;
const REQUESTS: usize = 2_000_000;

#[cache(limit = 1000, expire = -1)]
fn ours_1k(k: u64) -> u64 {
    k
}

#[cache(limit = 10000, expire = -1)]
fn ours_10k(k: u64) -> u64 {
    k
}

#[cache(limit = 50, expire = -1)]
fn ours_50(k: u64) -> u64 {
    k
}

/// The request sequence: Zipf-distributed ranks, scrambled into keys.
fn requests(n: usize) -> Vec<u64> {
    let mut cdf = Vec::with_capacity(ITEMS);
    let mut total = 0.0;
    for i in 0..ITEMS {
        total += 1.0 / ((i + 1) as f64).powf(S);
        cdf.push(total);
    }
    let mut rng = Rng::new(0x2197);
    (0..n)
        .map(|_| {
            let u = rng.unit() * total;
            let rank = cdf.partition_point(|&c| c < u) as u64;
            common::compute(rank)
        })
        .collect()
}

/// Hits over the measured part of `reqs`, counting with `get` (true on a hit).
fn ratio(reqs: &[u64], mut get: impl FnMut(u64) -> bool) -> f64 {
    for &k in &reqs[..WARM_UP] {
        get(k);
    }
    let hits = reqs[WARM_UP..].iter().filter(|&&k| get(k)).count();
    hits as f64 / (reqs.len() - WARM_UP) as f64
}

/// A cached function's `cache_stats`.
type Stats = fn() -> memo_alchemy::CacheStats;
/// A memo function.
type Call = fn(u64) -> u64;

fn ours(reqs: &[u64], call: Call, stats: Stats) -> f64 {
    for &k in &reqs[..WARM_UP] {
        call(k);
    }
    let before = stats().hits;
    for &k in &reqs[WARM_UP..] {
        call(k);
    }
    (stats().hits - before) as f64 / (reqs.len() - WARM_UP) as f64
}

fn true_lru(reqs: &[u64], capacity: usize) -> f64 {
    let mut lru = lru::LruCache::new(NonZeroUsize::new(capacity).expect("not zero"));
    ratio(reqs, |k| lru.get(&k).is_some() || lru.put(k, k).is_some())
}

fn quick(reqs: &[u64], capacity: usize) -> f64 {
    let cache = quick_cache::sync::Cache::new(capacity);
    ratio(reqs, |k| {
        cache.get(&k).is_some() || {
            cache.insert(k, k);
            false
        }
    })
}

fn moka(reqs: &[u64], capacity: usize) -> f64 {
    let cache = moka::sync::Cache::new(capacity as u64);
    let mut n = 0_u64;
    ratio(reqs, |k| {
        n += 1;
        if n % 4096 == 0 {
            cache.run_pending_tasks();
        }
        cache.get(&k).is_some() || {
            cache.insert(k, k);
            false
        }
    })
}

fn main() {
    let reqs = requests(WARM_UP + REQUESTS);
    let mut tsv = String::new();
    let rows: [(usize, Call, Stats); 3] = [
        (50, ours_50, ours_50::cache_stats),
        (1_000, ours_1k, ours_1k::cache_stats),
        (10_000, ours_10k, ours_10k::cache_stats),
    ];
    println!("Zipf s = {S} over {ITEMS} keys, {REQUESTS} requests after {WARM_UP} of warm-up");
    for (capacity, call, stats) in rows {
        let lru = true_lru(&reqs, capacity);
        let results = [
            ("memo_alchemy", ours(&reqs, call, stats)),
            ("true_lru", lru),
            ("quick_cache", quick(&reqs, capacity)),
            ("moka", moka(&reqs, capacity)),
        ];
        for (name, r) in results {
            println!(
                "capacity {capacity:>6}  {name:<14} {:6.2}%  ({:+.2} points vs true LRU)",
                r * 100.0,
                (r - lru) * 100.0
            );
            writeln!(tsv, "{capacity}\t{name}\t{r}").expect("writing to a String");
        }
    }
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target/tmp has a parent");
    std::fs::write(dir.join("bench-hit-ratio.tsv"), tsv).expect("target/ is writable");
}
