//! `memo-alchemy`: list, search, inspect, flush and count what memo-alchemy's shared
//! backends keep in Redis (single server or cluster) or PostgreSQL, from the store
//! alone: it needs none of the program's code.
//!
//! It reads the program's `MEMO_*` variables (`MEMO_REDIS_URL`,
//! `MEMO_REDIS_CLUSTER_URLS`, `MEMO_POSTGRES_URL`, `MEMO_KEY_PREFIX`, …) and touches
//! nothing outside the key prefix. Flushes go through the library's own clears, so a
//! running program never stores a value computed before them.

mod decode;
mod store;

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use memo_core::Config;
use serde_json::{json, Value};

use store::Store;

/// Lists, searches, inspects, flushes and counts memo-alchemy's cached entries in Redis or PostgreSQL.
///
/// Reads MEMO_REDIS_URL, MEMO_REDIS_CLUSTER_URLS, MEMO_POSTGRES_URL, MEMO_POSTGRES_SCHEMA and
/// MEMO_KEY_PREFIX as the program does; never touches a key or row outside the prefix.
#[derive(Debug, Parser)]
#[command(name = "memo-alchemy", version)]
struct Cli {
    /// Machine-readable output: one JSON document on stdout, no progress bars.
    #[arg(long, global = true)]
    json: bool,
    /// The store to read: `auto` is PostgreSQL when MEMO_POSTGRES_URL is set and neither
    /// MEMO_REDIS_URL nor MEMO_REDIS_CLUSTER_URLS is, Redis otherwise.
    #[arg(long, global = true, value_enum, default_value_t = StoreChoice::Auto)]
    store: StoreChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreChoice {
    Auto,
    Redis,
    Postgres,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Each cached function found in the store: its path, backend, live entries and their size.
    Functions,
    /// The live entries of FUNCTION (a path, a namespace, or the end of a path), arguments decoded.
    Keys {
        /// The function: `crate::module::name`, its namespace, or a unique `name` / `module::name`.
        function: String,
        /// Only the entries whose decoded arguments contain TEXT, or its characters in order.
        #[arg(long)]
        search: Option<String>,
    },
    /// One entry: its TTL, size, encoding and value decoded as JSON.
    Inspect {
        /// The entry's key, as `keys` lists it.
        key: String,
    },
    /// Removes entries through the library's own clears; asks first unless --yes.
    Flush(Flush),
    /// Counts under the prefix: functions, live entries, bytes, keys.
    Stats,
}

#[derive(Debug, Args)]
#[group(skip)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["function", "tag", "all"])))]
struct Flush {
    /// Every entry of the function at PATH (or with that namespace).
    #[arg(long, value_name = "PATH")]
    function: Option<String>,
    /// The entries carrying TAG, in every function (repeat for several tags).
    #[arg(long, value_name = "TAG")]
    tag: Vec<String>,
    /// Everything under the key prefix.
    #[arg(long)]
    all: bool,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    yes: bool,
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// A `MEMO_*` variable that does not parse, or the store's failure.
    #[error("{0}")]
    Memo(#[from] memo_core::Error),
    /// Reading the confirmation, or writing the output.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No such function or key.
    #[error("{0}")]
    NotFound(String),
    /// The confirmation was refused.
    #[error("aborted: nothing was flushed")]
    Refused,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if cli.json {
                println!("{}", json!({ "error": e.to_string() }));
            }
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The CLI's default timeout for one store operation (a scan of one server is one):
/// longer than a program's, which is meant for one cached call.
const TIMEOUT_MS: &str = "30000";

/// Installs the configuration of the `MEMO_*` variables and picks the store.
fn configure(choice: StoreChoice) -> Result<Store, CliError> {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty());
    let config = Config::from_vars(|name| {
        std::env::var(name).ok().or_else(|| {
            matches!(name, "MEMO_REDIS_TIMEOUT_MS" | "MEMO_POSTGRES_TIMEOUT_MS")
                .then(|| TIMEOUT_MS.to_owned())
        })
    })?;
    let store = match choice {
        StoreChoice::Redis => Store::Redis,
        StoreChoice::Postgres => Store::Postgres,
        StoreChoice::Auto
            if set("MEMO_POSTGRES_URL") && !set("MEMO_REDIS_URL") && !set("MEMO_REDIS_CLUSTER_URLS") =>
        {
            Store::Postgres
        }
        StoreChoice::Auto => Store::Redis,
    };
    config.install()?;
    Ok(store)
}

fn run(cli: &Cli) -> Result<(), CliError> {
    let store = configure(cli.store)?;
    let out = Output { json: cli.json };
    match &cli.command {
        Command::Functions => functions(store, out),
        Command::Keys { function, search } => keys(store, out, function, search.as_deref()),
        Command::Inspect { key } => inspect(store, out, key),
        Command::Flush(flush) => self::flush(store, out, flush),
        Command::Stats => stats(store, out),
    }
}

/// How results are shown.
#[derive(Debug, Clone, Copy)]
struct Output {
    json: bool,
}

impl Output {
    /// A progress bar on stderr, hidden with `--json` or when stderr is not a terminal;
    /// `len` `None` for a spinner.
    fn progress(self, len: Option<u64>, message: &'static str) -> ProgressBar {
        if self.json || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = match len {
            Some(len) => ProgressBar::new(len).with_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {msg}: {pos} keys")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.enable_steady_tick(Duration::from_millis(100));
        bar.with_message(message)
    }

    fn print_json(self, value: &Value) -> Result<(), CliError> {
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut stdout, value).map_err(std::io::Error::from)?;
        writeln!(stdout)?;
        Ok(())
    }
}

/// `1234567` as `1.2 MB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn functions(store: Store, out: Output) -> Result<(), CliError> {
    let bar = out.progress(None, "scanning");
    let found = store.functions(&|n| bar.set_position(n))?;
    bar.finish_and_clear();
    if out.json {
        let list: Vec<Value> = found.iter().map(store::Function::to_json).collect();
        return out.print_json(&Value::Array(list));
    }
    if found.is_empty() {
        println!("No cached function under the prefix {:?}.", Config::global().key_prefix());
        return Ok(());
    }
    let width = found.iter().map(|f| f.path.len()).max().unwrap_or(0).max(8);
    println!("{:<width$}  {:<18}  {:>8}  {:>9}  TAGS", "FUNCTION", "BACKEND", "ENTRIES", "SIZE");
    for f in &found {
        let line = format!(
            "{:<width$}  {:<18}  {:>8}  {:>9}  {}",
            f.path,
            f.backend,
            f.entries,
            human_bytes(f.bytes),
            f.tags.join(" ")
        );
        println!("{}", line.trim_end());
    }
    Ok(())
}

fn keys(store: Store, out: Output, function: &str, search: Option<&str>) -> Result<(), CliError> {
    let bar = out.progress(None, "scanning");
    let (functions, entries) = store.entries(&|n| bar.set_position(n))?;
    bar.finish_and_clear();
    let chosen = store::choose(&functions, function)?;
    let mut listed: Vec<(u8, &store::Key)> = entries
        .iter()
        .filter(|k| chosen.iter().any(|f| f.namespace == k.namespace))
        .filter_map(|k| match search {
            None => Some((0, k)),
            Some(text) => decode::matches(&k.decoded, text)
                .or_else(|| decode::matches(&k.arguments, text))
                .map(|r| (r, k)),
        })
        .collect();
    listed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.key.cmp(&b.1.key)));
    if out.json {
        let list: Vec<Value> = listed.iter().map(|(_, k)| k.to_json()).collect();
        return out.print_json(&Value::Array(list));
    }
    if listed.is_empty() {
        println!("No entry of {function}{}.", search.map(|s| format!(" matching {s:?}")).unwrap_or_default());
        return Ok(());
    }
    let width = listed.iter().map(|(_, k)| k.decoded.chars().count()).max().unwrap_or(0).max(9);
    println!("{:<width$}  {:>9}  KEY", "ARGUMENTS", "SIZE");
    for (_, k) in &listed {
        println!("{:<width$}  {:>9}  {}", k.decoded, human_bytes(k.bytes), k.key);
    }
    Ok(())
}

