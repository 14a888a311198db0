use memo_alchemy::cache;

#[derive(Clone, Hash, PartialEq, Eq)]
struct Point(i32, i32);

#[cache(tags = ["point:{p}"])]
fn distance(p: Point) -> i32 {
    p.0 + p.1
}

fn main() {}
