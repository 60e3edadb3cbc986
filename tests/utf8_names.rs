//! UTF-8 metric and label names (`--push.enable-utf8-names`) over real HTTP: quoted names in
//! text pushes, any names in protobuf pushes, `U__` label names in the URL, and scrapes that
//! escape names as the `Accept` header's `escaping=` asks (legacy names by default). Without
//! the flag all of it is refused and scrapes look as they always did.

mod common;

use common::Gateway;
use prost::Message;
use pushgateway::exposition::proto;

const FLAG: &str = "--push.enable-utf8-names";
const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";
const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

const UTF8_BODY: &str = concat!(
    "# HELP \"my.metric\" A dotted gauge.\n",
    "# TYPE \"my.metric\" gauge\n",
    "{\"my.metric\",\"my.label\"=\"a\"} 1\n",
    "plain{\"ünï\"=\"b\"} 2\n",
    "# TYPE legacy_total counter\n",
    "legacy_total{x=\"y\"} 3\n",
);

fn scrape_with(gw: &Gateway, accept: &str) -> common::Reply {
    let reply = gw.request_with("GET", "/metrics", Vec::new(), &[("Accept", accept)]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply
}

/// The lines of a scrape that are not about the gateway's own metrics.
fn pushed_lines(scrape: &str) -> Vec<&str> {
    scrape
        .lines()
        .filter(|line| !line.contains("pushgateway_") && !line.contains("process_"))
        .collect()
}

fn label(name: &str, value: &str) -> proto::LabelPair {
    proto::LabelPair {
        name: Some(name.into()),
        value: Some(value.into()),
    }
}

fn gauge_family(name: &str, labels: Vec<proto::LabelPair>, value: f64) -> proto::MetricFamily {
    proto::MetricFamily {
        name: Some(name.into()),
        help: Some("A protobuf gauge.".into()),
        r#type: Some(proto::MetricType::Gauge as i32),
        unit: None,
        metric: vec![proto::Metric {
            label: labels,
            gauge: Some(proto::Gauge { value: Some(value) }),
            ..Default::default()
        }],
    }
}

fn encode(messages: &[proto::MetricFamily]) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        message.encode_length_delimited(&mut out).unwrap();
    }
    out
}

fn scrape_protobuf(gw: &Gateway, escaping: Option<&str>) -> (String, Vec<proto::MetricFamily>) {
    let mut accept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited".to_string();
    if let Some(escaping) = escaping {
        accept.push_str(";escaping=");
        accept.push_str(escaping);
    }
    let response = reqwest::blocking::Client::new()
        .get(gw.url("/metrics"))
        .header("Accept", accept)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let mut body = &response.bytes().unwrap()[..];
    let mut families = Vec::new();
    while !body.is_empty() {
        families.push(proto::MetricFamily::decode_length_delimited(&mut body).unwrap());
    }
    (content_type, families)
}

