//! `single_flight = "global"` on the postgres backend, across processes, against a
//! real PostgreSQL that the test starts: the test binary re-runs itself as child
//! processes, which coordinate through a table of signals in the same database and
//! count their bodies' runs there, so that runs in every process add up. What the
//! backend leaves in `memo_entries` and `memo_leases` is read straight from the tables.

#[path = "support/postgres.rs"]
mod pg;

use std::sync::{Mutex, MutexGuard, Once, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use memo_alchemy::cache;
use pg::{child_command, is_child, server};

/// A connection of the test's own, outside the library.
fn client() -> postgres_sync::Client {
    postgres_sync::Client::connect(&server().url(), postgres_sync::NoTls).expect("the test connects")
}

/// The coordination tables (made by the parent before any child starts).
fn coordination() {
    static MADE: Once = Once::new();
    MADE.call_once(|| {
        if !is_child() {
            client()
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS memo_signals (name text PRIMARY KEY); \
                     CREATE TABLE IF NOT EXISTS memo_runs (name text PRIMARY KEY, n bigint NOT NULL); \
                     CREATE TABLE IF NOT EXISTS memo_values (name text PRIMARY KEY, value bigint NOT NULL);",
                )
                .expect("the coordination tables");
        }
    });
}

fn start() {
    server();
    coordination();
}

/// A body's run, counted in the database under `name`; returns the run's number.
fn counted(name: &str) -> u64 {
    let row = client()
        .query_one(
            "INSERT INTO memo_runs AS r (name, n) VALUES ($1, 1) \
             ON CONFLICT (name) DO UPDATE SET n = r.n + 1 RETURNING n",
            &[&name],
        )
        .expect("the run is counted");
    u64::try_from(row.get::<_, i64>(0)).unwrap()
}

fn runs(name: &str) -> u64 {
    let row = client().query_opt("SELECT n FROM memo_runs WHERE name = $1", &[&name]).unwrap();
    row.map_or(0, |r| u64::try_from(r.get::<_, i64>(0)).unwrap())
}

/// One process tells another it got somewhere.
fn signal(name: &str) {
    client().execute("INSERT INTO memo_signals VALUES ($1) ON CONFLICT DO NOTHING", &[&name]).unwrap();
}

/// Waits (at most 20 s) until `name` is signalled.
fn wait_for(name: &str) {
    let mut c = client();
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.query_opt("SELECT 1 FROM memo_signals WHERE name = $1", &[&name]).unwrap().is_none() {
        assert!(Instant::now() < deadline, "timed out waiting for {name}");
        thread::sleep(Duration::from_millis(3));
    }
}

fn put_value(name: &str, value: u64) {
    let value = i64::try_from(value).unwrap();
    client()
        .execute(
            "INSERT INTO memo_values VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = $2",
            &[&name, &value],
        )
        .unwrap();
}

fn value_of(name: &str) -> u64 {
    let row = client().query_one("SELECT value FROM memo_values WHERE name = $1", &[&name]).unwrap();
    u64::try_from(row.get::<_, i64>(0)).unwrap()
}

fn reset(names: &[&str]) {
    let mut c = client();
    for name in names {
        c.execute("DELETE FROM memo_signals WHERE name = $1", &[name]).unwrap();
        c.execute("DELETE FROM memo_runs WHERE name = $1", &[name]).unwrap();
        c.execute("DELETE FROM memo_values WHERE name = $1", &[name]).unwrap();
    }
}

/// The namespace pattern of the function whose path ends in `::{name}`.
fn of(name: &str) -> String {
    format!("memo:%::{name}:%")
}

