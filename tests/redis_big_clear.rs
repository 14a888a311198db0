//! A function with 1,000,000 entries in Redis clears in batches, without stalling
//! Redis: a client pinging throughout never waits a second.

mod support;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use memo_alchemy::json_cache;
use redis::Commands;
use support::server;

#[json_cache(limit = -1, expire = -1)]
fn big(i: u64) -> u64 {
    i
}

const ENTRIES: u64 = 1_000_000;

#[test]
fn a_million_entries_clear_without_a_stall() {
    server();
    big(0);
    let index = server().fill("big", ENTRIES);
    let mut raw = server().raw();
    assert_eq!(raw.zcard::<_, u64>(&index).unwrap(), ENTRIES);

    let done = AtomicBool::new(false);
    let (removed, took, worst_ping) = thread::scope(|s| {
        let pinger = s.spawn(|| {
            let mut conn = server().raw();
            let mut worst = Duration::ZERO;
            while !done.load(SeqCst) {
                let start = Instant::now();
                let _: String = redis::cmd("PING").query(&mut conn).unwrap();
                worst = worst.max(start.elapsed());
                thread::sleep(Duration::from_millis(5));
            }
            worst
        });
        let start = Instant::now();
        let removed = big::cache_clear().unwrap();
        let took = start.elapsed();
        done.store(true, SeqCst);
        (removed, took, pinger.join().unwrap())
    });
    println!("cleared {removed} entries in {took:?}; the slowest PING meanwhile took {worst_ping:?}");
    assert_eq!(removed as u64, ENTRIES);
    assert!(server().keys("memo:*:redis_big_clear::big:*:k:*").is_empty());
    assert!(worst_ping < Duration::from_secs(1), "Redis stalled for {worst_ping:?}");
}
