//! Health, readiness, quit, route prefix, telemetry path, the gateway's own metrics, the
//! unchecked mode, and the command line.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{samples, Gateway};

#[test]
fn healthy_and_ready_answer_ok() {
    let gw = Gateway::start(&[]);
    for path in ["/-/healthy", "/-/ready"] {
        let reply = gw.get(path);
        assert_eq!((reply.status, reply.body.as_str()), (200, "OK"), "{path}");
    }
}

#[test]
fn quit_needs_the_lifecycle_flag() {
    let gw = Gateway::start(&[]);
    let reply = gw.put("/-/quit", "");
    assert_eq!(reply.status, 403);
    assert!(reply.body.contains("Lifecycle API is not enabled"));
    let reply = gw.get("/-/quit");
    assert_eq!(reply.status, 405);
    assert!(reply.body.contains("Only POST or PUT requests allowed"));
    assert_eq!(gw.get("/-/healthy").status, 200);
}

#[test]
fn quit_with_the_lifecycle_flag_stops_the_process() {
    let mut gw = Gateway::start(&["--web.enable-lifecycle"]);
    let reply = gw.post("/-/quit", "");
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("Goodbye"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = gw.try_wait() {
            assert!(status.success(), "exit status {status:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gateway still running after /-/quit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn route_prefix_moves_every_route() {
    let gw = Gateway::start(&["--web.route-prefix=/pfx"]);
    assert_eq!(gw.put("/pfx/metrics/job/j", "m 1\n").status, 200);
    let reply = gw.get("/pfx/metrics");
    assert_eq!(reply.status, 200);
    assert_eq!(
        samples(&reply.body, "m"),
        vec!["m{instance=\"\",job=\"j\"} 1"]
    );
    assert_eq!(gw.get("/pfx/-/healthy").status, 200);
    assert_eq!(gw.get("/metrics").status, 404);
    assert_eq!(gw.put("/metrics/job/j", "m 1\n").status, 404);
    // Like upstream, GET /-/quit is also answered outside the prefix.
    assert_eq!(gw.get("/-/quit").status, 405);
}

#[test]
fn external_url_path_becomes_the_route_prefix() {
    let gw = Gateway::start(&["--web.external-url=http://gateway.example:9091/gw/"]);
    assert_eq!(gw.get("/gw/-/ready").status, 200);
    assert_eq!(gw.get("/-/ready").status, 404);
}

#[test]
fn telemetry_path_can_move() {
    let gw = Gateway::start(&["--web.telemetry-path=/scrape-me"]);
    assert_eq!(gw.put("/metrics/job/j", "m 1\n").status, 200);
    let reply = gw.get("/scrape-me");
    assert_eq!(reply.status, 200);
    assert_eq!(samples(&reply.body, "m").len(), 1);
    assert_eq!(gw.get("/metrics").status, 404);
}

#[test]
fn own_metrics_count_requests_and_pushes() {
    let gw = Gateway::start(&[]);
    assert_eq!(gw.put("/metrics/job/j", "m 1\n").status, 200);
    assert_eq!(gw.put("/metrics/job/j", "m 1 5\n").status, 400);
    assert_eq!(gw.post("/metrics/job/j", "m 2\n").status, 200);
    assert_eq!(gw.delete("/metrics/job/j").status, 202);
    assert_eq!(gw.get("/-/healthy").status, 200);
    let reply = gw.get("/metrics");
    assert_eq!(
        reply.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let scrape = reply.body;
    let requests = samples(&scrape, "pushgateway_http_requests_total");
    for expected in [
        "pushgateway_http_requests_total{code=\"200\",handler=\"push\",method=\"put\"} 1",
        "pushgateway_http_requests_total{code=\"400\",handler=\"push\",method=\"put\"} 1",
        "pushgateway_http_requests_total{code=\"200\",handler=\"push\",method=\"post\"} 1",
        "pushgateway_http_requests_total{code=\"202\",handler=\"delete\",method=\"delete\"} 1",
        "pushgateway_http_requests_total{code=\"200\",handler=\"healthy\",method=\"get\"} 1",
    ] {
        assert!(
            requests.iter().any(|l| l == expected),
            "{expected} not in {requests:#?}"
        );
    }
    assert_eq!(
        samples(&scrape, "pushgateway_http_push_duration_seconds_count"),
        vec![
            "pushgateway_http_push_duration_seconds_count{method=\"post\"} 1",
            "pushgateway_http_push_duration_seconds_count{method=\"put\"} 2",
        ]
    );
    assert_eq!(
        samples(&scrape, "pushgateway_http_push_size_bytes_count").len(),
        2
    );
    assert_eq!(samples(&scrape, "pushgateway_build_info").len(), 1);
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "process_open_fds",
    ] {
        assert_eq!(samples(&scrape, name).len(), 1, "{name}");
    }
}

#[test]
fn scrape_is_gzipped_when_asked() {
    use std::io::Read;
    let gw = Gateway::start(&[]);
    assert_eq!(gw.put("/metrics/job/j", "m 1\n").status, 200);
    let client = reqwest::blocking::Client::new();
    let response = client
        .get(gw.url("/metrics"))
        .header("Accept-Encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(response.headers().get("content-encoding").unwrap(), "gzip");
    let compressed = response.bytes().unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(samples(&text, "m"), vec!["m{instance=\"\",job=\"j\"} 1"]);
}

#[test]
fn unchecked_mode_answers_202_and_an_inconsistent_store_fails_scrapes_until_mended() {
    let gw = Gateway::start(&["--push.disable-consistency-check"]);
    assert_eq!(
        gw.put("/metrics/job/a", "# TYPE m counter\nm 1\n").status,
        202
    );
    assert_eq!(
        gw.put("/metrics/job/b", "# TYPE m gauge\nm 1\n").status,
        202
    );
    let reply = gw.get("/metrics");
    assert_eq!(reply.status, 500);
    assert!(reply.body.contains("\"m\""), "{}", reply.body);
    // Timestamps are still refused.
    assert_eq!(gw.put("/metrics/job/c", "t 1 5\n").status, 400);
    assert_eq!(gw.delete("/metrics/job/b").status, 202);
    assert_eq!(gw.get("/metrics").status, 200);
}

#[test]
fn version_goes_to_stdout() {
    let output = Command::new(env!("CARGO_BIN_EXE_pushgateway"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.starts_with(&format!(
            "pushgateway, version {}",
            env!("CARGO_PKG_VERSION")
        )),
        "{stdout}"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_pushgateway"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--web.listen-address",
        "--web.telemetry-path",
        "--persistence.file",
        "--push.disable-consistency-check",
        "--log.format",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn unknown_flag_values_are_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_pushgateway"))
        .arg("--log.format=xml")
        .output()
        .unwrap();
    assert!(!output.status.success());
}
