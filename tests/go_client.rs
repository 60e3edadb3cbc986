//! The official Go client (`client_golang/prometheus/push`) against the real server.
//!
//! `tests/go/pushclient` is built with Debian's Go from Debian's packaged client_golang
//! sources (`golang-go`, `golang-github-prometheus-client-golang-dev`) in GOPATH mode, so the
//! build needs no network and no module download. Each run of the program is one step
//! (`Push`, `Add`, `Delete`, …); between steps the test reads what the gateway stored through
//! the scrape and `/api/v1/metrics`. `.ci/run` installs both packages; under CI a missing one
//! fails the test, elsewhere the test says it is skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{samples, Gateway};
use serde_json::Value;

/// Where Debian's golang-github-prometheus-client-golang-dev puts the package we use.
const GOPATH: &str = "/usr/share/gocode";
const PUSH_PACKAGE: &str = "src/github.com/prometheus/client_golang/prometheus/push/push.go";

/// Builds `tests/go/pushclient` once per test binary; `None` when Go or the sources are
/// missing outside CI.
fn pushclient() -> Option<&'static Path> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let have_go = Command::new("go").arg("version").output().is_ok();
            let have_sources = Path::new(GOPATH).join(PUSH_PACKAGE).exists();
            if !have_go || !have_sources {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "Go or client_golang's sources are missing; .ci/run installs \
                     golang-go and golang-github-prometheus-client-golang-dev"
                );
                eprintln!(
                    "skipping: needs golang-go and golang-github-prometheus-client-golang-dev"
                );
                return None;
            }
            let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
            let binary = out_dir.join("go-pushclient");
            let output = Command::new("go")
                .args(["build", "-o"])
                .arg(&binary)
                .arg("./tests/go/pushclient")
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                // GOPATH mode against the packaged sources only: nothing is fetched.
                .env("GO111MODULE", "off")
                .env("GOPATH", GOPATH)
                .env("GOPROXY", "off")
                .env("GOFLAGS", "")
                .env("GOENV", "off")
                .env("CGO_ENABLED", "0")
                // Kept between runs, so only the first build compiles client_golang.
                .env("GOCACHE", out_dir.join("go-build-cache"))
                .output()
                .expect("run go build");
            assert!(
                output.status.success(),
                "go build failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            Some(binary)
        })
        .as_deref()
}

/// Runs one step of the Go program; `Ok` on success, `Err(stderr)` when the client
/// reported an error (exit status 3).
fn step(binary: &Path, gw: &Gateway, name: &str, auth: Option<(&str, &str)>) -> Result<(), String> {
    let mut command = Command::new(binary);
    command
        .arg(format!("-url=http://{}", gw.address))
        .arg(format!("-step={name}"));
    if let Some((user, password)) = auth {
        command
            .arg(format!("-user={user}"))
            .arg(format!("-password={password}"));
    }
    let output = command.output().expect("run pushclient");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    match output.status.code() {
        Some(0) => Ok(()),
        Some(3) => Err(stderr),
        other => panic!("pushclient step {name} ended with {other:?}: {stderr}"),
    }
}

/// The `/api/v1/metrics` group whose grouping key has `job`.
fn api_group(gw: &Gateway, job: &str) -> Option<Value> {
    let reply = gw.get("/api/v1/metrics");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer: Value = serde_json::from_str(&reply.body).expect("JSON");
    answer["data"]
        .as_array()
        .expect("data array")
        .iter()
        .find(|group| group["labels"]["job"] == job)
        .cloned()
}

/// A scrape line of the batch group: its grouping labels as the Go client writes its URL
/// (`path` and `empty` as base64, `instance` as `url.QueryEscape` wrote it: the `+` is kept,
/// as upstream keeps it) plus `extra`, sorted by name as the scrape sorts them, with `le` and
/// `quantile` last.
fn batch(name: &str, extra: &[(&str, &str)], value: &str) -> String {
    let mut labels = vec![
        ("empty", ""),
        ("instance", "host+1"),
        ("job", "go_batch"),
        ("path", "/var/tmp"),
    ];
    labels.extend_from_slice(extra);
    labels.sort_by_key(|(name, _)| (matches!(*name, "le" | "quantile"), *name));
    let labels: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{name}=\"{value}\""))
        .collect();
    format!("{name}{{{}}} {value}", labels.join(","))
}

