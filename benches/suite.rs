//! The side-by-side suite: our `#[cache]` functions beside the peers a user would
//! otherwise pick, on the same keys and working set, in one run. See
//! `benches/README.md` for the groups, and `scripts/bench` for the report.

mod common;

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Barrier, LazyLock};
use std::thread;
use std::time::{Duration, Instant};

use cached::Cached;
use common::{Peer, Rng, CAPACITY, OURS_NO_EXPIRE, STR_PEERS, U64_PEERS, WORKING_SET};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, Throughput};
use memo_alchemy::cache;

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn group<'a>(c: &'a mut Criterion, name: &str) -> Group<'a> {
    let mut group = c.benchmark_group(name);
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_millis(2500));
    group
}

/// A fixed random walk over the working set, so that every peer reads the same keys.
fn walk() -> Vec<u64> {
    let mut rng = Rng::new(0x5eed);
    (0..1 << 16).map(|_| rng.below(WORKING_SET)).collect()
}

/// Group 1: single-thread hits, u64 argument.
fn hit_u64(c: &mut Criterion) {
    let keys = walk();
    let mut group = group(c, "1_hit_u64");
    for peer in U64_PEERS.iter().chain([&OURS_NO_EXPIRE]) {
        peer.fill();
        let mut i = 0;
        group.bench_function(peer.name, |b| {
            b.iter(|| {
                i = (i + 1) & (keys.len() - 1);
                (peer.call)(black_box(keys[i]))
            })
        });
    }
    group.finish();
}

/// Group 2: single-thread hits, two `String` arguments; ours with strict keys and without.
fn hit_strings(c: &mut Criterion) {
    assert!(common::pair_hashes_like_tuple(), "the floor's borrowed key must hash like its owned key");
    let strings = common::string_keys();
    let keys = walk();
    let mut group = group(c, "2_hit_two_strings");
    for (name, call) in STR_PEERS {
        for (a, b) in &strings {
            call(a, b);
        }
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) & (keys.len() - 1);
                let (x, y) = &strings[keys[i] as usize];
                call(black_box(x), black_box(y))
            })
        });
    }
    group.finish();
}

/// Group 3: a miss on a full cache: compute, insert, evict one.
fn miss_insert(c: &mut Criterion) {
    let mut group = group(c, "3_miss_insert_evict");
    for peer in &U64_PEERS {
        peer.fill();
        let mut fresh = 1 << 40;
        for _ in 0..CAPACITY {
            fresh += 1;
            (peer.call)(fresh);
        }
        group.bench_function(peer.name, |b| {
            b.iter(|| {
                fresh += 1;
                (peer.call)(black_box(fresh))
            })
        });
        (peer.clear)();
    }
    group.finish();
}

/// Fresh keys for the inserts of group 4: unique across threads and runs.
static FRESH: AtomicU64 = AtomicU64::new(1 << 40);

/// Two threads call `call` `iters` times each, at the same time; the slower one's time.
/// Every `insert_every`-th call (0: none) is a fresh key, the others read the working set.
fn two_threads(call: fn(u64) -> u64, iters: u64, insert_every: u64) -> Duration {
    let barrier = Barrier::new(2);
    let times: Vec<Duration> = thread::scope(|s| {
        let workers: Vec<_> = (0..2_u64)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut rng = Rng::new(0xfeed + t);
                    let keys: Vec<u64> = (0..1 << 14).map(|_| rng.below(WORKING_SET)).collect();
                    let mut fresh = FRESH.fetch_add(1 << 32, Relaxed);
                    // Untimed: the floor's map is per thread, and the others are warm anyway.
                    for k in 0..WORKING_SET {
                        call(k);
                    }
                    barrier.wait();
                    let start = Instant::now();
                    for i in 0..iters {
                        let key = if insert_every != 0 && i % insert_every == insert_every - 1 {
                            fresh += 1;
                            fresh
                        } else {
                            keys[(i as usize) & ((1 << 14) - 1)]
                        };
                        black_box(call(black_box(key)));
                    }
                    start.elapsed()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("a bench thread panicked")).collect()
    });
    times.into_iter().max().unwrap_or_default()
}

/// Group 4: two threads at once; one iteration is one call on each thread.
fn throughput(c: &mut Criterion) {
    for (name, insert_every) in [("4_two_threads_90_hit", 10), ("4_two_threads_100_hit", 0)] {
        let mut group = group(c, name);
        group.throughput(Throughput::Elements(2));
        for peer in &U64_PEERS {
            peer.fill();
            group.bench_function(peer.name, |b| {
                b.iter_custom(|iters| two_threads(peer.call, iters, insert_every))
            });
        }
        group.finish();
    }
}

