//! Every refused push answers 4xx with a message naming the problem, and leaves what is
//! stored unchanged (only `push_failure_time_seconds` moves, when the push reached the store).

mod common;

use common::{samples, Gateway};

/// A gateway holding two groups, and its pushed state.
fn seeded() -> (Gateway, String) {
    let gw = Gateway::start(&[]);
    assert_eq!(
        gw.put(
            "/metrics/job/a",
            "# TYPE tc counter\ntc 1\nx{foo=\"bar\"} 1\n# TYPE s summary\ns_sum 1\ns_count 1\n"
        )
        .status,
        200
    );
    assert_eq!(gw.put("/metrics/job/b/instance/i", "g 2\n").status, 200);
    let state = gw.pushed_state();
    (gw, state)
}

/// Asserts a refused push: the status, a fragment of the message, and that the state is
/// unchanged apart from the failure time of `group` (given as its label string) if any.
fn assert_refused(
    gw: &Gateway,
    before: &str,
    path: &str,
    body: &str,
    fragment: &str,
    failure_group: Option<&str>,
) {
    let reply = gw.put(path, body);
    assert_eq!(reply.status, 400, "{path} {body:?}: {}", reply.body);
    assert!(
        reply.body.contains(fragment),
        "message {:?} lacks {fragment:?}",
        reply.body
    );
    let after = gw.pushed_state();
    match failure_group {
        None => assert_eq!(after, before, "state changed after {body:?}"),
        Some(group) => {
            let failure = format!("push_failure_time_seconds{{{group}}} T");
            assert!(
                after.contains(&failure),
                "no failure time for {group} after {body:?}:\n{after}"
            );
            let without: Vec<&str> = after
                .lines()
                .filter(|l| {
                    !l.starts_with("push_failure_time_seconds{")
                        && !l.starts_with("push_time_seconds{")
                })
                .collect();
            let before_without: Vec<&str> = before
                .lines()
                .filter(|l| {
                    !l.starts_with("push_failure_time_seconds{")
                        && !l.starts_with("push_time_seconds{")
                })
                .collect();
            assert_eq!(without, before_without, "metrics changed after {body:?}");
        }
    }
}

#[test]
fn timestamps_are_refused_and_set_failure_time() {
    let (gw, before) = seeded();
    assert_refused(
        &gw,
        &before,
        "/metrics/job/a",
        "m 1 1600000000000\n",
        "timestamps",
        Some("instance=\"\",job=\"a\""),
    );
    // A refused push to a new group creates it with push time 0.
    let reply = gw.put("/metrics/job/new", "m 1 1600000000000\n");
    assert_eq!(reply.status, 400);
    let scrape = gw.scrape();
    assert_eq!(
        samples(&scrape, "push_time_seconds")
            .iter()
            .filter(|l| l.contains("job=\"new\""))
            .collect::<Vec<_>>(),
        vec!["push_time_seconds{instance=\"\",job=\"new\"} 0"]
    );
    assert!(samples(&scrape, "m").is_empty());
}

#[test]
fn type_clash_with_another_group_or_own_metrics() {
    let (gw, before) = seeded();
    assert_refused(
        &gw,
        &before,
        "/metrics/job/a/instance/z",
        "# TYPE tc gauge\ntc 1\n",
        "\"tc\"",
        Some("instance=\"z\",job=\"a\""),
    );
    let (gw, before) = seeded();
    assert_refused(
        &gw,
        &before,
        "/metrics/job/b/instance/i",
        "# TYPE pushgateway_build_info counter\npushgateway_build_info 1\n",
        "is pushed as COUNTER but is GAUGE in the gateway's own metrics",
        Some("instance=\"i\",job=\"b\""),
    );
    // The group that holds a family alone may change its type with PUT.
    assert_eq!(
        gw.put("/metrics/job/a", "# TYPE tc gauge\ntc 1\n").status,
        200
    );
    // But with POST, another family of the same group keeps its type.
    assert_eq!(
        gw.put("/metrics/job/c", "# TYPE q counter\nq 1\n").status,
        200
    );
    assert_eq!(
        gw.post("/metrics/job/c", "# TYPE q gauge\nq 1\n").status,
        200
    );
}

#[test]
fn duplicate_series_within_a_push_and_across_groups() {
    let (gw, before) = seeded();
    assert_refused(
        &gw,
        &before,
        "/metrics/job/a",
        "dup 1\ndup 2\n",
        "dup{instance=\"\",job=\"a\"}",
        Some("instance=\"\",job=\"a\""),
    );
    // x{foo="bar",instance="",job="a"} exists in group {job="a"}; group {job="a",foo="bar"}
    // would expose the same series.
    let (gw, before) = seeded();
    assert_refused(
        &gw,
        &before,
        "/metrics/job/a/foo/bar",
        "x 1\n",
        "already pushed to group",
        Some("foo=\"bar\",instance=\"\",job=\"a\""),
    );
    // And the other way round.
    let gw2 = Gateway::start(&[]);
    assert_eq!(gw2.put("/metrics/job/a/foo/bar", "x 1\n").status, 200);
    let before2 = gw2.pushed_state();
    assert_refused(
        &gw2,
        &before2,
        "/metrics/job/a",
        "x{foo=\"bar\"} 1\n",
        "already pushed",
        Some("instance=\"\",job=\"a\""),
    );
}

