//! Borrowed arguments (`&str`, `&[u8]`, `&T`) are stored owned.

use std::sync::atomic::{AtomicUsize, Ordering};

use memo_alchemy::cache;
use serde::Serialize;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
struct User {
    id: u32,
}

#[cache(strict = true)]
fn describe(name: &str, bytes: &[u8], user: &User) -> String {
    RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{name}:{}:{}", bytes.len(), user.id)
}

fn main() -> Result<(), memo_alchemy::Error> {
    let user = User { id: 3 };
    assert_eq!(describe("a", b"xy", &user), "a:2:3");
    let owned = String::from("a");
    assert_eq!(describe(&owned, &[b'x', b'y'], &user), "a:2:3");
    assert_eq!(describe("b", b"", &user), "b:0:3");
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);

    // Setters take anything `Into` the owned key type.
    assert_eq!(describe::cache_clear_by().name("a").clear()?, 1);
    assert_eq!(describe::cache_clear_by().name(String::from("b")).bytes(Vec::new()).clear()?, 1);
    assert_eq!(describe::cache_clear_by().user(User { id: 3 }).clear()?, 0);
    Ok(())
}
