use memo_alchemy::cache;

#[cache]
fn area(radius: f64) -> f64 {
    radius * radius * 3.14
}

fn main() {}
