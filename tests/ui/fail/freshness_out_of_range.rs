use memo_alchemy::{cache, cache_impl};

#[cache(stale = 0, refresh = -3)]
fn zero(a: u32) -> u32 {
    a
}

#[cache(expire = 60, refresh = 60)]
fn refresh_not_before_expire(a: u32) -> u32 {
    a
}

#[cache(expire = -1, stale = 30)]
fn never_expires(a: u32) -> u32 {
    a
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Shop;

#[cache_impl]
impl Shop {
    #[cache(is_method = true, refresh = 5)]
    fn price(&self, item: u32) -> u32 {
        item
    }
}

fn main() {}
