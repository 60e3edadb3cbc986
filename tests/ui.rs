//! The web UI over real HTTP: the pages list what was pushed, escape what clients chose,
//! paginate and filter many groups, keep links under the route prefix and external URL, serve
//! their assets, and are counted as upstream counts them. A headless Chromium then uses the
//! page like a person: sees the groups, collapses one (remembered across a reload), cancels a
//! delete, confirms another, and the group is gone from `/metrics`.

mod browser;
mod common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{samples, Gateway};
use prost::Message;
use pushgateway::exposition::proto;

const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// A response with its headers.
struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn groups(&self) -> usize {
        self.body.matches("<details class=\"group").count()
    }

    fn open_groups(&self) -> usize {
        self.body
            .lines()
            .filter(|l| l.starts_with("<details class=\"group") && l.ends_with(" open>"))
            .count()
    }
}

fn get(gw: &Gateway, path: &str) -> Page {
    let response = reqwest::blocking::Client::new()
        .get(gw.url(path))
        .send()
        .expect("request");
    Page {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().expect("body"),
    }
}

fn html(gw: &Gateway, path: &str) -> Page {
    let page = get(gw, path);
    assert_eq!(page.status, 200, "{path}: {}", page.body);
    assert_eq!(
        page.header("content-type"),
        "text/html; charset=utf-8",
        "{path}"
    );
    assert!(
        page.header("content-security-policy")
            .contains("script-src 'self'"),
        "{path}: no CSP"
    );
    page
}

fn put_ok(gw: &Gateway, path: &str, body: &str) {
    let reply = gw.put(path, body);
    assert_eq!(reply.status, 200, "PUT {path}: {}", reply.body);
}

fn b64(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(value)
}

