//! The operations endpoint under hostile clients: a flood without a newline and a hundred
//! idle connections must neither delay `/healthz` nor grow the process's memory. Alone in
//! its test binary, so that the resident memory measured is the server's.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pipeline::metrics::Metrics;
use pipeline::serve::{self, Limits};

/// The answer's status code and how long it took.
fn get(address: SocketAddr, path: &str) -> (u16, Duration) {
    let began = Instant::now();
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, began.elapsed())
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn healthz_answers_within_a_second_and_memory_stays_flat_under_a_flood_and_idle_connections() {
    let metrics = Arc::new(Metrics::default());
    metrics.tick();
    let address = serve::spawn("127.0.0.1:0", metrics, None, Limits::default()).unwrap();
    assert_eq!(get(address, "/healthz").0, 200, "answers before the attack");
    let before = resident_bytes();

    let idle: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(address).unwrap())
        .collect();
    // One client sends 1 GiB without a newline: whenever the server cuts it off, it
    // connects again and goes on where it was.
    let flooding = Arc::new(AtomicBool::new(true));
    let flood = {
        let flooding = Arc::clone(&flooding);
        std::thread::spawn(move || {
            let chunk = vec![b'a'; 1 << 20];
            let (mut sent, mut connections) = (0u64, 0u64);
            while sent < 1 << 30 && flooding.load(Ordering::Relaxed) {
                let Ok(mut stream) = TcpStream::connect(address) else {
                    continue;
                };
                connections += 1;
                let _ = stream.write_all(b"GET /");
                while sent < 1 << 30 {
                    match stream.write(&chunk) {
                        Ok(n) => sent += n as u64,
                        Err(_) => break,
                    }
                }
            }
            (sent, connections)
        })
    };

    let mut slowest = Duration::ZERO;
    let probing = Instant::now();
    while probing.elapsed() < Duration::from_secs(5) {
        let (status, took) = get(address, "/healthz");
        assert_eq!(status, 200, "healthz during the flood");
        slowest = slowest.max(took);
        std::thread::sleep(Duration::from_millis(100));
    }
    let grown = resident_bytes().saturating_sub(before);
    flooding.store(false, Ordering::Relaxed);
    let (sent, connections) = flood.join().unwrap();
    drop(idle);
    eprintln!(
        "flood: {sent} bytes over {connections} connections; slowest healthz {slowest:?}; resident memory grew {grown} bytes"
    );
    assert!(sent > 0, "the flood sent nothing");
    assert!(
        slowest < Duration::from_secs(1),
        "healthz took {slowest:?} during the flood"
    );
    assert!(
        grown < 20 << 20,
        "resident memory grew by {grown} bytes during the flood"
    );
    assert_eq!(get(address, "/healthz").0, 200, "answers after the attack");
}