#[test]
fn text_push_with_quoted_names_is_served_escaped_by_default() {
    let gw = Gateway::start(&[FLAG]);
    let reply = gw.put("/metrics/job/j", UTF8_BODY);
    assert_eq!(reply.status, 200, "{}", reply.body);

    // No Accept header, and Prometheus' plain text Accept: legacy names, underscores.
    for reply in [
        gw.get("/metrics"),
        scrape_with(&gw, "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
    ] {
        assert_eq!(reply.content_type, format!("{TEXT}; escaping=underscores"));
        let lines = pushed_lines(&reply.body);
        for expected in [
            "# HELP my_metric A dotted gauge.",
            "# TYPE my_metric gauge",
            "my_metric{instance=\"\",job=\"j\",my_label=\"a\"} 1",
            "plain{instance=\"\",job=\"j\",_n_=\"b\"} 2",
            "# TYPE legacy_total counter",
            "legacy_total{instance=\"\",job=\"j\",x=\"y\"} 3",
        ] {
            assert!(lines.contains(&expected), "{expected}\n{}", reply.body);
        }
        // Nothing is quoted.
        assert!(!reply.body.contains("{\"") && !reply.body.contains(",\""));
        assert!(!reply.body.contains("my.metric"), "{}", reply.body);
    }
}

#[test]
fn scrape_escaping_schemes() {
    let gw = Gateway::start(&[FLAG]);
    assert_eq!(gw.put("/metrics/job/j", UTF8_BODY).status, 200);

    let reply = scrape_with(&gw, "text/plain;version=0.0.4;escaping=allow-utf-8");
    assert_eq!(reply.content_type, format!("{TEXT}; escaping=allow-utf-8"));
    let lines = pushed_lines(&reply.body);
    for expected in [
        "# HELP \"my.metric\" A dotted gauge.",
        "# TYPE \"my.metric\" gauge",
        "{\"my.metric\",instance=\"\",job=\"j\",\"my.label\"=\"a\"} 1",
        "plain{instance=\"\",job=\"j\",\"ünï\"=\"b\"} 2",
        "legacy_total{instance=\"\",job=\"j\",x=\"y\"} 3",
    ] {
        assert!(lines.contains(&expected), "{expected}\n{}", reply.body);
    }

    let reply = scrape_with(&gw, "text/plain;version=0.0.4;escaping=dots");
    assert_eq!(reply.content_type, format!("{TEXT}; escaping=dots"));
    let lines = pushed_lines(&reply.body);
    for expected in [
        "# TYPE my_dot_metric gauge",
        "my_dot_metric{instance=\"\",job=\"j\",my_dot_label=\"a\"} 1",
        "plain{instance=\"\",job=\"j\",__n__=\"b\"} 2",
        // Legacy names keep their underscores.
        "legacy_total{instance=\"\",job=\"j\",x=\"y\"} 3",
    ] {
        assert!(lines.contains(&expected), "{expected}\n{}", reply.body);
    }

    let reply = scrape_with(&gw, "text/plain;version=0.0.4;escaping=values");
    assert_eq!(reply.content_type, format!("{TEXT}; escaping=values"));
    let lines = pushed_lines(&reply.body);
    for expected in [
        "# TYPE U__my_2e_metric gauge",
        "U__my_2e_metric{instance=\"\",job=\"j\",U__my_2e_label=\"a\"} 1",
        "plain{instance=\"\",job=\"j\",U___fc_n_ef_=\"b\"} 2",
    ] {
        assert!(lines.contains(&expected), "{expected}\n{}", reply.body);
    }

    // An unknown scheme is ignored: the default applies.
    let reply = scrape_with(&gw, "text/plain;version=0.0.4;escaping=bogus");
    assert_eq!(reply.content_type, format!("{TEXT}; escaping=underscores"));

    // OpenMetrics escapes too, and quotes with allow-utf-8.
    let reply = scrape_with(&gw, "application/openmetrics-text;version=1.0.0");
    assert!(reply
        .body
        .contains("my_metric{instance=\"\",job=\"j\",my_label=\"a\"} 1\n"));
    let reply = scrape_with(
        &gw,
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
    );
    assert!(
        reply.body.contains(
            "# TYPE \"my.metric\" gauge\n# HELP \"my.metric\" A dotted gauge.\n{\"my.metric\",instance=\"\",job=\"j\",\"my.label\"=\"a\"} 1\n"
        ),
        "{}",
        reply.body
    );
    assert!(reply.body.ends_with("# EOF\n"));
}

#[test]
fn protobuf_push_and_scrape() {
    let gw = Gateway::start(&[FLAG]);
    let body = encode(&[gauge_family(
        "proto.metric",
        vec![label("proto.label", "v"), label("plain", "p")],
        7.0,
    )]);
    let reply = gw.request_with("PUT", "/metrics/job/p", body, &[("Content-Type", PROTOBUF)]);
    assert_eq!(reply.status, 200, "{}", reply.body);

    let (content_type, families) = scrape_protobuf(&gw, None);
    assert_eq!(content_type, format!("{PROTOBUF}; escaping=underscores"));
    let family = families
        .iter()
        .find(|f| f.name() == "proto_metric")
        .expect("escaped family");
    let names: Vec<&str> = family.metric[0].label.iter().map(|l| l.name()).collect();
    assert_eq!(names, ["instance", "job", "plain", "proto_label"]);
    assert!(families.iter().all(|f| f.name() != "proto.metric"));
    // The push times of the group are there, with legacy names.
    assert!(families.iter().any(|f| f.name() == "push_time_seconds"));

    let (content_type, families) = scrape_protobuf(&gw, Some("allow-utf-8"));
    assert_eq!(content_type, format!("{PROTOBUF}; escaping=allow-utf-8"));
    let family = families
        .iter()
        .find(|f| f.name() == "proto.metric")
        .expect("family as pushed");
    let names: Vec<&str> = family.metric[0].label.iter().map(|l| l.name()).collect();
    assert_eq!(names, ["instance", "job", "plain", "proto.label"]);
    assert_eq!(family.metric[0].gauge.as_ref().unwrap().value(), 7.0);

    // The same family in text.
    let reply = scrape_with(&gw, "text/plain;version=0.0.4;escaping=allow-utf-8");
    assert!(reply.body.contains(
        "# HELP \"proto.metric\" A protobuf gauge.\n# TYPE \"proto.metric\" gauge\n{\"proto.metric\",instance=\"\",job=\"p\",plain=\"p\",\"proto.label\"=\"v\"} 7\n"
    ), "{}", reply.body);
}

#[test]
fn text_push_reads_back_as_protobuf_with_values_escaping() {
    let gw = Gateway::start(&[FLAG]);
    assert_eq!(gw.put("/metrics/job/j", UTF8_BODY).status, 200);
    let (content_type, families) = scrape_protobuf(&gw, Some("values"));
    assert_eq!(content_type, format!("{PROTOBUF}; escaping=values"));
    let family = families
        .iter()
        .find(|f| f.name() == "U__my_2e_metric")
        .expect("escaped family");
    assert_eq!(family.help(), "A dotted gauge.");
    let names: Vec<&str> = family.metric[0].label.iter().map(|l| l.name()).collect();
    assert_eq!(names, ["instance", "job", "U__my_2e_label"]);
}

#[test]
fn escaped_label_names_in_the_url() {
    let gw = Gateway::start(&[FLAG]);
    // `my.group` written U__-escaped, and `😊` escaped before @base64 ("a/b").
    let path = "/metrics/job/j/U__my_2e_group/x/U___1f60a_@base64/YS9i";
    assert_eq!(gw.put(path, "m 1\n").status, 200);

    let reply = scrape_with(&gw, "text/plain;version=0.0.4;escaping=allow-utf-8");
    let lines = pushed_lines(&reply.body);
    for expected in [
        "m{instance=\"\",job=\"j\",\"my.group\"=\"x\",\"😊\"=\"a/b\"} 1",
        "push_failure_time_seconds{instance=\"\",job=\"j\",\"my.group\"=\"x\",\"😊\"=\"a/b\"} 0",
    ] {
        assert!(lines.contains(&expected), "{expected}\n{}", reply.body);
    }
    let scrape = gw.scrape();
    let lines = pushed_lines(&scrape);
    for expected in [
        "m{instance=\"\",job=\"j\",my_group=\"x\",_=\"a/b\"} 1",
        "push_failure_time_seconds{instance=\"\",job=\"j\",my_group=\"x\",_=\"a/b\"} 0",
    ] {
        assert!(lines.contains(&expected), "{expected}\n{}", scrape);
    }

    // The JSON API shows the names as stored.
    let api = gw.get("/api/v1/metrics");
    assert!(
        api.body.contains("\"my.group\":\"x\"") && api.body.contains("\"😊\":\"a/b\""),
        "{}",
        api.body
    );
    // The page quotes them, and deletes the group with U__ names.
    let page = gw.get("/");
    assert!(page.body.contains("&quot;my.group&quot;="), "{}", page.body);
    assert!(
        page.body.contains("/U__my_2e_group@base64/eA="),
        "{}",
        page.body
    );

    // A bad escape or a `__` name is refused; the same labels spelled plainly are the same
    // group.
    for bad in ["U___2e/x", "U______x/y", "__x/y"] {
        let reply = gw.put(&format!("/metrics/job/j/{bad}"), "m 1\n");
        assert_eq!(reply.status, 400, "{bad}");
        assert!(reply.body.contains("improper label name"), "{}", reply.body);
    }
    assert_eq!(
        gw.delete("/metrics/job/j/my.group/x/%F0%9F%98%8A@base64/YS9i")
            .status,
        202
    );
    assert_eq!(pushed_lines(&gw.scrape()), Vec::<&str>::new());
}

#[test]
fn utf8_refusals_with_the_flag() {
    let gw = Gateway::start(&[FLAG]);
    assert_eq!(gw.put("/metrics/job/j", "m 1\n").status, 200);
    let before = gw.pushed_state();
    // `__` label names are Prometheus' own, and quoted names may not be empty.
    for body in [
        "m{\"__x\"=\"v\"} 1\n",
        "m{__x=\"v\"} 1\n",
        "{\"\"} 1\n",
        "\"a.b\" 1\n",
    ] {
        let reply = gw.put("/metrics/job/j", body);
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
    }
    let body = encode(&[gauge_family("g", vec![label("__x", "v")], 1.0)]);
    let reply = gw.request_with("PUT", "/metrics/job/k", body, &[("Content-Type", PROTOBUF)]);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("invalid label name"), "{}", reply.body);
    // Nothing of group j changed but (for the store-level refusals) its failure time.
    let strip = |state: &str| {
        state
            .lines()
            .filter(|l| !l.starts_with("push_failure_time_seconds") && !l.contains("job=\"k\""))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&before), strip(&gw.pushed_state()));
}

