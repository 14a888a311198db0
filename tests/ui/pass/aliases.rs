//! The alias attributes. Only `memory_cache` runs here: the Redis-backed ones
//! (`json_cache`, `pickle_cache`, `distributed_memory_cache`) are not available yet.

use std::sync::atomic::{AtomicUsize, Ordering};

#[allow(unused_imports)]
use memo_alchemy::{distributed_memory_cache, json_cache, memory_cache, pickle_cache};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[memory_cache]
fn plain(a: u32) -> u32 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    a
}

#[memory_cache(limit = 2, expire = 60, strict = true, cache_key_prefix = "alias")]
fn configured(a: u32) -> u32 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    a
}

fn main() -> Result<(), memo_alchemy::Error> {
    assert_eq!(plain(1), 1);
    assert_eq!(plain(1), 1);
    assert_eq!(configured(2), 2);
    assert_eq!(configured(2), 2);
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);
    assert_eq!(plain::cache().function().backend(), "memory");
    assert_eq!(configured::cache_clear_by().a(2_u32).clear()?, 1);
    Ok(())
}
