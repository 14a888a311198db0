//! `local = N` on the postgres backend: a memory tier in front of the table, kept
//! coherent across processes by the `LISTEN`/`NOTIFY` bus, against a real PostgreSQL
//! that the test starts. The test binary re-runs itself as child processes, which
//! coordinate through tables of their own in the same database.

#[path = "support/postgres.rs"]
mod pg;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};
use std::thread::sleep;
use std::time::{Duration, Instant};

use memo_alchemy::cache;
use pg::{child_command, is_child, server};

static RUNS: AtomicU64 = AtomicU64::new(0);

/// Each run's value is new, and differs between processes: a value served after a
/// clear is caught by its number.
fn fresh(id: u32) -> u64 {
    u64::from(id) * 10_000_000_000_000 + u64::from(std::process::id()) * 1000 + RUNS.fetch_add(1, SeqCst) + 1
}

#[cache(backend = "postgres", local = 100, strict = true, tags = ["user:{id}"], expire = 60)]
fn profile(id: u32) -> u64 {
    fresh(id)
}

#[cache(backend = "postgres", local = 100)]
fn other(id: u32) -> u64 {
    fresh(id)
}

/// A connection of the test's own, outside the library.
fn client() -> postgres_sync::Client {
    postgres_sync::Client::connect(&server().url(), postgres_sync::NoTls).expect("the test connects")
}

fn start() {
    server();
    static MADE: Once = Once::new();
    MADE.call_once(|| {
        if !is_child() {
            client()
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS tier_signals (name text PRIMARY KEY); \
                     CREATE TABLE IF NOT EXISTS tier_values (name text PRIMARY KEY, value bigint NOT NULL);",
                )
                .expect("the coordination tables");
        }
    });
}

fn signal(name: &str) {
    client().execute("INSERT INTO tier_signals VALUES ($1) ON CONFLICT DO NOTHING", &[&name]).unwrap();
}

fn signalled(c: &mut postgres_sync::Client, name: &str) -> bool {
    c.query_opt("SELECT 1 FROM tier_signals WHERE name = $1", &[&name]).unwrap().is_some()
}

fn wait_for(name: &str) {
    let mut c = client();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !signalled(&mut c, name) {
        assert!(Instant::now() < deadline, "timed out waiting for {name}");
        sleep(Duration::from_millis(3));
    }
}

fn put_value(name: &str, value: u64) {
    let value = i64::try_from(value).unwrap();
    client()
        .execute(
            "INSERT INTO tier_values VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = $2",
            &[&name, &value],
        )
        .unwrap();
}

fn value_of(name: &str) -> u64 {
    let row = client().query_one("SELECT value FROM tier_values WHERE name = $1", &[&name]).unwrap();
    u64::try_from(row.get::<_, i64>(0)).unwrap()
}

fn reset(names: &[String]) {
    let mut c = client();
    for name in names {
        c.execute("DELETE FROM tier_signals WHERE name = $1", &[name]).unwrap();
        c.execute("DELETE FROM tier_values WHERE name = $1", &[name]).unwrap();
    }
}

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits until this process's bus listens (its tiers fill from then on).
fn wait_listening() {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let report = memo_alchemy::health();
        if report.stores.iter().any(|s| s.backend == "postgres" && s.subscribed == Some(true)) {
            return;
        }
        assert!(Instant::now() < deadline, "the bus never listened: {report:?}");
        sleep(Duration::from_millis(10));
    }
}

/// Calls `f` until two calls agree with the bus listening: the value is in the tier.
fn warm_tier(f: impl Fn() -> u64) -> u64 {
    f();
    wait_listening();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = f();
        if f() == value {
            return value;
        }
        assert!(Instant::now() < deadline, "the tier never settled");
        sleep(Duration::from_millis(5));
    }
}

fn micros_now() -> u64 {
    u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros())
        .unwrap()
}

/// Thaws a frozen server when dropped, even if an assertion failed meanwhile.
struct Frozen(Vec<String>);

impl Drop for Frozen {
    fn drop(&mut self) {
        server().resume(&self.0);
    }
}

#[test]
fn a_tier_hit_makes_no_query_and_a_miss_reads_postgres_first() {
    if is_child() {
        return;
    }
    start();
    let _serial = serial();
    profile::cache_clear().unwrap();
    let first = warm_tier(|| profile(1));
    // A hit in the tier answers with the server frozen: it made no query (a query
    // would wait out the 400 ms timeout and then compute a new value).
    let frozen = Frozen(server().pause());
    let started = Instant::now();
    for _ in 0..1000 {
        assert_eq!(profile(1), first, "served by the tier while the server is frozen");
    }
    let took = started.elapsed();
    drop(frozen);
    eprintln!("1000 tier hits with the server frozen took {took:?}");
    assert!(took < Duration::from_millis(100), "no hit waited on the server: {took:?}");
    // A value another process wrote is read from the table, not recomputed.
    other::cache_clear().unwrap();
    reset(&["other:written".to_owned()]);
    let mut child = child_command("child_writes_other", &[]).spawn().unwrap();
    assert!(child.wait().unwrap().success(), "the child failed");
    let written = value_of("other:written");
    let runs = RUNS.load(SeqCst);
    assert_eq!(warm_tier(|| other(5)), written, "the other process's value, read from PostgreSQL");
    assert_eq!(RUNS.load(SeqCst), runs, "not recomputed");
}

