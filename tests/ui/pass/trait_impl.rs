//! A method of a trait impl, under `#[cache_impl]`: its cache API is on the type.

use memo_alchemy::{cache_impl, json_cache};

trait Area {
    async fn area(&self, scale: u64) -> u64;
}

#[derive(Clone, Hash, PartialEq, Eq, serde::Serialize)]
struct Square(u64);

#[cache_impl]
impl Area for Square {
    #[json_cache(strict = true)]
    async fn area(&self, scale: u64) -> u64 {
        self.0 * self.0 * scale
    }
}

fn main() {
    // Not run against Redis here: it must compile, with an async typed builder.
    let _ = Square::area_cache_clear_by().scale(2_u64).clear();
    let _ = Square::area_cache_clear();
}
