//! `cargo xtask emulator`: the BigQuery API emulator installs offline from PyPI, answers
//! the REST API (datasets, scripts with MERGE, queries) and stops cleanly.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use xtask::emulator::{PROJECT, ScratchEmulator};

#[test]
fn the_emulator_runs_a_merge_script_and_answers_queries() {
    let scratch = ScratchEmulator::start("xtask-test").unwrap();
    let emulator = scratch.emulator();
    let (status, body) = emulator
        .call(
            "POST",
            &format!("/bigquery/v2/projects/{PROJECT}/datasets"),
            &format!(
                "{{\"datasetReference\":{{\"projectId\":\"{PROJECT}\",\"datasetId\":\"warehouse\"}}}}"
            ),
        )
        .unwrap();
    assert_eq!(status, 200, "{body}");
    emulator
        .query(
            "CREATE TABLE warehouse.t (k INT64 NOT NULL, v STRING);
             INSERT INTO warehouse.t VALUES (1, 'a');
             MERGE warehouse.t T USING (SELECT 1 AS k, 'b' AS v UNION ALL SELECT 2, 'c') S
             ON T.k = S.k
             WHEN MATCHED THEN UPDATE SET v = S.v
             WHEN NOT MATCHED THEN INSERT (k, v) VALUES (S.k, S.v)",
        )
        .unwrap();
    let rows = emulator
        .query("SELECT k, v FROM warehouse.t ORDER BY k")
        .unwrap();
    assert_eq!(
        rows["rows"],
        serde_json::json!([{"f": [{"v": "1"}, {"v": "b"}]}, {"f": [{"v": "2"}, {"v": "c"}]}])
    );
    let error = emulator.query("SELECT * FROM warehouse.nope").unwrap_err();
    assert!(error.to_string().contains("nope"), "{error}");
}
