//! A write path in one process invalidates every read about user 42 in all processes:
//! entries tagged `user:42` in memory here (distributed_memory) and in Redis (json),
//! whichever function wrote them, and the functions that depend on them.
//!
//! Needs a Redis server: `redis-server --port 6379 --save '' &`, or set
//! `MEMO_REDIS_URL`. Run with `cargo run --example tags`: it starts a second copy of
//! itself as the "writer" process.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread::sleep;
use std::time::{Duration, Instant};

use memo_alchemy::cache;

static LOADS: AtomicUsize = AtomicUsize::new(0);

/// Local copies in each process; a tag invalidation anywhere reaches them.
#[cache(backend = "distributed_memory", tags = ["user:{id}"])]
fn profile(id: u64) -> String {
    format!("profile of {id} (load #{})", LOADS.fetch_add(1, SeqCst) + 1)
}

/// Shared through Redis; tagged by user and by table.
#[cache(backend = "json", tags = ["user:{id}", "table:orders"])]
fn orders(id: u64) -> Vec<u32> {
    LOADS.fetch_add(1, SeqCst);
    vec![1, 2, u32::try_from(id % 100).unwrap_or(0)]
}

/// Carries no tag, but reads `profile`: cleared whenever one of its tags is.
#[cache(dependency = [profile])]
fn page(id: u64) -> String {
    format!("<h1>{}</h1>", profile(id))
}

fn writer() -> Result<(), memo_alchemy::Error> {
    // ... the user's row changes, then:
    let removed = memo_alchemy::invalidate_tags(["user:42"])?;
    println!("writer: invalidated user:42 ({removed} entries in Redis and here)");
    memo_alchemy::shutdown();
    Ok(())
}

fn main() -> Result<(), memo_alchemy::Error> {
    if std::env::args().any(|a| a == "--writer") {
        return writer();
    }
    // Wait for the invalidation subscription, so that local values are served.
    let deadline = Instant::now() + Duration::from_secs(5);
    while profile::cache_stats().hits == 0 && Instant::now() < deadline {
        profile(42);
        sleep(Duration::from_millis(20));
    }
    for id in [42, 7] {
        page(id);
        orders(id);
    }
    println!("reader: cached {} and {}", page(42), page(7));
    let loads = LOADS.load(SeqCst);
    let exe = std::env::current_exe().expect("the example's own path");
    let status = Command::new(exe).arg("--writer").stdin(Stdio::null()).status();
    if !status.is_ok_and(|s| s.success()) {
        println!("reader: the writer could not reach Redis");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while LOADS.load(SeqCst) == loads && Instant::now() < deadline {
        page(42); // recomputed once the invalidation arrives
        sleep(Duration::from_millis(5));
    }
    orders(42);
    orders(7);
    page(7);
    println!("reader: now {} and still {}", page(42), page(7));
    println!("reader: {} loads after the invalidation (profile(42), orders(42))", LOADS.load(SeqCst) - loads);
    memo_alchemy::shutdown();
    Ok(())
}
