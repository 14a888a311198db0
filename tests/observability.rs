//! What an operator sees from outside the process: metrics scraped in Prometheus text
//! and checked against `cache_stats()`, spans seen by a capturing subscriber, and
//! `health()` with Redis up, frozen and down (a real redis-server).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use memo_alchemy::{cache, distributed_memory_cache, json_cache, BreakerState};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use support::server;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// One test at a time: health probes and outages touch the shared server. The
/// recorder is installed first, so that it sees every call of every test.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    recorder();
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new().install_recorder().expect("the only recorder of this binary")
    })
}

/// The value of the sample `name{labels}` in Prometheus text, labels in any order.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        let wanted = labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        (metric == name && wanted).then(|| value.parse().ok())?
    })
}

#[cache(limit = 100)]
fn counted(x: u64) -> u64 {
    x + 1
}

#[json_cache(expire = 600)]
fn shared(x: u64) -> u64 {
    x * 3
}

#[test]
fn scraped_metrics_match_cache_stats() {
    let _serial = serial();
    server();
    let handle = recorder();
    for x in [1, 2, 3, 1, 2, 1] {
        counted(x);
    }
    shared::cache_clear().unwrap();
    for x in [10, 11, 10] {
        shared(x);
    }
    memo_alchemy::metrics::publish();
    let text = handle.render();
    for (path, backend, stats) in [
        ("observability::counted", "memory", counted::cache_stats()),
        ("observability::shared", "json", shared::cache_stats()),
    ] {
        let labels = [("function", path), ("backend", backend)];
        let get =
            |name| sample(&text, name, &labels).unwrap_or_else(|| panic!("{name} {labels:?} in\n{text}"));
        assert_eq!(get("memo_alchemy_hits_total"), stats.hits as f64);
        assert_eq!(get("memo_alchemy_misses_total"), stats.misses as f64);
        assert_eq!(get("memo_alchemy_errors_total"), stats.errors as f64);
        assert_eq!(get("memo_alchemy_body_seconds_count"), stats.misses as f64, "one body run per miss");
    }
    assert_eq!((counted::cache_stats().hits, counted::cache_stats().misses), (3, 3));
    let json = [("function", "observability::shared"), ("backend", "json")];
    // Other tests of this binary may have called `shared` too: compare with its counts.
    let stats = shared::cache_stats();
    assert!(stats.misses >= 2 && stats.hits >= 1, "{stats:?}");
    let lookups = sample(&text, "memo_alchemy_store_seconds_count", &[json[0], json[1], ("op", "get")]);
    assert_eq!(
        lookups,
        Some((stats.hits + stats.misses) as f64),
        "each call's lookup is one timed round trip"
    );
    let writes = sample(&text, "memo_alchemy_store_seconds_count", &[json[0], json[1], ("op", "put")]);
    assert_eq!(writes, Some(stats.misses as f64), "each miss's write too");
    let memory = [("function", "observability::counted")];
    assert_eq!(sample(&text, "memo_alchemy_store_seconds_count", &memory), None, "no round trip in memory");
}

/// Spans as a subscriber sees them: name and fields.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push_str(&format!(" {}={value}", field.name()));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        let mut fields = Fields(attrs.metadata().name().to_owned());
        attrs.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
}

impl Spans {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

static SPANNED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache]
fn spanned(x: u64) -> u64 {
    SPANNED_RUNS.fetch_add(1, SeqCst);
    x
}

#[json_cache(expire = 600)]
fn spanned_json(x: u64) -> u64 {
    x
}

#[test]
fn a_miss_and_each_round_trip_have_a_span_and_a_memory_hit_none() {
    let _serial = serial();
    server();
    spanned_json::cache_clear().unwrap();
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    tracing::subscriber::with_default(subscriber, || {
        spanned(1);
        let miss = spans.take();
        assert_eq!(
            miss,
            ["memo_alchemy.miss function=observability::spanned backend=memory otel.name=observability::spanned body"]
        );
        spanned(1);
        assert_eq!(spans.take(), Vec::<String>::new(), "no span on a memory hit");

        spanned_json(1);
        let path = "function=observability::spanned_json backend=json";
        assert_eq!(
            spans.take(),
            [
                format!("memo_alchemy.store {path} op=get otel.name=observability::spanned_json get"),
                format!("memo_alchemy.miss {path} otel.name=observability::spanned_json body"),
                format!("memo_alchemy.store {path} op=put otel.name=observability::spanned_json put"),
            ]
        );
        spanned_json(1);
        assert_eq!(
            spans.take(),
            [format!("memo_alchemy.store {path} op=get otel.name=observability::spanned_json get")],
            "a Redis hit is one round trip"
        );
    });
}

#[distributed_memory_cache]
fn nearby(x: u64) -> u64 {
    x
}

/// The health of the json kind's store (Redis), and how long `health()` took.
fn redis_health() -> (memo_alchemy::StoreHealth, Duration) {
    let started = Instant::now();
    let report = memo_alchemy::health();
    let took = started.elapsed();
    let json = report.stores.iter().find(|s| s.backend == "json").expect("json functions use Redis").clone();
    (json, took)
}

#[test]
fn health_reports_redis_up_frozen_and_down() {
    let _serial = serial();
    server();
    shared(1);
    shared(1);
    support::warm(|| nearby(1), || nearby::cache_stats().hits);

    let report = memo_alchemy::health();
    println!("{report}");
    assert!(report.is_healthy(), "{report}");
    let (up, _) = redis_health();
    assert!(up.reachable && up.latency.is_some() && up.error.is_none(), "{up:?}");
    assert_eq!(up.breaker, BreakerState::Closed);
    assert!(up.pool.is_some_and(|p| p.max > 0), "{up:?}");
    let bus = report.stores.iter().find(|s| s.backend == "distributed_memory").unwrap();
    assert_eq!(bus.subscribed, Some(true), "{bus:?}");
    let f = report.functions.iter().find(|f| f.path == "observability::shared").unwrap();
    assert!(f.hits >= 1 && f.hit_rate.is_some_and(|r| r > 0.0 && r < 1.0), "{f:?}");
    assert!(report.stores.iter().all(|s| s.backend != "memory"), "memory has no store to probe");

    server().pause();
    let (frozen, took) = redis_health();
    server().resume();
    println!("frozen: {frozen:?} in {took:?}");
    assert!(!frozen.reachable && frozen.error.is_some(), "{frozen:?}");
    assert!(took < Duration::from_secs(3), "a frozen server costs the probes' timeouts, not more: {took:?}");

    server().kill();
    let (down, _) = redis_health();
    assert!(!down.reachable, "{down:?}");
    assert!(!memo_alchemy::health().is_healthy());
    server().start();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (back, _) = redis_health();
        if back.reachable {
            assert_eq!(back.breaker, BreakerState::Closed, "the probe's success closed the breaker");
            break;
        }
        assert!(Instant::now() < deadline, "Redis never reported back: {back:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
