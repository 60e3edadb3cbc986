//! The Rust `prometheus` crate's push functions (protobuf over PUT and POST) against the
//! real server, and a raw-block snappy body as some Rust clients send it.

mod common;

use std::collections::HashMap;

use common::{samples, Gateway};
use prometheus::{Counter, Encoder, Gauge, Histogram, HistogramOpts, Opts, Registry};

#[test]
fn prometheus_crate_push_and_push_add() {
    let gw = Gateway::start(&[]);
    let registry = Registry::new();
    let counter = Counter::with_opts(Opts::new("rust_jobs_total", "Jobs run.")).unwrap();
    let gauge = Gauge::with_opts(Opts::new("rust_queue_depth", "Queue depth.")).unwrap();
    let histogram = Histogram::with_opts(
        HistogramOpts::new("rust_job_seconds", "Job time.").buckets(vec![0.1, 1.0]),
    )
    .unwrap();
    registry.register(Box::new(counter.clone())).unwrap();
    registry.register(Box::new(gauge.clone())).unwrap();
    registry.register(Box::new(histogram.clone())).unwrap();
    counter.inc_by(5.0);
    gauge.set(12.0);
    histogram.observe(0.5);

    let grouping = HashMap::from([("instance".to_string(), "worker-1".to_string())]);
    let url = format!("http://{}", gw.address);
    prometheus::push_metrics(
        "rust_batch",
        grouping.clone(),
        &url,
        registry.gather(),
        None,
    )
    .expect("push_metrics");
    let text = gw.scrape();
    assert_eq!(
        samples(&text, "rust_jobs_total"),
        vec!["rust_jobs_total{instance=\"worker-1\",job=\"rust_batch\"} 5"]
    );
    assert_eq!(
        samples(&text, "rust_queue_depth"),
        vec!["rust_queue_depth{instance=\"worker-1\",job=\"rust_batch\"} 12"]
    );
    assert_eq!(
        samples(&text, "rust_job_seconds_bucket"),
        vec![
            "rust_job_seconds_bucket{instance=\"worker-1\",job=\"rust_batch\",le=\"0.1\"} 0",
            "rust_job_seconds_bucket{instance=\"worker-1\",job=\"rust_batch\",le=\"1\"} 1",
            "rust_job_seconds_bucket{instance=\"worker-1\",job=\"rust_batch\",le=\"+Inf\"} 1",
        ]
    );

    // push_add replaces only the families it sends.
    let update = Registry::new();
    let gauge2 = Gauge::with_opts(Opts::new("rust_queue_depth", "Queue depth.")).unwrap();
    update.register(Box::new(gauge2.clone())).unwrap();
    gauge2.set(3.0);
    prometheus::push_add_metrics("rust_batch", grouping, &url, update.gather(), None)
        .expect("push_add_metrics");
    let text = gw.scrape();
    assert_eq!(
        samples(&text, "rust_queue_depth"),
        vec!["rust_queue_depth{instance=\"worker-1\",job=\"rust_batch\"} 3"]
    );
    assert_eq!(samples(&text, "rust_jobs_total").len(), 1);
}

#[test]
fn raw_block_snappy_body() {
    let gw = Gateway::start(&[]);
    let registry = Registry::new();
    let gauge = Gauge::with_opts(Opts::new("snappy_raw", "Raw snappy.")).unwrap();
    registry.register(Box::new(gauge.clone())).unwrap();
    gauge.set(2.0);
    let mut text = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&registry.gather(), &mut text)
        .unwrap();
    let raw = snap::raw::Encoder::new().compress_vec(&text).unwrap();
    let reply = gw.request_with(
        "PUT",
        "/metrics/job/snappy",
        raw,
        &[("Content-Encoding", "snappy")],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        samples(&gw.scrape(), "snappy_raw"),
        vec!["snappy_raw{instance=\"\",job=\"snappy\"} 2"]
    );
    let before = gw.pushed_state();
    let reply = gw.request_with(
        "PUT",
        "/metrics/job/snappy",
        b"\x05garbage".to_vec(),
        &[("Content-Encoding", "Snappy")],
    );
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("snappy"), "{}", reply.body);
    assert_eq!(gw.pushed_state(), before);
}