#[test]
fn without_the_flag_utf8_names_are_refused() {
    let gw = Gateway::start(&[]);
    assert_eq!(gw.put("/metrics/job/j", "m 1\n").status, 200);
    let before = gw.pushed_state();

    let reply = gw.put("/metrics/job/j", UTF8_BODY);
    assert_eq!(reply.status, 400);
    assert!(
        reply.body.contains("need --push.enable-utf8-names"),
        "{}",
        reply.body
    );
    let reply = gw.put("/metrics/job/j/my.label/x", "m 1\n");
    assert_eq!(reply.status, 400);
    assert!(
        reply.body.contains("improper label name \"my.label\""),
        "{}",
        reply.body
    );
    // Parse and URL refusals set nothing.
    assert_eq!(before, gw.pushed_state());

    let body = encode(&[gauge_family("proto.metric", vec![], 1.0)]);
    let reply = gw.request_with("PUT", "/metrics/job/j", body, &[("Content-Type", PROTOBUF)]);
    assert_eq!(reply.status, 400);
    assert!(
        reply.body.contains("invalid metric name \"proto.metric\""),
        "{}",
        reply.body
    );
    let body = encode(&[gauge_family("g", vec![label("proto.label", "v")], 1.0)]);
    let reply = gw.request_with("PUT", "/metrics/job/j", body, &[("Content-Type", PROTOBUF)]);
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("invalid label name"), "{}", reply.body);
    // Store-level refusals only set the failure time.
    let after = gw.pushed_state();
    let without_failure = |state: &str| {
        state
            .lines()
            .filter(|l| !l.starts_with("push_failure_time_seconds{"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(without_failure(&before), without_failure(&after));
    assert_ne!(before, after);

    // A U__ name is not decoded: it is a legacy label name of its own.
    assert_eq!(
        gw.put("/metrics/job/u/U__my_2e_label/x", "n 1\n").status,
        200
    );
    let scrape = gw.scrape();
    assert!(
        scrape.contains("n{U__my_2e_label=\"x\",instance=\"\",job=\"u\"} 1\n"),
        "{scrape}"
    );

    // Scrapes look as they always did: no escaping= unless asked.
    assert_eq!(gw.get("/metrics").content_type, TEXT);
    let (content_type, _) = scrape_protobuf(&gw, None);
    assert_eq!(content_type, PROTOBUF);
}

/// Python's reference parser (prometheus_client) reads our UTF-8 text output, when it is
/// installed.
#[test]
fn python_parser_reads_quoted_names() {
    let check = std::process::Command::new("python3")
        .args(["-c", "import prometheus_client.parser"])
        .output();
    if !matches!(check, Ok(ref out) if out.status.success()) {
        eprintln!("skipped: python3 with prometheus_client is not installed");
        return;
    }
    let gw = Gateway::start(&[FLAG]);
    assert_eq!(gw.put("/metrics/job/j", UTF8_BODY).status, 200);
    let script = r#"
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
request = urllib.request.Request(sys.argv[1], headers={"Accept": "text/plain;version=0.0.4;escaping=allow-utf-8"})
body = urllib.request.urlopen(request).read().decode()
samples = {}
for family in text_string_to_metric_families(body):
    for s in family.samples:
        samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
assert samples[("my.metric", (("instance", ""), ("job", "j"), ("my.label", "a")))] == 1.0, samples
assert samples[("plain", (("instance", ""), ("job", "j"), ("ünï", "b")))] == 2.0, samples
print("ok")
"#;
    let output = std::process::Command::new("python3")
        .args(["-c", script, &gw.url("/metrics")])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
