//! What a cached function shows outside the process: `tracing` spans around each miss's
//! body and each round trip to a network store, the same as histograms through the
//! `metrics` facade (feature `metrics`), and its counters published as metrics
//! ([`publish_metrics`]).
//!
//! Nothing here runs on a hit of an in-process store: the handle calls it only for a
//! miss's body and for stores whose lookups wait on I/O
//! ([`Backend::GET_AT_ONCE`](crate::Backend::GET_AT_ONCE) is `false`). The counters
//! are not recorded per call either: [`publish_metrics`] copies the stats the handles
//! already keep, when an exporter is about to be scraped.

use std::future::Future;
#[cfg(feature = "metrics")]
use std::time::Instant;

use tracing::{Instrument, Span};

use crate::CachedFunction;

/// What is observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The body of a miss.
    Body,
    /// A lookup in a network store.
    Get,
    /// A write to a network store.
    Put,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Body => "body",
            Step::Get => "get",
            Step::Put => "put",
        }
    }
}

/// The span of `step` of `function`: `memo_alchemy.miss` for a body, `memo_alchemy.store`
/// for a round trip, each with the function's path, its backend and (for OpenTelemetry
/// subscribers, which name spans after it) `otel.name`, such as `app::profile get`.
pub(crate) fn span(function: &CachedFunction, step: Step) -> Span {
    // The fields (and `otel.name`'s allocation) are evaluated only when a subscriber
    // wants the span: without one, a miss pays nothing here but the check.
    let (path, backend) = (function.path(), function.backend());
    match step {
        Step::Body => tracing::info_span!(
            "memo_alchemy.miss",
            function = path,
            backend,
            "otel.name" = format!("{path} {}", step.name())
        ),
        Step::Get | Step::Put => tracing::info_span!(
            "memo_alchemy.store",
            function = path,
            backend,
            op = step.name(),
            "otel.name" = format!("{path} {}", step.name())
        ),
    }
}

/// Runs `f` as `step` of `function`: in its span, timed into its histogram.
pub(crate) fn observed<T>(function: &CachedFunction, step: Step, f: impl FnOnce() -> T) -> T {
    #[cfg(feature = "metrics")]
    let started = Instant::now();
    let result = span(function, step).in_scope(f);
    #[cfg(feature = "metrics")]
    record(function, step, started);
    result
}

/// [`observed`] for a future: the span is entered on each poll.
pub(crate) async fn observed_async<F: Future>(function: &CachedFunction, step: Step, future: F) -> F::Output {
    #[cfg(feature = "metrics")]
    let started = Instant::now();
    let output = future.instrument(span(function, step)).await;
    #[cfg(feature = "metrics")]
    record(function, step, started);
    output
}

/// Records the time since `started` in `step`'s histogram (without the `metrics`
/// feature, nothing is timed).
#[cfg(feature = "metrics")]
fn record(function: &CachedFunction, step: Step, started: Instant) {
    let seconds = started.elapsed().as_secs_f64();
    let (path, backend) = (function.path().to_owned(), function.backend());
    match step {
        Step::Body => {
            metrics::histogram!("memo_alchemy_body_seconds", "function" => path, "backend" => backend)
                .record(seconds);
        }
        Step::Get | Step::Put => {
            metrics::histogram!(
                "memo_alchemy_store_seconds",
                "function" => path,
                "backend" => backend,
                "op" => step.name()
            )
            .record(seconds);
        }
    }
}

/// Copies every opened function's counters ([`CachedFunction::stats`]) into the
/// `metrics` recorder as absolute counters, labelled `function` and `backend`:
/// `memo_alchemy_hits_total`, `memo_alchemy_misses_total`,
/// `memo_alchemy_stale_hits_total`, `memo_alchemy_refreshes_total`,
/// `memo_alchemy_errors_total`, `memo_alchemy_evictions_total`,
/// `memo_alchemy_expirations_total`, and the gauge `memo_alchemy_entries`. Call it
/// before each scrape (or on a timer): the hit path records nothing itself.
///
/// ```
/// #[memo_alchemy::cache]
/// fn double(x: u64) -> u64 {
///     x * 2
/// }
///
/// fn main() {
///     double(1);
///     memo_core::publish_metrics(); // a no-op without an installed recorder
/// }
/// ```
#[cfg(feature = "metrics")]
pub fn publish_metrics() {
    for function in crate::registry() {
        if function.controls().is_empty() {
            continue; // never called here: nothing to report
        }
        let stats = function.stats();
        let (path, backend) = (function.path().to_owned(), function.backend());
        let counters = [
            ("memo_alchemy_hits_total", stats.hits),
            ("memo_alchemy_misses_total", stats.misses),
            ("memo_alchemy_stale_hits_total", stats.stale_hits),
            ("memo_alchemy_refreshes_total", stats.refreshes),
            ("memo_alchemy_errors_total", stats.errors),
            ("memo_alchemy_evictions_total", stats.evictions),
            ("memo_alchemy_expirations_total", stats.expirations),
        ];
        for (name, value) in counters {
            metrics::counter!(name, "function" => path.clone(), "backend" => backend).absolute(value);
        }
        if let Some(len) = stats.len {
            #[allow(clippy::cast_precision_loss)] // entry counts are far below 2^52
            metrics::gauge!("memo_alchemy_entries", "function" => path, "backend" => backend).set(len as f64);
        }
    }
}
