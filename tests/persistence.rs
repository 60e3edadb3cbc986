//! Persistence over real processes: pushes answered 2xx survive SIGKILL, shutdown compacts,
//! damaged and foreign files are handled as documented, and a full disk refuses pushes
//! without changing what is stored.
//!
//! The full disk is an injected write failure: the child gets a file-size limit
//! (`RLIMIT_FSIZE`, set between fork and exec), so writes past it fail with `EFBIG` as they
//! fail with `ENOSPC` on a full disk. Mounting a small tmpfs or loop file system would need
//! privileges the test suite does not assume.

mod common;

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{samples, start_expecting_failure, wait_until, Gateway};

fn file_flag(path: &Path) -> String {
    format!("--persistence.file={}", path.display())
}

fn start(path: &Path) -> Gateway {
    Gateway::start(&[&file_flag(path)])
}

/// A body whose every value depends on `n`, so a restored push can be checked exactly.
fn body(n: u64) -> String {
    format!(
        "# TYPE c counter\nc{{x=\"{n}\"}} {n}\n# HELP g A gauge.\n# TYPE g gauge\ng {}.25\n# TYPE h histogram\nh_bucket{{le=\"1\"}} {n}\nh_bucket{{le=\"+Inf\"}} {}\nh_sum {}.5\nh_count {}\n",
        n * 3,
        n + 1,
        n * 7,
        n + 1
    )
}

/// The sample lines a scrape shows for group `job` after `body(n)` was pushed to it.
fn expected_lines(job: &str, n: u64) -> Vec<String> {
    let l = format!("instance=\"\",job=\"{job}\"");
    vec![
        format!("c{{{l},x=\"{n}\"}} {n}"),
        format!("g{{{l}}} {}.25", n * 3),
        format!("h_bucket{{{l},le=\"1\"}} {n}"),
        format!("h_bucket{{{l},le=\"+Inf\"}} {}", n + 1),
        format!("h_sum{{{l}}} {}.5", n * 7),
        format!("h_count{{{l}}} {}", n + 1),
    ]
}

fn lines_of_group(scrape: &str, job: &str) -> Vec<String> {
    let marker = format!("job=\"{job}\"");
    ["c", "g", "h_bucket", "h_sum", "h_count"]
        .iter()
        .flat_map(|name| samples(scrape, name))
        .filter(|line| line.contains(&marker))
        .collect()
}

/// The sample lines of `c`, `g` and `h` by the group's job, in scrape order per family.
fn lines_by_group(scrape: &str) -> BTreeMap<String, Vec<String>> {
    let mut by_family: BTreeMap<&str, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for line in scrape.lines().filter(|l| !l.starts_with('#')) {
        let name = &line[..line.find(['{', ' ']).unwrap_or(line.len())];
        let Some(job) = line
            .split("job=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
        else {
            continue;
        };
        by_family
            .entry(name)
            .or_default()
            .entry(job.to_string())
            .or_default()
            .push(line.to_string());
    }
    let mut by_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in ["c", "g", "h_bucket", "h_sum", "h_count"] {
        for (job, lines) in by_family.remove(name).unwrap_or_default() {
            by_group.entry(job).or_default().extend(lines);
        }
    }
    by_group
}

/// A random number without a dependency: the std hasher's keys come from the OS.
fn random_below(limit: u64) -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(0u8) % limit
}

