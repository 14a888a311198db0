//! `async fn`: memoized, `Send` when the body is, with async clears.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use memo_alchemy::{cache, cache_impl};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(strict = true)]
async fn fetch(user: &str, page: u32) -> Result<String, String> {
    RUNS.fetch_add(1, SeqCst);
    tokio::task::yield_now().await;
    if page == 0 {
        return Err("pages start at 1".into());
    }
    Ok(format!("{user}/{page}"))
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

#[tokio::test]
async fn async_functions_are_memoized_and_send() {
    assert_eq!(assert_send(fetch("ann", 1)).await.unwrap(), "ann/1");
    assert_eq!(fetch("ann", 1).await.unwrap(), "ann/1");
    assert_eq!(fetch("ann", 2).await.unwrap(), "ann/2");
    assert!(fetch("ann", 0).await.is_err());
    assert!(fetch("ann", 0).await.is_err());
    assert_eq!(RUNS.load(SeqCst), 4, "Err results are not cached");
    // The clears of an async function are async.
    assert_eq!(fetch::cache_clear_by().page(1_u32).clear().await.unwrap(), 1);
    assert_eq!(fetch::cache_clear().await.unwrap(), 1);
    // A spawned call needs a Send future.
    let spawned = tokio::spawn(fetch("bob", 3)).await.unwrap();
    assert_eq!(spawned.unwrap(), "bob/3");
}

static METHOD_RUNS: AtomicUsize = AtomicUsize::new(0);

struct Client {
    base: String,
}

#[cache_impl]
impl Client {
    #[cache(is_method = true)]
    async fn get(&self, path: &str) -> String {
        METHOD_RUNS.fetch_add(1, SeqCst);
        tokio::task::yield_now().await;
        format!("{}{path}", self.base)
    }
}

#[tokio::test]
async fn async_methods_are_memoized() {
    let c = Client { base: "http://x".into() };
    assert_eq!(c.get("/a").await, "http://x/a");
    assert_eq!(c.get("/a").await, "http://x/a");
    assert_eq!(METHOD_RUNS.load(SeqCst), 1);
    assert_eq!(Client::get_cache_clear().await.unwrap(), 1);
}

static CANCEL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache]
async fn cancellable(a: u32) -> u32 {
    CANCEL_RUNS.fetch_add(1, SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    a
}

#[tokio::test]
async fn a_cancelled_leader_lets_a_waiter_compute() {
    let leader = tokio::spawn(cancellable(9));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let waiter = tokio::spawn(cancellable(9));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    leader.abort();
    assert_eq!(waiter.await.unwrap(), 9);
    assert_eq!(CANCEL_RUNS.load(SeqCst), 2);
    assert_eq!(cancellable::cache_stats().len, Some(1));
}
