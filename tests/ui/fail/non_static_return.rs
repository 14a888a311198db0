use memo_alchemy::cache;

#[cache]
fn f(s: &str) -> &str {
    s
}

fn main() {}
