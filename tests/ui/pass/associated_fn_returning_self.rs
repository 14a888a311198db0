//! An associated function with no receiver, returning `Self`.

use std::sync::atomic::{AtomicUsize, Ordering};

use memo_alchemy::{cache, cache_impl};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone, PartialEq)]
struct Settings {
    name: String,
    level: u8,
}

#[cache_impl]
impl Settings {
    #[cache(limit = 4)]
    fn load(name: &str, level: u8) -> Self {
        RUNS.fetch_add(1, Ordering::SeqCst);
        Self { name: name.to_owned(), level }
    }
}

fn main() -> Result<(), memo_alchemy::Error> {
    let first = Settings::load("a", 1);
    assert_eq!(Settings::load("a", 1), first);
    assert_eq!(first, Settings { name: "a".to_owned(), level: 1 });
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(Settings::load_cache_stats().hits, 1);
    assert_eq!(Settings::load_cache_clear()?, 1);
    Ok(())
}