fn inspect(store: Store, out: Output, key: &str) -> Result<(), CliError> {
    let entry = store.inspect(key)?.ok_or_else(|| CliError::NotFound(format!("no entry {key}")))?;
    if out.json {
        return out.print_json(&entry.to_json());
    }
    println!("key:       {}", entry.key);
    println!("function:  {} ({})", entry.path, entry.backend);
    println!("arguments: {}", entry.decoded);
    println!(
        "ttl:       {}",
        entry.ttl_ms.map_or_else(|| "none".to_owned(), |ms| format!("{:.3} s", ms as f64 / 1000.0))
    );
    println!("size:      {}", human_bytes(entry.bytes));
    println!("encoding:  {}", entry.encoding);
    if !entry.live {
        println!("live:      no (cleared: waiting for the drain)");
    }
    if !entry.tags.is_empty() {
        println!("tags:      {}", entry.tags.join(" "));
    }
    match &entry.value {
        Ok(value) => {
            let pretty = serde_json::to_string_pretty(value).map_err(std::io::Error::from)?;
            println!("value:     {}", pretty.replace('\n', "\n           "));
        }
        Err(reason) => println!("value:     (undecodable: {reason}) 0x{}", decode::hex(&entry.payload)),
    }
    Ok(())
}

/// Asks `question` on stderr and reads the answer on stdin: yes only for `y` or `yes`.
fn confirm(question: &str) -> Result<(), CliError> {
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    match answer.trim().to_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(CliError::Refused),
    }
}

