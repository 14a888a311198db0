//! `local = N`: a memory tier in front of json (and pickle), kept coherent across
//! processes by the invalidation bus, against a real redis-server. The test binary
//! re-runs itself as child processes, which coordinate through keys on the server.

mod support;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::thread::sleep;
use std::time::{Duration, Instant};

use memo_alchemy::cache;
use redis::Commands;
use support::{is_child, run_child, server, signal, wait_for};

static RUNS: AtomicU64 = AtomicU64::new(0);

/// Each run's value is new: a value served after a clear is caught by its number.
#[cache(backend = "json", local = 100, strict = true, tags = ["user:{id}"], expire = 60)]
fn profile(id: u32) -> u64 {
    u64::from(id) * 1_000_000 + RUNS.fetch_add(1, SeqCst) + 1
}

#[cache(backend = "pickle", local = 100)]
fn pickled(id: u32) -> u64 {
    u64::from(id) * 1_000_000 + RUNS.fetch_add(1, SeqCst) + 1
}

static REFRESHED: AtomicU64 = AtomicU64::new(0);

#[cache(backend = "json", local = 100, expire = 3, refresh = 1)]
fn refreshed(id: u32) -> u64 {
    u64::from(id) * 1_000_000 + REFRESHED.fetch_add(1, SeqCst) + 1
}

fn commands_total() -> u64 {
    // Less the probes' own, a cluster's replication and the subscriber's heartbeat.
    let library = |c: &str| c != "info" && c != "replconf" && c != "ping" && !c.starts_with("cluster|");
    server().command_calls().into_iter().filter(|(c, _)| library(c)).map(|(_, n)| n).sum()
}

/// Calls `f` until a call is a hit served by the tier (no command reaches Redis):
/// the subscription is up and the value is in the tier.
fn warm_tier(f: impl Fn() -> u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = f();
        let before = commands_total();
        if f() == value && commands_total() == before {
            return value;
        }
        assert!(Instant::now() < deadline, "the tier never served");
        sleep(Duration::from_millis(5));
    }
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn a_tier_hit_sends_no_command() {
    if is_child() {
        return;
    }
    server();
    let _serial = serial();
    profile::cache_clear().unwrap();
    let first = warm_tier(|| profile(1));
    let before = commands_total();
    for _ in 0..1000 {
        assert_eq!(profile(1), first);
    }
    assert_eq!(commands_total(), before, "1000 tier hits, no Redis command");
    // A direct write here: the tier drops the key; the next read takes the written value
    // from Redis, and the tier serves it from then on.
    profile::cache_entry(1_u32).set(99).unwrap();
    let runs = RUNS.load(SeqCst);
    assert_eq!(profile(1), 99);
    assert_eq!(warm_tier(|| profile(1)), 99);
    assert_eq!(RUNS.load(SeqCst), runs, "nothing computed");
    // A value stored by this process enters its tier with the write.
    let runs = RUNS.load(SeqCst);
    let stored = pickled(5);
    assert_eq!(RUNS.load(SeqCst), runs + 1);
    let before = commands_total();
    assert_eq!(pickled(5), stored);
    assert_eq!(commands_total(), before, "served by the tier");
}

// ---------------------------------------------------------------------------------
// A clear in another process: no value served after the clear returned, past the bus
// latency, which is measured.

/// The child warms the tier, then reports every value it serves with the time, until
/// told to stop.
#[test]
fn child_serves_from_its_tier() {
    if is_child() {
        server();
        let key: u32 = std::env::var("KEY").unwrap().parse().unwrap();
        let old = warm_tier(|| profile(key));
        let _: () = server().raw().set(format!("tier:{key}:old"), old).unwrap();
        signal(&format!("tier:{key}:ready"));
        // Serve until told to stop; record when the old value was last served (µs since
        // the epoch, by this host's clock, which the parent shares).
        let mut last_old = 0;
        let mut first_new = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let served = profile(key);
            let now = micros_now();
            if served == old {
                last_old = now;
            } else if first_new == 0 {
                first_new = now;
            }
            if first_new != 0 && server().raw().exists::<_, bool>(format!("tier:{key}:stop")).unwrap() {
                break;
            }
        }
        let _: () = server().raw().set(format!("tier:{key}:last_old"), last_old).unwrap();
        let _: () = server().raw().set(format!("tier:{key}:first_new"), first_new).unwrap();
    }
}

fn micros_now() -> u64 {
    u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros())
        .unwrap()
}

/// Runs the child on `key`, applies `clear` here once its tier serves, and returns how
/// long after the clear returned the child still served the old value (0 if never).
fn served_after(key: u32, clear: impl FnOnce()) -> Duration {
    for suffix in ["old", "ready", "stop", "last_old", "first_new"] {
        let _: () = server().raw().del(format!("tier:{key}:{suffix}")).unwrap();
    }
    let mut child = run_child("child_serves_from_its_tier", &[("KEY", key.to_string())]);
    wait_for(&format!("tier:{key}:ready"));
    sleep(Duration::from_millis(50));
    clear();
    let returned = micros_now();
    signal(&format!("tier:{key}:stop"));
    assert!(child.wait().unwrap().success(), "the child failed");
    let last_old: u64 = server().raw().get(format!("tier:{key}:last_old")).unwrap();
    let first_new: u64 = server().raw().get(format!("tier:{key}:first_new")).unwrap();
    assert!(first_new > 0, "the child on key {key} served a new value after the clear");
    assert!(last_old < first_new, "never the old value again once a new one was served");
    Duration::from_micros(last_old.saturating_sub(returned))
}

