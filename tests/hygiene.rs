//! Arguments named like the expansion's own locals still work.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use memo_alchemy::cache;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(strict = true)]
fn clash(key: u32, cache: u32, value: u32, function: u32, selector: u32, __memo_cache: u32) -> u32 {
    RUNS.fetch_add(1, SeqCst);
    key + cache + value + function + selector + __memo_cache
}

#[test]
fn arguments_named_key_cache_and_value() {
    assert_eq!(clash(1, 2, 3, 4, 5, 6), 21);
    assert_eq!(clash(1, 2, 3, 4, 5, 6), 21);
    assert_eq!(RUNS.load(SeqCst), 1);
    assert_eq!(clash::cache_clear_by().key(1_u32).cache(2_u32).value(3_u32).clear().unwrap(), 1);
}

/// A local type called `Result` does not confuse the `Result` detection or paths.
mod shadowing {
    #[allow(dead_code)]
    pub struct Option;
    #[allow(dead_code)]
    pub struct Vec;

    #[memo_alchemy::cache]
    pub fn doubled(a: u32) -> u32 {
        a * 2
    }
}

#[test]
fn shadowed_prelude_names_do_not_break_the_expansion() {
    assert_eq!(shadowing::doubled(2), 4);
    assert_eq!(shadowing::doubled::cache_stats().misses, 1);
}
