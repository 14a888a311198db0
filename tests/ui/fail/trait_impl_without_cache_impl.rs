use memo_alchemy::cache;

trait Area {
    fn area(&self) -> u64;
}

#[derive(Clone, Hash, PartialEq, Eq)]
struct Square(u64);

impl Area for Square {
    #[cache]
    fn area(&self) -> u64 {
        self.0 * self.0
    }
}

fn main() {}
