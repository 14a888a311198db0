//! `Result`: only `Ok` is cached. `Option`: `None` is cached too.

use std::sync::atomic::{AtomicUsize, Ordering};

use memo_alchemy::cache;

static PARSES: AtomicUsize = AtomicUsize::new(0);
static LOOKUPS: AtomicUsize = AtomicUsize::new(0);

#[cache]
fn parse(text: &str) -> Result<u32, std::num::ParseIntError> {
    PARSES.fetch_add(1, Ordering::SeqCst);
    text.parse()
}

#[cache]
fn lookup(id: u32) -> Option<&'static str> {
    LOOKUPS.fetch_add(1, Ordering::SeqCst);
    (id == 1).then_some("one")
}

fn main() -> Result<(), memo_alchemy::Error> {
    assert_eq!(parse("7"), Ok(7));
    assert_eq!(parse("7"), Ok(7));
    assert_eq!(PARSES.load(Ordering::SeqCst), 1);
    assert!(parse("x").is_err());
    assert!(parse("x").is_err());
    // The `Err` was not stored: the body ran both times.
    assert_eq!(PARSES.load(Ordering::SeqCst), 3);
    assert_eq!(parse::cache_clear()?, 1);

    assert_eq!(lookup(1), Some("one"));
    assert_eq!(lookup(2), None);
    assert_eq!(lookup(2), None);
    // `None` was stored: negative caching.
    assert_eq!(LOOKUPS.load(Ordering::SeqCst), 2);
    assert_eq!(lookup::cache_clear()?, 2);
    Ok(())
}
