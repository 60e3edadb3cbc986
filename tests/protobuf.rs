//! Protobuf pushes and scrapes over real HTTP: native histograms come back exactly, text and
//! protobuf convert into each other, and bad protobuf is refused without changing anything.

mod common;

use common::{samples, Gateway};
use prost::Message;
use pushgateway::exposition::proto;

const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

fn label(name: &str, value: &str) -> proto::LabelPair {
    proto::LabelPair {
        name: Some(name.into()),
        value: Some(value.into()),
    }
}

fn encode(messages: &[proto::MetricFamily]) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        message.encode_length_delimited(&mut out).unwrap();
    }
    out
}

fn decode(mut body: &[u8]) -> Vec<proto::MetricFamily> {
    let mut out = Vec::new();
    while !body.is_empty() {
        out.push(
            proto::MetricFamily::decode_length_delimited(&mut body).expect("valid protobuf scrape"),
        );
    }
    out
}

fn native_histogram() -> proto::MetricFamily {
    proto::MetricFamily {
        name: Some("rpc_duration_seconds".into()),
        help: Some("RPC duration.".into()),
        r#type: Some(proto::MetricType::Histogram as i32),
        unit: None,
        metric: vec![proto::Metric {
            label: vec![label("service", "api")],
            histogram: Some(proto::Histogram {
                sample_count: Some(5),
                sample_sum: Some(2.5),
                schema: Some(2),
                zero_threshold: Some(1e-128),
                zero_count: Some(1),
                positive_span: vec![proto::BucketSpan {
                    offset: Some(-1),
                    length: Some(3),
                }],
                positive_delta: vec![1, 1, -1],
                negative_span: vec![proto::BucketSpan {
                    offset: Some(0),
                    length: Some(1),
                }],
                negative_delta: vec![1],
                exemplars: vec![proto::Exemplar {
                    label: vec![label("trace_id", "42")],
                    value: Some(0.3),
                    timestamp: Some(proto::Timestamp {
                        seconds: 1_700_000_000,
                        nanos: 1,
                    }),
                }],
                ..Default::default()
            }),
            ..Default::default()
        }],
    }
}

fn scrape_protobuf(gw: &Gateway) -> Vec<proto::MetricFamily> {
    let client = reqwest::blocking::Client::new();
    let response = client
        .get(gw.url("/metrics"))
        .header("Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3")
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/vnd.google.protobuf"));
    decode(&response.bytes().unwrap())
}

