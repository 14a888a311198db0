//! `single_flight`, `lease`, `local` and `refresh = "early"` on the backends that take
//! them: this compiles, and an early refresh runs on the memory backend.

use memo_alchemy::cache;

#[cache(backend = "json", single_flight = "global", lease = 30, local = 1000, expire = 60, refresh = "early")]
fn everything(a: u32) -> u32 {
    a
}

#[cache(backend = "pickle", single_flight = "local", local = 10)]
fn pickled(a: u32) -> u32 {
    a
}

#[cache(expire = 60, refresh = "early")]
fn early(a: u32) -> u32 {
    a + 1
}

// A borrowed argument: the refresh passes a borrow of the key's owned copy.
#[cache(expire = 60, refresh = "early")]
fn early_borrowed(symbol: &str, days: &[u32]) -> usize {
    symbol.len() + days.len()
}

fn main() {
    assert_eq!(early_borrowed("AB", &[1, 2]), 4);
    let _ = (everything as fn(u32) -> u32, pickled as fn(u32) -> u32);
    assert_eq!(early(1), 2);
    assert_eq!(early(1), 2);
    assert_eq!(early::cache_stats().hits, 1);
}
