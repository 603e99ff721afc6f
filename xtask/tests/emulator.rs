//! `cargo xtask emulator`: the BigQuery API emulator installs offline from PyPI, answers
//! the REST API (datasets, scripts with MERGE, queries) and stops cleanly.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};

use xtask::emulator::{PROJECT, ScratchEmulator};

/// One REST call: (status code, body).
fn call(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        status,
        response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned(),
    )
}

#[test]
fn the_emulator_runs_a_merge_script_and_answers_queries() {
    let scratch = ScratchEmulator::start("xtask-test").unwrap();
    let port = scratch.emulator().port;
    let base = format!("/bigquery/v2/projects/{PROJECT}");
    let (status, body) = call(
        port,
        "POST",
        &format!("{base}/datasets"),
        &format!(
            "{{\"datasetReference\":{{\"projectId\":\"{PROJECT}\",\"datasetId\":\"warehouse\"}}}}"
        ),
    );
    assert_eq!(status, 200, "{body}");
    let query = |sql: &str| {
        let body = serde_json::json!({"query": sql, "useLegacySql": false}).to_string();
        call(port, "POST", &format!("{base}/queries"), &body)
    };
    let (status, body) = query(
        "CREATE TABLE warehouse.t (k INT64 NOT NULL, v STRING);
         INSERT INTO warehouse.t VALUES (1, 'a');
         MERGE warehouse.t T USING (SELECT 1 AS k, 'b' AS v UNION ALL SELECT 2, 'c') S
         ON T.k = S.k
         WHEN MATCHED THEN UPDATE SET v = S.v
         WHEN NOT MATCHED THEN INSERT (k, v) VALUES (S.k, S.v)",
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = query("SELECT k, v FROM warehouse.t ORDER BY k");
    assert_eq!(status, 200, "{body}");
    let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        rows["rows"],
        serde_json::json!([{"f": [{"v": "1"}, {"v": "b"}]}, {"f": [{"v": "2"}, {"v": "c"}]}])
    );
}
