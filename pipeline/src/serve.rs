//! The HTTP endpoint for operations: `/metrics` (OpenMetrics), `/healthz` (the loop is
//! alive), `/readyz` (connected, consuming and not retrying) and, when given one, the live
//! `/dashboard`. Served by hyper on a runtime thread of its own, with every client
//! bounded: see [`Limits`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;

use crate::dashboard::Live;
use crate::error::PipelineError;
use crate::metrics::Metrics;

/// What one client may cost. A connection over `connections` is closed at once rather
/// than queued, so a flood of idle sockets cannot delay a probe by more than the time
/// the idle ones take to time out.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at a time.
    pub connections: usize,
    /// Bytes a request head may take (hyper's read buffer: also the memory per client).
    pub head_bytes: usize,
    /// Time a client has to send a request head, from connecting or from the last
    /// response on a kept-alive connection.
    pub head_timeout: Duration,
    /// Time a connection may stay open in all, however busy.
    pub connection_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connections: 256,
            head_bytes: 16 * 1024,
            head_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(60),
        }
    }
}

/// Binds `address` and serves in a background thread; returns the bound address (so
/// that port 0 picks a free one).
pub fn spawn(
    address: &str,
    metrics: Arc<Metrics>,
    dashboard: Option<Live>,
    limits: Limits,
) -> Result<SocketAddr, PipelineError> {
    let bind_error = |error| PipelineError::Bind {
        address: address.to_owned(),
        error,
    };
    // Bound here rather than on the runtime, so that a taken port fails the start.
    let listener = std::net::TcpListener::bind(address).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| PipelineError::Bug(format!("cannot start the HTTP runtime: {e}")))?;
    let state = Arc::new(Shared {
        metrics,
        dashboard: dashboard.map(Arc::new),
    });
    std::thread::Builder::new()
        .name("http".to_owned())
        .spawn(move || runtime.block_on(serve(listener, state, limits)))
        .map_err(|e| PipelineError::Bug(format!("cannot start the HTTP thread: {e}")))?;
    Ok(bound)
}

#[derive(Debug)]
struct Shared {
    metrics: Arc<Metrics>,
    dashboard: Option<Arc<Live>>,
}

async fn serve(listener: std::net::TcpListener, state: Arc<Shared>, limits: Limits) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "cannot serve HTTP");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(limits.connections));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, most likely: wait for some to close.
                tracing::warn!(error = %e, "cannot accept an HTTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, std::convert::Infallible>(answer(&state, &request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.head_timeout)
                .max_buf_size(limits.head_bytes)
                .serve_connection(TokioIo::new(stream), service);
            // Whatever ends the connection (the client, a limit, the clock) only ends it.
            let _ = tokio::time::timeout(limits.connection_timeout, connection).await;
            drop(slot);
        });
    }
}

async fn answer(state: &Shared, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    let metrics = &state.metrics;
    match request.uri().path() {
        "/metrics" => {
            let mut response = text(StatusCode::OK, metrics.render());
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        "/healthz" if metrics.healthy() => text(StatusCode::OK, "ok\n"),
        "/healthz" => text(StatusCode::SERVICE_UNAVAILABLE, "stalled\n"),
        "/readyz" if metrics.ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/dashboard" => match &state.dashboard {
            Some(live) => {
                // Reading the KPIs is blocking DuckDB work: off the thread that answers
                // probes.
                let live = Arc::clone(live);
                match tokio::task::spawn_blocking(move || live.page()).await {
                    Ok(Ok(page)) => {
                        let mut response = text(StatusCode::OK, page);
                        response.headers_mut().insert(
                            CONTENT_TYPE,
                            HeaderValue::from_static("text/html; charset=utf-8"),
                        );
                        response
                    }
                    Ok(Err(e)) => text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("cannot read the KPIs: {e}\n"),
                    ),
                    Err(e) => text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("the dashboard failed: {e}\n"),
                    ),
                }
            }
            None => text(StatusCode::NOT_FOUND, "no dashboard here\n"),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "try /metrics, /healthz, /readyz or /dashboard\n",
        ),
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::io::{ErrorKind, Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    use super::*;

    /// Waits for the server to close `stream`: true when it did (end of stream or a
    /// reset), false when `within` passed first.
    fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
        stream.set_read_timeout(Some(within)).unwrap();
        let mut byte = [0; 1];
        match stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        }
    }

    #[test]
    fn a_slow_client_is_cut_off_and_connections_over_the_limit_are_closed_at_once() {
        let metrics = Arc::new(Metrics::default());
        metrics.tick();
        let limits = Limits {
            connections: 2,
            head_timeout: Duration::from_millis(500),
            ..Limits::default()
        };
        let address = spawn("127.0.0.1:0", metrics, None, limits).unwrap();
        let mut slow = TcpStream::connect(address).unwrap();
        let mut idle = TcpStream::connect(address).unwrap();
        // Both slots are taken once the server has accepted the two.
        std::thread::sleep(Duration::from_millis(200));
        let mut third = TcpStream::connect(address).unwrap();
        assert!(
            closed_within(&mut third, Duration::from_millis(400)),
            "a connection over the limit is closed at once"
        );
        let began = Instant::now();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
        assert!(
            closed_within(&mut slow, Duration::from_secs(3)),
            "a head that never ends is cut off"
        );
        assert!(
            began.elapsed() < Duration::from_secs(2),
            "{:?}",
            began.elapsed()
        );
        assert!(
            closed_within(&mut idle, Duration::from_secs(3)),
            "so is silence"
        );
        let mut probe = TcpStream::connect(address).unwrap();
        probe
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        probe.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[test]
    fn a_taken_address_is_a_bind_error_naming_it() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap().to_string();
        let error = spawn(&address, Arc::default(), None, Limits::default()).unwrap_err();
        assert!(matches!(error, PipelineError::Bind { .. }), "{error:?}");
        assert!(error.to_string().contains(&address), "{error}");
    }
}
