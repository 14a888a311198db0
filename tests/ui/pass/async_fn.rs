//! `async fn`s compile, and their futures (and the async clears) are `Send`.
//! Nothing here runs them: that needs an executor, which the runtime tests have.

use memo_alchemy::{cache, cache_impl};

fn assert_send<T: Send>(_: &T) {}

#[cache(strict = true)]
async fn fetch(id: u64, name: &str) -> String {
    format!("{id}:{name}")
}

struct Repo;

#[cache_impl]
impl Repo {
    #[cache(is_method = true)]
    async fn find(&self, id: u64) -> Option<u64> {
        Some(id)
    }
}

fn main() {
    let name = String::from("x");
    let future = fetch(1, &name);
    assert_send(&future);
    drop(future);

    let clear = fetch::cache_clear();
    assert_send(&clear);
    drop(clear);

    let partial = fetch::cache_clear_by().id(1_u64).name("x").clear();
    assert_send(&partial);
    drop(partial);

    let repo = Repo;
    let found = repo.find(7);
    assert_send(&found);
    drop(found);

    let clear = Repo::find_cache_clear();
    assert_send(&clear);
    drop(clear);
    assert_eq!(Repo::find_cache_stats().misses, 0);
}
