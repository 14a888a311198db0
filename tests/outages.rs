//! Redis outages and what the library does around them: waits bounded by one timeout
//! against a frozen server, one log line when Redis goes down and one when it is back,
//! a breaker that recovers within one probe, and clears that failed retried in the
//! background before any value of their function is served again: across two
//! processes, no read that starts after the retry went through is stale.
//!
//! The tests freeze and kill this binary's server, so they run one at a time.

mod support;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard};
use std::thread::{self, sleep};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memo_alchemy::{distributed_memory_cache, json_cache, pending_clears};
use support::logs::{self, Line};
use support::{is_child, run_child, server};
use tracing::Level;

/// The configured Redis timeout of the tests (see `support`).
const TIMEOUT: Duration = Duration::from_millis(300);
/// The configured breaker cool-down, which is the probe interval.
const COOLDOWN: Duration = Duration::from_millis(500);

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_ms() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// Calls `f` until it holds, for at most `limit`.
fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

/// Waits until the breaker of this process lets calls reach Redis again.
fn until_redis_answers() {
    let probe = AtomicUsize::new(10_000);
    eventually(Duration::from_secs(10), "Redis in use again", || {
        let i = u64::try_from(probe.fetch_add(1, SeqCst)).unwrap();
        square(i);
        let before = square::cache_stats().hits;
        square(i);
        square::cache_stats().hits > before
    });
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[json_cache(strict = true)]
fn square(i: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    i * i
}

#[json_cache]
async fn cube(i: u64) -> u64 {
    i * i * i
}

#[distributed_memory_cache]
fn local_square(i: u64) -> u64 {
    i * i
}

// ---- a frozen server: one timeout, not two ----

#[test]
fn a_frozen_server_costs_one_timeout_not_two() {
    if is_child() {
        return;
    }
    let _serial = serial();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    server();
    until_redis_answers();
    assert_eq!(runtime.block_on(cube(1)), 1);
    // Fresh keys: each call is one lookup that Redis does not answer.
    server().pause();
    let mut sync_ms = Vec::new();
    let mut async_ms = Vec::new();
    for i in 0..3_u64 {
        let start = Instant::now();
        assert_eq!(square(1000 + i), (1000 + i) * (1000 + i));
        sync_ms.push(start.elapsed().as_millis());
        let start = Instant::now();
        assert_eq!(runtime.block_on(cube(1000 + i)), (1000 + i).pow(3));
        async_ms.push(start.elapsed().as_millis());
    }
    server().resume();
    println!("frozen server: sync calls {sync_ms:?} ms, async calls {async_ms:?} ms (timeout {TIMEOUT:?})");
    // The first call of each kind met the frozen server; the breaker skipped Redis for
    // the later ones. Twice the timeout was the bug: allow scheduling slack below it.
    let bound = TIMEOUT.as_millis() * 17 / 10;
    assert!(sync_ms[0] < bound, "a blocking call waited {} ms for a frozen server", sync_ms[0]);
    assert!(async_ms[0] < bound, "an async call waited {} ms for a frozen server", async_ms[0]);
    until_redis_answers();
}

// ---- the breaker: back within one probe interval ----

#[test]
fn the_breaker_closes_within_one_probe_interval_of_redis_coming_back() {
    if is_child() {
        return;
    }
    let _serial = serial();
    server();
    until_redis_answers();
    server().kill();
    // Enough failures to open the breaker, then a few cool-downs of failed probes.
    let deadline = Instant::now() + COOLDOWN * 3;
    let mut i = 20_000;
    while Instant::now() < deadline {
        assert_eq!(square(i), i * i);
        i += 1;
        sleep(Duration::from_millis(20));
    }
    server().start();
    let back = Instant::now();
    until_redis_answers();
    let took = back.elapsed();
    println!("breaker: Redis in use again {took:?} after it came back (probe interval {COOLDOWN:?})");
    // The bug: a probe reused a connection from before the outage, failed, and kept
    // the breaker open for two more cool-downs (~9 s with the default 5 s).
    assert!(took < COOLDOWN + TIMEOUT + Duration::from_millis(700), "the breaker stayed open for {took:?}");
}

// ---- the log: one line down, at most one a second, one line back ----

fn memo_lines(since: usize) -> Vec<Line> {
    logs::lines().into_iter().skip(since).filter(|l| l.text.contains("memo-alchemy")).collect()
}

#[test]
fn an_outage_logs_one_line_down_one_a_second_and_one_back() {
    if is_child() {
        return;
    }
    let _serial = serial();
    logs::capture();
    server();
    until_redis_answers();
    assert_eq!(local_square(2), 4);
    let since = logs::lines().len();
    server().kill();
    let down = Instant::now();
    let mut i = 30_000;
    let mut calls = 0;
    while down.elapsed() < Duration::from_secs(3) {
        assert_eq!(square(i), i * i);
        assert_eq!(local_square(i), i * i);
        i += 1;
        calls += 2;
        sleep(Duration::from_millis(2));
    }
    server().start();
    until_redis_answers();
    eventually(Duration::from_secs(5), "the subscription is back", || {
        memo_lines(since).iter().any(|l| l.text.contains("store back") && l.text.contains("subscription"))
    });
    let lines = memo_lines(since);
    for line in &lines {
        println!("{:>5} {}", line.level, line.text);
    }
    let warnings = lines.iter().filter(|l| l.level == Level::WARN).count();
    let back = lines.iter().filter(|l| l.text.contains("store back")).count();
    println!("{calls} calls in a 3 s outage: {warnings} warnings, {back} recoveries logged");
    // Two stores (the Redis connection and the subscription). Each outage of a store
    // is one line down and one line back (a loaded machine may add a short outage of
    // the subscription, whose heartbeat times out: it must follow the same rule), and
    // at most one line a second in between.
    for store in ["store=Redis at", "store=invalidation subscription at"] {
        let of =
            |what: &str| lines.iter().filter(|l| l.text.contains(store) && l.text.contains(what)).count();
        let (down, still, up) = (of("store down"), of("store still down"), of("store back"));
        assert!(down >= 1, "{store}: the outage was logged");
        assert_eq!(down, up, "{store}: one line down and one line back per outage");
        assert!(still <= 4, "{store}: {still} lines while down, at most one a second");
    }
    assert!(warnings <= 2 * 6, "{warnings} warnings for {calls} calls");
    assert!(
        lines.iter().all(|l| !l.text.contains("computing directly") || l.text.contains("store down")),
        "no per-call line"
    );
}

// ---- durable clears ----

#[test]
fn a_clear_that_failed_is_retried_and_nothing_is_served_meanwhile() {
    if is_child() {
        return;
    }
    let _serial = serial();
    server();
    until_redis_answers();
    assert_eq!(square(7), 49);
    assert_eq!(square(8), 64);
    let runs = RUNS.load(SeqCst);
    assert_eq!(square(7), 49);
    assert_eq!(RUNS.load(SeqCst), runs, "a hit before the outage");
    let entries = server().keys("memo:*::square:*:k:*").len();
    assert!(entries >= 2);

    // Frozen: the entries stay in Redis, and the clear cannot reach it.
    server().pause();
    let cleared = square::cache_clear();
    assert!(cleared.is_err(), "a clear that reached nothing is an error: {cleared:?}");
    assert!(cleared.unwrap_err().to_string().contains("retried in the background"));
    assert_eq!(pending_clears(), 1);
    server().resume();

    // Until the retry goes through, no value of `square` comes from Redis.
    let took = eventually(Duration::from_secs(5), "the retry went through", || pending_clears() == 0);
    println!("failed clear retried {took:?} after Redis came back");
    // The retried clear made every entry unreadable; its drain removes the keys.
    eventually(Duration::from_secs(5), "the retried clear's drain", || {
        server().keys("memo:*::square:*:k:*").is_empty()
    });
    let runs = RUNS.load(SeqCst);
    assert_eq!(square(7), 49);
    assert_eq!(RUNS.load(SeqCst), runs + 1, "recomputed after the retried clear");
}

#[test]
fn pending_clears_block_this_process_until_they_go_through() {
    if is_child() {
        return;
    }
    let _serial = serial();
    server();
    until_redis_answers();
    assert_eq!(square(9), 81);
    server().kill();
    assert!(square::cache_clear_by().i(9_u64).clear().is_err());
    server().start();
    // The retry runs every 100 ms: calls meanwhile must not be served from Redis, and
    // once it has gone through they are again.
    eventually(Duration::from_secs(5), "the retry went through", || pending_clears() == 0);
    until_redis_answers();
    let runs = RUNS.load(SeqCst);
    assert_eq!(square(9), 81);
    assert_eq!(square(9), 81);
    assert_eq!(RUNS.load(SeqCst), runs + 1, "stored again, then a hit");
}

// ---- two processes, mixed traffic, Redis frozen and thawed ----

/// The "database" both processes read: one file per key holding its version.
fn db() -> PathBuf {
    PathBuf::from(std::env::var("MEMO_TEST_DB").expect("the parent names the database"))
}

fn read_version(k: u32) -> u64 {
    fs::read_to_string(db().join(k.to_string())).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn write_version(dir: &Path, k: u32, v: u64) {
    let tmp = dir.join(format!("{k}.tmp"));
    fs::write(&tmp, v.to_string()).unwrap();
    fs::rename(tmp, dir.join(k.to_string())).unwrap();
}

#[json_cache(strict = true)]
fn shared_version(k: u32) -> u64 {
    read_version(k)
}

#[distributed_memory_cache(strict = true)]
fn local_version(k: u32) -> u64 {
    read_version(k)
}

const KEYS: u32 = 16;

/// One read: when it started, through which function, the key and the version seen.
#[derive(Debug, Clone, Copy)]
struct Read {
    start_ms: u64,
    local: bool,
    k: u32,
    v: u64,
}

impl Read {
    fn line(&self) -> String {
        format!("{} {} {} {}", self.start_ms, u8::from(self.local), self.k, self.v)
    }
    fn parse(line: &str) -> Read {
        let f: Vec<u64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
        Read { start_ms: f[0], local: f[1] == 1, k: u32::try_from(f[2]).unwrap(), v: f[3] }
    }
}

/// Reads both functions in a loop until `stop`, round-robin over the keys.
fn read_until(stop: &AtomicBool) -> Vec<Read> {
    let mut reads = Vec::new();
    let mut i = 0_u32;
    while !stop.load(SeqCst) {
        let k = i % KEYS;
        let start_ms = now_ms();
        reads.push(Read { start_ms, local: false, k, v: shared_version(k) });
        let start_ms = now_ms();
        reads.push(Read { start_ms, local: true, k, v: local_version(k) });
        i += 1;
        sleep(Duration::from_millis(1));
    }
    reads
}

#[test]
fn child_reads_through_an_outage() {
    if !is_child() || std::env::var("MEMO_TEST_READS").is_err() {
        return;
    }
    server();
    let stop = AtomicBool::new(false);
    let out = PathBuf::from(std::env::var("MEMO_TEST_READS").unwrap());
    let run_for = Duration::from_millis(std::env::var("MEMO_TEST_RUN_MS").unwrap().parse().unwrap());
    thread::scope(|s| {
        let reader = s.spawn(|| read_until(&stop));
        sleep(run_for);
        stop.store(true, SeqCst);
        let lines: Vec<String> = reader.join().unwrap().iter().map(Read::line).collect();
        fs::write(out, lines.join("\n")).unwrap();
    });
}

#[test]
fn no_read_is_stale_once_the_clears_that_failed_in_an_outage_went_through() {
    if is_child() {
        return;
    }
    let _serial = serial();
    server();
    until_redis_answers();
    let dir = std::env::temp_dir().join(format!("memo-outages-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("MEMO_TEST_DB", &dir) };
    for k in 0..KEYS {
        write_version(&dir, k, 0);
    }
    let reads_file = dir.join("child-reads");
    let run = Duration::from_millis(6000);
    let mut child = run_child(
        "child_reads_through_an_outage",
        &[
            ("MEMO_TEST_DB", dir.display().to_string()),
            ("MEMO_TEST_READS", reads_file.display().to_string()),
            ("MEMO_TEST_RUN_MS", run.as_millis().to_string()),
        ],
    );

    // The writer: bump a key's version, then clear it in both functions. A clear that
    // fails is acknowledged when the retries have gone through (pending_clears() == 0).
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let (acks, parent_reads, failed) = thread::scope(|s| {
        let reader = s.spawn(|| read_until(&stop));
        let mut acks: HashMap<u32, Vec<(u64, u64)>> = HashMap::new();
        let mut unacked: Vec<(u32, u64)> = Vec::new();
        let mut failed = 0;
        let mut frozen = false;
        let mut thawed = false;
        let mut version = 0;
        while started.elapsed() < run - Duration::from_millis(300) {
            if !frozen && started.elapsed() > Duration::from_millis(1500) {
                server().pause();
                frozen = true;
            }
            if frozen && !thawed && started.elapsed() > Duration::from_millis(3000) {
                server().resume();
                thawed = true;
            }
            version += 1;
            let k = u32::try_from(version).unwrap() % KEYS;
            write_version(&dir, k, version);
            let a = shared_version::cache_clear_by().k(k).clear();
            let b = local_version::cache_clear_by().k(k).clear();
            if a.is_ok() && b.is_ok() {
                acks.entry(k).or_default().push((version, now_ms()));
            } else {
                failed += 1;
                unacked.push((k, version));
            }
            if !unacked.is_empty() && pending_clears() == 0 {
                let now = now_ms();
                for (k, v) in unacked.drain(..) {
                    acks.entry(k).or_default().push((v, now));
                }
            }
            sleep(Duration::from_millis(20));
        }
        eventually(Duration::from_secs(5), "the retries went through", || pending_clears() == 0);
        let now = now_ms();
        for (k, v) in unacked.drain(..) {
            acks.entry(k).or_default().push((v, now));
        }
        stop.store(true, SeqCst);
        (acks, reader.join().unwrap(), failed)
    });
    assert!(child.wait().unwrap().success(), "the reading child failed");
    let child_reads: Vec<Read> = fs::read_to_string(&reads_file).unwrap().lines().map(Read::parse).collect();
    fs::remove_dir_all(&dir).ok();

    // A read is stale when it started after a newer version's clear was acknowledged
    // (for distributed_memory, plus the bus's delivery time) and returned an older one.
    const BUS_DELIVERY_MS: u64 = 100;
    let stale = |r: &Read| {
        let allowance = if r.local { BUS_DELIVERY_MS } else { 0 };
        acks.get(&r.k).into_iter().flatten().any(|&(v, acked)| acked + allowance < r.start_ms && r.v < v)
    };
    let thaw_ms = now_ms() - (started.elapsed().as_millis() as u64) + 3000;
    let mut report = Vec::new();
    for (who, reads) in [("parent", &parent_reads), ("child", &child_reads)] {
        let after = reads.iter().filter(|r| r.start_ms > thaw_ms).count();
        let bad: Vec<&Read> = reads.iter().filter(|r| stale(r)).collect();
        report.push(format!("{who}: {} reads, {after} after the thaw, {} stale", reads.len(), bad.len()));
        assert!(after > 50, "{who} kept reading after the thaw: {after}");
        if let Some(first) = bad.first() {
            let start_ms = now_ms() - u64::try_from(started.elapsed().as_millis()).unwrap();
            let keyed: Vec<_> = acks[&first.k].iter().map(|(v, at)| (v, at - start_ms)).collect();
            let all: Vec<_> = bad.iter().map(|r| (r.k, r.v, r.local, r.start_ms - start_ms)).collect();
            println!("stale: {all:?}");
            let mut raw = server().raw();
            for index in server().keys("memo:*::shared_version:*:i") {
                let members: Vec<String> =
                    redis::cmd("ZRANGE").arg(&index).arg(0).arg(-1).query(&mut raw).unwrap();
                println!("index {index}: {members:?}");
            }
            println!("entries: {:?}", server().keys("memo:*::shared_version:*:k:*"));
            println!("other: {:?}", server().keys("memo:*::shared_version:*"));
            panic!(
                "{who} read {} stale values, the first {:?} at +{} ms; acks of key {}: {keyed:?}",
                bad.len(),
                first,
                first.start_ms - start_ms,
                first.k
            );
        }
    }
    println!("{} writes' clears failed during the outage; {}", failed, report.join("; "));
    assert!(failed > 0, "the outage made clears fail");
}