#[test]
fn child_writes_other() {
    if is_child() {
        start();
        put_value("other:written", other(5));
    }
}

// ---------------------------------------------------------------------------------
// A clear in another process: no old value served after a new one, and the window
// after the clear returned is bounded by the bus latency, which is measured.

/// The child warms its tier, then reports when it served the old value last and the
/// new one first, until told to stop.
#[test]
fn child_serves_from_its_tier() {
    if is_child() {
        start();
        let key: u32 = std::env::var("KEY").unwrap().parse().unwrap();
        let old = warm_tier(|| profile(key));
        put_value(&format!("tier:{key}:old"), old);
        signal(&format!("tier:{key}:ready"));
        let mut c = client();
        let (mut last_old, mut first_new) = (0, 0);
        let mut new_after_new = true;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let served = profile(key);
            let now = micros_now();
            if served == old {
                last_old = now;
                new_after_new &= first_new == 0;
            } else if first_new == 0 {
                first_new = now;
            }
            if first_new != 0 && signalled(&mut c, &format!("tier:{key}:stop")) {
                break;
            }
        }
        assert!(new_after_new, "the old value came back after a new one was served");
        put_value(&format!("tier:{key}:last_old"), last_old);
        put_value(&format!("tier:{key}:first_new"), first_new);
    }
}

/// Runs the child on `key`, applies `clear` here once its tier serves, and returns how
/// long after the clear returned the child still served the old value (0 if never).
fn served_after(key: u32, clear: impl FnOnce()) -> Duration {
    let names: Vec<String> =
        ["old", "ready", "stop", "last_old", "first_new"].iter().map(|s| format!("tier:{key}:{s}")).collect();
    reset(&names);
    let mut child = child_command("child_serves_from_its_tier", &[("KEY", key.to_string())]).spawn().unwrap();
    wait_for(&format!("tier:{key}:ready"));
    sleep(Duration::from_millis(50));
    clear();
    let returned = micros_now();
    signal(&format!("tier:{key}:stop"));
    assert!(child.wait().unwrap().success(), "the child failed");
    let last_old = value_of(&format!("tier:{key}:last_old"));
    let first_new = value_of(&format!("tier:{key}:first_new"));
    assert!(first_new > 0, "the child on key {key} served a new value after the clear");
    assert!(last_old < first_new, "never the old value again once a new one was served");
    Duration::from_micros(last_old.saturating_sub(returned))
}

#[test]
fn a_clear_in_another_process_reaches_the_tier_within_the_bus_latency() {
    if is_child() {
        return;
    }
    start();
    let _serial = serial();
    // The parent's tier too, so that its tag invalidations go to the bus.
    warm_tier(|| profile(10));
    let latencies = [
        served_after(11, || {
            profile::cache_clear().unwrap();
        }),
        served_after(12, || {
            profile::cache_clear_by().id(12_u32).clear().unwrap();
        }),
        served_after(13, || {
            memo_alchemy::invalidate_tags(["user:13"]).unwrap();
        }),
        served_after(14, || {
            profile::cache_entry(14_u32).set(7).unwrap();
        }),
    ];
    eprintln!(
        "old values served after the clear returned (clear, partial clear, tags, direct write): {latencies:?}"
    );
    for latency in &latencies {
        assert!(*latency < Duration::from_millis(300), "the bus latency bounds the window: {latencies:?}");
    }
}

// ---------------------------------------------------------------------------------
// A gap in the bus drops the tier: a lost message (a number skipped).

#[test]
fn child_sees_a_gap() {
    if is_child() {
        start();
        let old = warm_tier(|| profile(21));
        signal("gap:ready");
        wait_for("gap:changed");
        // The message that said so was lost; the next numbered message shows the gap.
        let deadline = Instant::now() + Duration::from_secs(5);
        while profile(21) == old {
            assert!(Instant::now() < deadline, "the tier was not dropped after the gap");
            sleep(Duration::from_millis(2));
        }
    }
}

#[test]
fn a_lost_message_drops_the_tier() {
    if is_child() {
        return;
    }
    start();
    let _serial = serial();
    reset(&["gap:ready".to_owned(), "gap:changed".to_owned()]);
    // A first message, so that the channel has its row (and a number to skip).
    other::cache_clear().unwrap();
    let mut child = child_command("child_sees_a_gap", &[]).spawn().unwrap();
    wait_for("gap:ready");
    // A clear whose message never reached the bus: the row is deleted by hand, and the
    // message's number is taken without sending it.
    let mut c = client();
    // 21 encodes (postcard) as the byte 0x15.
    let deleted = c
        .execute(
            "DELETE FROM memo_test.memo_entries WHERE namespace LIKE '%::profile:%' AND key = 'id=15'",
            &[],
        )
        .unwrap();
    assert_eq!(deleted, 1, "the child's row");
    let bumped = c.execute("UPDATE memo_test.memo_bus SET sequence = sequence + 1", &[]).unwrap();
    assert_eq!(bumped, 1, "one channel");
    // Any later message (here a clear of another function) shows the gap.
    other::cache_clear().unwrap();
    signal("gap:changed");
    assert!(child.wait().unwrap().success(), "the child's tier was dropped");
}
