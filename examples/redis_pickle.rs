//! Values in Redis as self-describing MessagePack ("pickle"): compact, and able to hold what JSON cannot,
//! such as maps with tuple keys, `u128` and enums with data. An `async fn` this time.
//!
//! Needs a Redis server: `redis-server --port 6379 --save '' &`, or set
//! `MEMO_REDIS_URL=redis://host:port/db`. Run with `cargo run --example redis_pickle`.

use std::collections::BTreeMap;

use memo_alchemy::pickle_cache;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Cell {
    Empty,
    Wall { height: u128 },
}

#[pickle_cache(limit = 100, expire = 300)]
async fn level(id: u32) -> BTreeMap<(u8, u8), Cell> {
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    (0..3)
        .map(|x| {
            (
                (x, x),
                if x == u8::try_from(id % 3).unwrap_or(0) {
                    Cell::Empty
                } else {
                    Cell::Wall { height: u128::MAX }
                },
            )
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), memo_alchemy::Error> {
    let first = level(7).await;
    let second = level(7).await;
    assert_eq!(first, second);
    let stats = level::cache_stats();
    println!("{first:?}");
    println!("hits {} misses {} errors {}", stats.hits, stats.misses, stats.errors);
    if stats.errors > 0 {
        println!("Redis was not reachable: the values were computed directly. Start redis-server and retry.");
    } else {
        println!("cleared {} entries", level::cache_clear().await?);
    }
    Ok(())
}
