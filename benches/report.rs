//! Writes `target/bench-report.md` from the last run of the other benches: criterion's
//! medians, the bytes per entry and the hit ratios, with each peer's ratio to our
//! cost and the targets. `scripts/bench` runs it last.
//!
//! Run with `cargo bench --bench report`; `BENCH_DATE` and `BENCH_MACHINE` label it.

use std::fs;
use std::path::{Path, PathBuf};

/// Criterion groups, their titles, and whether they are two-thread throughputs.
const GROUPS: [(&str, &str, bool); 8] = [
    ("1_hit_u64", "1. Single-thread hit, `u64` argument (capacity 10,000, 8,000 keys read)", false),
    ("2_hit_two_strings", "2. Single-thread hit, two `String` arguments", false),
    ("3_miss_insert_evict", "3. Miss plus insert into a full cache, evicting one", false),
    ("4_two_threads_90_hit", "4a. Two threads, 90% hits / 10% fresh keys", true),
    ("4_two_threads_100_hit", "4b. Two threads, 100% hits", true),
    ("7_clear_100k", "7. `cache_clear` of 100,000 entries (memory)", false),
    ("8_async_hit", "8a. `async fn` hit (each future polled once)", false),
    ("8_async_miss_insert_evict", "8b. `async fn` miss plus insert into a full cache", false),
];

/// Row order: ours first, then the floor and the peers.
const ORDER: [&str; 13] = [
    "memo_alchemy",
    "memo_alchemy_async",
    "memo_alchemy_sync",
    "memo_alchemy_no_expire",
    "memo_alchemy_strict",
    "memo_alchemy_fast_keys",
    "floor_hashbrown",
    "lru_mutex",
    "quick_cache",
    "moka",
    "moka_future",
    "cached",
    "true_lru",
];

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target/tmp has a parent").to_owned()
}

/// The median point estimate, in ns, from criterion's `estimates.json`.
fn median(path: &Path) -> Option<f64> {
    let text = fs::read_to_string(path).ok()?;
    let after = &text[text.find("\"median\"")?..];
    let after = &after[after.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = after.find([',', '}'])?;
    after[..end].trim().parse().ok()
}

fn rank(name: &str) -> usize {
    ORDER.iter().position(|n| *n == name).unwrap_or(ORDER.len())
}

/// A bench's id as written (`benchmark.json`), which its directory name may mangle.
fn function_id(dir: &Path) -> Option<String> {
    let text = fs::read_to_string(dir.join("new").join("benchmark.json")).ok()?;
    let after = &text[text.find("\"function_id\":\"")? + "\"function_id\":\"".len()..];
    Some(after[..after.find('"')?].to_owned())
}

/// `(id, median ns)` of every bench of `group`, in report order.
fn medians(group: &str) -> Vec<(String, f64)> {
    let dir = target_dir().join("criterion").join(group);
    let mut rows: Vec<(String, f64)> = fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let id = function_id(&e.path()).unwrap_or_else(|| e.file_name().to_string_lossy().into_owned());
            Some((id, median(&e.path().join("new").join("estimates.json"))?))
        })
        .collect();
    rows.sort_by_key(|(id, _)| (rank(id), id.clone()));
    rows
}

/// Tab-separated rows of a file the other bench binaries wrote.
fn tsv(name: &str) -> Vec<Vec<String>> {
    let text = fs::read_to_string(target_dir().join(name)).unwrap_or_default();
    text.lines().map(|l| l.split('\t').map(str::to_owned).collect()).collect()
}

fn lookup<'a>(rows: &'a [(String, f64)], id: &str) -> Option<&'a f64> {
    rows.iter().find(|(i, _)| i == id).map(|(_, v)| v)
}

/// A median in µs for the server groups' tables, with three decimals below 1 µs (a
/// memory hit beside the round trips).
fn micros(ns: f64) -> String {
    if ns < 1000.0 {
        format!("{:.3}", ns / 1000.0)
    } else {
        format!("{:.1}", ns / 1000.0)
    }
}

/// A median with its unit: ns below 1 µs, else µs.
fn duration(ns: f64) -> String {
    if ns < 1000.0 {
        format!("{ns:.0} ns")
    } else {
        format!("{:.1} µs", ns / 1000.0)
    }
}

