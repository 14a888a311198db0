use memo_alchemy::cache;

#[cache(tags = ["user:{id}", "team:{team}"])]
fn profile(id: u64) -> String {
    id.to_string()
}

fn main() {}
