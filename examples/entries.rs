//! Working with entries directly: write through after an update, warm a cache, read
//! without computing, and fetch many values at once.
//!
//! Run with `cargo run --example entries` (no server needed).

use memo_alchemy::cache;

#[derive(Clone, Debug, PartialEq)]
struct Price {
    cents: u64,
}

#[cache(expire = 300)]
fn price(sku: u32) -> Price {
    println!("  (loading price {sku} from the database)");
    Price { cents: u64::from(sku) * 100 }
}

fn main() -> Result<(), memo_alchemy::Error> {
    // Warm: many SKUs at once; the misses are computed, in order.
    let prices = price::cache_many([1, 2, 3]);
    println!("warmed: {prices:?}");

    // Write through after an update: the next call is served without loading.
    price::cache_entry(2).set(Price { cents: 250 })?;
    println!("after the update: {:?}", price(2));

    // Inspect without computing.
    let entry = price::cache_entry(3);
    println!("stored for 3: {:?}, {:?} left", entry.get()?, entry.ttl()?);
    println!("stored for 9: {:?}", price::cache_entry(9).get()?);

    // Remove one entry: the next call loads it again.
    entry.remove()?;
    println!("after remove: {:?}", price(3));
    Ok(())
}
