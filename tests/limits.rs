//! Opt-in limits over real HTTP: each refuses with a message naming its flag, changes
//! nothing stored (not even a failure time), and is counted by reason.

mod common;

use common::{samples, Gateway};

fn rejected(gateway: &Gateway, reason: &str) -> String {
    let scrape = gateway.scrape();
    samples(&scrape, "pushgateway_push_rejected_total")
        .into_iter()
        .find(|line| line.contains(&format!("reason=\"{reason}\"")))
        .map(|line| line.rsplit(' ').next().unwrap_or_default().to_string())
        .unwrap_or_else(|| "0".into())
}

#[test]
fn each_limit_refuses_names_its_flag_and_changes_nothing() {
    let gateway = Gateway::start(&[
        "--push.max-groups=2",
        "--push.max-series=5",
        "--push.max-series-per-push=4",
        "--push.max-label-length=10",
    ]);
    assert_eq!(
        gateway
            .put("/metrics/job/a", "m{x=\"1\"} 1\nm{x=\"2\"} 2\n")
            .status,
        200
    );
    let before = gateway.pushed_state();
    let cases = [
        (
            "/metrics/job/b",
            "o 1\no{y=\"a\"} 1\no{y=\"b\"} 1\no{y=\"c\"} 1\n",
            429,
            "--push.max-series",
            "max_series",
        ),
        (
            "/metrics/job/b",
            "p 1\np{y=\"a\"} 1\np{y=\"b\"} 1\np{y=\"c\"} 1\np{y=\"d\"} 1\n",
            413,
            "--push.max-series-per-push",
            "max_series_per_push",
        ),
        (
            "/metrics/job/b",
            "q{y=\"12345678901\"} 1\n",
            400,
            "--push.max-label-length",
            "max_label_length",
        ),
        (
            "/metrics/job/b/instance/an-instance-name",
            "q 1\n",
            400,
            "--push.max-label-length",
            "max_label_length",
        ),
    ];
    let mut counted = std::collections::BTreeMap::new();
    for (path, body, status, flag, reason) in cases {
        let reply = gateway.put(path, body);
        assert_eq!(reply.status, status, "{path} {body:?}: {}", reply.body);
        assert!(reply.body.contains(flag), "{}", reply.body);
        assert_eq!(gateway.pushed_state(), before, "{reason} changed the store");
        let count = counted.entry(reason).or_insert(0);
        *count += 1;
        assert_eq!(rejected(&gateway, reason), count.to_string(), "{reason}");
    }
    assert_eq!(gateway.put("/metrics/job/b", "o 1\n").status, 200);
    let before = gateway.pushed_state();
    let reply = gateway.put("/metrics/job/c", "o 1\n");
    assert_eq!(reply.status, 429);
    assert!(reply.body.contains("--push.max-groups"), "{}", reply.body);
    assert_eq!(gateway.pushed_state(), before);
    // Room comes back when a group goes.
    assert_eq!(gateway.delete("/metrics/job/b").status, 202);
    assert_eq!(gateway.put("/metrics/job/c", "o 1\n").status, 200);
    let scrape = gateway.scrape();
    assert_eq!(
        samples(&scrape, "pushgateway_groups"),
        vec!["pushgateway_groups 2"]
    );
    assert_eq!(
        samples(&scrape, "pushgateway_series"),
        vec!["pushgateway_series 3"]
    );
}

#[test]
fn validation_refusals_are_counted_by_reason_and_ready_stays_up_without_problems() {
    let gateway = Gateway::start(&[]);
    assert_eq!(
        gateway
            .put("/metrics/job/a", "# TYPE m counter\nm 1\n")
            .status,
        200
    );
    assert_eq!(
        gateway
            .put("/metrics/job/b", "# TYPE m gauge\nm 1\n")
            .status,
        400
    );
    assert_eq!(gateway.put("/metrics/job/b", "x 1 123\n").status, 400);
    assert_eq!(gateway.put("/metrics/job/b", "x{\n").status, 400);
    assert_eq!(rejected(&gateway, "type_clash"), "1");
    assert_eq!(rejected(&gateway, "timestamp"), "1");
    assert_eq!(rejected(&gateway, "invalid_body"), "1");
    assert_eq!(gateway.get("/-/ready").status, 200);
    // No limit flags: a large push is fine.
    let big: String = (0..5000).map(|i| format!("big{{i=\"{i}\"}} 1\n")).collect();
    assert_eq!(gateway.put("/metrics/job/big", &big).status, 200);
}

#[test]
fn ready_fails_while_unchecked_pushes_leave_the_store_inconsistent() {
    let gateway = Gateway::start(&["--push.disable-consistency-check"]);
    assert_eq!(
        gateway
            .put("/metrics/job/a", "# TYPE m counter\nm 1\n")
            .status,
        202
    );
    assert_eq!(gateway.get("/-/ready").status, 200);
    assert_eq!(
        gateway
            .put("/metrics/job/b", "# TYPE m gauge\nm 1\n")
            .status,
        202
    );
    let reply = gateway.get("/-/ready");
    assert_eq!(reply.status, 503);
    assert!(reply.body.contains("inconsistent"), "{}", reply.body);
    assert_eq!(gateway.get("/-/healthy").status, 200);
    assert_eq!(gateway.delete("/metrics/job/b").status, 202);
    assert_eq!(gateway.get("/-/ready").status, 200);
}
