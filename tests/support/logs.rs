//! A tracing subscriber that keeps every event, to count and read log lines in tests.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// One event: its level and its message with every field, as `message k=v …`.
#[derive(Debug, Clone)]
pub struct Line {
    pub level: Level,
    pub text: String,
}

#[derive(Default)]
struct Capture(Arc<Mutex<Vec<Line>>>);

struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl Subscriber for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::INFO
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut text = Text(String::new());
        event.record(&mut text);
        self.0.lock().unwrap().push(Line { level: *event.metadata().level(), text: text.0 });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

static LINES: OnceLock<Arc<Mutex<Vec<Line>>>> = OnceLock::new();

/// Installs the capturing subscriber for the whole test process (once).
pub fn capture() {
    LINES.get_or_init(|| {
        let capture = Capture::default();
        let lines = Arc::clone(&capture.0);
        tracing::subscriber::set_global_default(capture).expect("no other subscriber is installed");
        lines
    });
}

/// The lines logged so far at `INFO` and above.
pub fn lines() -> Vec<Line> {
    LINES.get().map(|l| l.lock().unwrap().clone()).unwrap_or_default()
}
