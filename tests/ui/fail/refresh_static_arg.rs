use memo_alchemy::cache;

// A background refresh calls the body with a borrow of the key's owned `String`.
#[cache(expire = 60, refresh = "early")]
fn quote(symbol: &'static str) -> f64 {
    symbol.len() as f64
}

#[cache(expire = 60, refresh = 30)]
fn label(id: u32, name: &'static str) -> String {
    format!("{id}{name}")
}

fn main() {}
