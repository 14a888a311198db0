//! Strict keys: partial clears by any subset of named arguments, with exact counts.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use memo_alchemy::cache;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(strict = true, limit = -1)]
fn price(shop: &str, item: u32, qty: u16) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    u64::from(item) * u64::from(qty) + shop.len() as u64
}

fn fill() {
    for shop in ["north", "south", "*"] {
        for item in 1..=4 {
            for qty in 1..=2 {
                price(shop, item, qty);
            }
        }
    }
}

#[test]
fn partial_clears_remove_exactly_the_matching_entries() {
    fill();
    assert_eq!(price::cache_stats().len, Some(24));

    // One argument: 4 items x 2 quantities of "north".
    assert_eq!(price::cache_clear_by().shop("north").clear().unwrap(), 8);
    // Two arguments, set through Into: `String` works as well as `&str`.
    assert_eq!(price::cache_clear_by().shop(String::from("south")).item(1_u32).clear().unwrap(), 2);
    // A glob character matches only itself.
    assert_eq!(price::cache_clear_by().shop("*").qty(2_u16).clear().unwrap(), 4);
    // Nothing matches twice.
    assert_eq!(price::cache_clear_by().shop("north").clear().unwrap(), 0);
    assert_eq!(price::cache_stats().len, Some(24 - 8 - 2 - 4));

    // What was not selected is still served from the cache.
    let before = RUNS.load(SeqCst);
    price("south", 2, 1);
    price("*", 3, 1);
    assert_eq!(RUNS.load(SeqCst), before);
    price("north", 2, 1);
    assert_eq!(RUNS.load(SeqCst), before + 1);

    // No argument selects everything.
    assert_eq!(price::cache_clear_by().clear().unwrap(), 24 - 8 - 2 - 4 + 1);
}
