//! Listing and deleting groups by Prometheus selector over real HTTP: every operator, OR-ed
//! selectors, bad selectors, the admin flag, and and that a matcher delete survives a crash.

mod common;

use common::Gateway;

/// `match[]` query parameters for `selectors`, percent-encoded.
fn query(selectors: &[&str]) -> String {
    selectors
        .iter()
        .map(|s| {
            let encoded: String = s
                .bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("match[]={encoded}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The jobs/instances the listing returns, as `job/instance`.
fn listed(gateway: &Gateway, selectors: &[&str]) -> Vec<String> {
    let reply = gateway.get(&format!("/api/v1/groups?{}", query(selectors)));
    assert_eq!(reply.status, 200, "{selectors:?}: {}", reply.body);
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(json["status"], "success");
    json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| {
            format!(
                "{}/{}",
                group["labels"]["job"].as_str().unwrap(),
                group["labels"]["instance"].as_str().unwrap_or("")
            )
        })
        .collect::<std::collections::BTreeSet<String>>()
        .into_iter()
        .collect()
}

fn seed(gateway: &Gateway) {
    for path in [
        "/metrics/job/backup/instance/a",
        "/metrics/job/backup/instance/b",
        "/metrics/job/etl-daily/instance/a",
        "/metrics/job/etl-hourly",
        "/metrics/job/web/instance/a",
    ] {
        assert_eq!(gateway.put(path, "m 1\n").status, 200, "{path}");
    }
}

#[test]
fn list_with_each_operator_and_or_ed_selectors() {
    let gateway = Gateway::start(&[]);
    seed(&gateway);
    assert_eq!(
        listed(&gateway, &[r#"{job="backup"}"#]),
        ["backup/a", "backup/b"]
    );
    assert_eq!(
        listed(&gateway, &[r#"{job!="backup",job=~".+"}"#]),
        ["etl-daily/a", "etl-hourly/", "web/a"]
    );
    assert_eq!(
        listed(&gateway, &[r#"{job=~"etl-.*",instance!="a"}"#]),
        ["etl-hourly/"]
    );
    assert_eq!(
        listed(&gateway, &[r#"{job!~"etl-.*|web",instance=~"a|b"}"#]),
        ["backup/a", "backup/b"]
    );
    assert_eq!(
        listed(&gateway, &[r#"{job="web"}"#, r#"{instance="b"}"#]),
        ["backup/b", "web/a"]
    );
    assert_eq!(listed(&gateway, &[r#"{job=~".+"}"#]).len(), 5);
    assert!(listed(&gateway, &[r#"{job="nothing"}"#]).is_empty());
    let reply = gateway.get(&format!("/api/v1/groups?{}", query(&[r#"{job="web"}"#])));
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    let web = &json["data"][0];
    assert!(web["push_time_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(web["push_failure_time_seconds"], 0.0);
    assert_eq!(web["ttl_seconds"], 0.0);
}

#[test]
fn bad_selectors_are_400s_naming_the_problem() {
    let gateway = Gateway::start(&["--web.enable-admin-api"]);
    seed(&gateway);
    let before = gateway.pushed_state();
    for (selectors, expected) in [
        (vec![], "at least one match[]"),
        (vec![""], "empty"),
        (vec![r#"{job=~".*"}"#], "invalid selector"),
        (vec![r#"{job!="backup"}"#], "non-empty matcher"),
        (vec!["{job="], "invalid selector"),
        (vec![r#"up{job="backup"}"#], "no metric name"),
        (vec![r#"{job="web"}"#, "{"], "invalid selector"),
    ] {
        for (method, path) in [
            ("GET", "/api/v1/groups"),
            ("DELETE", "/api/v1/admin/groups"),
        ] {
            let reply = gateway.request(method, &format!("{path}?{}", query(&selectors)), "");
            assert_eq!(reply.status, 400, "{method} {selectors:?}: {}", reply.body);
            let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
            assert_eq!(json["status"], "error");
            assert!(
                json["error"].as_str().unwrap().contains(expected),
                "{selectors:?}: {}",
                reply.body
            );
        }
    }
    assert_eq!(
        gateway.pushed_state(),
        before,
        "a bad selector deleted something"
    );
}

#[test]
fn delete_by_matcher_needs_the_admin_api_and_is_durable() {
    let gateway = Gateway::start(&[]);
    seed(&gateway);
    let q = query(&[r#"{job="backup"}"#]);
    assert_eq!(
        gateway
            .request("DELETE", &format!("/api/v1/admin/groups?{q}"), "")
            .status,
        404
    );
    assert_eq!(listed(&gateway, &[r#"{job="backup"}"#]).len(), 2);
    drop(gateway);

    let dir = tempfile::tempdir().unwrap();
    let file = format!("--persistence.file={}", dir.path().join("state").display());
    let gateway = Gateway::start(&[&file, "--web.enable-admin-api"]);
    seed(&gateway);
    let q = query(&[r#"{job="backup"}"#, r#"{job="etl-daily"}"#]);
    let reply = gateway.request("DELETE", &format!("/api/v1/admin/groups?{q}"), "");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(json["data"]["deleted"], 3);
    assert_eq!(
        listed(&gateway, &[r#"{job=~".+"}"#]),
        ["etl-hourly/", "web/a"]
    );
    // Nothing more matches: 0 deleted, still 200.
    let reply = gateway.request("DELETE", &format!("/api/v1/admin/groups?{q}"), "");
    assert!(reply.body.contains("\"deleted\":0"), "{}", reply.body);
    assert_eq!(
        gateway.request("GET", "/api/v1/admin/groups", "").status,
        405
    );
    gateway.crash();
    let restarted = Gateway::start(&[&file]);
    assert_eq!(
        listed(&restarted, &[r#"{job=~".+"}"#]),
        ["etl-hourly/", "web/a"]
    );
}
