use memo_alchemy::cache;

struct Point {
    x: u32,
}

#[cache]
fn f(p: Point) -> u32 {
    p.x
}

fn main() {}
