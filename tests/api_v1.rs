//! The JSON API over real HTTP: `/api/v1/metrics` and `/api/v1/status` give upstream's JSON
//! key for key (compared with answers recorded from the Go Pushgateway), with its CORS
//! headers; the admin wipe exists only with `--web.enable-admin-api`; every handler is
//! counted under upstream's name.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{samples, Gateway};
use prost::Message;
use pushgateway::exposition::proto;
use serde_json::{json, Value};

const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

const CORS: [(&str, &str); 5] = [
    (
        "access-control-allow-headers",
        "Accept, Authorization, Content-Type, Origin",
    ),
    ("access-control-allow-methods", "GET, POST, DELETE, OPTIONS"),
    ("access-control-allow-origin", "*"),
    ("access-control-expose-headers", "Date"),
    ("cache-control", "no-cache, no-store, must-revalidate"),
];

/// A response with every header, for the checks the shared harness does not cover.
struct Full {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Full {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn assert_cors(&self, what: &str) {
        for (name, value) in CORS {
            assert_eq!(self.header(name), Some(value), "{what}: header {name}");
        }
    }

    fn assert_no_cors(&self, what: &str) {
        for (name, _) in CORS {
            assert_eq!(self.header(name), None, "{what}: header {name}");
        }
    }
}

fn full(gw: &Gateway, method: &str, path: &str) -> Full {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let response = reqwest::blocking::Client::new()
        .request(method, gw.url(path))
        .send()
        .expect("request");
    Full {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().expect("body"),
    }
}

/// `data` of a successful API answer, after checking the envelope and headers.
fn api_data(gw: &Gateway, path: &str) -> Value {
    let reply = full(gw, "GET", path);
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    reply.assert_cors(path);
    let body: Value = serde_json::from_str(&reply.body).expect("valid JSON");
    let object = body.as_object().expect("an object");
    assert_eq!(object.len(), 2, "{body}");
    assert_eq!(body["status"], "success");
    body["data"].clone()
}

fn groups(gw: &Gateway) -> Vec<Value> {
    api_data(gw, "/api/v1/metrics")
        .as_array()
        .expect("data is an array")
        .clone()
}

/// Seconds since the epoch of an RFC 3339 UTC time as Go writes it
/// (`2026-11-24T18:31:47.859475184Z`, fraction optional).
fn parse_time(text: &str) -> f64 {
    let bytes = text.as_bytes();
    assert!(
        text.len() >= 20
            && bytes[4] == b'-'
            && bytes[7] == b'-'
            && bytes[10] == b'T'
            && bytes[13] == b':'
            && bytes[16] == b':'
            && text.ends_with('Z'),
        "not an RFC 3339 UTC time: {text:?}"
    );
    let number = |range: std::ops::Range<usize>| -> i64 { text[range].parse().expect(text) };
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let (hour, minute, second) = (number(11..13), number(14..16), number(17..19));
    let fraction = &text[19..text.len() - 1];
    let fraction: f64 = if fraction.is_empty() {
        0.0
    } else {
        assert!(fraction.starts_with('.') && fraction.len() <= 10, "{text}");
        assert!(
            !fraction.ends_with('0'),
            "trailing zeros are trimmed: {text}"
        );
        format!("0{fraction}").parse().expect(text)
    };
    // Days from civil (Howard Hinnant).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + hour * 3600 + minute * 60 + second) as f64 + fraction
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Replaces every family's `time_stamp` by "T" and the non-zero values of the two time
/// gauges by "T", after checking that each stamp is a valid time.
fn normalize(group: &Value) -> Value {
    let mut group = group.clone();
    for (name, family) in group.as_object_mut().unwrap().iter_mut() {
        let Some(stamp) = family.get("time_stamp").and_then(Value::as_str) else {
            continue;
        };
        parse_time(stamp);
        family["time_stamp"] = json!("T");
        if name == "push_time_seconds" || name == "push_failure_time_seconds" {
            let value = &mut family["metrics"][0]["value"];
            if value != "0" {
                let seconds: f64 = value.as_str().unwrap().parse().unwrap();
                assert!((seconds - now()).abs() < 60.0, "{name} = {value}");
                *value = json!("T");
            }
        }
    }
    group
}

/// The number in a time gauge of a group.
fn gauge(group: &Value, name: &str) -> f64 {
    group[name]["metrics"][0]["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn stamp(group: &Value, name: &str) -> f64 {
    parse_time(group[name]["time_stamp"].as_str().unwrap())
}

#[test]
fn metrics_lists_every_type_as_upstream_does() {
    let gw = Gateway::start(&[]);
    assert_eq!(api_data(&gw, "/api/v1/metrics"), json!([]));
    let body = "# HELP c A counter.\n# TYPE c counter\nc{x=\"1\"} 3\n# HELP g A gauge.\n# TYPE g gauge\ng 2.5\n# HELP h A histogram.\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_sum 4.5\nh_count 3\n# HELP s A summary.\n# TYPE s summary\ns{quantile=\"0.5\"} 1.5\ns{quantile=\"0.9\"} 2\ns_sum 10\ns_count 5\nu 7\n";
    let before = now();
    assert_eq!(gw.put("/metrics/job/api/instance/i1", body).status, 200);
    let after = now();

    let data = groups(&gw);
    assert_eq!(data.len(), 1);
    let group = &data[0];
    // Recorded from the Go Pushgateway 1.5.1 for the same push (times replaced by "T").
    let upstream: Value = serde_json::from_str(r#"{"c":{"time_stamp":"T","type":"COUNTER","help":"A counter.","metrics":[{"labels":{"instance":"i1","job":"api","x":"1"},"value":"3"}]},"g":{"time_stamp":"T","type":"GAUGE","help":"A gauge.","metrics":[{"labels":{"instance":"i1","job":"api"},"value":"2.5"}]},"h":{"time_stamp":"T","type":"HISTOGRAM","help":"A histogram.","metrics":[{"buckets":{"+Inf":"3","0.5":"1","1":"2"},"count":"3","labels":{"instance":"i1","job":"api"},"sum":"4.5"}]},"labels":{"instance":"i1","job":"api"},"last_push_successful":true,"push_failure_time_seconds":{"time_stamp":"T","type":"GAUGE","help":"Last Unix time when changing this group in the Pushgateway failed.","metrics":[{"labels":{"instance":"i1","job":"api"},"value":"0"}]},"push_time_seconds":{"time_stamp":"T","type":"GAUGE","help":"Last Unix time when changing this group in the Pushgateway succeeded.","metrics":[{"labels":{"instance":"i1","job":"api"},"value":"T"}]},"s":{"time_stamp":"T","type":"SUMMARY","help":"A summary.","metrics":[{"count":"5","labels":{"instance":"i1","job":"api"},"quantiles":{"0.5":"1.5","0.9":"2"},"sum":"10"}]},"u":{"time_stamp":"T","type":"UNTYPED","metrics":[{"labels":{"instance":"i1","job":"api"},"value":"7"}]}}"#).unwrap();
    assert_eq!(normalize(group), upstream);

    // Every family carries the time of the push that stored it, which is push_time_seconds.
    let pushed = gauge(group, "push_time_seconds");
    assert!(pushed >= before - 0.001 && pushed <= after + 0.001);
    for name in [
        "c",
        "g",
        "h",
        "s",
        "u",
        "push_time_seconds",
        "push_failure_time_seconds",
    ] {
        assert!((stamp(group, name) - pushed).abs() < 0.001, "{name}");
    }

    // Keys come out in Go's order: sorted for maps, declaration order for the family struct.
    let raw = full(&gw, "GET", "/api/v1/metrics").body;
    assert!(
        raw.starts_with(r#"{"status":"success","data":[{"c":{"time_stamp":""#),
        "{raw}"
    );
    assert!(raw.contains(r#""type":"COUNTER","help":"A counter.","metrics":[{"labels":{"instance":"i1","job":"api","x":"1"},"value":"3"}]},"g":"#), "{raw}");
    assert!(
        raw.contains(r#"[{"buckets":{"+Inf":"3","0.5":"1","1":"2"},"count":"3","labels":"#),
        "{raw}"
    );
    assert!(raw.contains(r#"[{"count":"5","labels":{"instance":"i1","job":"api"},"quantiles":{"0.5":"1.5","0.9":"2"},"sum":"10"}]"#), "{raw}");
}

#[test]
fn failed_pushes_special_values_and_group_order() {
    let gw = Gateway::start(&[]);
    assert_eq!(
        gw.put("/metrics/job/b", "# TYPE tc counter\ntc 1\n").status,
        200
    );
    assert_eq!(gw.put("/metrics/job/a/instance/x", "tc 1\n").status, 400);
    let body = "# HELP n \n# TYPE n gauge\nn NaN\nn2 +Inf\n# TYPE h histogram\nh_bucket{le=\"0.0000001\"} 1\nh_bucket{le=\"1e6\"} 2\nh_sum -Inf\nh_count 2\n";
    assert_eq!(gw.put("/metrics/job/c", body).status, 200);

    let data = groups(&gw);
    // Grouping-key order (upstream's is random): {instance="x",job="a"}, {job="b"}, {job="c"}.
    let jobs: Vec<&str> = data
        .iter()
        .map(|g| g["labels"]["job"].as_str().unwrap())
        .collect();
    assert_eq!(jobs, ["a", "b", "c"]);
    // Recorded from the Go Pushgateway 1.5.1 after the same three pushes.
    let upstream: Value = serde_json::from_str(r#"[{"labels":{"instance":"x","job":"a"},"last_push_successful":false,"push_failure_time_seconds":{"time_stamp":"T","type":"GAUGE","help":"Last Unix time when changing this group in the Pushgateway failed.","metrics":[{"labels":{"instance":"x","job":"a"},"value":"T"}]},"push_time_seconds":{"time_stamp":"T","type":"GAUGE","help":"Last Unix time when changing this group in the Pushgateway succeeded.","metrics":[{"labels":{"instance":"x","job":"a"},"value":"0"}]}},{"labels":{"job":"b"},"last_push_successful":true,"push_failure_time_seconds":{"time_stamp":"T","type":"GAUGE","help":"Last Unix time when changing this group in the Pushgateway failed.","metrics":[{"labels":{"instance":"","job":"b"},"value":"0"}]},"push_time_seconds":{"time_stamp":"T","type":"GAUGE","help":"Last Unix time when changing this group in the Pushgateway succeeded.","metrics":[{"labels":{"instance":"","job":"b"},"value":"T"}]},"tc":{"time_stamp":"T","type":"COUNTER","metrics":[{"labels":{"instance":"","job":"b"},"value":"1"}]}},{"h":{"time_stamp":"T","type":"HISTOGRAM","metrics":[{"buckets":{"1e+06":"2","1e-07":"1"},"count":"2","labels":{"instance":"","job":"c"},"sum":"-Inf"}]},"labels":{"job":"c"},"last_push_successful":true,"n":{"time_stamp":"T","type":"GAUGE","metrics":[{"labels":{"instance":"","job":"c"},"value":"NaN"}]},"n2":{"time_stamp":"T","type":"UNTYPED","metrics":[{"labels":{"instance":"","job":"c"},"value":"+Inf"}]},"push_failure_time_seconds":{"time_stamp":"T","type":"GAUGE","help":"Last Unix time when changing this group in the Pushgateway failed.","metrics":[{"labels":{"instance":"","job":"c"},"value":"0"}]},"push_time_seconds":{"time_stamp":"T","type":"GAUGE","help":"Last Unix time when changing this group in the Pushgateway succeeded.","metrics":[{"labels":{"instance":"","job":"c"},"value":"T"}]}}]"#).unwrap();
    let normalized: Vec<Value> = data.iter().map(normalize).collect();
    assert_eq!(Value::Array(normalized), upstream);

    // The group made by a failed push is stamped with that failure.
    let failed = &data[0];
    let failure = gauge(failed, "push_failure_time_seconds");
    assert!((stamp(failed, "push_time_seconds") - failure).abs() < 0.001);
    assert!((stamp(failed, "push_failure_time_seconds") - failure).abs() < 0.001);

    // A later successful push makes it successful again, keeping the failure time.
    assert_eq!(gw.put("/metrics/job/a/instance/x", "other 1\n").status, 200);
    let data = groups(&gw);
    let mended = &data[0];
    assert_eq!(mended["labels"], json!({"instance": "x", "job": "a"}));
    assert_eq!(mended["last_push_successful"], true);
    assert_eq!(gauge(mended, "push_failure_time_seconds"), failure);
    assert!(gauge(mended, "push_time_seconds") > failure);
    assert!((stamp(mended, "push_failure_time_seconds") - failure).abs() < 0.001);
    assert_eq!(mended["other"]["metrics"][0]["value"], "1");

    // And a failed push to an existing group makes it unsuccessful ("other" is untyped in
    // group a).
    assert_eq!(
        gw.put("/metrics/job/b", "# TYPE other counter\nother 1\n")
            .status,
        400
    );
    let data = groups(&gw);
    assert_eq!(data[1]["labels"], json!({"job": "b"}));
    assert_eq!(data[1]["last_push_successful"], false);
    assert_eq!(
        data[1]["tc"]["type"], "COUNTER",
        "the stored family is unchanged"
    );
}

#[test]
fn families_named_like_group_keys_replace_them_and_html_is_escaped() {
    let gw = Gateway::start(&[]);
    assert_eq!(
        gw.put("/metrics/job/k", "labels 1\nlast_push_successful 2\n")
            .status,
        200
    );
    let data = groups(&gw);
    // As upstream: the families overwrite the group's own keys.
    let upstream: Value = serde_json::from_str(r#"{"labels":{"time_stamp":"T","type":"UNTYPED","metrics":[{"labels":{"instance":"","job":"k"},"value":"1"}]},"last_push_successful":{"time_stamp":"T","type":"UNTYPED","metrics":[{"labels":{"instance":"","job":"k"},"value":"2"}]},"push_failure_time_seconds":{"time_stamp":"T","type":"GAUGE","help":"Last Unix time when changing this group in the Pushgateway failed.","metrics":[{"labels":{"instance":"","job":"k"},"value":"0"}]},"push_time_seconds":{"time_stamp":"T","type":"GAUGE","help":"Last Unix time when changing this group in the Pushgateway succeeded.","metrics":[{"labels":{"instance":"","job":"k"},"value":"T"}]}}"#).unwrap();
    assert_eq!(normalize(&data[0]), upstream);

    assert_eq!(
        gw.put(
            "/metrics/job/html",
            "# HELP e Escaped <b>&</b>.\n# TYPE e gauge\ne{v=\"a<b\"} 1\n"
        )
        .status,
        200
    );
    let raw = full(&gw, "GET", "/api/v1/metrics").body;
    assert!(
        raw.contains(r#""help":"Escaped \u003cb\u003e\u0026\u003c/b\u003e.""#),
        "{raw}"
    );
    assert!(raw.contains(r#""v":"a\u003cb""#), "{raw}");
    assert!(!raw.contains('<') && !raw.contains('&'), "{raw}");
    let data = groups(&gw);
    let html = data.iter().find(|g| g["labels"]["job"] == "html").unwrap();
    assert_eq!(html["e"]["help"], "Escaped <b>&</b>.");
}

fn label(name: &str, value: &str) -> proto::LabelPair {
    proto::LabelPair {
        name: Some(name.into()),
        value: Some(value.into()),
    }
}

fn histogram_family(name: &str, histogram: proto::Histogram) -> proto::MetricFamily {
    proto::MetricFamily {
        name: Some(name.into()),
        help: Some(format!("{name} help")),
        r#type: Some(proto::MetricType::Histogram as i32),
        unit: None,
        metric: vec![proto::Metric {
            label: vec![label("service", "api")],
            histogram: Some(histogram),
            ..Default::default()
        }],
    }
}

#[test]
fn native_histograms_list_their_buckets_as_upstream_does() {
    let gw = Gateway::start(&[]);
    let span = |offset: i32, length: u32| proto::BucketSpan {
        offset: Some(offset),
        length: Some(length),
    };
    let integer = histogram_family(
        "rpc_seconds",
        proto::Histogram {
            sample_count: Some(5),
            sample_sum: Some(2.5),
            schema: Some(2),
            zero_threshold: Some(1e-128),
            zero_count: Some(1),
            positive_span: vec![span(-1, 3)],
            positive_delta: vec![1, 1, -1],
            negative_span: vec![span(0, 1)],
            negative_delta: vec![1],
            ..Default::default()
        },
    );
    let float = histogram_family(
        "weights",
        proto::Histogram {
            sample_count_float: Some(3.5),
            sample_sum: Some(-1.0),
            schema: Some(0),
            zero_threshold: Some(0.001),
            zero_count_float: Some(0.5),
            positive_span: vec![span(0, 2), span(1, 1)],
            positive_count: vec![1.5, 0.0, 2.0],
            negative_span: vec![span(-1, 1)],
            negative_count: vec![0.25],
            ..Default::default()
        },
    );
    let mut body = Vec::new();
    for family in [&integer, &float] {
        family.encode_length_delimited(&mut body).unwrap();
    }
    let reply = gw.request_with(
        "PUT",
        "/metrics/job/native",
        body,
        &[("Content-Type", PROTOBUF)],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let data = groups(&gw);
    let labels = json!({"instance": "", "job": "native", "service": "api"});
    assert_eq!(
        data[0]["rpc_seconds"]["metrics"],
        json!([{
            "buckets": [
                [1, "-1", "-0.8408964152537144", "1"],
                [3, "-1e-128", "1e-128", "1"],
                [0, "0.7071067811865475", "0.8408964152537144", "1"],
                [0, "0.8408964152537144", "1", "2"],
                [0, "1", "1.189207115002721", "1"],
            ],
            "count": "5",
            "labels": labels,
            "sum": "2.5",
        }])
    );
    assert_eq!(data[0]["rpc_seconds"]["type"], "HISTOGRAM");
    assert_eq!(data[0]["rpc_seconds"]["help"], "rpc_seconds help");
    assert_eq!(
        data[0]["weights"]["metrics"],
        json!([{
            "buckets": [
                [1, "-0.5", "-0.25", "0.25"],
                [3, "-0.001", "0.001", "0.5"],
                [0, "0.5", "1", "1.5"],
                [0, "4", "8", "2"],
            ],
            "count": "3.5",
            "labels": labels,
            "sum": "-1",
        }])
    );
}

#[test]
fn gauge_histograms_are_listed_with_their_buckets() {
    // Upstream lists a GAUGE_HISTOGRAM as {"labels", "value": "0"}; we give its buckets.
    let gw = Gateway::start(&[]);
    let body = "# TYPE gh gaugehistogram\ngh_bucket{le=\"1\"} 2\ngh_bucket{le=\"+Inf\"} 3\ngh_sum 4\ngh_count 3\n";
    assert_eq!(gw.put("/metrics/job/gh", body).status, 200);
    let data = groups(&gw);
    assert_eq!(data[0]["gh"]["type"], "GAUGE_HISTOGRAM");
    assert_eq!(
        data[0]["gh"]["metrics"],
        json!([{
            "buckets": {"+Inf": "3", "1": "2"},
            "count": "3",
            "labels": {"instance": "", "job": "gh"},
            "sum": "4",
        }])
    );
}

#[test]
fn status_reports_build_flags_and_start_time() {
    let before = now();
    let gw = Gateway::start(&["--web.enable-admin-api", "--persistence.interval=90s"]);
    let after = now();
    let data = api_data(&gw, "/api/v1/status");
    let mut keys: Vec<&String> = data.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["build_information", "flags", "start_time"]);

    let build = data["build_information"].as_object().unwrap();
    let mut build_keys: Vec<&String> = build.keys().collect();
    build_keys.sort();
    assert_eq!(
        build_keys,
        [
            "branch",
            "buildDate",
            "buildUser",
            "goVersion",
            "revision",
            "version"
        ]
    );
    assert_eq!(build["version"], env!("CARGO_PKG_VERSION"));
    assert!(build.values().all(Value::is_string));

    let flags = data["flags"].as_object().unwrap();
    let expected = [
        ("web.listen-address", "127.0.0.1:0"),
        ("web.systemd-socket", "false"),
        ("web.config.file", ""),
        ("web.telemetry-path", "/metrics"),
        ("web.external-url", ""),
        ("web.route-prefix", ""),
        ("web.enable-lifecycle", "false"),
        ("web.enable-admin-api", "true"),
        ("persistence.file", ""),
        // Go's time.Duration spelling, as upstream shows it.
        ("persistence.interval", "1m30s"),
        ("push.disable-consistency-check", "false"),
        ("log.level", "info"),
        ("log.format", "logfmt"),
    ];
    for (name, value) in expected {
        assert_eq!(flags.get(name), Some(&json!(value)), "flag {name}");
    }
    assert!(flags.values().all(Value::is_string));

    let started = parse_time(data["start_time"].as_str().unwrap());
    assert!(
        started >= before - 1.0 && started <= after + 1.0,
        "start_time {started} not within {before}..{after}"
    );
    // The start time does not move.
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(
        api_data(&gw, "/api/v1/status")["start_time"],
        data["start_time"]
    );
}

#[test]
fn cors_options_and_wrong_methods() {
    let gw = Gateway::start(&[]);
    for path in [
        "/api/v1/status",
        "/api/v1/metrics",
        "/api/v1/admin/wipe",
        "/api/v1/anything/at/all",
    ] {
        let reply = full(&gw, "OPTIONS", path);
        assert_eq!(reply.status, 200, "OPTIONS {path}");
        assert_eq!(reply.body, "", "OPTIONS {path}");
        reply.assert_cors(&format!("OPTIONS {path}"));
    }
    for method in ["POST", "PUT", "DELETE", "HEAD"] {
        for path in ["/api/v1/status", "/api/v1/metrics"] {
            let reply = full(&gw, method, path);
            assert_eq!(reply.status, 405, "{method} {path}");
            assert_eq!(
                reply.header("allow"),
                Some("GET, OPTIONS"),
                "{method} {path}"
            );
            if method != "HEAD" {
                assert_eq!(reply.body, "Method Not Allowed\n");
            }
            reply.assert_no_cors(&format!("{method} {path}"));
        }
    }
    for path in ["/api/v1/nonexistent", "/api/v1/", "/api/v2/status"] {
        let reply = full(&gw, "GET", path);
        assert_eq!(reply.status, 404, "GET {path}");
        assert_eq!(reply.body, "404 page not found\n", "GET {path}");
        assert_eq!(reply.header("allow"), None, "GET {path}");
        reply.assert_no_cors(&format!("GET {path}"));
    }
}

#[test]
fn wipe_with_the_admin_api_removes_every_group() {
    let gw = Gateway::start(&["--web.enable-admin-api"]);
    assert_eq!(gw.put("/metrics/job/w", "a 1\n").status, 200);
    assert_eq!(gw.put("/metrics/job/w/instance/i", "b 2\n").status, 200);
    assert_eq!(gw.put("/metrics/job/bad", "a{x=\"1\"} 1\n").status, 200);
    assert_eq!(groups(&gw).len(), 3);

    for method in ["GET", "POST", "DELETE"] {
        let reply = full(&gw, method, "/api/v1/admin/wipe");
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.header("allow"), Some("OPTIONS, PUT"), "{method}");
        assert_eq!(reply.body, "Method Not Allowed\n");
    }
    assert_eq!(groups(&gw).len(), 3, "a refused wipe removes nothing");

    let reply = full(&gw, "PUT", "/api/v1/admin/wipe");
    assert_eq!(reply.status, 202);
    assert_eq!(reply.body, "");
    assert_eq!(reply.header("content-type"), None);
    reply.assert_no_cors("PUT wipe");
    assert_eq!(api_data(&gw, "/api/v1/metrics"), json!([]));
    let scrape = gw.scrape();
    assert!(samples(&scrape, "push_time_seconds").is_empty(), "{scrape}");
    assert!(samples(&scrape, "a").is_empty(), "{scrape}");

    // The store works as new afterwards: the old types are forgotten.
    assert_eq!(
        gw.put("/metrics/job/w", "# TYPE a counter\na 1\n").status,
        200
    );
    assert_eq!(groups(&gw).len(), 1);
}

#[test]
fn wipe_without_the_admin_api_is_not_found() {
    let gw = Gateway::start(&[]);
    assert_eq!(gw.put("/metrics/job/w", "a 1\n").status, 200);
    for method in ["PUT", "POST", "GET"] {
        let reply = full(&gw, method, "/api/v1/admin/wipe");
        assert_eq!(reply.status, 404, "{method}");
        assert_eq!(reply.body, "404 page not found\n");
    }
    assert_eq!(groups(&gw).len(), 1);
}

#[test]
fn requests_are_counted_under_upstreams_handler_names() {
    let gw = Gateway::start(&["--web.enable-admin-api"]);
    api_data(&gw, "/api/v1/status");
    api_data(&gw, "/api/v1/metrics");
    api_data(&gw, "/api/v1/metrics");
    assert_eq!(full(&gw, "OPTIONS", "/api/v1/whatever").status, 200);
    assert_eq!(full(&gw, "PUT", "/api/v1/admin/wipe").status, 202);
    // Refused methods and unknown paths are not counted, as upstream's router answers them.
    assert_eq!(full(&gw, "POST", "/api/v1/status").status, 405);
    assert_eq!(full(&gw, "GET", "/api/v1/nonexistent").status, 404);
    let scrape = gw.scrape();
    let mut counted: Vec<String> = samples(&scrape, "pushgateway_http_requests_total")
        .into_iter()
        .filter(|line| line.contains("api/v1") || line.contains("\"wipe\""))
        .collect();
    counted.sort();
    assert_eq!(
        counted,
        [
            "pushgateway_http_requests_total{code=\"200\",handler=\"api/v1/metrics\",method=\"get\"} 2",
            "pushgateway_http_requests_total{code=\"200\",handler=\"api/v1/options\",method=\"options\"} 1",
            "pushgateway_http_requests_total{code=\"200\",handler=\"api/v1/status\",method=\"get\"} 1",
            "pushgateway_http_requests_total{code=\"202\",handler=\"wipe\",method=\"put\"} 1",
        ]
    );
}

#[test]
fn api_moves_under_the_route_prefix() {
    let gw = Gateway::start(&["--web.route-prefix=/pfx", "--web.enable-admin-api"]);
    assert_eq!(
        api_data(&gw, "/pfx/api/v1/status")["flags"]["web.route-prefix"],
        "/pfx"
    );
    assert_eq!(api_data(&gw, "/pfx/api/v1/metrics"), json!([]));
    assert_eq!(full(&gw, "PUT", "/pfx/api/v1/admin/wipe").status, 202);
    assert_eq!(full(&gw, "OPTIONS", "/pfx/api/v1/x").status, 200);
    for path in ["/api/v1/status", "/api/v1/metrics"] {
        assert_eq!(full(&gw, "GET", path).status, 404, "{path}");
    }
    assert_eq!(full(&gw, "PUT", "/api/v1/admin/wipe").status, 404);
}
