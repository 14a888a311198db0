//! Postgres hits and misses through `#[cache]`, side by side with a raw prepared
//! `SELECT` (plus decode) and `SELECT` + `INSERT … ON CONFLICT` (plus compute and
//! encode) of the same value in a table of the same shape, on a PostgreSQL the bench
//! starts on loopback (initdb + pg_ctl); the raw statements run through both the
//! blocking `postgres` client and tokio-postgres driven like the backend's (a
//! connection task on a one-thread runtime), which is how the driver was chosen; and
//! 100 hits through single calls against one `cache_many`. Beside the miss, a miss with
//! `single_flight = "global"` (the leader takes the key's lease in `memo_leases` before
//! the body; the write-back is fenced by it and releases it).
//!
//! Run with `cargo bench --features postgres --bench postgres` (needs PostgreSQL
//! installed: initdb on the PATH or in /usr/lib/postgresql/<version>/bin).

#[path = "../tests/support/postgres.rs"]
mod pg;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use memo_alchemy::postgres_cache;
use postgres_sync::types::Json;
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

#[postgres_cache(limit = -1, expire = 600)]
fn pg_profile(id: u64) -> Profile {
    compute(id)
}

#[postgres_cache(limit = -1, expire = 600)]
async fn pg_profile_async(id: u64) -> Profile {
    compute(id)
}

/// The miss takes the key's lease in the shared store before the body.
#[postgres_cache(limit = -1, expire = 600, single_flight = "global")]
fn pg_global(id: u64) -> Profile {
    compute(id)
}

#[postgres_cache(limit = 1000, expire = 600)]
fn pg_limited(id: u64) -> Profile {
    compute(id)
}

static NEXT: AtomicU64 = AtomicU64::new(1_000_000);

const TABLE: &str = "CREATE TABLE IF NOT EXISTS raw_cache (
    namespace text NOT NULL, key text NOT NULL, value jsonb NOT NULL,
    tags text[] NOT NULL DEFAULT '{}', written_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz, PRIMARY KEY (namespace, key))";
const SELECT: &str = "SELECT value FROM raw_cache WHERE namespace = $1 AND key = $2 \
    AND (expires_at IS NULL OR expires_at > now())";
const UPSERT: &str = "INSERT INTO raw_cache (namespace, key, value, expires_at) \
    VALUES ($1, $2, $3, now() + interval '600 seconds') \
    ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at";

fn postgres_group(c: &mut Criterion) {
    let server = pg::server();
    let mut sync = postgres_sync::Client::connect(&server.url(), postgres_sync::NoTls).expect("connects");
    sync.batch_execute(TABLE).expect("the raw table");
    let (select, upsert) = (sync.prepare(SELECT).expect("prepares"), sync.prepare(UPSERT).expect("prepares"));

    // tokio-postgres as the backend drives it: the connection on a one-thread runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (client, connection) =
        runtime.block_on(tokio_postgres::connect(&server.url(), tokio_postgres::NoTls)).expect("connects");
    runtime.spawn(connection);
    let async_select = runtime.block_on(client.prepare(SELECT)).expect("prepares");

    let mut group = c.benchmark_group("postgres");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));

    pg_profile(1);
    sync.execute(&upsert, &[&"raw", &"1", &Json(&compute(1))]).expect("stores");
    group.bench_function("hit #[postgres_cache]", |b| b.iter(|| black_box(pg_profile(black_box(1)))));
    group.bench_function("hit raw SELECT + decode (postgres, blocking)", |b| {
        b.iter(|| {
            let row = sync.query_one(&select, &[&"raw", &"1"]).expect("SELECT");
            black_box(row.get::<_, Json<Profile>>(0).0)
        })
    });
    group.bench_function("hit raw SELECT + decode (tokio-postgres)", |b| {
        b.iter(|| {
            let row = runtime.block_on(client.query_one(&async_select, &[&"raw", &"1"])).expect("SELECT");
            black_box(row.get::<_, Json<Profile>>(0).0)
        })
    });

    // async: the caller's runtime awaits; the I/O runs on the library's runtime thread.
    let caller = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    caller.block_on(pg_profile_async(1));
    group.bench_function("hit async #[postgres_cache]", |b| {
        b.iter(|| black_box(caller.block_on(pg_profile_async(black_box(1)))))
    });

    // The same comparison, interleaved: rounds of 50 hits then 50 raw SELECTs, so
    // that a load that comes and goes on a shared machine weighs on both alike.
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..150 {
        let start = std::time::Instant::now();
        for _ in 0..50 {
            black_box(pg_profile(black_box(1)));
        }
        ours.push(start.elapsed().as_secs_f64() / 50.0);
        let start = std::time::Instant::now();
        for _ in 0..50 {
            let row = sync.query_one(&select, &[&"raw", &"1"]).expect("SELECT");
            black_box(row.get::<_, Json<Profile>>(0).0);
        }
        theirs.push(start.elapsed().as_secs_f64() / 50.0);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ours, theirs) = (median(&mut ours), median(&mut theirs));
    println!(
        "interleaved, median of 150 rounds of 50: hit #[postgres_cache] {:.1} µs, raw SELECT {:.1} µs: {:.2}x",
        ours * 1e6,
        theirs * 1e6,
        ours / theirs
    );

    let ids: Vec<u64> = (1..=100).collect();
    pg_profile::cache_many(ids.clone());
    group.bench_function("100 hits, single calls", |b| {
        b.iter(|| {
            for &id in &ids {
                black_box(pg_profile(id));
            }
        })
    });
    group.bench_function("100 hits, cache_many", |b| {
        b.iter(|| black_box(pg_profile::cache_many(ids.iter().copied())))
    });

    group.bench_function("miss #[postgres_cache]", |b| {
        b.iter(|| black_box(pg_profile(NEXT.fetch_add(1, Relaxed))))
    });
    group.bench_function("miss #[postgres_cache] single_flight global", |b| {
        b.iter(|| black_box(pg_global(NEXT.fetch_add(1, Relaxed))))
    });
    group.bench_function("miss #[postgres_cache] limit = 1000", |b| {
        b.iter(|| black_box(pg_limited(NEXT.fetch_add(1, Relaxed))))
    });
    group.bench_function("miss raw SELECT + compute + INSERT ON CONFLICT (postgres, blocking)", |b| {
        b.iter(|| {
            let id = NEXT.fetch_add(1, Relaxed);
            let key = id.to_string();
            assert!(sync.query_opt(&select, &[&"raw", &key]).expect("SELECT").is_none());
            let value = compute(id);
            sync.execute(&upsert, &[&"raw", &key, &Json(&value)]).expect("INSERT");
            black_box(value)
        })
    });
    group.finish();
}

criterion_group!(benches, postgres_group);
criterion_main!(benches);
