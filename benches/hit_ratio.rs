//! Hit ratios of ours beside a true LRU (the `lru` crate; the `cached` crate's store is
//! an exact LRU too), quick_cache and moka, on one request sequence per workload. Not a
//! timing: it prints the ratios and writes them to `target/bench-hit-ratio.tsv` for
//! `scripts/bench`'s report.
//!
//! Workloads: Zipf at s = 0.99 and 0.7 over 100,000 keys; a hot set with a one-off
//! scan of 10x the capacity through it (scan resistance); a loop slightly larger than
//! the capacity (LRU's worst case); a Zipf working set that shifts to other keys
//! halfway (recency must still win).
//!
//! Run with `cargo bench --bench hit_ratio`.

mod common;

use std::fmt::Write as _;
use std::num::NonZeroUsize;

use common::Rng;
use memo_alchemy::cache;

/// Distinct keys the Zipf requests draw from.
const ITEMS: usize = 100_000;
const WARM_UP: usize = 200_000;
const REQUESTS: usize = 1_000_000;
const CAPACITIES: [usize; 4] = [16, 50, 1_000, 10_000];

/// One cached function per workload and capacity, so that every run starts cold.
macro_rules! ours {
    ($($name:ident = $cap:literal),* $(,)?) => {
        $(
            #[cache(limit = $cap, expire = -1)]
            fn $name(k: u64) -> u64 {
                k
            }
        )*
    };
}

ours!(
    zipf99_16 = 16,
    zipf99_50 = 50,
    zipf99_1k = 1000,
    zipf99_10k = 10000,
    zipf70_16 = 16,
    zipf70_50 = 50,
    zipf70_1k = 1000,
    zipf70_10k = 10000,
    scan_16 = 16,
    scan_50 = 50,
    scan_1k = 1000,
    scan_10k = 10000,
    loop_16 = 16,
    loop_50 = 50,
    loop_1k = 1000,
    loop_10k = 10000,
    shift_16 = 16,
    shift_50 = 50,
    shift_1k = 1000,
    shift_10k = 10000,
);

/// A memo function and its `cache_stats`.
type Ours = (fn(u64) -> u64, fn() -> memo_alchemy::CacheStats);

/// Zipf-distributed ranks over `ITEMS` keys at exponent `s`, scrambled into keys from
/// `offset` on.
fn zipf(n: usize, s: f64, offset: u64, seed: u64) -> Vec<u64> {
    let mut cdf = Vec::with_capacity(ITEMS);
    let mut total = 0.0;
    for i in 0..ITEMS {
        total += 1.0 / ((i + 1) as f64).powf(s);
        cdf.push(total);
    }
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let u = rng.unit() * total;
            let rank = cdf.partition_point(|&c| c < u) as u64;
            common::compute(rank + offset)
        })
        .collect()
}

/// A hot set of half the capacity, requested uniformly, with one scan of 10x the
/// capacity of never-repeated keys every `4 x capacity` requests.
fn scan(n: usize, capacity: usize) -> Vec<u64> {
    let mut rng = Rng::new(0x5ca9);
    let hot = (capacity / 2).max(1) as u64;
    let mut next_cold = 1_000_000_000_u64;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        for _ in 0..4 * capacity {
            out.push(common::compute(rng.next_u64() % hot));
        }
        for _ in 0..10 * capacity {
            out.push(common::compute(next_cold));
            next_cold += 1;
        }
    }
    out.truncate(n);
    out
}

/// Keys `0..1.1 x capacity`, in order, over and over.
fn looping(n: usize, capacity: usize) -> Vec<u64> {
    let size = (capacity + capacity / 10).max(capacity + 1) as u64;
    (0..n as u64).map(|i| common::compute(i % size)).collect()
}

/// Zipf 0.99 over one key space, then over another from halfway.
fn shift(n: usize) -> Vec<u64> {
    let mut reqs = zipf(n / 2, 0.99, 0, 0x2197);
    reqs.extend(zipf(n - n / 2, 0.99, 10 * ITEMS as u64, 0x7912));
    reqs
}

/// Hits over the measured part of `reqs`, counting with `get` (true on a hit).
fn ratio(reqs: &[u64], mut get: impl FnMut(u64) -> bool) -> f64 {
    for &k in &reqs[..WARM_UP] {
        get(k);
    }
    let hits = reqs[WARM_UP..].iter().filter(|&&k| get(k)).count();
    hits as f64 / (reqs.len() - WARM_UP) as f64
}

fn ours(reqs: &[u64], (call, stats): Ours) -> f64 {
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
    let mut tsv = String::new();
    let zipf99 = zipf(WARM_UP + REQUESTS, 0.99, 0, 0x2197);
    let zipf70 = zipf(WARM_UP + REQUESTS, 0.7, 0, 0x2197);
    let shifted = shift(WARM_UP + REQUESTS);
    let workloads: [(&str, [Ours; 4]); 5] = [
        (
            "zipf_0.99",
            [
                (zipf99_16, zipf99_16::cache_stats),
                (zipf99_50, zipf99_50::cache_stats),
                (zipf99_1k, zipf99_1k::cache_stats),
                (zipf99_10k, zipf99_10k::cache_stats),
            ],
        ),
        (
            "zipf_0.7",
            [
                (zipf70_16, zipf70_16::cache_stats),
                (zipf70_50, zipf70_50::cache_stats),
                (zipf70_1k, zipf70_1k::cache_stats),
                (zipf70_10k, zipf70_10k::cache_stats),
            ],
        ),
        (
            "scan",
            [
                (scan_16, scan_16::cache_stats),
                (scan_50, scan_50::cache_stats),
                (scan_1k, scan_1k::cache_stats),
                (scan_10k, scan_10k::cache_stats),
            ],
        ),
        (
            "loop",
            [
                (loop_16, loop_16::cache_stats),
                (loop_50, loop_50::cache_stats),
                (loop_1k, loop_1k::cache_stats),
                (loop_10k, loop_10k::cache_stats),
            ],
        ),
        (
            "shift",
            [
                (shift_16, shift_16::cache_stats),
                (shift_50, shift_50::cache_stats),
                (shift_1k, shift_1k::cache_stats),
                (shift_10k, shift_10k::cache_stats),
            ],
        ),
    ];
    println!("{REQUESTS} requests after {WARM_UP} of warm-up per run");
    for (workload, functions) in workloads {
        for (capacity, function) in CAPACITIES.into_iter().zip(functions) {
            let reqs = match workload {
                "zipf_0.99" => zipf99.clone(),
                "zipf_0.7" => zipf70.clone(),
                "scan" => scan(WARM_UP + REQUESTS, capacity),
                "loop" => looping(WARM_UP + REQUESTS, capacity),
                _ => shifted.clone(),
            };
            let lru = true_lru(&reqs, capacity);
            let results = [
                ("memo_alchemy", ours(&reqs, function)),
                ("true_lru", lru),
                ("quick_cache", quick(&reqs, capacity)),
                ("moka", moka(&reqs, capacity)),
            ];
            let line: Vec<String> = results.iter().map(|(n, r)| format!("{n} {:6.2}%", r * 100.0)).collect();
            println!("{workload:<10} capacity {capacity:>6}  {}", line.join("  "));
            for (name, r) in results {
                writeln!(tsv, "{workload}\t{capacity}\t{name}\t{r}").expect("writing to a String");
            }
        }
    }
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target/tmp has a parent");
    std::fs::write(dir.join("bench-hit-ratio.tsv"), tsv).expect("target/ is writable");
}
