use memo_alchemy::{cache, cache_impl};

#[derive(Clone, Hash, PartialEq, Eq)]
struct Account {
    id: u32,
}

#[cache_impl]
impl Account {
    #[cache(strict = true)]
    fn fee(&self, amount: u32) -> u32 {
        amount + self.id
    }
}

fn main() {}
