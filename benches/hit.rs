//! The memory hit path, side by side with a hand-written `LazyLock<Mutex<LruCache>>`
//! memo function: capacity 10,000, a working set of 8,000 u64 keys, all hits.
//!
//! Run with `cargo bench --bench hit`.

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::LazyLock;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use lru::LruCache;
use memo_alchemy::cache;
use parking_lot::Mutex;

const CAPACITY: usize = 10_000;
const WORKING_SET: u64 = 8_000;

fn compute(a: u64) -> u64 {
    a.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[cache(limit = 10000)]
fn memo_default_expire(a: u64) -> u64 {
    compute(a)
}

#[cache(limit = 10000, expire = -1)]
fn memo_no_expire(a: u64) -> u64 {
    compute(a)
}

static HAND: LazyLock<Mutex<LruCache<u64, u64>>> =
    LazyLock::new(|| Mutex::new(LruCache::new(NonZeroUsize::new(CAPACITY).expect("capacity is non-zero"))));

fn hand_written(a: u64) -> u64 {
    if let Some(v) = HAND.lock().get(&a) {
        return *v;
    }
    let v = compute(a);
    HAND.lock().put(a, v);
    v
}

fn hits(c: &mut Criterion) {
    let mut group = c.benchmark_group("hit_u64");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    let run = |f: fn(u64) -> u64| {
        for k in 0..WORKING_SET {
            f(k);
        }
        let mut k = 0;
        move || {
            k = (k + 1) % WORKING_SET;
            black_box(f(black_box(k)))
        }
    };
    let mut next = run(memo_default_expire);
    group.bench_function("cache (expire = 86400)", |b| b.iter(&mut next));
    let mut next = run(memo_no_expire);
    group.bench_function("cache (expire = -1)", |b| b.iter(&mut next));
    let mut next = run(hand_written);
    group.bench_function("LazyLock<Mutex<LruCache>>", |b| b.iter(&mut next));
    group.finish();
}

criterion_group!(benches, hits);
criterion_main!(benches);
