//! Group expiry over real HTTP: `--push.group-ttl`, the `Pushgateway-Group-TTL` header, the
//! expiry counter, and expiry across restarts with persistence.

mod common;

use std::time::{Duration, Instant};

use common::{samples, wait_until, Gateway};

fn put_with_ttl(gateway: &Gateway, path: &str, body: &str, ttl: &str) -> common::Reply {
    gateway.request_with(
        "PUT",
        path,
        body.as_bytes().to_vec(),
        &[("Pushgateway-Group-TTL", ttl)],
    )
}

fn jobs(gateway: &Gateway) -> Vec<String> {
    let mut jobs: Vec<String> = samples(&gateway.scrape(), "push_time_seconds")
        .iter()
        .filter_map(|line| {
            line.split("job=\"")
                .nth(1)?
                .split('"')
                .next()
                .map(str::to_string)
        })
        .collect();
    jobs.sort();
    jobs
}

/// Polls (bounded: 10 s) until the stored jobs are `want`.
fn wait_for_jobs(gateway: &Gateway, want: &[&str]) {
    wait_until(&format!("groups {want:?}"), Duration::from_secs(10), || {
        jobs(gateway) == want
    });
}

#[test]
fn groups_expire_after_their_ttl_unless_their_push_says_otherwise() {
    let gateway = Gateway::start(&["--push.group-ttl=1s"]);
    assert_eq!(gateway.put("/metrics/job/short", "m 1\n").status, 200);
    assert_eq!(
        put_with_ttl(&gateway, "/metrics/job/forever", "m 2\n", "0").status,
        200
    );
    assert_eq!(
        put_with_ttl(&gateway, "/metrics/job/hour", "m 3\n", "1h").status,
        200
    );
    // A later push without the header keeps the group's own TTL.
    assert_eq!(gateway.post("/metrics/job/hour", "n 3\n").status, 200);
    assert_eq!(jobs(&gateway), ["forever", "hour", "short"]);
    let started = Instant::now();
    wait_for_jobs(&gateway, &["forever", "hour"]);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "expired too early"
    );
    let scrape = gateway.scrape();
    assert_eq!(
        samples(&scrape, "pushgateway_groups_expired_total"),
        vec!["pushgateway_groups_expired_total 1"]
    );
    // The TTL in force shows in the API for groups that will expire.
    let api = gateway.get("/api/v1/metrics").body;
    assert!(api.contains("\"group_ttl_seconds\":3600"), "{api}");
    assert_eq!(api.matches("group_ttl_seconds").count(), 1, "{api}");
    assert!(gateway.get("/").body.contains("Expires (TTL 1h)"));
}

#[test]
fn a_push_that_sets_an_earlier_deadline_wakes_the_expiry() {
    let gateway = Gateway::start(&[]);
    assert_eq!(
        put_with_ttl(&gateway, "/metrics/job/late", "m 1\n", "1h").status,
        200
    );
    // The expiry task now sleeps for an hour; this push must wake it.
    assert_eq!(
        put_with_ttl(&gateway, "/metrics/job/soon", "m 1\n", "1s").status,
        200
    );
    wait_for_jobs(&gateway, &["late"]);
}

#[test]
fn an_invalid_ttl_header_is_refused_and_changes_nothing() {
    let gateway = Gateway::start(&[]);
    assert_eq!(gateway.put("/metrics/job/a", "m 1\n").status, 200);
    let before = gateway.pushed_state();
    for bad in ["soon", "-5s", "1.5h", ""] {
        let reply = put_with_ttl(&gateway, "/metrics/job/a", "m 2\n", bad);
        assert_eq!(reply.status, 400, "{bad:?}: {}", reply.body);
        assert!(
            reply.body.contains("Pushgateway-Group-TTL"),
            "{}",
            reply.body
        );
        assert_eq!(gateway.pushed_state(), before, "{bad:?} changed the store");
    }
    // Without --push.group-ttl nothing expires (upstream's behaviour).
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(jobs(&gateway), ["a"]);
}

#[test]
fn ttls_survive_a_restart_and_groups_that_expired_while_down_are_gone_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = format!("--persistence.file={}", dir.path().join("state").display());
    let gateway = Gateway::start(&[&file]);
    assert_eq!(
        put_with_ttl(&gateway, "/metrics/job/brief", "m 1\n", "1s").status,
        200
    );
    assert_eq!(
        put_with_ttl(&gateway, "/metrics/job/day", "m 1\n", "1d").status,
        200
    );
    assert_eq!(gateway.put("/metrics/job/plain", "m 1\n").status, 200);
    gateway.crash();
    std::thread::sleep(Duration::from_millis(1500));

    let restarted = Gateway::start(&[&file, "--push.group-ttl=1h"]);
    // Gone before the first scrape, not merely soon after.
    assert_eq!(jobs(&restarted), ["day", "plain"]);
    let api = restarted.get("/api/v1/metrics").body;
    // day keeps its own TTL; plain follows the new default.
    assert!(api.contains("\"group_ttl_seconds\":86400"), "{api}");
    assert!(api.contains("\"group_ttl_seconds\":3600"), "{api}");
    assert!(
        restarted.log().contains("expired while stopped"),
        "{}",
        restarted.log()
    );
}