fn flush(store: Store, out: Output, flush: &Flush) -> Result<(), CliError> {
    let prefix = Config::global().key_prefix().to_owned();
    if !flush.tag.is_empty() {
        if !flush.yes {
            confirm(&format!(
                "Invalidate the tag(s) {} in every function under the prefix {prefix:?}?",
                flush.tag.join(", ")
            ))?;
        }
        let removed = store.flush_tags(&flush.tag)?;
        if out.json {
            return out.print_json(&json!({ "flushed": "tags", "tags": flush.tag, "entries": removed }));
        }
        println!("Invalidated {}: {removed} live entries removed.", flush.tag.join(", "));
        return Ok(());
    }
    let bar = out.progress(None, "scanning");
    let functions = store.functions(&|n| bar.set_position(n))?;
    bar.finish_and_clear();
    let chosen: Vec<&store::Function> = match &flush.function {
        Some(path) => store::choose(&functions, path)?,
        None => functions.iter().collect(),
    };
    let entries: u64 = chosen.iter().map(|f| f.entries).sum();
    if !flush.yes {
        let question = match &flush.function {
            Some(path) => format!("Flush {path} ({entries} live entries) under the prefix {prefix:?}?"),
            None => format!(
                "Flush everything under the prefix {prefix:?} ({} functions, {entries} live entries)?",
                chosen.len()
            ),
        };
        confirm(&question)?;
    }
    let bar = out.progress(Some(chosen.len() as u64), "flushing");
    let mut removed = 0;
    for function in &chosen {
        removed += store.clear(function)?;
        bar.inc(1);
    }
    bar.set_message("draining");
    store.finish(flush.all)?;
    bar.finish_and_clear();
    let what = if flush.all { "all" } else { "function" };
    if out.json {
        let paths: Vec<&str> = chosen.iter().map(|f| f.path.as_str()).collect();
        return out.print_json(&json!({ "flushed": what, "functions": paths, "entries": removed }));
    }
    match &flush.function {
        Some(path) => println!("Flushed {path}: {removed} live entries removed."),
        None => println!(
            "Flushed everything under the prefix {prefix:?}: {} functions, {removed} live entries removed.",
            chosen.len()
        ),
    }
    Ok(())
}

fn stats(store: Store, out: Output) -> Result<(), CliError> {
    let bar = out.progress(None, "scanning");
    let stats = store.stats(&|n| bar.set_position(n))?;
    bar.finish_and_clear();
    if out.json {
        return out.print_json(&stats);
    }
    let get = |k: &str| stats.get(k).cloned().unwrap_or(Value::Null);
    println!("store:        {}", get("location").as_str().unwrap_or(""));
    println!("prefix:       {}", get("prefix").as_str().unwrap_or(""));
    println!("functions:    {}", get("functions"));
    println!("entries:      {}", get("entries"));
    println!("size:         {}", human_bytes(get("bytes").as_u64().unwrap_or(0)));
    if let Some(Value::Object(backends)) = stats.get("backends") {
        for (name, b) in backends {
            println!(
                "  {name:<12}{} functions, {} entries, {}",
                b["functions"],
                b["entries"],
                human_bytes(b["bytes"].as_u64().unwrap_or(0))
            );
        }
    }
    if let Some(Value::Object(other)) = stats.get("store_keys") {
        for (name, n) in other {
            println!("{:<14}{n}", format!("{name}:"));
        }
    }
    Ok(())
}