const CLEAR_SIZE: u64 = 100_000;

#[cache(limit = 100000)]
fn ours_100k(a: u64) -> u64 {
    common::compute(a)
}

#[cached::macros::cached(max_size = 100000)]
fn cached_100k(a: u64) -> u64 {
    common::compute(a)
}

fn clear_capacity() -> NonZeroUsize {
    NonZeroUsize::new(CLEAR_SIZE as usize).expect("not zero")
}

static LRU_100K: LazyLock<parking_lot::Mutex<lru::LruCache<u64, u64>>> =
    LazyLock::new(|| parking_lot::Mutex::new(lru::LruCache::new(clear_capacity())));
static QUICK_100K: LazyLock<quick_cache::sync::Cache<u64, u64>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(CLEAR_SIZE as usize));
static MOKA_100K: LazyLock<moka::sync::Cache<u64, u64>> =
    LazyLock::new(|| moka::sync::Cache::new(CLEAR_SIZE));

/// Group 7 (memory half): clearing a function that holds 100,000 entries.
fn clear_100k(c: &mut Criterion) {
    let mut group = c.benchmark_group("7_clear_100k");
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    let peers = [
        Peer {
            name: "memo_alchemy",
            call: ours_100k,
            clear: || {
                black_box(ours_100k::cache_clear().ok());
            },
        },
        Peer {
            name: "lru_mutex",
            call: |a| *LRU_100K.lock().get_or_insert(a, || common::compute(a)),
            clear: || LRU_100K.lock().clear(),
        },
        Peer {
            name: "quick_cache",
            call: |a| QUICK_100K.get_or_insert_with(&a, || Ok::<_, ()>(common::compute(a))).unwrap_or(0),
            clear: || QUICK_100K.clear(),
        },
        Peer {
            name: "moka",
            call: |a| MOKA_100K.get_with(a, || common::compute(a)),
            clear: || MOKA_100K.invalidate_all(),
        },
        Peer { name: "cached", call: cached_100k, clear: || CACHED_100K.write().cache_clear() },
    ];
    for Peer { name, call, clear } in peers {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    for k in 0..CLEAR_SIZE {
                        call(k);
                    }
                },
                |()| clear(),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

#[cache(limit = 10000)]
async fn ours_async(a: u64) -> u64 {
    common::compute(a)
}

static MOKA_ASYNC: LazyLock<moka::future::Cache<u64, u64>> =
    LazyLock::new(|| moka::future::Cache::new(common::CAPACITY as u64));

async fn moka_async(a: u64) -> u64 {
    if let Some(v) = MOKA_ASYNC.get(&a).await {
        return v;
    }
    let v = common::compute(a);
    MOKA_ASYNC.insert(a, v).await;
    v
}

/// A cache under test, called with a key.
type Call = fn(u64) -> u64;

/// Polls `future` once: every future here finishes without waiting, so that the group
/// measures the futures themselves, not an executor.
fn now<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    match std::pin::pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a cache future waited"),
    }
}

/// Group 8: `async fn` hits and misses, beside the sync hit and moka's `future::Cache`
/// (quick_cache has no async lookup: its sync `get` is what an async caller uses).
fn async_calls(c: &mut Criterion) {
    let keys = walk();
    let peers: [(&str, Call); 4] = [
        ("memo_alchemy_async", |k| now(ours_async(k))),
        ("memo_alchemy_sync", common::ours),
        ("quick_cache", U64_PEERS[3].call),
        ("moka_future", |k| now(moka_async(k))),
    ];
    let mut hits = group(c, "8_async_hit");
    for (name, call) in peers {
        for k in 0..common::WORKING_SET {
            call(k);
        }
        let mut i = 0;
        hits.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) & (keys.len() - 1);
                call(black_box(keys[i]))
            })
        });
    }
    hits.finish();
    let mut group = group(c, "8_async_miss_insert_evict");
    for (name, call) in peers {
        let mut fresh = 1 << 41;
        for _ in 0..CAPACITY {
            fresh += 1;
            call(fresh);
        }
        group.bench_function(name, |b| {
            b.iter(|| {
                fresh += 1;
                call(black_box(fresh))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hit_u64, hit_strings, miss_insert, throughput, clear_100k, async_calls);
criterion_main!(benches);
