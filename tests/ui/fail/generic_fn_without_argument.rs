use memo_alchemy::cache;

#[cache]
fn size<T>() -> usize {
    std::mem::size_of::<T>()
}

fn main() {}
