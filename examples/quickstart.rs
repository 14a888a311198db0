//! Memoization, `limit`/`expire`, a strict partial clear and a method, on the
//! in-process memory backend (no server needed).
//!
//! Run with `cargo run --example quickstart`.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use memo_alchemy::{cache, cache_impl};

static SLOW_CALLS: AtomicUsize = AtomicUsize::new(0);

/// At most 1000 entries, each living 60 seconds; strict keys allow partial clears.
#[cache(limit = 1000, expire = 60, strict = true)]
fn shipping_cost(country: &str, weight_kg: u32) -> u64 {
    SLOW_CALLS.fetch_add(1, SeqCst);
    std::thread::sleep(std::time::Duration::from_millis(50)); // an expensive lookup
    let base = if country == "NZ" { 900 } else { 500 };
    base + u64::from(weight_kg) * 120
}

#[derive(Clone, Hash, PartialEq, Eq)]
struct Warehouse {
    city: String,
}

#[cache_impl]
impl Warehouse {
    /// `is_method = true`: every warehouse shares the entries (the receiver is not in
    /// the key); leave it out to key by the receiver too.
    #[cache(is_method = true, limit = 100)]
    fn stock(&self, sku: u32) -> u32 {
        SLOW_CALLS.fetch_add(1, SeqCst);
        sku % 7
    }
}

fn main() -> Result<(), memo_alchemy::Error> {
    // Memoization: the second call is served from the cache.
    println!("NZ 2kg: {}", shipping_cost("NZ", 2));
    println!("NZ 2kg: {}", shipping_cost("NZ", 2));
    println!("FR 1kg: {}", shipping_cost("FR", 1));
    println!("FR 3kg: {}", shipping_cost("FR", 3));
    let stats = shipping_cost::cache_stats();
    println!("hits {} misses {} entries {:?}", stats.hits, stats.misses, stats.len);
    assert_eq!(SLOW_CALLS.load(SeqCst), 3);

    // A strict partial clear: only France's prices go.
    let removed = shipping_cost::cache_clear_by().country("FR").clear()?;
    println!("cleared {removed} FR entries; {:?} left", shipping_cost::cache_stats().len);
    assert_eq!(removed, 2);

    // A method.
    let north = Warehouse { city: "Oslo".into() };
    let south = Warehouse { city: "Perth".into() };
    println!("{} stock of 10: {}", north.city, north.stock(10));
    println!("{} stock of 10: {} (shared entry)", south.city, south.stock(10));
    assert_eq!(Warehouse::stock_cache_stats().hits, 1);

    // Clear everything of one function.
    println!("cleared {} entries", shipping_cost::cache_clear()?);
    Ok(())
}