#[test]
fn acknowledged_pushes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    // Group name → value of the push that was answered 200.
    let mut acknowledged: BTreeMap<String, u64> = BTreeMap::new();
    for round in 0..3 {
        let gateway = start(&path);
        let stop = Arc::new(AtomicBool::new(false));
        let loaders: Vec<_> = (0..4)
            .map(|thread| {
                let url = gateway.url("");
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(10))
                        .build()
                        .unwrap();
                    let mut acked = Vec::new();
                    let started = Instant::now();
                    let mut n = 0u64;
                    // Bounded: stops at the crash, or after 20 s at the latest.
                    while !stop.load(Ordering::Relaxed) && started.elapsed().as_secs() < 20 {
                        n += 1;
                        let job = format!("r{round}-t{thread}-n{n}");
                        let value = n * 10 + thread;
                        let sent = client
                            .put(format!("{url}/metrics/job/{job}"))
                            .body(body(value))
                            .send();
                        match sent {
                            Ok(response) if response.status().as_u16() == 200 => {
                                acked.push((job, value))
                            }
                            Ok(response) => panic!("push refused: {}", response.status()),
                            // The server died mid-request: not acknowledged.
                            Err(_) => break,
                        }
                    }
                    acked
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300 + random_below(1500)));
        gateway.crash();
        stop.store(true, Ordering::Relaxed);
        for loader in loaders {
            acknowledged.extend(loader.join().unwrap());
        }
        assert!(
            acknowledged.len() > round * 10,
            "the loaders got too few pushes through to test anything"
        );

        let restarted = start(&path);
        let by_group = lines_by_group(&restarted.scrape());
        for (job, value) in &acknowledged {
            assert_eq!(
                by_group.get(job).cloned().unwrap_or_default(),
                expected_lines(job, *value),
                "acknowledged push to {job} (round {round}) lost or changed after SIGKILL"
            );
        }
        restarted.crash();
    }
}

#[test]
fn shutdown_compacts_and_deletes_and_wipes_persist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let gateway = Gateway::start(&[&file_flag(&path), "--web.enable-admin-api"]);
    for n in 0..50 {
        assert_eq!(gateway.put("/metrics/job/a", &body(n)).status, 200);
    }
    assert_eq!(gateway.put("/metrics/job/b", &body(1)).status, 200);
    assert_eq!(gateway.put("/metrics/job/c", &body(2)).status, 200);
    assert_eq!(gateway.delete("/metrics/job/b").status, 202);
    let (_, logged) = frames(&std::fs::read(&path).unwrap());
    let before = gateway.pushed_state();
    assert!(gateway.terminate().success());
    let compacted = std::fs::metadata(&path).unwrap().len() as usize;
    assert_eq!(frames(&std::fs::read(&path).unwrap()).1, compacted);
    assert!(
        compacted * 5 < logged,
        "shutdown left {compacted} bytes of a {logged}-byte log"
    );

    let restarted = Gateway::start(&[&file_flag(&path), "--web.enable-admin-api"]);
    assert_eq!(restarted.pushed_state(), before);
    let scrape = restarted.scrape();
    assert_eq!(lines_of_group(&scrape, "a"), expected_lines("a", 49));
    assert!(lines_of_group(&scrape, "b").is_empty());
    assert_eq!(
        restarted.request("PUT", "/api/v1/admin/wipe", "").status,
        202
    );
    restarted.crash();

    let after_wipe = start(&path);
    assert_eq!(after_wipe.pushed_state(), "");
}

#[test]
fn failure_times_persist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let gateway = start(&path);
    assert_eq!(gateway.put("/metrics/job/a", "m 1\n").status, 200);
    assert_eq!(gateway.put("/metrics/job/a", "m 1 1000\n").status, 400);
    let before = gateway.scrape();
    let failure = samples(&before, "push_failure_time_seconds");
    assert!(!failure[0].ends_with(" 0"), "{failure:?}");
    // A failure record is written without the request waiting for it; shutdown flushes it.
    assert!(gateway.terminate().success());
    let restarted = start(&path);
    assert_eq!(
        samples(&restarted.scrape(), "push_failure_time_seconds"),
        failure
    );
}

/// Pushes that end up in the log (not the snapshot), then crashes.
fn logged_pushes(path: &Path, jobs: &[&str]) {
    let gateway = start(path);
    for (n, job) in jobs.iter().enumerate() {
        assert_eq!(
            gateway
                .put(&format!("/metrics/job/{job}"), &body(n as u64))
                .status,
            200
        );
    }
    gateway.crash();
}