/// The values stored for the function `name`, as jsonb text, by key.
fn rows_of(name: &str) -> Vec<String> {
    client()
        .query(
            "SELECT value::text FROM memo_test.memo_entries WHERE namespace LIKE $1 ORDER BY key",
            &[&of(name)],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The leases held on the function `name`'s keys.
fn leases_of(name: &str) -> i64 {
    client()
        .query_one("SELECT count(*) FROM memo_test.memo_leases WHERE namespace LIKE $1", &[&of(name)])
        .unwrap()
        .get(0)
}

fn run_child(test: &str, extra_env: &[(&str, String)]) -> std::process::Child {
    child_command(test, extra_env).spawn().expect("the test binary re-runs itself")
}

/// Tests that must not overlap (the cleanup deletes expired leases others look at).
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------
// 3 processes x 20 concurrent misses on one key: one run.

#[cache(backend = "postgres", single_flight = "global", lease = 10)]
fn report(id: u32) -> u64 {
    let run = counted("report");
    thread::sleep(Duration::from_millis(400));
    u64::from(id) * 1000 + run
}

/// Waits for the start signal, then misses `report(7)` from 20 threads at once;
/// returns the values.
fn stampede() -> Vec<u64> {
    wait_for("report:go");
    let threads: Vec<_> = (0..20).map(|_| thread::spawn(|| report(7))).collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn child_stampedes() {
    if is_child() {
        start();
        let child = std::env::var("CHILD").unwrap();
        signal(&format!("report:ready:{child}"));
        let values = stampede();
        assert!(values.iter().all(|v| *v == values[0]), "{values:?}");
        put_value(&format!("report:value:{child}"), values[0]);
        assert_eq!(report::cache_stats().misses, 20, "every call here missed: none came late");
    }
}

#[test]
fn three_processes_of_twenty_misses_run_the_body_once() {
    if is_child() {
        return;
    }
    start();
    reset(&["report:go", "report:ready:1", "report:ready:2", "report", "report:value:1", "report:value:2"]);
    let children: Vec<_> =
        (1..=2).map(|i| run_child("child_stampedes", &[("CHILD", i.to_string())])).collect();
    wait_for("report:ready:1");
    wait_for("report:ready:2");
    signal("report:go");
    let values = stampede();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a child failed");
    }
    assert_eq!(runs("report"), 1, "60 concurrent misses in 3 processes, one run");
    assert!(values.iter().all(|v| *v == 7001), "{values:?}");
    for i in 1..=2 {
        assert_eq!(value_of(&format!("report:value:{i}")), 7001, "child {i} got the one run's value");
    }
    assert_eq!(report::cache_stats().misses, 20);
    assert_eq!(rows_of("report"), ["7001"], "the one run's value is stored");
    assert_eq!(leases_of("report"), 0, "the lease is released with the write");
}

// ---------------------------------------------------------------------------------
// A holder killed mid-computation delays the others by the lease at most.

const LEASE: Duration = Duration::from_secs(1);

#[cache(backend = "postgres", single_flight = "global", lease = 1)]
fn invoice(id: u32) -> u64 {
    let run = counted("invoice");
    if is_child() {
        signal("invoice:holding");
        thread::sleep(Duration::from_secs(60)); // killed before it returns
    }
    u64::from(id) + run
}

#[test]
fn child_holds_the_lease_and_dies() {
    if is_child() {
        start();
        invoice(1);
        unreachable!("killed while computing");
    }
}

#[test]
fn a_killed_holder_delays_the_others_by_the_lease_at_most() {
    if is_child() {
        return;
    }
    start();
    let _serial = serial();
    reset(&["invoice:holding", "invoice"]);
    let mut child = run_child("child_holds_the_lease_and_dies", &[]);
    wait_for("invoice:holding");
    let leased_at = Instant::now(); // the lease was taken a moment before
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(leases_of("invoice"), 1, "the dead holder's lease is still there");
    let value = invoice(1);
    let waited = leased_at.elapsed();
    assert_eq!(value, 1 + 2, "the second run's value");
    assert_eq!(runs("invoice"), 2);
    assert!(waited >= LEASE / 2, "it waited for the lease ({waited:?})");
    assert!(waited <= LEASE + Duration::from_millis(300), "no more than the lease ({waited:?})");
    assert_eq!(rows_of("invoice"), ["3"]);
    assert_eq!(leases_of("invoice"), 0, "the lease taken over is released with the write");
}

// ---------------------------------------------------------------------------------
// A clear, a tag invalidation or a lease takeover during a held lease: the holder
// writes nothing.

#[cache(backend = "postgres", single_flight = "global", lease = 10, tags = ["quote:{id}"])]
fn quote(id: u32) -> u64 {
    let run = counted("quote");
    if is_child() {
        signal("quote:holding");
        wait_for("quote:overtaken");
    }
    u64::from(id) * 100 + run
}

#[test]
fn child_holds_a_quote() {
    if is_child() {
        start();
        let value = quote(std::env::var("ID").unwrap().parse().unwrap());
        put_value("quote:child_value", value);
    }
}

/// A child computes `quote(id)` holding its lease; `overtake` runs meanwhile; the
/// child's value must not be stored.
fn overtaken_while_holding(id: u32, overtake: impl FnOnce()) {
    reset(&["quote:holding", "quote:overtaken", "quote:child_value", "quote"]);
    let mut child = run_child("child_holds_a_quote", &[("ID", id.to_string())]);
    wait_for("quote:holding");
    assert_eq!(leases_of("quote"), 1, "the child holds the key's lease");
    overtake();
    signal("quote:overtaken");
    assert!(child.wait().unwrap().success());
    let theirs = value_of("quote:child_value");
    assert_eq!(theirs, u64::from(id) * 100 + 1, "the child's caller still got its value");
    assert!(rows_of("quote").is_empty(), "the table does not keep it");
    assert_eq!(leases_of("quote"), 0, "the refused write released its lease");
    let mine = quote(id);
    assert_eq!(mine, u64::from(id) * 100 + 2, "computed again");
    assert_eq!(runs("quote"), 2);
    assert_eq!(rows_of("quote"), [mine.to_string()], "this process's value is stored");
}

#[test]
fn a_clear_or_tag_invalidation_during_a_held_lease_leaves_no_value_behind() {
    if is_child() {
        return;
    }
    start();
    overtaken_while_holding(1, || {
        quote::cache_clear().unwrap();
    });
    quote::cache_clear().unwrap();
    overtaken_while_holding(2, || {
        memo_alchemy::invalidate_tags(["quote:2"]).unwrap();
    });
}

#[cache(backend = "postgres", single_flight = "global", lease = 1)]
fn slow_quote(id: u32) -> u64 {
    let run = counted("slow_quote");
    if is_child() {
        signal("slow_quote:holding");
        wait_for("slow_quote:overtaken");
    }
    u64::from(id) * 100 + run
}

#[test]
fn child_outlives_its_lease() {
    if is_child() {
        start();
        let value = slow_quote(3);
        put_value("slow_quote:child_value", value);
    }
}

#[test]
fn a_holder_whose_lease_was_taken_over_writes_nothing() {
    if is_child() {
        return;
    }
    start();
    let _serial = serial();
    reset(&["slow_quote:holding", "slow_quote:overtaken", "slow_quote:child_value", "slow_quote"]);
    let mut child = run_child("child_outlives_its_lease", &[]);
    wait_for("slow_quote:holding");
    // The child's lease runs out; this process takes it over and stores its value.
    let mine = slow_quote(3);
    assert_eq!(mine, 302);
    assert_eq!(rows_of("slow_quote"), ["302"]);
    signal("slow_quote:overtaken");
    assert!(child.wait().unwrap().success());
    assert_eq!(value_of("slow_quote:child_value"), 301, "the child's caller got its value");
    // The child's later write was refused: the table still holds this process's value.
    assert_eq!(rows_of("slow_quote"), ["302"], "the holder whose lease was taken over wrote nothing");
    assert_eq!(leases_of("slow_quote"), 0);
    assert_eq!(slow_quote(3), 302, "read from the table");
    assert_eq!(runs("slow_quote"), 2);
}

// ---------------------------------------------------------------------------------
// An `async` caller on an executor that is not tokio waits for another process's
// value (its pauses are timers on the library's runtime).

/// Polls `future` on this thread, parking between wake-ups: no tokio here.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        thread::park();
    }
}

