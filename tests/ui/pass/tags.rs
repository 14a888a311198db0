//! Tags on a function with borrowed arguments, a method (receiver in the key) and an
//! `async fn`; each `{hole}` names an argument whose owned type is `Display`.

use memo_alchemy::{cache, cache_impl, invalidate_tags};

#[cache(tags = ["lang:{lang}", "user:{id}:{lang}"])]
fn greeting(id: u64, lang: &str) -> String {
    format!("{id}-{lang}")
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Shop {
    id: u32,
}

#[cache_impl]
impl Shop {
    #[cache(tags = ["item:{item}", "shops"])]
    fn price(&self, item: u32) -> u32 {
        self.id + item
    }
}

#[cache(tags = ["user:{id}"])]
async fn fetch(id: u64) -> u64 {
    id
}

fn main() {
    greeting(1, "en");
    greeting(1, "fr");
    let shop = Shop { id: 1 };
    shop.price(2);
    // greeting(1, "en") and Shop::price(2): two entries, two functions.
    assert_eq!(invalidate_tags(["user:1:en", "item:2"]).unwrap(), 2);
    assert_eq!(greeting::cache_stats().len, Some(1));
    assert_eq!(Shop::price_cache_stats().len, Some(0));
    let _ = fetch(3);
}
