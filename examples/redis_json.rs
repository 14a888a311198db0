//! Values shared through Redis as JSON: the second call is served from Redis, by
//! this process or by any other that calls `forecast` with the same arguments.
//!
//! Needs a Redis server: `redis-server --port 6379 --save '' &`, or set
//! `MEMO_REDIS_URL=redis://host:port/db`. Run with `cargo run --example redis_json`.

use std::time::Instant;

use memo_alchemy::{cache, CacheStats};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Forecast {
    city: String,
    celsius: f32,
}

/// An expensive call, cached in Redis for 60 s with at most 500 entries.
#[cache(backend = "json", limit = 500, expire = 60, strict = true)]
fn forecast(city: &str, day: u32) -> Forecast {
    std::thread::sleep(std::time::Duration::from_millis(300));
    Forecast { city: city.to_owned(), celsius: 12.5 + day as f32 }
}

fn show(stats: CacheStats) -> String {
    format!("hits {} misses {} errors {}", stats.hits, stats.misses, stats.errors)
}

fn main() -> Result<(), memo_alchemy::Error> {
    for _ in 0..2 {
        let start = Instant::now();
        let f = forecast("Oslo", 1);
        println!("{f:?} in {:?} ({})", start.elapsed(), show(forecast::cache_stats()));
    }
    if forecast::cache_stats().errors > 0 {
        println!("Redis was not reachable: the values were computed directly. Start redis-server and retry.");
        return Ok(());
    }
    // Partial clear by argument, in Redis.
    println!("cleared {} entries for Oslo", forecast::cache_clear_by().city("Oslo").clear()?);
    Ok(())
}
