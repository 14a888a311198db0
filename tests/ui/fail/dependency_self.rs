use memo_alchemy::cache;

#[derive(Clone, PartialEq, Eq, Hash)]
struct S;

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