#[cache(backend = "postgres", single_flight = "global", lease = 10)]
async fn rate(id: u32) -> u64 {
    // The coordination client is blocking: off this task's thread.
    let run = thread::spawn(|| {
        let run = counted("rate");
        if is_child() {
            signal("rate:holding");
            thread::sleep(Duration::from_millis(500));
        }
        run
    });
    u64::from(id) * 100 + run.join().unwrap()
}

#[test]
fn child_computes_a_rate() {
    if is_child() {
        start();
        put_value("rate:child_value", block_on(rate(5)));
    }
}

#[test]
fn an_async_caller_waits_for_the_holders_value() {
    if is_child() {
        return;
    }
    start();
    reset(&["rate:holding", "rate:child_value", "rate"]);
    let mut child = run_child("child_computes_a_rate", &[]);
    wait_for("rate:holding");
    let value = block_on(rate(5));
    assert!(child.wait().unwrap().success());
    assert_eq!(value, 501, "the child's value, not a run of its own");
    assert_eq!(value_of("rate:child_value"), 501);
    assert_eq!(runs("rate"), 1);
    assert_eq!(rate::cache_stats().misses, 1);
    assert_eq!(rows_of("rate"), ["501"]);
    assert_eq!(leases_of("rate"), 0);
}

// ---------------------------------------------------------------------------------
// The cleanup deletes expired leases, and only those.

#[cache(backend = "postgres")]
fn plain(id: u32) -> u32 {
    id
}

#[test]
fn the_cleanup_deletes_expired_leases() {
    if is_child() {
        return;
    }
    start();
    let _serial = serial();
    assert_eq!(plain(1), 1); // the tables exist
    client()
        .batch_execute(
            "INSERT INTO memo_test.memo_leases VALUES \
             ('memo:_:postgres:cleanup:0', 'expired', 't1', clock_timestamp() - interval '1 second'), \
             ('memo:_:postgres:cleanup:0', 'held', 't2', clock_timestamp() + interval '1 hour')",
        )
        .unwrap();
    let left = || -> Vec<String> {
        client()
            .query(
                "SELECT key FROM memo_test.memo_leases WHERE namespace = 'memo:_:postgres:cleanup:0' ORDER BY key",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let cleanup = memo_alchemy::postgres::start_cleanup(Duration::from_millis(50));
    let deadline = Instant::now() + Duration::from_secs(10);
    while left() != ["held"] {
        assert!(Instant::now() < deadline, "the cleanup never deleted the expired lease: {:?}", left());
        thread::sleep(Duration::from_millis(20));
    }
    cleanup.stop();
    client()
        .execute("DELETE FROM memo_test.memo_leases WHERE namespace = 'memo:_:postgres:cleanup:0'", &[])
        .unwrap();
}
