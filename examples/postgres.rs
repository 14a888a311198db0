//! Values shared through PostgreSQL as `jsonb`: the second call is one `SELECT`, by
//! this process or any other that uses the same database; a partial clear and a tag
//! invalidation remove exactly their rows; the cleanup deletes expired rows.
//!
//! Needs a PostgreSQL database the user may create a schema in: set
//! `MEMO_POSTGRES_URL=postgres://user:password@host:5432/db` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Run with
//! `cargo run --features postgres --example postgres`.

use std::time::{Duration, Instant};

use memo_alchemy::{postgres_cache, CacheStats};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Invoice {
    customer: u64,
    total_cents: u64,
}

/// An expensive query, cached in PostgreSQL for 60 s, at most 1000 rows.
#[postgres_cache(limit = 1000, expire = 60, strict = true, tags = ["customer:{customer}"])]
fn invoice(customer: u64, month: u8) -> Invoice {
    std::thread::sleep(Duration::from_millis(300));
    Invoice { customer, total_cents: customer * 100 + u64::from(month) }
}

fn show(stats: CacheStats) -> String {
    format!("hits {} misses {} errors {} rows {:?}", stats.hits, stats.misses, stats.errors, stats.len)
}

fn main() -> Result<(), memo_alchemy::Error> {
    let cleanup = memo_alchemy::postgres::start_cleanup(Duration::from_secs(30));
    for _ in 0..2 {
        let start = Instant::now();
        let i = invoice(42, 1);
        println!("{i:?} in {:?} ({})", start.elapsed(), show(invoice::cache_stats()));
    }
    if invoice::cache_stats().errors > 0 {
        println!("PostgreSQL was not reachable: the values were computed directly. Set MEMO_POSTGRES_URL.");
        return Ok(());
    }
    invoice(42, 2);
    invoice(7, 1);
    println!("cleared {} rows of customer 42", invoice::cache_clear_by().customer(42_u64).clear()?);
    println!("invalidated {} rows tagged customer:7", memo_alchemy::invalidate_tags(["customer:7"])?);
    println!("the cleanup deleted {} expired rows", cleanup.stop());
    Ok(())
}
