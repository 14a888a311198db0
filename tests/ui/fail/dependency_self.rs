use memo_alchemy::cache;

struct S;

impl S {
    #[cache]
    fn x(a: u32) -> u32 {
        a
    }

    #[cache(dependency = [Self::x])]
    fn y(a: u32) -> u32 {
        Self::x(a)
    }
}

fn main() {}
