use memo_alchemy::cache;

struct S;

impl S {
    #[cache]
    fn m(&self, a: u32) -> u32 {
        a
    }
}

fn main() {}
