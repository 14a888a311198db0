use memo_alchemy::{cache, cache_impl};

#[derive(Clone, PartialEq, Eq, Hash)]
struct S;

#[cache_impl]
impl S {
    #[cache]
    fn x(&self, a: u32) -> u32 {
        a
    }

    #[cache(dependency = [Self::x])]
    fn y(&self, a: u32) -> u32 {
        self.x(a)
    }
}

fn main() {}