fn native_histogram_push(gw: &Gateway, path: &str) {
    let span = |offset: i32, length: u32| proto::BucketSpan {
        offset: Some(offset),
        length: Some(length),
    };
    let family = proto::MetricFamily {
        name: Some("resize_duration_seconds".into()),
        help: Some("Time spent resizing one image.".into()),
        r#type: Some(proto::MetricType::Histogram as i32),
        unit: None,
        metric: vec![proto::Metric {
            label: vec![proto::LabelPair {
                name: Some("format".into()),
                value: Some("webp".into()),
            }],
            histogram: Some(proto::Histogram {
                sample_count: Some(41),
                sample_sum: Some(9.82),
                schema: Some(2),
                zero_threshold: Some(1e-128),
                zero_count: Some(1),
                positive_span: vec![span(-8, 6), span(2, 3)],
                positive_delta: vec![1, 2, 3, 1, -2, 1, -3, 2, -1],
                ..Default::default()
            }),
            ..Default::default()
        }],
    };
    let mut body = Vec::new();
    family.encode_length_delimited(&mut body).unwrap();
    let reply = gw.request_with("PUT", path, body, &[("Content-Type", PROTOBUF)]);
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// Groups like a real gateway holds: a backup job with an instance, a job whose last push
/// was refused, a classic histogram and a summary, and a native histogram.
fn push_realistic(gw: &Gateway) {
    put_ok(
        gw,
        "/metrics/job/backup/instance/db1",
        "# HELP backup_duration_seconds How long the last backup took.\n\
         # TYPE backup_duration_seconds gauge\n\
         backup_duration_seconds 142.7\n\
         # HELP backup_size_bytes Size of the backup archive, per database.\n\
         # TYPE backup_size_bytes gauge\n\
         backup_size_bytes{database=\"orders\"} 4.2e+09\n\
         backup_size_bytes{database=\"users\"} 1.9e+08\n",
    );
    put_ok(
        gw,
        "/metrics/job/nightly_etl/instance/etl-1",
        "# HELP etl_rows_processed_total Rows processed by the last run.\n\
         # TYPE etl_rows_processed_total counter\n\
         etl_rows_processed_total{table=\"orders\"} 182340\n\
         etl_rows_processed_total{table=\"events\"} 9.1e+06\n",
    );
    // Refused (backup_duration_seconds is a gauge elsewhere): the group's push failed.
    let refused = gw.put(
        "/metrics/job/nightly_etl/instance/etl-1",
        "# TYPE backup_duration_seconds counter\nbackup_duration_seconds 3\n",
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    put_ok(
        gw,
        "/metrics/job/api_batch/instance/dispatcher-1/region/eu-west-1",
        "# HELP batch_request_duration_seconds Latency of the API calls the batch makes.\n\
         # TYPE batch_request_duration_seconds histogram\n\
         batch_request_duration_seconds_bucket{endpoint=\"/orders\",le=\"0.05\"} 120\n\
         batch_request_duration_seconds_bucket{endpoint=\"/orders\",le=\"0.1\"} 301\n\
         batch_request_duration_seconds_bucket{endpoint=\"/orders\",le=\"0.25\"} 377\n\
         batch_request_duration_seconds_bucket{endpoint=\"/orders\",le=\"0.5\"} 398\n\
         batch_request_duration_seconds_bucket{endpoint=\"/orders\",le=\"1\"} 409\n\
         batch_request_duration_seconds_bucket{endpoint=\"/orders\",le=\"+Inf\"} 412\n\
         batch_request_duration_seconds_sum{endpoint=\"/orders\"} 41.3\n\
         batch_request_duration_seconds_count{endpoint=\"/orders\"} 412\n\
         # HELP batch_payload_bytes Size of the payloads the batch sent.\n\
         # TYPE batch_payload_bytes summary\n\
         batch_payload_bytes{quantile=\"0.5\"} 2048\n\
         batch_payload_bytes{quantile=\"0.9\"} 8192\n\
         batch_payload_bytes{quantile=\"0.99\"} 30720\n\
         batch_payload_bytes_sum 1.5e+06\n\
         batch_payload_bytes_count 412\n",
    );
    native_histogram_push(gw, "/metrics/job/image_resize");
}

#[test]
fn pages_show_groups_families_and_status() {
    let gw = Gateway::start(&[]);
    push_realistic(&gw);
    for path in ["/", "/?page=1", "/?page=x&filter="] {
        let page = html(&gw, path);
        let body = &page.body;
        assert_eq!(page.groups(), 4, "{path}");
        // Few groups: all open.
        assert_eq!(page.open_groups(), 4, "{path}");
        for text in [
            // Grouping labels as badges.
            "badge-job\"><span class=\"ln\">job=</span><span class=\"lv\">\"backup\"</span>",
            "badge-instance\"><span class=\"ln\">instance=</span><span class=\"lv\">\"db1\"</span>",
            "badge-other\"><span class=\"ln\">region=</span><span class=\"lv\">\"eu-west-1\"</span>",
            // Families with help and type.
            "<h3 class=\"family-name\">backup_size_bytes</h3><span class=\"type type-gauge\">gauge</span>",
            "<span class=\"help\">Size of the backup archive, per database.</span>",
            "<span class=\"type type-counter\">counter</span>",
            // Values, labels other than the grouping ones.
            "<span class=\"ln\">database=</span><span class=\"lv\">\"orders\"</span>",
            "<td data-th=\"Value\" class=\"num\">4.2e+09</td>",
            // Summary: quantiles, count, sum.
            "<span class=\"k\">φ 0.99</span><span class=\"v\">30720</span>",
            "<td data-th=\"Count\" class=\"num\">412</td>",
            "<td data-th=\"Sum\" class=\"num\">1.5e+06</td>",
            // Classic histogram buckets.
            "<span class=\"k\">≤ 0.25</span><span class=\"v\">377</span>",
            "<span class=\"k\">≤ +Inf</span><span class=\"v\">412</span>",
            "<td data-th=\"Sum\" class=\"num\">41.3</td>",
            // Native histogram: schema, zero bucket, ranges.
            "native · schema 2 · zero threshold 1e-128",
            "<span class=\"k\">zero [-1e-128, 1e-128]</span><span class=\"v\">1</span>",
            "<span class=\"pair\" title=\"(0.25, 0.29730177875068026]\"><span class=\"k\">(0.25, 0.297302]</span><span class=\"v\">3</span>",
            "<td data-th=\"Count\" class=\"num\">41</td>",
            // Push state.
            "last push failed",
            "Delete group",
        ] {
            assert!(body.contains(text), "{path}: missing {text}\n{body}");
        }
        // Only the refused group is marked.
        assert_eq!(body.matches("<details class=\"group failed\"").count(), 1);
        assert!(body.contains("4 groups"));
        // Without the admin API there is no wipe button.
        assert!(!body.contains("id=\"delete-all\""));
        // The delete URLs name each group with base64 values.
        assert!(body.contains(&format!(
            "data-url=\"/metrics/job@base64/{}=/instance@base64/{}=\"",
            b64("backup"),
            b64("db1")
        )));
    }

    let status = html(&gw, "/status");
    for text in [
        "Build information",
        env!("CARGO_PKG_VERSION"),
        "Start time",
        "Command-line flags",
        "<code>--web.telemetry-path</code></th><td><code>/metrics</code>",
        "<code>--persistence.interval</code></th><td><code>5m0s</code>",
        "aria-current=\"page\">Status",
    ] {
        assert!(status.body.contains(text), "status: missing {text}");
    }

    let empty = Gateway::start(&[]);
    let page = html(&empty, "/");
    assert!(page.body.contains("No metrics pushed yet"));
    assert_eq!(page.groups(), 0);
}

#[test]
fn hostile_values_are_escaped() {
    let gw = Gateway::start(&["--web.enable-admin-api"]);
    let hostile = "<script>alert(1)</script>";
    put_ok(
        &gw,
        &format!("/metrics/job/xss/victim@base64/{}", b64(hostile)),
        "# HELP xss_total <b>bold</b> & \"quoted\" 'single' help.\n\
         # TYPE xss_total counter\n\
         xss_total{payload=\"\\\"><img src=x onerror=alert(2)>\"} 1\n",
    );
    let page = html(&gw, "/?filter=%3Cscript%3E");
    let body = &page.body;
    assert_eq!(page.groups(), 1, "{body}");
    // The only script element is the UI's own.
    assert_eq!(body.matches("<script").count(), 1, "{body}");
    assert!(!body.contains("<img src=x"), "{body}");
    assert!(!body.contains("<b>"), "{body}");
    for text in [
        "<span class=\"lv\">\"&lt;script&gt;alert(1)&lt;/script&gt;\"</span>",
        "&lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot; &#39;single&#39; help.",
        "<span class=\"lv\">\"&quot;&gt;&lt;img src=x onerror=alert(2)&gt;\"</span>",
        // The filter is echoed escaped, in the box and the summary.
        "value=\"&lt;script&gt;\"",
        "<code class=\"filter-echo\">&lt;script&gt;</code>",
        // The dialog's text and the wipe button.
        "data-name=\"job=&quot;xss&quot;, victim=&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;\"",
        "id=\"delete-all\" data-url=\"/api/v1/admin/wipe\" data-count=\"1\"",
    ] {
        assert!(body.contains(text), "missing {text}\n{body}");
    }
    // A hostile filter is echoed escaped too, even when nothing matches.
    let page = html(&gw, "/?filter=%22%3E%3Cimg%20src%3Dx%3E");
    assert_eq!(page.groups(), 0);
    assert!(!page.body.contains("<img src=x"));
    assert!(page.body.contains("No group matches"));
    // A hostile Host header in the empty-store example.
    let empty = Gateway::start(&[]);
    let response = reqwest::blocking::Client::new()
        .get(empty.url("/"))
        .header("Host", "<i>evil</i>")
        .send()
        .unwrap();
    let text = response.text().unwrap();
    assert!(text.contains("http://&lt;i&gt;evil&lt;/i&gt;/metrics/job/some_job"));
    assert!(!text.contains("<i>"));
}

#[test]
fn many_groups_are_paginated_and_filtered() {
    let gw = Gateway::start(&[]);
    for i in 0..250 {
        put_ok(
            &gw,
            &format!("/metrics/job/batch/instance/i{i:03}"),
            &format!("batch_items{{shard=\"{}\"}} {i}\n", i % 7),
        );
    }
    put_ok(&gw, "/metrics/job/backup/instance/db1", "backup_ok 1\n");
    put_ok(&gw, "/metrics/job/backup/instance/db2", "backup_ok 1\n");

    let first = html(&gw, "/");
    assert_eq!(first.groups(), 100);
    // Many groups: closed until opened.
    assert_eq!(first.open_groups(), 0);
    assert!(first.body.contains("252 groups"));
    assert!(first.body.contains("showing 1–100"));
    assert!(first
        .body
        .contains("<a class=\"btn\" rel=\"next\" href=\"/?page=2\">"));
    assert!(first
        .body
        .contains("<a class=\"page\" href=\"/?page=3\">3</a>"));
    assert!(first.body.contains("data-count=\"252\""));

    let last = html(&gw, "/?page=3");
    assert_eq!(last.groups(), 52);
    assert!(last.body.contains("showing 201–252"));
    assert!(last.body.contains("rel=\"prev\" href=\"/?page=2\""));
    assert!(last.body.contains("aria-current=\"page\">3</span>"));
    // Out of range or nonsense: the nearest page.
    assert_eq!(html(&gw, "/?page=99").body, last.body);
    assert_eq!(html(&gw, "/?page=abc").groups(), 100);
    assert_eq!(html(&gw, "/?page=0").groups(), 100);

    // Exact label match; few matches are shown open.
    let backup = html(&gw, "/?filter=job%3Dbackup");
    assert_eq!(backup.groups(), 2);
    assert_eq!(backup.open_groups(), 2);
    assert!(backup.body.contains(
        "2 groups</span> matching <code class=\"filter-echo\">job=backup</code> (of 252)"
    ));
    assert!(!backup.body.contains("class=\"pager\""));
    assert_eq!(html(&gw, "/?filter=instance%3Di007").groups(), 1);
    assert_eq!(
        html(&gw, "/?filter=job%3D%22batch%22+instance%3Di007").groups(),
        1
    );
    // Substring of the label string, case-insensitive.
    assert_eq!(html(&gw, "/?filter=I24").groups(), 10);
    assert_eq!(html(&gw, "/?filter=nothing-like-this").groups(), 0);

    // Pages of a filter keep the filter in their links.
    let batch = html(&gw, "/?filter=batch&page=2");
    assert_eq!(batch.groups(), 100);
    assert!(batch.body.contains("250 groups</span> matching"));
    assert!(batch.body.contains("href=\"/?page=3&amp;filter=batch\""));
    assert_eq!(html(&gw, "/?filter=batch&page=3").groups(), 50);

    // The JSON API still has them all; the page never did.
    assert!(first.body.len() < 2_000_000, "{} bytes", first.body.len());
}

#[test]
fn links_follow_the_route_prefix_and_external_url() {
    let gw = Gateway::start(&["--web.route-prefix=/pgw", "--web.enable-admin-api"]);
    put_ok(&gw, "/pgw/metrics/job/a", "x 1\n");
    for path in ["/pgw", "/pgw/", "/pgw/?page=1"] {
        let page = html(&gw, path);
        for text in [
            "href=\"/pgw/static/ui.css?v=",
            "src=\"/pgw/static/ui.js?v=",
            "href=\"/pgw/static/favicon.svg?v=",
            "<a class=\"tab\" href=\"/pgw/\" aria-current=\"page\">Metrics</a>",
            "<a class=\"tab\" href=\"/pgw/status\">Status</a>",
            "href=\"/pgw/metrics\">Scrape</a>",
            "href=\"/pgw/api/v1/metrics\">JSON API</a>",
            "action=\"/pgw/\"",
            "data-base=\"/pgw\"",
            "data-url=\"/pgw/metrics/job@base64/YQ=\"",
            "data-url=\"/pgw/api/v1/admin/wipe\"",
        ] {
            assert!(page.body.contains(text), "{path}: missing {text}");
        }
    }
    assert!(html(&gw, "/pgw/status")
        .body
        .contains("href=\"/pgw/static/ui.css?v="));
    assert_eq!(get(&gw, "/pgw/static/ui.js").status, 200);
    assert_eq!(get(&gw, "/").status, 404);
    assert_eq!(get(&gw, "/status").status, 404);
    assert_eq!(get(&gw, "/static/ui.js").status, 404);

    // Behind a proxy that strips /gw: served at the root, linked under /gw.
    let proxied = Gateway::start(&[
        "--web.external-url=http://proxy.example:8080/gw/",
        "--web.route-prefix=/",
    ]);
    put_ok(&proxied, "/metrics/job/a", "x 1\n");
    let page = html(&proxied, "/");
    assert!(page.body.contains("href=\"/gw/static/ui.css?v="));
    assert!(page
        .body
        .contains("data-url=\"/gw/metrics/job@base64/YQ=\""));
    assert_eq!(get(&proxied, "/static/ui.css").status, 200);

    // The external URL's path is the route prefix when none is given.
    let external = Gateway::start(&["--web.external-url=http://example.org/push"]);
    assert!(html(&external, "/push/")
        .body
        .contains("href=\"/push/status\""));
    assert!(html(&external, "/push/status")
        .body
        .contains("src=\"/push/static/ui.js?v="));
}

#[test]
fn static_assets_have_their_content_types() {
    let gw = Gateway::start(&[]);
    for (path, content_type, content) in [
        (
            "/static/ui.css",
            "text/css; charset=utf-8",
            include_str!("../src/http/ui/ui.css"),
        ),
        (
            "/static/ui.js?v=whatever",
            "text/javascript; charset=utf-8",
            include_str!("../src/http/ui/ui.js"),
        ),
        (
            "/static/favicon.svg",
            "image/svg+xml",
            include_str!("../src/http/ui/favicon.svg"),
        ),
    ] {
        let page = get(&gw, path);
        assert_eq!(page.status, 200, "{path}");
        assert_eq!(page.header("content-type"), content_type, "{path}");
        assert_eq!(page.header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(page.body, content, "{path}");
    }
    for path in [
        "/static/",
        "/static/nope.js",
        "/static/../Cargo.toml",
        "/static/ui.css/x",
    ] {
        assert_eq!(get(&gw, path).status, 404, "{path}");
    }
    // Nothing is fetched from elsewhere.
    let page = html(&gw, "/");
    for attribute in ["src=\"", "href=\""] {
        for link in page.body.split(attribute).skip(1) {
            assert!(
                link.starts_with('/'),
                "{attribute}{}",
                &link[..40.min(link.len())]
            );
        }
    }
}

#[test]
fn ui_requests_are_counted_as_status_and_static() {
    let gw = Gateway::start(&[]);
    html(&gw, "/");
    html(&gw, "/?page=2");
    html(&gw, "/status");
    get(&gw, "/static/ui.css");
    get(&gw, "/static/nope");
    let scrape = gw.scrape();
    let counted = samples(&scrape, "pushgateway_http_requests_total");
    for line in [
        "pushgateway_http_requests_total{code=\"200\",handler=\"status\",method=\"get\"} 3",
        "pushgateway_http_requests_total{code=\"200\",handler=\"static\",method=\"get\"} 1",
        "pushgateway_http_requests_total{code=\"404\",handler=\"static\",method=\"get\"} 1",
    ] {
        assert!(
            counted.iter().any(|l| l == line),
            "missing {line} in {counted:#?}"
        );
    }
}

/// Chromium loads the UI, sees the groups, keeps a collapsed group collapsed across a reload,
/// cancels one delete and confirms another; the deleted group is gone from `/metrics`. Then
/// "Delete all groups" (admin API) empties a second gateway.
#[test]
fn browser_deletes_a_group_through_the_button() {
    let gw = Gateway::start(&[]);
    put_ok(&gw, "/metrics/job/backup/instance/db1", "backup_ok 1\n");
    put_ok(&gw, "/metrics/job/backup/instance/db2", "backup_ok 1\n");
    // A value with a slash and markup: only a base64 delete URL reaches this group.
    let path_value = "/var/<b>spool</b>";
    put_ok(
        &gw,
        &format!("/metrics/job/web/path@base64/{}", b64(path_value)),
        "# HELP web_files Files <i>waiting</i>.\n# TYPE web_files gauge\nweb_files 7\n",
    );
    assert_eq!(samples(&gw.scrape(), "web_files").len(), 1);

    let mut browser = browser::Browser::launch();
    browser.open(&gw.url("/"));
    assert_eq!(
        browser.eval("document.querySelectorAll('details.group').length"),
        3
    );
    assert_eq!(
        browser.eval("document.querySelectorAll('details.group[open]').length"),
        3
    );
    let text = browser.eval("document.body.innerText");
    let text = text.as_str().unwrap();
    assert!(text.contains("3 groups"), "{text}");
    assert!(
        text.contains("\"db1\"") && text.contains("\"db2\""),
        "{text}"
    );
    assert!(text.contains(path_value), "{text}");
    assert!(text.contains("Files <i>waiting</i>."), "{text}");
    // The markup stayed text.
    assert_eq!(
        browser.eval("document.querySelectorAll('main b, main i').length"),
        0
    );
    // Times were made local by the script.
    assert_eq!(
        browser.eval(r"/^(just now|\d+ seconds? ago|\d+ minutes? ago)$/.test(document.querySelector('time.rel').textContent)"),
        true
    );

    let group = |instance: &str| {
        format!(
            "details.group[data-key=\"/metrics/job@base64/{}=/instance@base64/{}=\"]",
            b64("backup"),
            b64(instance)
        )
    };
    // Collapse db2; it stays collapsed after a reload, the others stay open.
    browser.click(&format!("{} > summary", group("db2")));
    browser.wait_for(
        &format!("!document.querySelector('{}').open", group("db2")),
        Duration::from_secs(5),
    );
    // The `toggle` event that stores the state follows the click asynchronously.
    browser.wait_for(
        "(localStorage.getItem('pushgateway-ui::open') || '').includes('false')",
        Duration::from_secs(5),
    );
    browser.reload();
    assert_eq!(
        browser.eval(&format!("document.querySelector('{}').open", group("db2"))),
        false
    );
    assert_eq!(
        browser.eval(&format!("document.querySelector('{}').open", group("db1"))),
        true
    );

    // Cancel: nothing happens.
    browser.click(&format!("{} button.delete-group", group("db1")));
    browser.wait_for(
        "document.getElementById('confirm').open",
        Duration::from_secs(5),
    );
    browser.click("#confirm-cancel");
    browser.wait_for(
        "!document.getElementById('confirm').open",
        Duration::from_secs(5),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        browser.eval("document.querySelectorAll('details.group').length"),
        3
    );
    assert_eq!(samples(&gw.scrape(), "backup_ok").len(), 2);

    // Confirm: the group with the awkward value goes, from the page and from the gateway.
    let web = "details.group[data-key^=\"/metrics/job@base64/d2Vi=/path@base64/\"]";
    browser.click(&format!("{web} button.delete-group"));
    browser.wait_for(
        "document.getElementById('confirm').open",
        Duration::from_secs(5),
    );
    let dialog = browser.eval("document.getElementById('confirm').innerText");
    assert!(
        dialog
            .as_str()
            .unwrap()
            .contains(&format!("job=\"web\", path=\"{path_value}\"")),
        "{dialog}"
    );
    browser.click("#confirm-ok");
    browser.wait_for(
        &format!("!document.querySelector('{web}')"),
        Duration::from_secs(10),
    );
    assert_eq!(
        browser.eval("document.querySelectorAll('details.group').length"),
        2
    );
    assert_eq!(
        browser.eval("document.getElementById('group-count').textContent"),
        "2 groups"
    );
    let scrape = gw.scrape();
    assert!(samples(&scrape, "web_files").is_empty(), "{scrape}");
    assert!(!scrape.contains("job=\"web\""), "{scrape}");
    assert_eq!(samples(&scrape, "backup_ok").len(), 2);

    // A reload shows what the gateway holds.
    browser.reload();
    assert_eq!(
        browser.eval("document.querySelectorAll('details.group').length"),
        2
    );

    // With the admin API, "Delete all groups" wipes the gateway and the page shows it empty.
    let admin = Gateway::start(&["--web.enable-admin-api"]);
    put_ok(&admin, "/metrics/job/a", "a_ok 1\n");
    put_ok(&admin, "/metrics/job/b", "b_ok 1\n");
    browser.open(&admin.url("/"));
    browser.click("#delete-all");
    browser.wait_for(
        "document.getElementById('confirm').open",
        Duration::from_secs(5),
    );
    assert_eq!(
        browser.eval("document.getElementById('confirm-ok').textContent"),
        "Delete all 2 groups"
    );
    browser.click("#confirm-ok");
    browser.wait_for(
        "document.body.innerText.includes('No metrics pushed yet')",
        Duration::from_secs(10),
    );
    let scrape = admin.scrape();
    assert!(samples(&scrape, "a_ok").is_empty() && samples(&scrape, "b_ok").is_empty());

    let exceptions = browser.exceptions();
    assert!(exceptions.is_empty(), "the page threw: {exceptions:#?}");
}

/// Regenerates `docs/ui.png`: `cargo test --test ui -- --ignored screenshot`.
#[test]
#[ignore = "writes docs/ui.png; run by hand after changing the UI"]
fn screenshot_for_the_readme() {
    let gw = Gateway::start(&[]);
    push_realistic(&gw);
    let profile = browser::TempDir::new("pushgateway-ui-screenshot");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ui.png");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let shoot = |out: &std::path::Path, size: &str, path: &str| {
        let status = std::process::Command::new(browser::chromium_binary())
            .args(browser::headless_args(&profile.0))
            .arg(format!("--screenshot={}", out.display()))
            .arg(format!("--window-size={size}"))
            .arg(gw.url(path))
            .status()
            .expect("run chromium");
        assert!(status.success());
        assert!(std::fs::metadata(out).unwrap().len() > 10_000);
    };
    shoot(&out, "1280,900", "/");
    // More views to look at while working on the UI: UI_SCREENSHOTS=<directory>.
    if let Some(dir) = std::env::var_os("UI_SCREENSHOTS") {
        let dir = std::path::PathBuf::from(dir);
        shoot(&dir.join("narrow.png"), "420,1400", "/");
        shoot(
            &dir.join("native.png"),
            "1280,600",
            "/?filter=job%3Dimage_resize",
        );
        shoot(&dir.join("status.png"), "1280,1000", "/status");
    }
}
