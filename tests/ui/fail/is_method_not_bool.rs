use memo_alchemy::{cache, cache_impl};

struct S;

#[cache_impl]
impl S {
    #[cache(is_method = "yes")]
    fn m(&self, a: u32) -> u32 {
        a
    }
}

fn main() {}
