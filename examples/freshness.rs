//! `stale` and `refresh`: the last good value while a service fails, and hot entries
//! recomputed in the background before they expire.
//!
//! Run with `cargo run --example freshness` (no server needed; it sleeps about 3 s).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::thread::sleep;
use std::time::Duration;

use memo_alchemy::cache;

static DOWN: AtomicBool = AtomicBool::new(false);
static QUOTES: AtomicU32 = AtomicU32::new(0);

/// Expires after a second, but the last good rate is served for 60 more while the
/// rates service fails.
#[cache(expire = 1, stale = 60)]
fn rate(currency: &str) -> Result<f64, String> {
    if DOWN.load(SeqCst) {
        return Err(format!("the rates service is down ({currency})"));
    }
    Ok(1.1)
}

/// Lives a minute; older than a second, a hit returns it and recomputes it behind.
#[cache(expire = 60, refresh = 1)]
fn quote(sku: u32) -> u32 {
    sku * 100 + QUOTES.fetch_add(1, SeqCst)
}

fn main() {
    println!("rate: {:?}", rate("EUR"));
    println!("quote: {}", quote(7));
    sleep(Duration::from_millis(1_100));

    DOWN.store(true, SeqCst);
    println!("rate while the service is down: {:?} (stale)", rate("EUR"));
    println!("stale hits: {}", rate::cache_stats().stale_hits);

    println!("quote, now older than a second: {} (at once; a refresh starts)", quote(7));
    while quote::cache_stats().refreshes == 0 {
        sleep(Duration::from_millis(10));
    }
    println!("quote after the refresh: {}", quote(7));
}
