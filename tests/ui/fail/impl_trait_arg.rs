use memo_alchemy::cache;

#[cache]
fn f(x: impl std::fmt::Display) -> String {
    x.to_string()
}

fn main() {}
