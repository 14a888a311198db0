use memo_alchemy::cache;

#[cache]
fn f(v: &mut Vec<u8>) -> usize {
    v.len()
}

fn main() {}