#[test]
fn suffix_collisions_either_way() {
    let (gw, before) = seeded();
    assert_refused(
        &gw,
        &before,
        "/metrics/job/c",
        "s_count 1\n",
        "collides",
        Some("instance=\"\",job=\"c\""),
    );
    let (gw, _) = seeded();
    assert_eq!(gw.put("/metrics/job/e", "w_count 1\n").status, 200);
    let before = gw.pushed_state();
    assert_refused(
        &gw,
        &before,
        "/metrics/job/c",
        "# TYPE w summary\nw_sum 1\nw_count 1\n",
        "collides",
        Some("instance=\"\",job=\"c\""),
    );
    let (gw, _) = seeded();
    assert_eq!(
        gw.put(
            "/metrics/job/c",
            "# TYPE hh histogram\nhh_bucket{le=\"1\"} 1\nhh_sum 1\nhh_count 1\n"
        )
        .status,
        200
    );
    let before = gw.pushed_state();
    assert_refused(
        &gw,
        &before,
        "/metrics/job/d",
        "hh_bucket 3\n",
        "collides",
        Some("instance=\"\",job=\"d\""),
    );
}

#[test]
fn parse_errors_name_the_line_and_change_nothing() {
    let (gw, before) = seeded();
    let cases = [
        ("ok 1\n# HELP a x\n# HELP a y\na 1\n", "line 3"),
        ("a 1\n# TYPE a counter\n", "line 2"),
        ("a{b=\"c} 1\n", "line 1"),
        ("a{b=\"\\q\"} 1\n", "line 1"),
        ("1a 1\n", "line 1"),
        ("a notanumber\n", "line 1"),
        ("# TYPE h histogram\nh_bucket{le=\"abc\"} 1\n", "line 2"),
        ("a 1", "line 1"),
        ("a 1\r\n", "line 1"),
        ("a{,} 1\n", "line 1"),
    ];
    for (body, line) in cases {
        let reply = gw.put("/metrics/job/a", body);
        assert_eq!(reply.status, 400, "{body:?}");
        assert!(
            reply.body.contains("text format parsing error"),
            "{body:?}: {}",
            reply.body
        );
        assert!(
            reply.body.contains(line),
            "{body:?}: {} lacks {line}",
            reply.body
        );
        assert_eq!(gw.pushed_state(), before, "state changed after {body:?}");
    }
}

#[test]
fn bad_urls_are_400_and_set_nothing() {
    let (gw, before) = seeded();
    let cases = [
        ("/metrics/job/a/b", "odd number of components"),
        ("/metrics/job/a/__x/y", "improper label name"),
        ("/metrics/job/a/1x/y", "improper label name"),
        ("/metrics/job/a/l@base64/!!!", "base64"),
        ("/metrics/job@base64/=", "job name is required"),
        ("/metrics/job@base64/!!", "base64"),
    ];
    for (path, fragment) in cases {
        let reply = gw.put(path, "m 1\n");
        assert_eq!(reply.status, 400, "{path}");
        assert!(reply.body.contains(fragment), "{path}: {}", reply.body);
        assert_eq!(gw.pushed_state(), before, "state changed after {path}");
    }
}

#[test]
fn accepted_oddities() {
    let gw = Gateway::start(&[]);
    // Python's trailing whitespace line, blank lines, comments, trailing comma, {} and
    // special values.
    let body = "# a comment\n\na{} 1\nb{x=\"y\",} NaN\nc +Inf\nd -Inf\ne 1e3\n    ";
    let reply = gw.put("/metrics/job/j", body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let scrape = gw.scrape();
    assert_eq!(samples(&scrape, "a"), vec!["a{instance=\"\",job=\"j\"} 1"]);
    assert_eq!(
        samples(&scrape, "b"),
        vec!["b{instance=\"\",job=\"j\",x=\"y\"} NaN"]
    );
    assert_eq!(
        samples(&scrape, "c"),
        vec!["c{instance=\"\",job=\"j\"} +Inf"]
    );
    assert_eq!(
        samples(&scrape, "d"),
        vec!["d{instance=\"\",job=\"j\"} -Inf"]
    );
    assert_eq!(
        samples(&scrape, "e"),
        vec!["e{instance=\"\",job=\"j\"} 1000"]
    );
    // Escapes in label values and help survive.
    let body = "# HELP esc back\\\\slash\\nnewline\nesc{v=\"q\\\"b\\\\n\\n\"} 1\n";
    assert_eq!(gw.put("/metrics/job/k", body).status, 200);
    let scrape = gw.scrape();
    assert!(
        scrape.contains("# HELP esc back\\\\slash\\nnewline\n"),
        "{scrape}"
    );
    assert!(
        scrape.contains("esc{instance=\"\",job=\"k\",v=\"q\\\"b\\\\n\\n\"} 1\n"),
        "{scrape}"
    );
}

#[test]
fn pushed_push_time_is_replaced_by_the_gateways_own() {
    let gw = Gateway::start(&[]);
    assert_eq!(
        gw.put("/metrics/job/j", "push_time_seconds 5\nm 1\n")
            .status,
        200
    );
    let times = samples(&gw.scrape(), "push_time_seconds");
    assert_eq!(times.len(), 1);
    assert!(!times[0].ends_with(" 5"), "{times:?}");
}
