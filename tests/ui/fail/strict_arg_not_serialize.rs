use memo_alchemy::cache;

#[derive(Clone, PartialEq, Eq, Hash)]
struct Id(u32);

#[cache(strict = true)]
fn f(id: Id) -> u32 {
    id.0
}

fn main() {}