/// The offsets of the frames in a persistence file (8 bytes of magic, then frames of
/// `len:u32le crc:u32le data[len]`), and the offset where the log ends (zeros follow).
fn frames(data: &[u8]) -> (Vec<usize>, usize) {
    let mut offsets = Vec::new();
    let mut at = 8;
    while at + 8 <= data.len() {
        let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        offsets.push(at);
        at += 8 + len;
    }
    (offsets, at)
}

#[test]
fn a_torn_last_record_is_dropped_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    logged_pushes(&path, &["a"]);
    // A crash in the middle of writing a frame: a header announcing more than is there, in
    // the space allocated ahead of the log.
    let mut data = std::fs::read(&path).unwrap();
    let (_, intact) = frames(&data);
    let torn = [200, 0, 0, 0, 1, 2, 3, 4, 1, 7, 7];
    if data.len() < intact + torn.len() {
        data.resize(intact + torn.len(), 0);
    }
    data[intact..intact + torn.len()].copy_from_slice(&torn);
    std::fs::write(&path, &data).unwrap();

    let gateway = start(&path);
    assert_eq!(
        lines_of_group(&gateway.scrape(), "a"),
        expected_lines("a", 0)
    );
    assert!(
        gateway.log().contains("Dropped an incomplete last record"),
        "{}",
        gateway.log()
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), intact as u64);
    // Appending goes on from the intact end.
    assert_eq!(gateway.put("/metrics/job/b", &body(5)).status, 200);
    gateway.crash();
    let restarted = start(&path);
    let scrape = restarted.scrape();
    assert_eq!(lines_of_group(&scrape, "a"), expected_lines("a", 0));
    assert_eq!(lines_of_group(&scrape, "b"), expected_lines("b", 5));
}

#[test]
fn a_corrupted_record_stops_startup_unless_told_to_start_from_the_readable_part() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    logged_pushes(&path, &["a", "b", "c"]);
    // Damage the middle of the second push's record; the third is intact after it.
    let mut data = std::fs::read(&path).unwrap();
    let (offsets, end) = frames(&data);
    // The snapshot of the empty store (two frames), then one frame per push.
    assert_eq!(offsets.len(), 5, "{offsets:?}");
    let (b_start, c_start) = (offsets[3], offsets[4]);
    assert!(end > c_start);
    data[(b_start + c_start) / 2] ^= 0x5a;
    std::fs::write(&path, &data).unwrap();

    let (status, log) = start_expecting_failure(&[&file_flag(&path)]);
    assert!(!status.success());
    assert!(log.contains(&path.display().to_string()), "{log}");
    assert!(
        log.contains(&format!("corrupt at byte offset {b_start}")),
        "{log}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        data,
        "a file that could not be read was changed"
    );

    let gateway = Gateway::start(&[&file_flag(&path), "--persistence.start-from-readable"]);
    let scrape = gateway.scrape();
    assert_eq!(lines_of_group(&scrape, "a"), expected_lines("a", 0));
    assert!(lines_of_group(&scrape, "b").is_empty());
    assert!(lines_of_group(&scrape, "c").is_empty());
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("state.corrupt-"))
        .collect();
    assert_eq!(kept.len(), 1, "the damaged original is kept aside");
    assert_eq!(std::fs::read(dir.path().join(&kept[0])).unwrap(), data);
}

#[test]
fn unreadable_and_unknown_files_stop_startup_and_stay_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let directory = dir.path().join("a-directory");
    std::fs::create_dir(&directory).unwrap();
    let (status, log) = start_expecting_failure(&[&file_flag(&directory)]);
    assert!(!status.success());
    assert!(log.contains("cannot read the persistence file"), "{log}");

    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, b"this is not a pushgateway file\n").unwrap();
    let (status, log) = start_expecting_failure(&[&file_flag(&garbage)]);
    assert!(!status.success());
    assert!(log.contains("neither by this gateway"), "{log}");
    assert_eq!(
        std::fs::read(&garbage).unwrap(),
        b"this is not a pushgateway file\n"
    );
}

