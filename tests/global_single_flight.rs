//! `single_flight = "global"` across processes, against a real redis-server: the test
//! binary re-runs itself as child processes, which coordinate through keys on the
//! server and count their bodies' runs there (`INCR`), so that runs in every process
//! add up.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use memo_alchemy::cache;
use redis::Commands;
use support::{is_child, run_child, server, signal, wait_for};

/// A body's run, counted on the server under `runs:{name}`; returns the run's number.
fn counted(name: &str) -> u64 {
    server().raw().incr(format!("runs:{name}"), 1).expect("INCR answers")
}

fn runs(name: &str) -> u64 {
    server().raw().get::<_, Option<u64>>(format!("runs:{name}")).unwrap().unwrap_or(0)
}

fn reset(names: &[&str]) {
    for name in names {
        let _: () = server().raw().del(name).unwrap();
        let _: () = server().raw().del(format!("runs:{name}")).unwrap();
    }
}

/// The keys of `function`'s entries (`..:k:..`) and leases (`..:l:..`) in Redis.
fn stored(function: &str, kind: &str) -> Vec<String> {
    let path = format!("::{function}:");
    server().keys("memo:*").into_iter().filter(|k| k.contains(&path) && k.contains(kind)).collect()
}

// ---------------------------------------------------------------------------------
// 3 processes x 20 concurrent misses on one key: one run.

#[cache(backend = "json", single_flight = "global", lease = 10)]
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
        server();
        signal(&format!("report:ready:{}", std::env::var("CHILD").unwrap()));
        let values = stampede();
        assert!(values.iter().all(|v| *v == values[0]), "{values:?}");
        let _: () = server()
            .raw()
            .set(format!("report:value:{}", std::env::var("CHILD").unwrap()), values[0])
            .unwrap();
        assert_eq!(report::cache_stats().misses, 20, "every call here missed: none came late");
    }
}

#[test]
fn three_processes_of_twenty_misses_run_the_body_once() {
    if is_child() {
        return;
    }
    server();
    reset(&["report:go", "report:ready:1", "report:ready:2", "report"]);
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
        let theirs: u64 = server().raw().get(format!("report:value:{i}")).unwrap();
        assert_eq!(theirs, 7001, "child {i} got the one run's value");
    }
    assert_eq!(report::cache_stats().misses, 20);
    assert!(stored("report", ":l:").is_empty(), "the lease is released with the write");
}

// ---------------------------------------------------------------------------------
// A holder killed mid-computation delays the others by the lease at most.

const LEASE: Duration = Duration::from_secs(1);

#[cache(backend = "json", single_flight = "global", lease = 1)]
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
        server();
        invoice(1);
        unreachable!("killed while computing");
    }
}

#[test]
fn a_killed_holder_delays_the_others_by_the_lease_at_most() {
    if is_child() {
        return;
    }
    server();
    reset(&["invoice:holding", "invoice"]);
    let mut child = run_child("child_holds_the_lease_and_dies", &[]);
    wait_for("invoice:holding");
    let leased_at = Instant::now(); // the lease was taken a moment before
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(stored("invoice", ":l:").len(), 1, "the dead holder's lease is still there");
    let value = invoice(1);
    let waited = leased_at.elapsed();
    assert_eq!(value, 1 + 2, "the second run's value");
    assert_eq!(runs("invoice"), 2);
    assert!(waited >= LEASE / 2, "it waited for the lease ({waited:?})");
    assert!(waited <= LEASE + Duration::from_millis(300), "no more than the lease ({waited:?})");
}

// ---------------------------------------------------------------------------------
// A clear, a tag invalidation or a lease takeover during a held lease: the holder
// writes nothing.

#[cache(backend = "json", single_flight = "global", lease = 10, tags = ["quote:{id}"])]
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
        server();
        let value = quote(std::env::var("ID").unwrap().parse().unwrap());
        let _: () = server().raw().set("quote:child_value", value).unwrap();
    }
}

