//! Two processes share invalidation, not values: each keeps its own copies in memory
//! (hits never touch the network), and a clear in one reaches the other through
//! Redis pub/sub.
//!
//! Needs a Redis server: `redis-server --port 6379 --save '' &`, or set
//! `MEMO_REDIS_URL`. Run with `cargo run --example distributed_memory`: it starts a
//! second copy of itself as the "worker" process.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread::sleep;
use std::time::{Duration, Instant};

use memo_alchemy::distributed_memory_cache;

static RENDERS: AtomicUsize = AtomicUsize::new(0);

/// The value needs only `Clone`: it never leaves the process.
#[derive(Clone, Debug)]
struct Page {
    html: String,
    render: usize,
}

#[distributed_memory_cache(strict = true, limit = 1000)]
fn page(path: &str) -> Page {
    let render = RENDERS.fetch_add(1, SeqCst) + 1;
    Page { html: format!("<h1>{path}</h1>"), render }
}

/// Calls `page` until it is served from the local cache (the subscription is up).
fn warm(path: &str) -> Page {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let hits = page::cache_stats().hits;
        let p = page(path);
        if page::cache_stats().hits > hits || Instant::now() > deadline {
            return p;
        }
        sleep(Duration::from_millis(10));
    }
}

fn worker() {
    let first = warm("/home");
    println!("worker: /home render #{} cached", first.render);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let p = page("/home");
        if p.render != first.render {
            println!("worker: the other process cleared /home; re-rendered as #{}: {}", p.render, p.html);
            memo_alchemy::shutdown();
            return;
        }
        sleep(Duration::from_millis(1));
    }
    println!("worker: no clear arrived (is Redis running?)");
    memo_alchemy::shutdown();
}

fn main() -> Result<(), memo_alchemy::Error> {
    if std::env::args().any(|a| a == "--worker") {
        worker();
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| memo_alchemy::Error::Backend {
        backend: "distributed_memory",
        function: "example".into(),
        message: e.to_string(),
    })?;
    let mut child = Command::new(exe).arg("--worker").stdin(Stdio::null()).spawn().map_err(|e| {
        memo_alchemy::Error::Backend {
            backend: "distributed_memory",
            function: "example".into(),
            message: e.to_string(),
        }
    })?;
    sleep(Duration::from_millis(800));
    let p = warm("/home");
    println!("main:   /home render #{} cached here too", p.render);
    match page::cache_clear_by().path("/home").clear() {
        Ok(n) => println!("main:   cleared /home ({n} local entry) in every process"),
        Err(e) => println!("main:   could not reach Redis: {e}"),
    }
    // Wait for the worker; a failed wait just means it is gone already.
    drop(child.wait());
    memo_alchemy::shutdown();
    Ok(())
}
