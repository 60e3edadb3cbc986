//! A real Prometheus server (Debian's `prometheus`, which `.ci/run` installs) scrapes the
//! gateway with `honor_labels: true`; the pushed series, the push-time gauges and the
//! alert-style query are then read back through Prometheus' query API.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Gateway;

struct Prometheus {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_prometheus(target: &str) -> Prometheus {
    let dir = std::env::temp_dir().join(format!("pgw-prom-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: pushgateway\n    honor_labels: true\n    static_configs:\n      - targets: ['{target}']\n"
    );
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus must be installed (apt-get install prometheus)");
    Prometheus { child, port, dir }
}

/// Runs an instant query until it returns at least one series, or gives up after a minute.
fn query(prometheus: &Prometheus, promql: &str) -> Vec<serde_like::Series> {
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = client
            .get(format!("http://127.0.0.1:{}/api/v1/query", prometheus.port))
            .query(&[("query", promql)])
            .send();
        if let Ok(response) = response {
            if let Ok(text) = response.text() {
                let series = serde_like::parse_vector(&text);
                if !series.is_empty() {
                    return series;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no result for {promql} within a minute"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Just enough reading of Prometheus' JSON vector results, to avoid a JSON dependency for
/// one test: each result's metric labels and value.
mod serde_like {
    #[derive(Debug)]
    pub struct Series {
        pub labels: Vec<(String, String)>,
        pub value: String,
    }

    pub fn parse_vector(json: &str) -> Vec<Series> {
        let Some(results) = json.split("\"result\":[").nth(1) else {
            return Vec::new();
        };
        results
            .split("{\"metric\":{")
            .skip(1)
            .map(|item| {
                let (labels, rest) = item.split_once('}').unwrap_or((item, ""));
                let labels = labels
                    .split("\",\"")
                    .filter_map(|pair| {
                        let pair = pair.trim_matches('"');
                        let (name, value) = pair.split_once("\":\"")?;
                        Some((name.to_string(), value.to_string()))
                    })
                    .collect();
                let value = rest
                    .rsplit(",\"")
                    .next()
                    .unwrap_or("")
                    .split('"')
                    .next()
                    .unwrap_or("")
                    .to_string();
                Series { labels, value }
            })
            .collect()
    }
}

fn label<'a>(series: &'a serde_like::Series, name: &str) -> Option<&'a str> {
    series
        .labels
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn prometheus_scrapes_pushed_metrics_with_honor_labels() {
    let gw = Gateway::start(&[]);
    let body = "# TYPE backup_bytes gauge\nbackup_bytes{target=\"db1\"} 1234\n# TYPE backups_total counter\nbackups_total 7\n# TYPE legacy_runs counter\nlegacy_runs 3\n";
    assert_eq!(
        gw.put("/metrics/job/backup/instance/host1", body).status,
        200
    );
    assert_eq!(gw.put("/metrics/job/flaky", "flaky_ok 1\n").status, 200);
    // A refused push makes flaky's failure time newer than its push time.
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        gw.put("/metrics/job/flaky", "flaky_ok 1 1234\n").status,
        400
    );

    let prometheus = start_prometheus(&gw.address);
    let series = query(&prometheus, "backup_bytes");
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(
        label(&series[0], "job"),
        Some("backup"),
        "honor_labels keeps the pushed job"
    );
    assert_eq!(label(&series[0], "instance"), Some("host1"));
    assert_eq!(label(&series[0], "target"), Some("db1"));
    assert_eq!(series[0].value, "1234");

    assert_eq!(query(&prometheus, "backups_total")[0].value, "7");
    // A counter without `_total` keeps its name in Prometheus, as with the Go gateway.
    assert_eq!(query(&prometheus, "legacy_runs")[0].value, "3");

    let push_times = query(&prometheus, "push_time_seconds{job=\"backup\"}");
    assert_eq!(push_times.len(), 1);
    let pushed_at: f64 = push_times[0].value.parse().unwrap();
    assert!(pushed_at > 1.5e9, "push time {pushed_at}");

    let failing = query(&prometheus, "push_failure_time_seconds > push_time_seconds");
    assert_eq!(failing.len(), 1, "{failing:?}");
    assert_eq!(label(&failing[0], "job"), Some("flaky"));
}