#[test]
fn a_full_disk_refuses_pushes_without_changing_anything_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    const LIMIT: u64 = 64 * 1024;
    // A file-size limit makes writes beyond it fail as a full disk does (EFBIG, not ENOSPC).
    let gateway = Gateway::start_with(&[&file_flag(&path)], |command| {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe and only affects the child.
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: LIMIT,
                    rlim_max: LIMIT,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    assert_eq!(gateway.put("/metrics/job/a", &body(1)).status, 200);
    let before = gateway.pushed_state();

    let big: String = (0..6000)
        .map(|i| format!("big{{i=\"{i}\"}} {i}\n"))
        .collect();
    assert!(big.len() as u64 > LIMIT);
    let refused = gateway.put("/metrics/job/big", &big);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("could not write the persistence file"),
        "{}",
        refused.body
    );
    assert_eq!(
        gateway.pushed_state(),
        before,
        "a refused push changed the store"
    );
    // Readiness tells: persisting failed. The writer retries with a fresh snapshot (which
    // fits) after half a second, and the gateway is ready again by itself.
    let not_ready = gateway.get("/-/ready");
    assert_eq!(not_ready.status, 503);
    assert!(
        not_ready.body.contains("persistence is failing"),
        "{}",
        not_ready.body
    );
    assert_eq!(gateway.get("/-/healthy").status, 200);
    let scrape = gateway.scrape();
    assert_eq!(
        samples(&scrape, "pushgateway_persistence_failures_total"),
        vec!["pushgateway_persistence_failures_total 1"]
    );
    assert!(scrape.contains("pushgateway_push_rejected_total{reason=\"persistence_failed\"} 1\n"));
    wait_until("ready again", Duration::from_secs(10), || {
        gateway.get("/-/ready").status == 200
    });
    assert_eq!(gateway.put("/metrics/job/b", &body(2)).status, 200);
    assert_eq!(
        lines_of_group(&gateway.scrape(), "b"),
        expected_lines("b", 2)
    );
    gateway.crash();

    let restarted = start(&path);
    let scrape = restarted.scrape();
    assert_eq!(lines_of_group(&scrape, "a"), expected_lines("a", 1));
    assert_eq!(lines_of_group(&scrape, "b"), expected_lines("b", 2));
    assert!(samples(&scrape, "big").is_empty());
}

const GO_PUSHGATEWAY: &str = "/usr/bin/prometheus-pushgateway";

/// The Go Pushgateway, started on a free loopback port; killed (by its PID) when dropped.
struct GoGateway {
    child: std::process::Child,
    url: String,
}

impl Drop for GoGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (bounded: 20 s) until `done` holds.
fn wait_for(what: &str, done: impl FnMut() -> bool) {
    wait_until(what, Duration::from_secs(20), done);
}