#[test]
fn push_add_and_delete_from_the_go_client() {
    let Some(binary) = pushclient() else { return };
    let gw = Gateway::start(&[]);

    // Push (PUT, protobuf): counters, a gauge, a histogram and a summary.
    step(binary, &gw, "push", None).expect("Push");
    let group = api_group(&gw, "go_batch").expect("batch group stored");
    assert_eq!(
        group["labels"],
        serde_json::json!({"job": "go_batch", "path": "/var/tmp", "empty": "", "instance": "host+1"})
    );
    assert_eq!(group["last_push_successful"], true);
    assert_eq!(group["go_records_processed_total"]["type"], "COUNTER");
    assert_eq!(
        group["go_records_processed_total"]["help"],
        "Records processed by the batch job."
    );
    assert_eq!(group["go_job_duration_seconds"]["type"], "HISTOGRAM");
    assert_eq!(group["go_request_latency_seconds"]["type"], "SUMMARY");
    assert!(
        api_group(&gw, "nightly/backup").is_some(),
        "job@base64 group"
    );

    let scrape = gw.scrape();
    assert_eq!(
        samples(&scrape, "go_records_processed_total"),
        vec![
            batch("go_records_processed_total", &[("kind", "insert")], "7"),
            batch("go_records_processed_total", &[("kind", "update")], "2.5"),
        ]
    );
    assert_eq!(
        samples(&scrape, "go_last_success_timestamp_seconds"),
        vec![batch("go_last_success_timestamp_seconds", &[], "1.7e+09")]
    );
    assert_eq!(
        samples(&scrape, "go_job_duration_seconds_bucket"),
        vec![
            batch("go_job_duration_seconds_bucket", &[("le", "0.1")], "1"),
            batch("go_job_duration_seconds_bucket", &[("le", "1")], "3"),
            batch("go_job_duration_seconds_bucket", &[("le", "10")], "4"),
            batch("go_job_duration_seconds_bucket", &[("le", "+Inf")], "5"),
        ]
    );
    assert_eq!(
        samples(&scrape, "go_job_duration_seconds_sum"),
        vec![batch("go_job_duration_seconds_sum", &[], "34.25")]
    );
    assert_eq!(
        samples(&scrape, "go_request_latency_seconds"),
        vec![batch(
            "go_request_latency_seconds",
            &[("quantile", "0.5")],
            "2"
        )]
    );
    assert_eq!(
        samples(&scrape, "go_backup_size_bytes"),
        vec![r#"go_backup_size_bytes{instance="",job="nightly/backup"} 1.23456789e+08"#]
    );

    // Add (POST): the pushed families are replaced, the others stay.
    step(binary, &gw, "add", None).expect("Add");
    let scrape = gw.scrape();
    assert_eq!(
        samples(&scrape, "go_records_processed_total"),
        vec![batch(
            "go_records_processed_total",
            &[("kind", "insert")],
            "10"
        )]
    );
    assert_eq!(
        samples(&scrape, "go_records_written"),
        vec![batch("go_records_written", &[], "42")]
    );
    assert_eq!(samples(&scrape, "go_job_duration_seconds_count").len(), 1);
    assert_eq!(
        samples(&scrape, "go_last_success_timestamp_seconds").len(),
        1
    );

    // A type clash reaches the client as its error, with the gateway's reason.
    let refused = step(binary, &gw, "clash", None).expect_err("clash refused");
    assert!(refused.contains("unexpected status code 400"), "{refused}");
    assert!(
        refused.contains("\"go_records_processed_total\" is pushed as GAUGE"),
        "{refused}"
    );

    // Push (PUT) again: the group now holds only what was pushed.
    step(binary, &gw, "replace", None).expect("Push");
    let scrape = gw.scrape();
    assert_eq!(
        samples(&scrape, "go_records_written"),
        vec![batch("go_records_written", &[], "1")]
    );
    for gone in [
        "go_records_processed_total",
        "go_job_duration_seconds_count",
        "go_request_latency_seconds_count",
        "go_last_success_timestamp_seconds",
    ] {
        assert!(samples(&scrape, gone).is_empty(), "{gone} survived a PUT");
    }

    // Delete: the client accepts only 202; the other groups stay.
    step(binary, &gw, "delete", None).expect("Delete");
    assert!(api_group(&gw, "go_batch").is_none(), "batch group deleted");
    assert!(api_group(&gw, "nightly/backup").is_some());
    // Deleting a group that is not there is fine too.
    step(binary, &gw, "delete", None).expect("Delete again");
}

#[test]
fn the_go_client_pushes_with_basic_auth() {
    let Some(binary) = pushclient() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("web.yml");
    let hash = bcrypt::hash("wonderland", 4).expect("bcrypt");
    std::fs::write(&config, format!("basic_auth_users:\n  alice: '{hash}'\n")).unwrap();
    let gw = Gateway::start(&[&format!("--web.config.file={}", config.display())]);

    let refused = step(binary, &gw, "push", None).expect_err("no credentials");
    assert!(refused.contains("unexpected status code 401"), "{refused}");
    let refused = step(binary, &gw, "push", Some(("alice", "wrong"))).expect_err("bad password");
    assert!(refused.contains("unexpected status code 401"), "{refused}");

    let alice = Some(("alice", "wonderland"));
    step(binary, &gw, "push", alice).expect("Push with basic auth");
    let client = reqwest::blocking::Client::new();
    let scrape = client
        .get(gw.url("/metrics"))
        .basic_auth("alice", Some("wonderland"))
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.text())
        .expect("scrape with credentials");
    assert_eq!(
        samples(&scrape, "go_records_processed_total").len(),
        2,
        "{scrape}"
    );
    step(binary, &gw, "delete", alice).expect("Delete with basic auth");
    let scrape = client
        .get(gw.url("/metrics"))
        .basic_auth("alice", Some("wonderland"))
        .send()
        .and_then(|r| r.text())
        .unwrap();
    assert!(samples(&scrape, "go_records_processed_total").is_empty());
}
