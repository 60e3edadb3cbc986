//! OpenMetrics scrapes over real HTTP, checked by hand and by the reference OpenMetrics
//! parser of Python's prometheus_client (which must be installed; `.ci/run` does).

mod common;

use std::process::Command;

use common::Gateway;

const OPENMETRICS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn scrape_openmetrics(gw: &Gateway) -> String {
    let reply = gw.request_with(
        "GET",
        "/metrics",
        Vec::new(),
        &[("Accept", OPENMETRICS_ACCEPT)],
    );
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    reply.body
}

#[test]
fn openmetrics_scrape_keeps_series_names_and_ends_with_eof() {
    let gw = Gateway::start(&[]);
    let body = "# TYPE jobs_total counter\njobs_total 3\n# TYPE legacy_counter counter\nlegacy_counter 4\n# TYPE g gauge\ng 1\nu 2\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 0.5\nh_count 2\n# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n";
    assert_eq!(gw.put("/metrics/job/om", body).status, 200);
    let text = scrape_openmetrics(&gw);
    assert!(text.ends_with("# EOF\n"), "{text}");
    for expected in [
        "# TYPE jobs counter\njobs_total{instance=\"\",job=\"om\"} 3\n",
        "# TYPE legacy_counter unknown\nlegacy_counter{instance=\"\",job=\"om\"} 4\n",
        "# TYPE g gauge\ng{instance=\"\",job=\"om\"} 1\n",
        "# TYPE u unknown\nu{instance=\"\",job=\"om\"} 2\n",
        "h_bucket{instance=\"\",job=\"om\",le=\"1\"} 1\nh_bucket{instance=\"\",job=\"om\",le=\"+Inf\"} 2\nh_sum{instance=\"\",job=\"om\"} 0.5\nh_count{instance=\"\",job=\"om\"} 2\n",
        "s{instance=\"\",job=\"om\",quantile=\"0.5\"} 1\n",
    ] {
        assert!(text.contains(expected), "missing\n{expected}\nin\n{text}");
    }
    // The reference parser accepts the whole exposition.
    let script = r#"
import sys, urllib.request
from prometheus_client.openmetrics.parser import text_string_to_metric_families
request = urllib.request.Request(sys.argv[1], headers={"Accept": sys.argv[2]})
text = urllib.request.urlopen(request).read().decode()
names = {f.name: f.type for f in text_string_to_metric_families(text)}
assert names["jobs"] == "counter", names
assert names["legacy_counter"] == "unknown", names
assert names["h"] == "histogram", names
assert names["push_time_seconds"] == "gauge", names
print("openmetrics parsed:", len(names), "families")
"#;
    let output = Command::new("python3")
        .args(["-c", script, &gw.url("/metrics"), OPENMETRICS_ACCEPT])
        .output()
        .expect("python3 must be installed");
    assert!(
        output.status.success(),
        "reference parser refused our OpenMetrics:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn requested_escaping_is_echoed_in_the_content_type() {
    let gw = Gateway::start(&[]);
    let reply = gw.request_with(
        "GET",
        "/metrics",
        Vec::new(),
        &[("Accept", "text/plain;version=0.0.4;escaping=underscores")],
    );
    assert_eq!(
        reply.content_type,
        "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"
    );
    let reply = gw.request_with("GET", "/metrics", Vec::new(), &[("Accept", "*/*")]);
    assert_eq!(
        reply.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
}
