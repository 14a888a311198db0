//! An associated function with neither `self` nor `Self`, under `#[cache_impl]`.

use memo_alchemy::{cache, cache_impl};

struct Tax;

#[cache_impl]
impl Tax {
    #[cache(strict = true)]
    fn rate(country: &str) -> u32 {
        country.len() as u32
    }
}

fn main() -> Result<(), memo_alchemy::Error> {
    assert_eq!(Tax::rate("fr"), 2);
    assert_eq!(Tax::rate("fr"), 2);
    assert_eq!(Tax::rate_cache_stats().hits, 1);
    assert_eq!(Tax::rate_cache_clear_by().country("fr").clear()?, 1);
    Ok(())
}
