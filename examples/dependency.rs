//! A small read model kept fresh by clearing at the root: users -> user profile ->
//! dashboard. Clearing one user's row clears that user's profile and every dashboard
//! (the dashboard has no `user_id`, so it is cleared entirely), and nothing else.
//!
//! Run with `cargo run --example dependency`.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use memo_alchemy::{cache, registry};

/// The "database".
static USERS: LazyLock<Mutex<HashMap<u32, String>>> =
    LazyLock::new(|| Mutex::new(HashMap::from([(1, "Ada".to_owned()), (2, "Linus".to_owned())])));

#[cache(strict = true)]
fn user(user_id: u32) -> Option<String> {
    println!("  (query user {user_id})");
    USERS.lock().expect("the users lock is not poisoned").get(&user_id).cloned()
}

#[cache(strict = true, dependency = [user])]
fn profile(user_id: u32, lang: &str) -> String {
    println!("  (render profile {user_id}/{lang})");
    let name = user(user_id).unwrap_or_else(|| "?".into());
    match lang {
        "fr" => format!("Profil de {name}"),
        _ => format!("Profile of {name}"),
    }
}

#[cache(dependency = [profile])]
fn dashboard(lang: &str) -> Vec<String> {
    println!("  (build dashboard/{lang})");
    [1, 2].into_iter().map(|id| profile(id, lang)).collect()
}

fn main() -> Result<(), memo_alchemy::Error> {
    println!("The graph:");
    let mut functions: Vec<_> = registry().collect();
    functions.sort_by_key(|f| f.path().to_owned());
    for f in functions {
        let deps: Vec<_> = f.dependencies().iter().map(|d| d.path().to_owned()).collect();
        println!("  {} [{}] depends on {deps:?}", f.path(), f.backend());
    }

    println!("First read:");
    println!("{:?}", dashboard("en"));
    println!("{:?}", profile(2, "fr"));
    println!("Second read (all cached):");
    println!("{:?}", dashboard("en"));

    println!("Ada renames herself; clear user 1 at the root:");
    USERS.lock().expect("the users lock is not poisoned").insert(1, "Ada L.".into());
    let removed = user::cache_clear_by().user_id(1_u32).clear()?;
    println!("removed {removed} entries: user(1), profile(1, en), dashboard(en)");
    assert_eq!(removed, 3);
    println!("{:?}", dashboard("en"));
    println!("{:?} (still cached: user 2 was not touched)", profile(2, "fr"));
    Ok(())
}
