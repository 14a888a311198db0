//! `stale` and `refresh` on a method keyed by its receiver, an associated function, an
//! `async` method and a function with borrowed arguments: the background refresh calls
//! an uncached copy of each with its owned key.

use memo_alchemy::{cache, cache_impl};

#[derive(Clone, PartialEq, Eq, Hash)]
struct Shop {
    id: u32,
}

#[cache_impl]
impl Shop {
    #[cache(expire = 60, refresh = 10, stale = 30)]
    fn price(&self, item: &str) -> u32 {
        self.id + item.len() as u32
    }

    #[cache(expire = 60, refresh = 10)]
    fn standard(item: u32) -> u32 {
        item * 2
    }

    #[cache(expire = 60, refresh = 10)]
    async fn stock(&self, item: u32) -> Result<u32, String> {
        Ok(self.id + item)
    }
}

#[cache(expire = 60, refresh = 10, stale = 5)]
fn greeting(name: &str, times: u8) -> String {
    name.repeat(usize::from(times))
}

fn main() {
    let shop = Shop { id: 1 };
    assert_eq!(shop.price("ab"), 3);
    assert_eq!(Shop::standard(2), 4);
    assert_eq!(greeting("a", 2), "aa");
    let _ = shop.stock(1);
}
