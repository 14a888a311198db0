//! Arguments named like the expansion's locals do not break it.

use memo_alchemy::cache;

#[cache(strict = true)]
fn f(key: u32, cache: u32, value: u32, __memo_cache: u32, selector: u32, self_: u32) -> u32 {
    key + cache + value + __memo_cache + selector + self_
}

#[cache]
fn g(__memo_value: u32, __memo_miss: u32, __memo_function: u32) -> u32 {
    __memo_value + __memo_miss + __memo_function
}

fn main() -> Result<(), memo_alchemy::Error> {
    assert_eq!(f(1, 2, 3, 4, 5, 6), 21);
    assert_eq!(f(1, 2, 3, 4, 5, 6), 21);
    assert_eq!(f::cache_stats().hits, 1);
    assert_eq!(f::cache_clear_by().key(1_u32).cache(2_u32).value(3_u32).__memo_cache(4_u32).clear()?, 1);
    assert_eq!(g(1, 2, 3), 6);
    assert_eq!(g(1, 2, 3), 6);
    assert_eq!(g::cache_stats().hits, 1);
    Ok(())
}
