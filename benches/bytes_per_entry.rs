//! Bytes per entry for 1,000,000 `u64 -> u64` entries, counted by a global allocator
//! wrapper: ours beside the peers. Not a timing: it prints the sizes and writes them
//! to `target/bench-bytes.tsv` for `scripts/bench`'s report.
//!
//! Run with `cargo bench --bench bytes_per_entry`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

use cached::macros::cached;
use memo_alchemy::cache;

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ENTRIES: u64 = 1_000_000;

/// Unlimited, so that all 1,000,000 entries stay (a sharded store with `limit =
/// 1000000` would evict a few where a shard fills first); the default `expire`.
#[cache(limit = -1)]
fn ours(a: u64) -> u64 {
    common::compute(a)
}

#[cached(max_size = 1000000)]
fn cached_1m(a: u64) -> u64 {
    common::compute(a)
}

/// Bytes allocated per entry by `fill`, which stores `ENTRIES` entries and returns
/// what must stay alive while they are counted.
fn per_entry<T>(fill: impl FnOnce() -> T) -> f64 {
    let before = LIVE.load(Relaxed);
    let kept = fill();
    let after = LIVE.load(Relaxed);
    drop(kept);
    (after - before) as f64 / ENTRIES as f64
}

fn main() {
    let capacity = NonZeroUsize::new(ENTRIES as usize).expect("not zero");
    let rows = [
        (
            "memo_alchemy",
            per_entry(|| {
                (0..ENTRIES).for_each(|k| {
                    let _ = ours(k);
                });
                assert_eq!(ours::cache_stats().len, Some(ENTRIES as usize));
            }),
        ),
        (
            "floor_hashbrown",
            per_entry(|| {
                let mut map = hashbrown::HashMap::<u64, u64, foldhash::fast::FixedState>::default();
                (0..ENTRIES).for_each(|k| {
                    let _ = map.insert(k, common::compute(k));
                });
                map
            }),
        ),
        (
            "lru_mutex",
            per_entry(|| {
                let lru = parking_lot::Mutex::new(lru::LruCache::new(capacity));
                (0..ENTRIES).for_each(|k| {
                    let _ = lru.lock().put(k, common::compute(k));
                });
                lru
            }),
        ),
        (
            "quick_cache",
            per_entry(|| {
                let cache = quick_cache::sync::Cache::new(ENTRIES as usize);
                (0..ENTRIES).for_each(|k| cache.insert(k, common::compute(k)));
                cache
            }),
        ),
        (
            "moka",
            per_entry(|| {
                let cache = moka::sync::Cache::new(ENTRIES);
                (0..ENTRIES).for_each(|k| cache.insert(k, common::compute(k)));
                cache.run_pending_tasks();
                cache
            }),
        ),
        (
            "cached",
            per_entry(|| {
                (0..ENTRIES).for_each(|k| {
                    let _ = cached_1m(k);
                })
            }),
        ),
    ];
    let mut tsv = String::new();
    for (name, bytes) in rows {
        println!("{name:<16} {bytes:7.1} bytes per u64 -> u64 entry");
        writeln!(tsv, "{name}\t{bytes}").expect("writing to a String");
    }
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target/tmp has a parent");
    std::fs::write(dir.join("bench-bytes.tsv"), tsv).expect("target/ is writable");
}
