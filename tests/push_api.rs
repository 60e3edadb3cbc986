//! End-to-end tests of the push API (PUT, POST, DELETE) over real HTTP against the binary.

mod common;

use common::{samples, Gateway};

const README_BODY: &str = "# TYPE some_metric counter\nsome_metric{label=\"val1\"} 42\n# TYPE another_metric gauge\n# HELP another_metric Just an example.\nanother_metric 2398.283\n";

#[test]
fn put_stores_group_with_grouping_labels_instance_and_push_times() {
    let gw = Gateway::start(&[]);
    let reply = gw.put("/metrics/job/some_job", "some_metric 3.14\n");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let scrape = gw.scrape();
    assert_eq!(
        samples(&scrape, "some_metric"),
        vec!["some_metric{instance=\"\",job=\"some_job\"} 3.14"]
    );
    assert!(scrape.contains("# TYPE some_metric untyped\n"));
    let push_time = samples(&scrape, "push_time_seconds");
    assert_eq!(push_time.len(), 1);
    let value: f64 = push_time[0].rsplit(' ').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - value).abs() < 60.0,
        "push time {value} is not now ({now})"
    );
    assert_eq!(
        samples(&scrape, "push_failure_time_seconds"),
        vec!["push_failure_time_seconds{instance=\"\",job=\"some_job\"} 0"]
    );
    assert!(scrape.contains(
        "# HELP push_time_seconds Last Unix time when changing this group in the Pushgateway succeeded.\n# TYPE push_time_seconds gauge\n"
    ));
}

