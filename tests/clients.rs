//! Real clients against the real server: `curl` as the upstream README uses it, and Python
//! (`requests` and the official `prometheus_client`), whose parser also reads our scrape.
//! These tools must be installed (`.ci/run` does): a missing one fails the test.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{samples, Gateway};

fn curl(args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new("curl")
        .args(["--silent", "--show-error"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl must be installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

#[test]
fn curl_examples_from_the_upstream_readme() {
    let gw = Gateway::start(&[]);
    let (ok, out) = curl(
        &["--data-binary", "@-", &gw.url("/metrics/job/some_job")],
        "some_metric 3.14\n",
    );
    assert!(ok, "{out}");
    let body = "# TYPE some_metric counter\nsome_metric{label=\"val1\"} 42\n# TYPE another_metric gauge\n# HELP another_metric Just an example.\nanother_metric 2398.283\n";
    // The first push made some_metric untyped; a counter of the same name in another group
    // is a type clash, refused with its reason.
    let (ok, out) = curl(
        &[
            "--fail-with-body",
            "--data-binary",
            "@-",
            &gw.url("/metrics/job/some_job/instance/some_instance"),
        ],
        body,
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("\"some_metric\" is pushed as COUNTER"),
        "{out}"
    );
    let scrape = gw.scrape();
    assert!(samples(&scrape, "another_metric").is_empty());
    assert_eq!(
        samples(&scrape, "some_metric"),
        vec!["some_metric{instance=\"\",job=\"some_job\"} 3.14"]
    );
    let (ok, out) = curl(
        &[
            "--fail-with-body",
            "-X",
            "DELETE",
            &gw.url("/metrics/job/some_job"),
        ],
        "",
    );
    assert!(ok, "{out}");
    let (ok, out) = curl(
        &[
            "--fail-with-body",
            "-X",
            "DELETE",
            &gw.url("/metrics/job/some_job/instance/some_instance"),
        ],
        "",
    );
    assert!(ok, "{out}");
    // Now the counter push goes through.
    let (ok, out) = curl(
        &[
            "--fail-with-body",
            "--data-binary",
            "@-",
            &gw.url("/metrics/job/some_job/instance/some_instance"),
        ],
        body,
    );
    assert!(ok, "{out}");
    let scrape = gw.scrape();
    assert_eq!(
        samples(&scrape, "some_metric"),
        vec!["some_metric{instance=\"some_instance\",job=\"some_job\",label=\"val1\"} 42"]
    );
    assert_eq!(
        samples(&scrape, "another_metric"),
        vec!["another_metric{instance=\"some_instance\",job=\"some_job\"} 2398.283"]
    );
    // A refused push shows its reason to curl users.
    let (ok, out) = curl(
        &[
            "--fail-with-body",
            "--data-binary",
            "@-",
            &gw.url("/metrics/job/x"),
        ],
        "m 1 1234\n",
    );
    assert!(!ok);
    assert!(out.contains("timestamps"), "{out}");
}

#[test]
fn python_requests_and_prometheus_client() {
    let gw = Gateway::start(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/clients.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(&gw.address)
        .output()
        .expect("python3 must be installed");
    assert!(
        output.status.success(),
        "python clients failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
