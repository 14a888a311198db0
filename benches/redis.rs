//! Redis json and pickle hits and misses through `#[cache]`, side by side with a raw
//! `redis` GET (plus decode) and GET + SET (plus compute and encode) of the same value,
//! on a redis-server the bench starts on loopback; and 100 hits through single calls
//! against one `cache_many`. Beside the json hit, the same value through a json
//! function with a memory tier in front (`local = 1000`) and through a plain memory
//! `#[cache]`; beside the json miss, a json miss with `single_flight = "global"` (the
//! leader takes the key's lease before the body, the write-back is fenced by it).
//!
//! Run with `cargo bench --bench redis` (needs `redis-server` on the PATH). With
//! `MEMO_TEST_TOPOLOGY=cluster` (as `scripts/bench` runs it a second time) the same hits
//! and misses run on a six-node Redis Cluster on loopback, raw commands through the
//! `redis` crate's cluster client, as the group `redis_cluster`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use memo_alchemy::{cache, json_cache, pickle_cache};
use redis::Commands;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    tags: Vec<String>,
}

fn compute(id: u64) -> Profile {
    Profile { id, name: format!("user-{id}"), tags: vec!["a".into(), "b".into(), "c".into()] }
}

#[json_cache(limit = -1, expire = 600)]
fn json_profile(id: u64) -> Profile {
    compute(id)
}

/// The json function with a memory tier in front: a hit that finds the tier's entry
/// makes no round trip.
#[json_cache(limit = -1, expire = 600, local = 1000)]
fn json_local_profile(id: u64) -> Profile {
    compute(id)
}

/// The json function whose miss takes the key's lease in Redis before the body.
#[json_cache(limit = -1, expire = 600, single_flight = "global")]
fn json_global_profile(id: u64) -> Profile {
    compute(id)
}

/// The memory backend, for the floor of the hits above.
#[cache(limit = -1, expire = 600)]
fn memory_profile(id: u64) -> Profile {
    compute(id)
}

#[pickle_cache(limit = -1, expire = 600)]
fn pickle_profile(id: u64) -> Profile {
    compute(id)
}

#[json_cache(limit = -1, expire = -1)]
fn cleared(id: u64) -> u64 {
    id
}

static NEXT: AtomicU64 = AtomicU64::new(1_000_000);

fn redis_group(c: &mut Criterion) {
    let server = support::server();
    let mut raw = server.raw();
    let cluster = server.cluster().is_some();
    let mut group = c.benchmark_group(if cluster { "redis_cluster" } else { "redis" });
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));

    json_profile(1);
    json_local_profile(1);
    memory_profile(1);
    pickle_profile(1);
    let _: () = raw.set_ex("raw:1", serde_json::to_vec(&compute(1)).expect("encodes"), 600).expect("SET");
    group.bench_function("hit json #[cache]", |b| b.iter(|| black_box(json_profile(black_box(1)))));
    group.bench_function("hit json local tier #[cache]", |b| {
        b.iter(|| black_box(json_local_profile(black_box(1))))
    });
    group.bench_function("hit memory #[cache]", |b| b.iter(|| black_box(memory_profile(black_box(1)))));
    group.bench_function("hit pickle #[cache]", |b| b.iter(|| black_box(pickle_profile(black_box(1)))));
    group.bench_function("hit raw GET + json decode", |b| {
        b.iter(|| {
            let bytes: Vec<u8> = raw.get("raw:1").expect("GET");
            black_box(serde_json::from_slice::<Profile>(&bytes).expect("decodes"))
        })
    });

    // 100 hits: one call each, against one cache_many.
    let ids: Vec<u64> = (1..=100).collect();
    json_profile::cache_many(ids.clone());
    if !cluster {
        group.bench_function("100 hits json, single calls", |b| {
            b.iter(|| {
                for &id in &ids {
                    black_box(json_profile(id));
                }
            })
        });
        group.bench_function("100 hits json, cache_many", |b| {
            b.iter(|| black_box(json_profile::cache_many(ids.iter().copied())))
        });
    }

    group.bench_function("miss json #[cache]", |b| {
        b.iter(|| black_box(json_profile(NEXT.fetch_add(1, Relaxed))))
    });
    group.bench_function("miss json single_flight global #[cache]", |b| {
        b.iter(|| black_box(json_global_profile(NEXT.fetch_add(1, Relaxed))))
    });
    group.bench_function("miss pickle #[cache]", |b| {
        b.iter(|| black_box(pickle_profile(NEXT.fetch_add(1, Relaxed))))
    });
    group.bench_function("miss raw GET + compute + SET PX", |b| {
        b.iter(|| {
            let id = NEXT.fetch_add(1, Relaxed);
            let key = format!("raw:{id}");
            let found: Option<Vec<u8>> = raw.get(&key).expect("GET");
            assert!(found.is_none());
            let value = compute(id);
            let _: () = redis::cmd("SET")
                .arg(&key)
                .arg(serde_json::to_vec(&value).expect("encodes"))
                .arg("PX")
                .arg(600_000)
                .query(&mut raw)
                .expect("SET");
            black_box(value)
        })
    });
    group.finish();
    if cluster {
        return;
    }

    let mut group = c.benchmark_group("redis");
    group.sampling_mode(SamplingMode::Flat).sample_size(10).measurement_time(Duration::from_secs(5));
    group.bench_function("clear 100k json #[cache]", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                cleared(0);
                server.fill("cleared", 100_000);
                let start = Instant::now();
                let removed = cleared::cache_clear().expect("Redis is up");
                total += start.elapsed();
                assert_eq!(removed, 100_000);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, redis_group);
criterion_main!(benches);