#[test]
fn readme_example_with_instance() {
    let gw = Gateway::start(&[]);
    let reply = gw.request_with(
        "POST",
        "/metrics/job/some_job/instance/some_instance",
        README_BODY.as_bytes().to_vec(),
        &[("Content-Type", "application/x-www-form-urlencoded")],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let scrape = gw.scrape();
    assert!(scrape.contains(
        "# HELP another_metric Just an example.\n# TYPE another_metric gauge\nanother_metric{instance=\"some_instance\",job=\"some_job\"} 2398.283\n"
    ), "{scrape}");
    assert!(scrape.contains(
        "# TYPE some_metric counter\nsome_metric{instance=\"some_instance\",job=\"some_job\",label=\"val1\"} 42\n"
    ), "{scrape}");
}

#[test]
fn put_replaces_the_group_and_post_only_same_names() {
    let gw = Gateway::start(&[]);
    assert_eq!(gw.put("/metrics/job/j", "a 1\nb 2\n").status, 200);
    assert_eq!(gw.post("/metrics/job/j", "a 10\nc 3\n").status, 200);
    let scrape = gw.scrape();
    assert_eq!(samples(&scrape, "a"), vec!["a{instance=\"\",job=\"j\"} 10"]);
    assert_eq!(samples(&scrape, "b"), vec!["b{instance=\"\",job=\"j\"} 2"]);
    assert_eq!(samples(&scrape, "c"), vec!["c{instance=\"\",job=\"j\"} 3"]);
    // POST replaces the whole family, not single series.
    assert_eq!(
        gw.put("/metrics/job/j", "a{x=\"1\"} 1\na{x=\"2\"} 2\n")
            .status,
        200
    );
    assert_eq!(gw.post("/metrics/job/j", "a{x=\"3\"} 3\n").status, 200);
    assert_eq!(
        samples(&gw.scrape(), "a"),
        vec!["a{instance=\"\",job=\"j\",x=\"3\"} 3"]
    );
    // PUT drops every family not in the body.
    assert_eq!(gw.put("/metrics/job/j", "d 4\n").status, 200);
    let scrape = gw.scrape();
    assert!(
        samples(&scrape, "a").is_empty()
            && samples(&scrape, "b").is_empty()
            && samples(&scrape, "c").is_empty()
    );
    assert_eq!(samples(&scrape, "d"), vec!["d{instance=\"\",job=\"j\"} 4"]);
}

#[test]
fn delete_removes_the_group_and_answers_202_even_when_absent() {
    let gw = Gateway::start(&[]);
    assert_eq!(gw.put("/metrics/job/j/instance/i", "a 1\n").status, 200);
    assert_eq!(gw.put("/metrics/job/j", "a 2\n").status, 200);
    let reply = gw.delete("/metrics/job/j/instance/i");
    assert_eq!(reply.status, 202);
    let scrape = gw.scrape();
    assert_eq!(samples(&scrape, "a"), vec!["a{instance=\"\",job=\"j\"} 2"]);
    assert_eq!(samples(&scrape, "push_time_seconds").len(), 1);
    assert_eq!(gw.delete("/metrics/job/never_pushed").status, 202);
    // A Content-Type on DELETE (the Python client sends one) is fine.
    let reply = gw.request_with(
        "DELETE",
        "/metrics/job/j",
        Vec::new(),
        &[("Content-Type", "text/plain; version=0.0.4")],
    );
    assert_eq!(reply.status, 202);
    assert!(samples(&gw.scrape(), "push_time_seconds").is_empty());
}

#[test]
fn other_methods_on_a_push_path_are_405() {
    let gw = Gateway::start(&[]);
    for method in ["GET", "PATCH"] {
        let reply = gw.request(method, "/metrics/job/j", "");
        assert_eq!(reply.status, 405, "{method}");
    }
}

#[test]
fn empty_put_keeps_only_time_gauges_and_empty_post_only_updates_time() {
    let gw = Gateway::start(&[]);
    assert_eq!(gw.put("/metrics/job/j", "a 1\n").status, 200);
    let first = samples(&gw.scrape(), "push_time_seconds");
    assert_eq!(gw.post("/metrics/job/j", "").status, 200);
    let scrape = gw.scrape();
    assert_eq!(samples(&scrape, "a").len(), 1);
    assert_ne!(
        samples(&scrape, "push_time_seconds"),
        first,
        "empty POST must update push time"
    );
    assert_eq!(gw.put("/metrics/job/j", "").status, 200);
    let scrape = gw.scrape();
    assert!(samples(&scrape, "a").is_empty());
    assert_eq!(samples(&scrape, "push_time_seconds").len(), 1);
    assert_eq!(samples(&scrape, "push_failure_time_seconds").len(), 1);
}

#[test]
fn base64_path_segments() {
    let gw = Gateway::start(&[]);
    // job "a/b" (YS9i), label path="/var/tmp" (L3Zhci90bXA), empty value, extra padding.
    let reply = gw.put(
        "/metrics/job@base64/YS9i/path@base64/L3Zhci90bXA=/empty@base64/=/pad@base64/YWI===",
        "m 1\n",
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        samples(&gw.scrape(), "m"),
        vec!["m{empty=\"\",instance=\"\",job=\"a/b\",pad=\"ab\",path=\"/var/tmp\"} 1"]
    );
    // The same group is addressed without padding and deleted.
    assert_eq!(
        gw.delete("/metrics/job@base64/YS9i/path@base64/L3Zhci90bXA/empty@base64/=/pad@base64/YWI")
            .status,
        202
    );
    assert!(samples(&gw.scrape(), "m").is_empty());
}

#[test]
fn literal_plus_stays_and_percent_encoding_is_decoded() {
    let gw = Gateway::start(&[]);
    assert_eq!(
        gw.put("/metrics/job/a+b/x/with%20space", "m 1\n").status,
        200
    );
    assert_eq!(
        samples(&gw.scrape(), "m"),
        vec!["m{instance=\"\",job=\"a+b\",x=\"with space\"} 1"]
    );
    // %2F becomes a path separator, which leaves an odd number of components.
    let reply = gw.put("/metrics/job/j/x/a%2Fb", "m 1\n");
    assert_eq!(reply.status, 400);
    assert!(
        reply.body.contains("odd number of components"),
        "{}",
        reply.body
    );
}

#[test]
fn body_labels_named_in_the_grouping_key_are_overwritten() {
    let gw = Gateway::start(&[]);
    let reply = gw.put(
        "/metrics/job/j/instance/i1",
        "m{job=\"other\",instance=\"i2\",x=\"y\"} 1\n",
    );
    assert_eq!(reply.status, 200);
    assert_eq!(
        samples(&gw.scrape(), "m"),
        vec!["m{instance=\"i1\",job=\"j\",x=\"y\"} 1"]
    );
    // Without instance in the key, a body instance label is kept.
    assert_eq!(
        gw.put("/metrics/job/k", "n{instance=\"i2\"} 1\n").status,
        200
    );
    assert_eq!(
        samples(&gw.scrape(), "n"),
        vec!["n{instance=\"i2\",job=\"k\"} 1"]
    );
}

#[test]
fn histograms_and_summaries_round_trip_through_the_scrape() {
    let gw = Gateway::start(&[]);
    let body = "# HELP h A histogram.\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"1.0\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_sum 4.5\nh_count 3\n# TYPE s summary\ns{quantile=\"0.5\"} 0.1\ns{quantile=\"0.99\"} NaN\ns_sum 1e+06\ns_count 7\n";
    let reply = gw.put("/metrics/job/j", body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let scrape = gw.scrape();
    assert!(scrape.contains(
        "# HELP h A histogram.\n# TYPE h histogram\nh_bucket{instance=\"\",job=\"j\",le=\"0.5\"} 1\nh_bucket{instance=\"\",job=\"j\",le=\"1\"} 2\nh_bucket{instance=\"\",job=\"j\",le=\"+Inf\"} 3\nh_sum{instance=\"\",job=\"j\"} 4.5\nh_count{instance=\"\",job=\"j\"} 3\n"
    ), "{scrape}");
    assert!(scrape.contains(
        "# TYPE s summary\ns{instance=\"\",job=\"j\",quantile=\"0.5\"} 0.1\ns{instance=\"\",job=\"j\",quantile=\"0.99\"} NaN\ns_sum{instance=\"\",job=\"j\"} 1e+06\ns_count{instance=\"\",job=\"j\"} 7\n"
    ), "{scrape}");
}

#[test]
fn families_merge_across_groups_sorted_with_deterministic_help() {
    let gw = Gateway::start(&[]);
    assert_eq!(
        gw.put("/metrics/job/b", "# HELP m help from b\nm 2\n")
            .status,
        200
    );
    assert_eq!(
        gw.put("/metrics/job/a", "# HELP m help from a\nm 1\nz 1\n")
            .status,
        200
    );
    let scrape = gw.scrape();
    assert!(scrape.contains(
        "# HELP m help from a\n# TYPE m untyped\nm{instance=\"\",job=\"a\"} 1\nm{instance=\"\",job=\"b\"} 2\n"
    ), "{scrape}");
    // Families come in name order.
    let m = scrape.find("# TYPE m ").unwrap();
    let z = scrape.find("# TYPE z ").unwrap();
    let push_time = scrape.find("# TYPE push_time_seconds").unwrap();
    assert!(m < push_time && push_time < z);
    // Help of the gateway's own metric wins over a pushed one.
    assert_eq!(
        gw.put(
            "/metrics/job/c",
            "# HELP process_open_fds mine\n# TYPE process_open_fds gauge\nprocess_open_fds 3\n"
        )
        .status,
        200
    );
    let scrape = gw.scrape();
    assert!(scrape.contains("# HELP process_open_fds Number of open file descriptors.\n"));
    assert!(!scrape.contains("mine"));
    assert!(scrape.contains("process_open_fds{instance=\"\",job=\"c\"} 3\n"));
}

#[test]
fn gzip_request_bodies() {
    use std::io::Write;
    let gw = Gateway::start(&[]);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(b"zipped 5\n").unwrap();
    let body = encoder.finish().unwrap();
    let reply = gw.request_with(
        "PUT",
        "/metrics/job/j",
        body,
        &[("Content-Encoding", "GZIP")],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        samples(&gw.scrape(), "zipped"),
        vec!["zipped{instance=\"\",job=\"j\"} 5"]
    );
    let before = gw.pushed_state();
    let reply = gw.request_with(
        "PUT",
        "/metrics/job/j",
        b"not gzip at all".to_vec(),
        &[("Content-Encoding", "gzip")],
    );
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("gzip"), "{}", reply.body);
    assert_eq!(gw.pushed_state(), before);
}

/// Sends a PUT whose body comes in `chunks` (chunked transfer encoding, each chunk flushed
/// on its own) and returns the status code of the answer.
fn put_in_chunks(gw: &Gateway, path: &str, chunks: &[&str]) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(&gw.address).expect("connect");
    write!(
        stream,
        "PUT {path} HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        gw.address
    )
    .unwrap();
    for chunk in chunks {
        write!(stream, "{:x}\r\n{chunk}\r\n", chunk.len()).unwrap();
        stream.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The answer may come before the last chunk is read (a refused body), so a failed write
    // of the end is fine.
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

#[test]
fn a_body_in_several_pieces_is_joined_and_still_limited() {
    let gw = Gateway::start(&["--push.max-body-bytes=1000"]);
    assert_eq!(
        put_in_chunks(
            &gw,
            "/metrics/job/j",
            &["# TYPE a gauge\na 1\n", "b 2\n", "c 3\n"]
        ),
        200
    );
    let scrape = gw.scrape();
    for line in [
        "a{instance=\"\",job=\"j\"} 1",
        "b{instance=\"\",job=\"j\"} 2",
        "c{instance=\"\",job=\"j\"} 3",
    ] {
        assert!(scrape.contains(line), "{line} missing from {scrape}");
    }
    let before = gw.pushed_state();
    let piece = "x 1\n".repeat(100);
    assert_eq!(
        put_in_chunks(&gw, "/metrics/job/j", &[&piece, &piece, &piece]),
        413
    );
    assert_eq!(gw.pushed_state(), before);
}

#[test]
fn body_limit_applies_before_and_after_decompression() {
    use std::io::Write;
    let gw = Gateway::start(&["--push.max-body-bytes=1000"]);
    assert_eq!(gw.put("/metrics/job/j", "kept 1\n").status, 200);
    let before = gw.pushed_state();
    let big = "a 1\n".repeat(500);
    let reply = gw.put("/metrics/job/j", &big);
    assert_eq!(reply.status, 413);
    assert!(
        reply.body.contains("--push.max-body-bytes"),
        "{}",
        reply.body
    );
    // A small gzip body that inflates past the limit.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&vec![b'#'; 200_000]).unwrap();
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 1000);
    let reply = gw.request_with(
        "PUT",
        "/metrics/job/j",
        bomb,
        &[("Content-Encoding", "gzip")],
    );
    assert_eq!(reply.status, 413);
    assert_eq!(gw.pushed_state(), before);
}
