use memo_alchemy::cache;

struct Report {
    total: u32,
}

#[cache]
fn f(a: u32) -> Report {
    Report { total: a }
}

fn main() {
    let _ = f(1).total;
}