/// A child computes `quote(id)` holding its lease; `overtake` runs meanwhile; the
/// child's value must not be stored.
fn overtaken_while_holding(id: u32, overtake: impl FnOnce()) {
    reset(&["quote:holding", "quote:overtaken", "quote:child_value", "quote"]);
    let mut child = run_child("child_holds_a_quote", &[("ID", id.to_string())]);
    wait_for("quote:holding");
    overtake();
    signal("quote:overtaken");
    assert!(child.wait().unwrap().success());
    let theirs: u64 = server().raw().get("quote:child_value").unwrap();
    assert_eq!(theirs, u64::from(id) * 100 + 1, "the child's caller still got its value");
    let mine = quote(id);
    assert_ne!(mine, theirs, "the child's value was not stored");
    assert_eq!(runs("quote"), 2);
}

#[test]
fn a_clear_or_tag_invalidation_during_a_held_lease_leaves_no_value_behind() {
    if is_child() {
        return;
    }
    server();
    let _serial = quote_serial();
    overtaken_while_holding(1, || {
        quote::cache_clear().unwrap();
    });
    quote::cache_clear().unwrap();
    overtaken_while_holding(2, || {
        memo_alchemy::invalidate_tags(["quote:2"]).unwrap();
    });
    // Nothing was stored under the child's lease: only the parent's own values.
    assert!(stored("quote", ":l:").is_empty(), "refused writes release their lease too");
}

#[cache(backend = "json", single_flight = "global", lease = 1)]
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
        server();
        let value = slow_quote(3);
        let _: () = server().raw().set("slow_quote:child_value", value).unwrap();
    }
}

#[test]
fn a_holder_whose_lease_was_taken_over_writes_nothing() {
    if is_child() {
        return;
    }
    server();
    reset(&["slow_quote:holding", "slow_quote:overtaken", "slow_quote:child_value", "slow_quote"]);
    let mut child = run_child("child_outlives_its_lease", &[]);
    wait_for("slow_quote:holding");
    // The child's lease runs out; this process takes it over and stores its value.
    let mine = slow_quote(3);
    assert_eq!(mine, 302);
    signal("slow_quote:overtaken");
    assert!(child.wait().unwrap().success());
    let theirs: u64 = server().raw().get("slow_quote:child_value").unwrap();
    assert_eq!(theirs, 301);
    // The child's later write was refused: Redis still holds this process's value.
    assert_eq!(slow_quote(3), 302, "read from Redis: json keeps nothing in the process");
    assert_eq!(runs("slow_quote"), 2);
}

fn quote_serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------
// A computation that fails or is cut short gives its lease back at once: with a 30 s
// lease, the key is free again for the next process straight away.

#[cache(backend = "json", single_flight = "global", lease = 30)]
fn fragile(id: u32) -> Result<u64, String> {
    let run = counted("fragile");
    match id {
        1 => Err("the body fails".to_owned()),
        2 => panic!("the body panics"),
        _ => Ok(run),
    }
}

#[cache(backend = "json", single_flight = "global", lease = 30)]
async fn slow_fragile(id: u32) -> u64 {
    counted("slow_fragile");
    tokio::time::sleep(Duration::from_secs(5)).await;
    u64::from(id)
}

#[test]
fn a_failed_or_cut_short_computation_gives_its_lease_back() {
    if is_child() {
        return;
    }
    server();
    reset(&["fragile", "slow_fragile"]);
    fragile::cache_clear().unwrap();

    assert_eq!(fragile(1), Err("the body fails".to_owned()));
    assert!(stored("fragile", ":l:").is_empty(), "an Err releases the lease");
    let panicked = std::panic::catch_unwind(|| fragile(2));
    assert!(panicked.is_err());
    assert!(stored("fragile", ":l:").is_empty(), "a panic releases the lease");
    assert_eq!(runs("fragile"), 2);

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        slow_fragile::cache_clear().await.unwrap();
        let cut = tokio::time::timeout(Duration::from_millis(200), slow_fragile(3)).await;
        assert!(cut.is_err(), "the call was cut short");
    });
    assert_eq!(runs("slow_fragile"), 1, "the body had started");
    assert!(stored("slow_fragile", ":l:").is_empty(), "a dropped future releases the lease");
}