#[test]
fn native_histogram_pushed_as_protobuf_comes_back_identical() {
    let gw = Gateway::start(&[]);
    let reply = gw.request_with(
        "PUT",
        "/metrics/job/j/instance/i",
        encode(&[native_histogram()]),
        &[("Content-Type", PROTOBUF)],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let families = scrape_protobuf(&gw);
    let family = families
        .iter()
        .find(|f| f.name.as_deref() == Some("rpc_duration_seconds"))
        .expect("family scraped");
    let mut expected = native_histogram();
    expected.metric[0].label = vec![
        label("instance", "i"),
        label("job", "j"),
        label("service", "api"),
    ];
    assert_eq!(family, &expected);
    // Text scrape shows it as a classic histogram with only the +Inf bucket.
    let text = gw.scrape();
    assert_eq!(
        samples(&text, "rpc_duration_seconds_bucket"),
        vec!["rpc_duration_seconds_bucket{instance=\"i\",job=\"j\",service=\"api\",le=\"+Inf\"} 5"]
    );
    // The push-time gauges and own metrics are in the protobuf scrape too, sorted by name.
    let names: Vec<&str> = families.iter().filter_map(|f| f.name.as_deref()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(names.contains(&"push_time_seconds") && names.contains(&"pushgateway_build_info"));
}

#[test]
fn protobuf_push_of_every_type_reads_back_as_text() {
    let gw = Gateway::start(&[]);
    let family = |name: &str, kind: proto::MetricType, metric: proto::Metric| proto::MetricFamily {
        name: Some(name.into()),
        help: Some(format!("{name} help")),
        r#type: Some(kind as i32),
        metric: vec![metric],
        unit: None,
    };
    let messages = vec![
        family(
            "c_total",
            proto::MetricType::Counter,
            proto::Metric {
                counter: Some(proto::Counter {
                    value: Some(3.0),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        family(
            "g",
            proto::MetricType::Gauge,
            proto::Metric {
                label: vec![label("x", "y")],
                gauge: Some(proto::Gauge { value: Some(-1.5) }),
                ..Default::default()
            },
        ),
        family(
            "u",
            proto::MetricType::Untyped,
            proto::Metric {
                untyped: Some(proto::Untyped { value: Some(7.0) }),
                ..Default::default()
            },
        ),
        family(
            "s",
            proto::MetricType::Summary,
            proto::Metric {
                summary: Some(proto::Summary {
                    sample_count: Some(2),
                    sample_sum: Some(1.0),
                    quantile: vec![proto::Quantile {
                        quantile: Some(0.5),
                        value: Some(0.25),
                    }],
                    created_timestamp: None,
                }),
                ..Default::default()
            },
        ),
        family(
            "h",
            proto::MetricType::Histogram,
            proto::Metric {
                histogram: Some(proto::Histogram {
                    sample_count: Some(3),
                    sample_sum: Some(4.0),
                    bucket: vec![proto::Bucket {
                        cumulative_count: Some(1),
                        upper_bound: Some(1.0),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
    ];
    let reply = gw.request_with(
        "POST",
        "/metrics/job/p",
        encode(&messages),
        &[("Content-Type", PROTOBUF)],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let text = gw.scrape();
    for expected in [
        "# HELP c_total c_total help\n# TYPE c_total counter\nc_total{instance=\"\",job=\"p\"} 3\n",
        "# TYPE g gauge\ng{instance=\"\",job=\"p\",x=\"y\"} -1.5\n",
        "# TYPE u untyped\nu{instance=\"\",job=\"p\"} 7\n",
        "# TYPE s summary\ns{instance=\"\",job=\"p\",quantile=\"0.5\"} 0.25\ns_sum{instance=\"\",job=\"p\"} 1\ns_count{instance=\"\",job=\"p\"} 2\n",
        "# TYPE h histogram\nh_bucket{instance=\"\",job=\"p\",le=\"1\"} 1\nh_bucket{instance=\"\",job=\"p\",le=\"+Inf\"} 3\nh_sum{instance=\"\",job=\"p\"} 4\nh_count{instance=\"\",job=\"p\"} 3\n",
    ] {
        assert!(text.contains(expected), "missing:\n{expected}\nin:\n{text}");
    }
}

#[test]
fn text_push_reads_back_as_protobuf() {
    let gw = Gateway::start(&[]);
    let body = "# HELP m A gauge.\n# TYPE m gauge\nm{a=\"1\"} 1\nm{a=\"2\"} 2\n";
    assert_eq!(gw.put("/metrics/job/t", body).status, 200);
    assert_eq!(
        gw.put("/metrics/job/u", "# TYPE m gauge\nm{a=\"3\"} 3\n")
            .status,
        200
    );
    let families = scrape_protobuf(&gw);
    let m = families
        .iter()
        .find(|f| f.name.as_deref() == Some("m"))
        .unwrap();
    assert_eq!(m.help.as_deref(), Some("A gauge."));
    assert_eq!(m.r#type, Some(proto::MetricType::Gauge as i32));
    let values: Vec<(String, f64)> = m
        .metric
        .iter()
        .map(|metric| {
            let a = metric
                .label
                .iter()
                .find(|l| l.name.as_deref() == Some("a"))
                .unwrap();
            (
                a.value.clone().unwrap(),
                metric.gauge.as_ref().unwrap().value.unwrap(),
            )
        })
        .collect();
    assert_eq!(
        values,
        vec![
            ("1".to_string(), 1.0),
            ("2".to_string(), 2.0),
            ("3".to_string(), 3.0)
        ]
    );
}

#[test]
fn bad_protobuf_is_refused_and_changes_nothing() {
    let gw = Gateway::start(&[]);
    assert_eq!(gw.put("/metrics/job/j", "kept 1\n").status, 200);
    let before = gw.pushed_state();
    let mut truncated = encode(&[native_histogram()]);
    truncated.truncate(truncated.len() - 3);
    let reply = gw.request_with(
        "PUT",
        "/metrics/job/j",
        truncated,
        &[("Content-Type", PROTOBUF)],
    );
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("invalid protobuf"), "{}", reply.body);
    assert_eq!(gw.pushed_state(), before);

    let reply = gw.request_with("PUT", "/metrics/job/j", encode(&[native_histogram()]), &[("Content-Type", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text")]);
    assert_eq!(reply.status, 415);
    assert_eq!(gw.pushed_state(), before);

    // Timestamps are refused in protobuf too, and set the failure time.
    let mut stamped = native_histogram();
    stamped.metric[0].timestamp_ms = Some(1_700_000_000_000);
    let reply = gw.request_with(
        "PUT",
        "/metrics/job/j",
        encode(&[stamped]),
        &[("Content-Type", PROTOBUF)],
    );
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("timestamps"), "{}", reply.body);
    assert!(!samples(&gw.scrape(), "push_failure_time_seconds")[0].ends_with(" 0"));
    assert!(samples(&gw.scrape(), "rpc_duration_seconds_count").is_empty());
}
