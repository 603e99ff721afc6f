//! A minimal HTTP endpoint for operations: `/metrics` (Prometheus), `/healthz` (the loop
//! is alive), `/readyz` (connected and consuming) and, when given one, the live
//! `/dashboard`. One thread, one request at a time: scrapes and probes are small and rare,
//! and the dashboard is cached between reads.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::dashboard::Live;
use crate::error::PipelineError;
use crate::metrics::Metrics;

/// Binds `address` and serves in a background thread; returns the bound address (so
/// that port 0 picks a free one).
pub fn spawn(
    address: &str,
    metrics: Arc<Metrics>,
    dashboard: Option<Live>,
) -> Result<SocketAddr, PipelineError> {
    let listener = TcpListener::bind(address).map_err(|e| PipelineError::Input {
        path: format!("the metrics address {address}"),
        error: e,
    })?;
    let bound = listener.local_addr().map_err(|e| PipelineError::Input {
        path: format!("the metrics address {address}"),
        error: e,
    })?;
    std::thread::Builder::new()
        .name("metrics".to_owned())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                // A client that misbehaves only loses its own answer.
                let _ = answer(stream, &metrics, dashboard.as_ref());
            }
        })
        .map_err(|e| PipelineError::Bug(format!("cannot start the metrics thread: {e}")))?;
    Ok(bound)
}

fn answer(stream: TcpStream, metrics: &Metrics, dashboard: Option<&Live>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // The rest of the head is read and ignored.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let (status, content_type, body) = match path {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
        "/healthz" if metrics.healthy() => ("200 OK", "text/plain", "ok\n".to_owned()),
        "/healthz" => (
            "503 Service Unavailable",
            "text/plain",
            "stalled\n".to_owned(),
        ),
        "/readyz" if metrics.ready() => ("200 OK", "text/plain", "ready\n".to_owned()),
        "/readyz" => (
            "503 Service Unavailable",
            "text/plain",
            "not ready\n".to_owned(),
        ),
        "/dashboard" => match dashboard.map(Live::page) {
            Some(Ok(page)) => ("200 OK", "text/html; charset=utf-8", page),
            Some(Err(e)) => (
                "500 Internal Server Error",
                "text/plain",
                format!("cannot read the KPIs: {e}\n"),
            ),
            None => (
                "404 Not Found",
                "text/plain",
                "no dashboard here\n".to_owned(),
            ),
        },
        _ => (
            "404 Not Found",
            "text/plain",
            "try /metrics, /healthz, /readyz or /dashboard\n".to_owned(),
        ),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
