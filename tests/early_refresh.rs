//! `refresh = "early"` (probabilistic early expiration, "XFetch"): under load, a hot
//! entry is recomputed in the background before it expires, by one caller at a time,
//! and no caller waits; across processes too (json, with the lease a refresh takes).

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use memo_alchemy::cache;
use redis::Commands;
use support::{is_child, run_child, server, signal, wait_for};

/// How long each body runs: the `delta` that XFetch weighs the expiry by.
const BODY: Duration = Duration::from_millis(60);
/// How long the load runs: a little over two lifetimes of one second.
const LOAD: Duration = Duration::from_millis(2_300);

/// What one function's bodies did in this process.
struct Probe {
    /// Bodies running now and the most seen at once.
    running: AtomicUsize,
    most: AtomicUsize,
    /// When each body started, in ms since the first.
    starts: std::sync::Mutex<Vec<u64>>,
    began: std::sync::OnceLock<Instant>,
}

impl Probe {
    const fn new() -> Probe {
        Probe {
            running: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            starts: std::sync::Mutex::new(Vec::new()),
            began: std::sync::OnceLock::new(),
        }
    }

    fn runs(&self) -> u64 {
        u64::try_from(self.starts.lock().unwrap().len()).unwrap()
    }
}

static HOT: Probe = Probe::new();
static SHARED: Probe = Probe::new();

fn body(probe: &Probe, id: u32) -> u64 {
    let now = probe.running.fetch_add(1, SeqCst) + 1;
    probe.most.fetch_max(now, SeqCst);
    let began = probe.began.get_or_init(Instant::now);
    probe.starts.lock().unwrap().push(u64::try_from(began.elapsed().as_millis()).unwrap());
    thread::sleep(BODY);
    probe.running.fetch_sub(1, SeqCst);
    u64::from(id) + probe.runs()
}

#[cache(expire = 1, refresh = "early")]
fn hot(id: u32) -> u64 {
    body(&HOT, id)
}

/// One call computes `f(1)`; then four threads call it every millisecond for
/// [`LOAD`].
fn load(f: fn(u32) -> u64) {
    f(1);
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            thread::spawn(move || {
                while !stop.load(SeqCst) {
                    f(1);
                    thread::sleep(Duration::from_millis(1));
                }
            })
        })
        .collect();
    thread::sleep(LOAD);
    stop.store(true, SeqCst);
    threads.into_iter().for_each(|t| t.join().unwrap());
}

/// What every test of one process checks: the one miss was the first call, every
/// other call was served at once, and refreshes ran one at a time, each well after the
/// one before (once per lifetime, not a stampede).
fn check(probe: &Probe, stats: memo_alchemy::CacheStats) {
    let starts = probe.starts.lock().unwrap().clone();
    assert_eq!(stats.misses, 1, "only the first call missed: no caller waited for a refresh");
    assert!(stats.refreshes >= 2, "the hot entry was refreshed before each expiry: {stats:?}");
    assert_eq!(probe.runs(), 1 + stats.refreshes, "each run was the first miss or a refresh");
    assert_eq!(probe.most.load(SeqCst), 1, "one body at a time");
    for pair in starts.windows(2) {
        assert!(pair[1] - pair[0] >= 400, "refreshes a lifetime apart, not a stampede: {starts:?}");
    }
}

#[test]
fn an_early_refresh_fires_once_per_lifetime_under_load_and_no_caller_waits() {
    if is_child() {
        return;
    }
    server();
    load(hot);
    let stats = hot::cache_stats();
    check(&HOT, stats);
    assert!(stats.hits > 1_000, "under load: {stats:?}");
}

// ---------------------------------------------------------------------------------
// Three processes on one json entry: the refresh takes the entry's lease, so one
// process refreshes each time.

#[cache(backend = "json", expire = 1, refresh = "early", single_flight = "global")]
fn shared_hot(id: u32) -> u64 {
    if id != 1 {
        // Another key: each process times the body once before the load (the body time
        // is measured per process), so that every process draws early refreshes.
        return body(&SHARED, id);
    }
    let _: u64 = server().raw().incr("early:runs", 1).unwrap();
    let running: u64 = server().raw().incr("early:running", 1).unwrap();
    let _: () = redis::cmd("SET")
        .arg("early:most")
        .arg(running)
        .arg("GET")
        .query::<Option<u64>>(&mut server().raw())
        .map(|before| {
            if before.unwrap_or(0) > running {
                let _: () = server().raw().set("early:most", before.unwrap_or(0)).unwrap();
            }
        })
        .unwrap();
    let value = body(&SHARED, id);
    let _: i64 = server().raw().decr("early:running", 1).unwrap();
    value
}

fn shared_load() -> memo_alchemy::CacheStats {
    shared_hot(100 + std::process::id());
    wait_for("early:go");
    load(shared_hot);
    shared_hot::cache_stats()
}

#[test]
fn child_loads_the_shared_entry() {
    if is_child() {
        server();
        signal(&format!("early:ready:{}", std::env::var("CHILD").unwrap()));
        let stats = shared_load();
        let _: () = server().raw().incr("early:refreshes", stats.refreshes).unwrap();
        assert_eq!(stats.misses, 2, "the timing call and the first: no caller waited: {stats:?}");
    }
}

#[test]
fn across_processes_one_process_refreshes_each_time() {
    if is_child() {
        return;
    }
    server();
    for key in [
        "early:go",
        "early:ready:1",
        "early:ready:2",
        "early:runs",
        "early:running",
        "early:most",
        "early:refreshes",
    ] {
        let _: () = server().raw().del(key).unwrap();
    }
    let children: Vec<_> =
        (1..=2).map(|i| run_child("child_loads_the_shared_entry", &[("CHILD", i.to_string())])).collect();
    wait_for("early:ready:1");
    wait_for("early:ready:2");
    signal("early:go");
    let stats = shared_load();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a child failed");
    }
    let refreshes: u64 =
        stats.refreshes + server().raw().get::<_, Option<u64>>("early:refreshes").unwrap().unwrap_or(0);
    let runs: u64 = server().raw().get("early:runs").unwrap();
    let most: u64 = server().raw().get("early:most").unwrap();
    assert_eq!(stats.misses, 2, "the timing call and the first: no caller waited: {stats:?}");
    assert_eq!(runs, 1 + refreshes, "one first run (the lease), then one run per refresh");
    assert!(refreshes >= 2, "refreshed before each expiry: {refreshes}");
    assert!(refreshes <= 4, "once per lifetime in all three processes, not once per process: {refreshes}");
    assert_eq!(most, 1, "one body at a time across the processes");
}
