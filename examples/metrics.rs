//! Serves memo-alchemy's metrics in Prometheus text (feature `metrics`), and the health
//! report, on a loopback port.
//!
//! ```sh
//! cargo run --example metrics --features metrics
//! curl -s http://127.0.0.1:9898/metrics | grep memo_alchemy
//! curl -s http://127.0.0.1:9898/health
//! ```
//!
//! `memo_alchemy::metrics::publish()` copies the functions' counters into the recorder
//! before each scrape; the histograms are recorded as the calls happen. With
//! `--once`, it serves one scrape and exits (how `examples/README.md` tries it).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use memo_alchemy::cache;
use metrics_exporter_prometheus::PrometheusBuilder;

#[cache(limit = 1000, expire = 60)]
fn price(item: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(2)); // a slow lookup
    item * 100
}

fn main() -> std::io::Result<()> {
    let handle = PrometheusBuilder::new().install_recorder().expect("no other recorder is installed");
    for item in [1, 2, 3, 1, 2, 1] {
        price(item);
    }
    let once = std::env::args().any(|a| a == "--once");
    let listener = TcpListener::bind(("127.0.0.1", if once { 0 } else { 9898 }))?;
    let address = listener.local_addr()?;
    println!("serving http://{address}/metrics and /health");
    if once {
        // Scrape ourselves once, as Prometheus would, and print what it got.
        let scraper = std::thread::spawn(move || -> std::io::Result<String> {
            let mut stream = std::net::TcpStream::connect(address)?;
            stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
            let mut body = String::new();
            std::io::Read::read_to_string(&mut stream, &mut body)?;
            Ok(body)
        });
        serve_one(&listener, &handle)?;
        let body = scraper.join().expect("the scraper ran")?;
        body.lines().filter(|l| l.starts_with("memo_alchemy_")).for_each(|l| println!("{l}"));
        return Ok(());
    }
    loop {
        serve_one(&listener, &handle)?;
    }
}

/// Answers one HTTP request: `/metrics` in Prometheus text, `/health` as text.
fn serve_one(
    listener: &TcpListener,
    handle: &metrics_exporter_prometheus::PrometheusHandle,
) -> std::io::Result<()> {
    let (mut stream, _) = listener.accept()?;
    let mut request = String::new();
    BufReader::new(&stream).read_line(&mut request)?;
    let body = if request.starts_with("GET /health") {
        memo_alchemy::health().to_string()
    } else {
        memo_alchemy::metrics::publish();
        handle.render()
    };
    write!(stream, "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\r\n{body}")
}
