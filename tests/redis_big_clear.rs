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
    let entry = server().keys("memo:*:redis_big_clear::big:*:k:*").remove(0);
    let index = server().keys("memo:*:redis_big_clear::big:*:i").remove(0);
    let prefix = entry.rsplit_once(":k:").unwrap().0.to_owned();
    // Fill in chunks, as the write script would have: value, index member.
    let fill = redis::Script::new(
        r"
        for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do
          local key = ARGV[3] .. ':k:' .. i
          redis.call('SET', key, i)
          redis.call('ZADD', KEYS[1], i, key)
        end",
    );
    let mut raw = server().raw();
    for start in (1..ENTRIES).step_by(100_000) {
        let end = (start + 99_999).min(ENTRIES - 1);
        let () = fill.key(&index).arg(start).arg(end).arg(&prefix).invoke(&mut raw).unwrap();
    }
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