#[test]
fn a_go_pushgateway_file_is_imported_with_everything_it_held() {
    if !Path::new(GO_PUSHGATEWAY).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{GO_PUSHGATEWAY} is missing; .ci/run installs it"
        );
        eprintln!("skipping: {GO_PUSHGATEWAY} is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("go-state");
    let port = free_port();
    let mut go = GoGateway {
        child: std::process::Command::new(GO_PUSHGATEWAY)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--persistence.file={}", path.display()))
            .arg("--persistence.interval=1s")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
        url: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::blocking::Client::new();
    wait_for("the Go Pushgateway to listen", || {
        client
            .get(format!("{}/-/ready", go.url))
            .send()
            .is_ok_and(|r| r.status().is_success())
    });
    let pushes = [
        ("PUT", "/metrics/job/batch/instance/db1", body(3)),
        (
            "POST",
            "/metrics/job/batch/instance/db1/region/eu",
            "# TYPE s summary\ns{quantile=\"0.5\"} 0.125\ns_sum 12.5\ns_count 100\n".to_string(),
        ),
        (
            "PUT",
            "/metrics/job/empty/shard@base64/=",
            "u 1e+06\n".to_string(),
        ),
        ("PUT", "/metrics/job/doomed", "d 1\n".to_string()),
        ("DELETE", "/metrics/job/doomed", String::new()),
        // Refused (a timestamp): only the group's failure time changes.
        (
            "PUT",
            "/metrics/job/empty/shard@base64/=",
            "u 2 1000\n".to_string(),
        ),
    ];
    for (method, path, body) in &pushes {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        client
            .request(method, format!("{}{path}", go.url))
            .body(body.clone())
            .send()
            .unwrap();
    }
    let go_scrape = || {
        client
            .get(format!("{}/metrics", go.url))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    // Upstream applies changes asynchronously: wait until the last ones show.
    wait_for("the Go Pushgateway to apply the pushes", || {
        let scrape = go_scrape();
        !scrape.contains("\nd{")
            && !scrape
                .contains("push_failure_time_seconds{instance=\"\",job=\"empty\",shard=\"\"} 0\n")
    });
    // Sorted lines: the series order within a family differs from upstream's (README,
    // "Where we differ"); what is stored must not.
    let without_go_runtime = |scrape: &str| {
        let mut lines: Vec<String> = common::normalize_pushed(scrape)
            .lines()
            .filter(|l| {
                let name = l
                    .trim_start_matches("# HELP ")
                    .trim_start_matches("# TYPE ");
                !name.starts_with("go_")
            })
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    let expected = without_go_runtime(&go_scrape());
    let sorted = |mut lines: Vec<String>| {
        lines.sort();
        lines
    };
    let failure_lines = sorted(samples(&go_scrape(), "push_failure_time_seconds"));
    let push_lines = sorted(samples(&go_scrape(), "push_time_seconds"));
    // SAFETY: kill(2) on the PID of our own child process.
    unsafe {
        libc::kill(go.child.id() as libc::pid_t, libc::SIGTERM);
    }
    wait_for("the Go Pushgateway to exit", || {
        matches!(go.child.try_wait(), Ok(Some(_)))
    });
    let original = std::fs::read(&path).unwrap();

    let ours = start(&path);
    let scrape = ours.scrape();
    assert_eq!(without_go_runtime(&scrape), expected);
    // Push and failure times carry over exactly.
    assert_eq!(
        sorted(samples(&scrape, "push_failure_time_seconds")),
        failure_lines
    );
    assert_eq!(sorted(samples(&scrape, "push_time_seconds")), push_lines);
    let log = ours.log();
    assert!(log.contains("Imported the Go Pushgateway"), "{log}");
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("go-state.go-pushgateway-"))
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(std::fs::read(dir.path().join(&kept[0])).unwrap(), original);
    // From now on the file is ours, and survives a crash as any other.
    assert_eq!(ours.put("/metrics/job/after", "a 1\n").status, 200);
    ours.crash();
    let restarted = start(&path);
    let after_crash = restarted.scrape();
    assert_eq!(samples(&after_crash, "a").len(), 1);
    assert_eq!(
        lines_of_group(&after_crash, "batch"),
        lines_of_group(&scrape, "batch")
    );
    assert_eq!(lines_of_group(&scrape, "batch").len(), 6);
}

#[test]
fn an_inconsistent_store_stays_inconsistent_across_a_restart_with_the_check_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let unchecked = Gateway::start(&[&file_flag(&path), "--push.disable-consistency-check"]);
    assert_eq!(
        unchecked
            .put("/metrics/job/a", "# TYPE m counter\nm 1\n")
            .status,
        202
    );
    assert_eq!(
        unchecked
            .put("/metrics/job/b", "# TYPE m gauge\nm 1\n")
            .status,
        202
    );
    assert_eq!(unchecked.get("/metrics").status, 500);
    unchecked.crash();

    let checked = start(&path);
    assert_eq!(checked.get("/metrics").status, 500);
    let refused = checked.put("/metrics/job/c", "x 1\n");
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("inconsistent"), "{}", refused.body);
    // Deleting the culprit heals it, as without persistence.
    assert_eq!(checked.delete("/metrics/job/b").status, 202);
    assert_eq!(checked.put("/metrics/job/c", "x 1\n").status, 200);
}