fn main() {
    let date = std::env::var("BENCH_DATE").unwrap_or_else(|_| "(date not given)".into());
    let machine = std::env::var("BENCH_MACHINE").unwrap_or_else(|_| "(machine not given)".into());
    let mut md = String::new();
    let mut w = |s: String| md.push_str(&s);
    w(format!("# memo-alchemy benchmark report\n\n{date}, {machine}. One run; medians.\n"));
    w("Ratio: the peer's cost over ours (above 1: we are faster).\n".into());
    let mut all = Vec::new();
    for (group, title, threads) in GROUPS {
        let rows = medians(group);
        let ours = rows.first().filter(|(id, _)| id.starts_with("memo_alchemy")).map(|(_, ns)| *ns);
        w(format!("\n## {title}\n\n"));
        if threads {
            w("| | ns per call, per thread | Mops/s, both threads | ratio |\n|---|---:|---:|---:|\n".into());
        } else {
            w("| | median ns per call | ratio |\n|---|---:|---:|\n".into());
        }
        for (id, ns) in &rows {
            let ratio = ours.map_or(String::from("-"), |o| format!("{:.2}×", ns / o));
            if threads {
                w(format!("| {id} | {ns:.1} | {:.1} | {ratio} |\n", 2000.0 / ns));
            } else {
                let value =
                    if *ns > 10_000.0 { format!("{:.0} µs", ns / 1000.0) } else { format!("{ns:.1}") };
                w(format!("| {id} | {value} | {ratio} |\n"));
            }
        }
        all.push((group, rows));
    }

    let bytes = tsv("bench-bytes.tsv");
    w("\n## 5. Bytes per entry, 1,000,000 `u64 -> u64` entries (counting allocator)\n\n".into());
    w("| | bytes per entry |\n|---|---:|\n".into());
    for row in &bytes {
        if let [name, b] = &row[..] {
            w(format!("| {name} | {:.1} |\n", b.parse::<f64>().unwrap_or(f64::NAN)));
        }
    }

    let ratios = tsv("bench-hit-ratio.tsv");
    w("\n## Hit ratios (`benches/hit_ratio.rs`: 1,000,000 requests after 200,000 of warm-up)\n\n".into());
    w("| workload | capacity | memo_alchemy | true LRU | quick_cache | moka | vs best peer |\n".into());
    w("|---|---:|---:|---:|---:|---:|---:|\n".into());
    let ratio_of = |workload: &str, cap: &str, name: &str| {
        ratios
            .iter()
            .find(|r| r.len() == 4 && r[0] == workload && r[1] == cap && r[2] == name)
            .and_then(|r| r[3].parse::<f64>().ok())
    };
    let mut rows: Vec<(String, String)> = Vec::new();
    for r in ratios.iter().filter(|r| r.len() == 4) {
        if !rows.iter().any(|(w, c)| *w == r[0] && *c == r[1]) {
            rows.push((r[0].clone(), r[1].clone()));
        }
    }
    // Our distance to the best peer, per row (points; positive: ahead).
    let gaps: Vec<f64> = rows
        .iter()
        .filter_map(|(workload, cap)| {
            let ours = ratio_of(workload, cap, "memo_alchemy")?;
            let best =
                ["quick_cache", "moka"].iter().filter_map(|p| ratio_of(workload, cap, p)).fold(0.0, f64::max);
            Some((ours - best) * 100.0)
        })
        .collect();
    for ((workload, cap), gap) in rows.iter().zip(&gaps) {
        let cell =
            |name| ratio_of(workload, cap, name).map_or(String::from("-"), |r| format!("{:.2}%", r * 100.0));
        w(format!(
            "| {workload} | {cap} | {} | {} | {} | {} | {gap:+.2} points |\n",
            cell("memo_alchemy"),
            cell("true_lru"),
            cell("quick_cache"),
            cell("moka")
        ));
    }

    // The groups of a server the bench starts: its medians, or why there are none.
    let mut server_group = |group: &str, title: &str, needs: &str| {
        let rows = medians(group);
        w(format!("\n## {title}\n\n"));
        if rows.is_empty() {
            w(format!("Not run: `scripts/bench` runs it when {needs} is installed.\n"));
        } else {
            w("| | median µs per call |\n|---|---:|\n".into());
            for (id, ns) in &rows {
                w(format!("| {id} | {} |\n", micros(*ns)));
            }
        }
        rows
    };
    let redis = server_group(
        "redis",
        "6 and 7 (Redis). Redis (`benches/redis.rs`, a loopback redis-server)",
        "`redis-server`",
    );
    let postgres = server_group(
        "postgres",
        "Postgres (`benches/postgres.rs`, a loopback PostgreSQL)",
        "PostgreSQL (`initdb`)",
    );

    let redis_cluster = medians("redis_cluster");
    w("\n## Redis Cluster (`benches/redis.rs` on six loopback redis-servers, 3 primaries)\n\n".into());
    if redis_cluster.is_empty() {
        w("Not run: `scripts/bench` runs it when `redis-server` is installed.\n".into());
    } else {
        w("| | median µs per call | single server |\n|---|---:|---:|\n".into());
        for (id, ns) in &redis_cluster {
            let single = lookup(&redis, id).map_or(String::from("-"), |s| micros(*s));
            w(format!("| {id} | {} | {single} |\n", micros(*ns)));
        }
    }

    // Issue 17: the memory tier in front of json (`local = N`) beside a json hit and a
    // memory hit, and what `single_flight = "global"` adds to a miss (its lease).
    w("\n## Memory tier and global single-flight (issue 17)\n\n".into());
    w("Hits: a json function with `local = 1000` beside the plain json function and a memory \
       `#[cache]` of the same value; ratios are the tier's cost over the other's.\n\n"
        .into());
    w("| | hit memory | hit json local tier | hit json | local tier / memory | local tier / json |\n".into());
    w("|---|---:|---:|---:|---:|---:|\n".into());
    let cell = |v: Option<f64>| v.map_or(String::from("-"), duration);
    let ratio = |a: Option<f64>, b: Option<f64>| {
        a.zip(b).map_or(String::from("-"), |(a, b)| format!("{:.2}×", a / b))
    };
    for (rows, topology) in [(&redis, "Redis"), (&redis_cluster, "Redis Cluster")] {
        let memory = lookup(rows, "hit memory #[cache]").copied();
        let local = lookup(rows, "hit json local tier #[cache]").copied();
        let json = lookup(rows, "hit json #[cache]").copied();
        w(format!(
            "| {topology} | {} | {} | {} | {} | {} |\n",
            cell(memory),
            cell(local),
            cell(json),
            ratio(local, memory),
            ratio(local, json)
        ));
    }
    w("\nMisses: `single_flight = \"global\"` against the same function without it; the \
       overhead per miss is the difference of the medians.\n\n"
        .into());
    w("| | miss | miss, single_flight global | overhead per miss | ratio |\n".into());
    w("|---|---:|---:|---:|---:|\n".into());
    for (what, rows, plain_id, global_id) in [
        ("Redis, json", &redis, "miss json #[cache]", "miss json single_flight global #[cache]"),
        (
            "Redis Cluster, json",
            &redis_cluster,
            "miss json #[cache]",
            "miss json single_flight global #[cache]",
        ),
        ("Postgres", &postgres, "miss #[postgres_cache]", "miss #[postgres_cache] single_flight global"),
    ] {
        let plain = lookup(rows, plain_id).copied();
        let global = lookup(rows, global_id).copied();
        let overhead = plain.zip(global).map_or(String::from("-"), |(p, g)| {
            let sign = if g < p { "-" } else { "+" };
            format!("{sign}{}", duration((g - p).abs()))
        });
        w(format!(
            "| {what} | {} | {} | {overhead} | {} |\n",
            cell(plain),
            cell(global),
            ratio(global, plain)
        ));
    }

    // The targets, from the numbers above.
    let get = |group: &str, id: &str| {
        all.iter().find(|(g, _)| *g == group).and_then(|(_, r)| lookup(r, id).copied())
    };
    let hit = get("1_hit_u64", "memo_alchemy");
    let quick = get("1_hit_u64", "quick_cache");
    let cached = get("1_hit_u64", "cached");
    let mops = get("4_two_threads_90_hit", "memo_alchemy").map(|ns| 2000.0 / ns);
    let strict = get("2_hit_two_strings", "memo_alchemy_strict");
    let fast = get("2_hit_two_strings", "memo_alchemy_fast_keys");
    let ours_bytes = bytes
        .iter()
        .find(|r| r.first().is_some_and(|n| n == "memo_alchemy"))
        .and_then(|r| r.get(1)?.parse::<f64>().ok());
    let worst_ratio = gaps.iter().copied().fold(f64::INFINITY, f64::min);
    let verdict = |ok: Option<bool>| match ok {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not measured",
    };
    let f = |v: Option<f64>, unit: &str| v.map_or(String::from("-"), |v| format!("{v:.1}{unit}"));
    let r2 = |v: Option<f64>| v.map_or(String::from("-"), |v| format!("{v:.2}×"));
    w("\n## Targets\n\n| measure | target | measured | |\n|---|---|---:|---|\n".into());
    w(format!(
        "| single-thread hit | ≤ 8 ns (stretch) | {} | {} |\n",
        f(hit, " ns"),
        verdict(hit.map(|h| h <= 8.0))
    ));
    w(format!(
        "| single-thread hit | faster than quick_cache, ≥ 2× faster than cached | {} vs {} and {} | {} |\n",
        f(hit, " ns"),
        f(quick, " ns"),
        f(cached, " ns"),
        verdict(hit.zip(quick).zip(cached).map(|((h, q), c)| h < q && 2.0 * h <= c))
    ));
    w(format!(
        "| two threads, 90% hits | ≥ 40 Mops/s | {} | {} |\n",
        f(mops, " Mops/s"),
        verdict(mops.map(|m| m >= 40.0))
    ));
    let strict_ratio = strict.zip(fast).map(|(s, f)| s / f);
    w(format!(
        "| strict keys on the hit path | ≤ 1.2× non-strict | {} | {} |\n",
        r2(strict_ratio),
        verdict(strict_ratio.map(|r| r <= 1.2))
    ));
    w(format!(
        "| bytes per u64 → u64 entry | ≤ 55 | {} | {} |\n",
        f(ours_bytes, ""),
        verdict(ours_bytes.map(|b| b <= 55.0))
    ));
    let worst = worst_ratio.is_finite().then_some(worst_ratio);
    w(format!(
        "| hit ratio, every workload and capacity | at or past the best peer | {} | {} |\n",
        f(worst, " points (worst row)"),
        verdict(worst.map(|d| d >= 0.0))
    ));
    for (what, ours_id, raw_id, target) in [
        ("Redis hit, json", "hit json #[cache]", "hit raw GET + json decode", 1.10),
        ("Redis hit, pickle", "hit pickle #[cache]", "hit raw GET + json decode", 1.10),
        ("Redis miss, json", "miss json #[cache]", "miss raw GET + compute + SET PX", 1.2),
        ("Redis miss, pickle", "miss pickle #[cache]", "miss raw GET + compute + SET PX", 1.2),
    ] {
        for (rows, topology) in [(&redis, ""), (&redis_cluster, " (cluster)")] {
            let ratio = lookup(rows, ours_id).zip(lookup(rows, raw_id)).map(|(o, r)| o / r);
            w(format!(
                "| {what}{topology} | ≤ {target:.2}× raw | {} | {} |\n",
                r2(ratio),
                verdict(ratio.map(|r| r <= target))
            ));
        }
    }

    let hit = lookup(&postgres, "hit #[postgres_cache]")
        .zip(lookup(&postgres, "hit raw SELECT + decode (postgres, blocking)"))
        .map(|(o, r)| o / r);
    w(format!("| Postgres hit | ≤ 1.20× raw SELECT | {} | {} |\n", r2(hit), verdict(hit.map(|r| r <= 1.2))));

    let out = target_dir().join("bench-report.md");
    fs::write(&out, &md).expect("target/ is writable");
    println!("{md}\nwritten to {}", out.display());
}