#[test]
fn a_clear_in_another_process_reaches_the_tier_within_the_bus_latency() {
    if is_child() {
        return;
    }
    server();
    let _serial = serial();
    let mut latencies = Vec::new();
    latencies.push(served_after(11, || {
        profile::cache_clear().unwrap();
    }));
    latencies.push(served_after(12, || {
        profile::cache_clear_by().id(12_u32).clear().unwrap();
    }));
    latencies.push(served_after(13, || {
        memo_alchemy::invalidate_tags(["user:13"]).unwrap();
    }));
    latencies.push(served_after(14, || {
        profile::cache_entry(14_u32).set(7).unwrap();
    }));
    // A subscription lost just before the clear: its message may never arrive, and the
    // reconnect drops the tier.
    latencies.push(served_after(16, || {
        let _: () =
            redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub").query(&mut server().raw()).unwrap();
        profile::cache_clear_by().id(16_u32).clear().unwrap();
    }));
    eprintln!("old values served after the clear returned, for: {latencies:?}");
    for latency in &latencies {
        assert!(*latency < Duration::from_millis(200), "the bus latency bounds the window: {latencies:?}");
    }
}

// ---------------------------------------------------------------------------------
// A gap in the bus drops the tier: a lost message (a number skipped) and a killed
// subscription.

#[test]
fn child_sees_a_gap() {
    if is_child() {
        server();
        let old = warm_tier(|| profile(21));
        signal("gap:ready");
        wait_for("gap:changed");
        // The message that said so was lost; the next numbered message shows the gap.
        let deadline = Instant::now() + Duration::from_secs(5);
        while profile(21) == old {
            assert!(Instant::now() < deadline, "the tier was dropped after the gap");
            sleep(Duration::from_millis(2));
        }
    }
}

#[test]
fn a_lost_message_drops_the_tier() {
    if is_child() {
        return;
    }
    server();
    let _serial = serial();
    for key in ["gap:ready", "gap:changed"] {
        let _: () = server().raw().del(key).unwrap();
    }
    let mut child = run_child("child_sees_a_gap", &[]);
    wait_for("gap:ready");
    // A clear whose message never reached the bus: Redis is cleared by hand, and the
    // message's number is taken without publishing it.
    let ns_keys = server().keys("memo:*local_tier::profile*");
    // 21 encodes (postcard) as the byte 0x15.
    let entry: Vec<&String> = ns_keys.iter().filter(|k| k.contains(":k:") && k.contains("id=15")).collect();
    assert_eq!(entry.len(), 1, "{ns_keys:?}");
    let _: () = server().raw().del(entry).unwrap();
    let _: i64 = server().raw().incr("memo:__memo:sequence", 1).unwrap();
    // Any later message (here a clear of another function) shows the gap.
    pickled::cache_clear().unwrap();
    signal("gap:changed");
    assert!(child.wait().unwrap().success(), "the child's tier was dropped");
}

// ---------------------------------------------------------------------------------
// A clear in this process, while other threads read: a value read from Redis before
// the clear reached it never stays in the tier after the clear returned.

#[test]
fn a_clear_here_leaves_no_value_read_before_it_in_the_tier() {
    if is_child() {
        return;
    }
    server();
    let _serial = serial();
    for round in 0..30 {
        let old = warm_tier(|| profile(31));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(SeqCst) {
                        profile(31);
                    }
                })
            })
            .collect();
        sleep(Duration::from_millis(2));
        if round % 2 == 0 {
            profile::cache_clear().unwrap();
        } else {
            profile::cache_clear_by().id(31_u32).clear().unwrap();
        }
        for _ in 0..100 {
            assert_ne!(profile(31), old, "round {round}: the old value came back after the clear returned");
        }
        stop.store(true, SeqCst);
        readers.into_iter().for_each(|r| r.join().unwrap());
    }
}

// ---------------------------------------------------------------------------------
// `refresh` with a tier: a tier hit on a value due for refresh goes to the store, which
// hands it to a background refresh; the tier does not serve it until it expires.

#[test]
fn a_value_due_for_refresh_is_refreshed_through_the_tier() {
    if is_child() {
        return;
    }
    server();
    let _serial = serial();
    refreshed::cache_clear().unwrap();
    let first = warm_tier(|| refreshed(1));
    assert_eq!(REFRESHED.load(SeqCst), 1);
    sleep(Duration::from_millis(1100));
    assert_eq!(refreshed(1), first, "a due value is served at once");
    // The shared entry expires 3 s after its write: the new value must come before.
    let deadline = Instant::now() + Duration::from_millis(1500);
    let renewed = loop {
        let value = refreshed(1);
        if value != first {
            break value;
        }
        assert!(Instant::now() < deadline, "the tier kept serving the value due for refresh");
        sleep(Duration::from_millis(10));
    };
    assert_eq!(REFRESHED.load(SeqCst), 2, "one background refresh");
    assert_eq!(renewed, 1_000_002);
    assert_eq!(refreshed::cache_stats().misses, 1, "no caller waited for the refresh");
}
