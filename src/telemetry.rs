//! The gateway's own metrics: build information, HTTP request counts, push durations and
//! sizes, and `process_*` figures read from `/proc`.
//!
//! They are exposed next to the pushed metrics on every scrape. Their names and types are
//! [`reserved_families`]: a push must agree with those types, and their help wins. The push
//! duration and size summaries compute their 0.1/0.5/0.9 quantiles over the most recent
//! observations (a bounded window per method) rather than over a ten-minute age window as
//! the Go client does; count and sum cover the whole process life.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::exposition::model::{
    Label, Metric, MetricFamily, MetricKind, MetricValue, Quantile, Summary,
};
use crate::store::{unix_now, ReservedFamily, StoreStats};

const BUILD_INFO: &str = "pushgateway_build_info";
const REQUESTS: &str = "pushgateway_http_requests_total";
const PUSH_DURATION: &str = "pushgateway_http_push_duration_seconds";
const PUSH_SIZE: &str = "pushgateway_http_push_size_bytes";
const REJECTED: &str = "pushgateway_push_rejected_total";
const GROUPS: &str = "pushgateway_groups";
const SERIES: &str = "pushgateway_series";
const PERSIST_SUCCESS: &str = "pushgateway_persistence_last_success_timestamp_seconds";
const PERSIST_FAILURES: &str = "pushgateway_persistence_failures_total";
const EXPIRED: &str = "pushgateway_groups_expired_total";

const BUILD_INFO_HELP: &str = "A metric with a constant '1' value labeled by version, revision, branch, goversion from which pushgateway was built, and the goos and goarch for the build.";
const REQUESTS_HELP: &str = "Total HTTP requests processed by the Pushgateway, excluding scrapes.";
const PUSH_DURATION_HELP: &str = "HTTP request duration for pushes to the Pushgateway.";
const PUSH_SIZE_HELP: &str = "HTTP request size for pushes to the Pushgateway.";
const REJECTED_HELP: &str =
    "Pushes and deletes refused with an error, by reason (a validation failure, a limit, a persistence failure).";
const GROUPS_HELP: &str = "Groups stored.";
const SERIES_HELP: &str =
    "Pushed series stored, not counting the push_time_seconds and push_failure_time_seconds of each group.";
const PERSIST_SUCCESS_HELP: &str =
    "Unix time of the last successful write to the persistence file (only with --persistence.file).";
const EXPIRED_HELP: &str = "Groups removed because their TTL ran out.";
const PERSIST_FAILURES_HELP: &str =
    "Writes to the persistence file that failed (only with --persistence.file).";

/// How many recent observations each summary keeps for its quantiles.
const SUMMARY_WINDOW: usize = 1024;
const OBJECTIVES: [f64; 3] = [0.1, 0.5, 0.9];

/// The gateway's own metric families, with their types and help.
pub fn reserved_families() -> Vec<ReservedFamily> {
    let gauge = |name, help| ReservedFamily {
        name,
        kind: MetricKind::Gauge,
        help,
    };
    vec![
        gauge(BUILD_INFO, BUILD_INFO_HELP),
        ReservedFamily {
            name: REQUESTS,
            kind: MetricKind::Counter,
            help: REQUESTS_HELP,
        },
        ReservedFamily {
            name: PUSH_DURATION,
            kind: MetricKind::Summary,
            help: PUSH_DURATION_HELP,
        },
        ReservedFamily {
            name: PUSH_SIZE,
            kind: MetricKind::Summary,
            help: PUSH_SIZE_HELP,
        },
        ReservedFamily {
            name: REJECTED,
            kind: MetricKind::Counter,
            help: REJECTED_HELP,
        },
        gauge(GROUPS, GROUPS_HELP),
        ReservedFamily {
            name: EXPIRED,
            kind: MetricKind::Counter,
            help: EXPIRED_HELP,
        },
        gauge(SERIES, SERIES_HELP),
        gauge(PERSIST_SUCCESS, PERSIST_SUCCESS_HELP),
        ReservedFamily {
            name: PERSIST_FAILURES,
            kind: MetricKind::Counter,
            help: PERSIST_FAILURES_HELP,
        },
        ReservedFamily {
            name: "process_cpu_seconds_total",
            kind: MetricKind::Counter,
            help: "Total user and system CPU time spent in seconds.",
        },
        gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
        ),
        gauge("process_open_fds", "Number of open file descriptors."),
        gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        ),
        gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
        ),
        gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
        ),
    ]
}

/// Shared counters, updated by the HTTP layer and read at scrape time.
#[derive(Clone, Default)]
pub struct Telemetry {
    inner: Arc<Mutex<Counters>>,
}

#[derive(Default)]
struct Counters {
    /// (code, handler, method) → count.
    requests: BTreeMap<(u16, &'static str, Cow<'static, str>), u64>,
    /// method → summary of push durations in seconds.
    durations: BTreeMap<Cow<'static, str>, Window>,
    /// method → summary of push body sizes in bytes.
    sizes: BTreeMap<Cow<'static, str>, Window>,
    /// reason → refused pushes and deletes.
    rejected: BTreeMap<&'static str, u64>,
}

#[derive(Default)]
struct Window {
    recent: VecDeque<f64>,
    count: u64,
    sum: f64,
}

impl Window {
    fn observe(&mut self, value: f64) {
        if self.recent.len() == SUMMARY_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(value);
        self.count += 1;
        self.sum += value;
    }

    fn summary(&self) -> Summary {
        let mut sorted: Vec<f64> = self.recent.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let quantiles = OBJECTIVES
            .iter()
            .map(|&q| Quantile {
                quantile: q,
                value: if sorted.is_empty() {
                    f64::NAN
                } else {
                    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
                    sorted[rank]
                },
            })
            .collect();
        Summary {
            sample_count: self.count,
            sample_sum: self.sum,
            quantiles,
            created: None,
        }
    }
}

impl Telemetry {
    /// Counts one handled request (upstream's handler names: `push`, `delete`, `healthy`…).
    pub fn count_request(&self, handler: &'static str, method: &str, code: u16) {
        let mut counters = self.inner.lock();
        *counters
            .requests
            .entry((code, handler, method_label(method)))
            .or_insert(0) += 1;
    }

    /// Counts a refused push or delete under `reason`.
    pub fn count_rejection(&self, reason: &'static str) {
        *self.inner.lock().rejected.entry(reason).or_insert(0) += 1;
    }

    /// Records the duration and body size of a push (`method` is `put` or `post`).
    pub fn observe_push(&self, method: &str, seconds: f64, size_bytes: usize) {
        let method = method_label(method);
        let mut counters = self.inner.lock();
        counters
            .durations
            .entry(method.clone())
            .or_default()
            .observe(seconds);
        counters
            .sizes
            .entry(method)
            .or_default()
            .observe(size_bytes as f64);
    }

    /// Every own family with its current values (and the store's figures), sorted by name.
    pub fn collect(&self, stats: &StoreStats) -> Vec<MetricFamily> {
        let mut families = Vec::with_capacity(10);
        let reserved = reserved_families();
        let help = |name: &str| {
            reserved
                .iter()
                .find(|r| r.name == name)
                .map(|r| r.help.to_string())
        };
        let family = |name: &str, kind, metrics| MetricFamily {
            name: name.to_string(),
            help: help(name),
            kind,
            metrics,
            unit: None,
        };
        families.push(family(
            BUILD_INFO,
            MetricKind::Gauge,
            vec![plain(build_labels(), MetricValue::Gauge(1.0))],
        ));
        {
            let counters = self.inner.lock();
            let requests = counters
                .requests
                .iter()
                .map(|((code, handler, method), count)| {
                    plain(
                        vec![
                            Label::new("code", code.to_string()),
                            Label::new("handler", *handler),
                            Label::new("method", method.as_ref()),
                        ],
                        MetricValue::counter(*count as f64),
                    )
                })
                .collect();
            families.push(family(REQUESTS, MetricKind::Counter, requests));
            let summaries = |windows: &BTreeMap<Cow<'static, str>, Window>| -> Vec<Metric> {
                windows
                    .iter()
                    .map(|(method, window)| {
                        plain(
                            vec![Label::new("method", method.as_ref())],
                            MetricValue::Summary(Box::new(window.summary())),
                        )
                    })
                    .collect()
            };
            families.push(family(
                PUSH_DURATION,
                MetricKind::Summary,
                summaries(&counters.durations),
            ));
            families.push(family(
                PUSH_SIZE,
                MetricKind::Summary,
                summaries(&counters.sizes),
            ));
            let rejected = counters
                .rejected
                .iter()
                .map(|(reason, count)| {
                    plain(
                        vec![Label::new("reason", *reason)],
                        MetricValue::counter(*count as f64),
                    )
                })
                .collect();
            families.push(family(REJECTED, MetricKind::Counter, rejected));
        }
        let gauge = |value: usize| vec![plain(Vec::new(), MetricValue::Gauge(value as f64))];
        families.push(family(GROUPS, MetricKind::Gauge, gauge(stats.groups)));
        families.push(family(SERIES, MetricKind::Gauge, gauge(stats.series)));
        families.push(family(
            EXPIRED,
            MetricKind::Counter,
            vec![plain(
                Vec::new(),
                MetricValue::counter(stats.expired as f64),
            )],
        ));
        if let Some(persistence) = &stats.persistence {
            families.push(family(
                PERSIST_SUCCESS,
                MetricKind::Gauge,
                vec![plain(
                    Vec::new(),
                    MetricValue::Gauge(persistence.last_success),
                )],
            ));
            families.push(family(
                PERSIST_FAILURES,
                MetricKind::Counter,
                vec![plain(
                    Vec::new(),
                    MetricValue::counter(persistence.failures as f64),
                )],
            ));
        }
        families.extend(process_families().into_iter().map(|(name, kind, value)| {
            let value = match kind {
                MetricKind::Counter => MetricValue::counter(value),
                _ => MetricValue::Gauge(value),
            };
            family(name, kind, vec![plain(Vec::new(), value)])
        }));
        families.retain(|f| !f.metrics.is_empty());
        families.sort_by(|a, b| a.name.cmp(&b.name));
        families
    }
}

/// The `method` label of a request: the method in lower case, without allocating for the
/// standard methods (counted on every request).
fn method_label(method: &str) -> Cow<'static, str> {
    const KNOWN: [&str; 9] = [
        "get", "put", "post", "delete", "head", "options", "patch", "connect", "trace",
    ];
    match KNOWN
        .iter()
        .find(|known| method.eq_ignore_ascii_case(known))
    {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(method.to_ascii_lowercase()),
    }
}

fn plain(labels: Vec<Label>, value: MetricValue) -> Metric {
    Metric {
        labels,
        value,
        timestamp_ms: None,
    }
}

fn build_labels() -> Vec<Label> {
    vec![
        Label::new("branch", option_env!("PUSHGATEWAY_BRANCH").unwrap_or("")),
        Label::new("goarch", std::env::consts::ARCH),
        Label::new("goos", std::env::consts::OS),
        Label::new("goversion", "rust"),
        Label::new(
            "revision",
            option_env!("PUSHGATEWAY_REVISION").unwrap_or(""),
        ),
        Label::new("tags", ""),
        Label::new("version", env!("CARGO_PKG_VERSION")),
    ]
}

/// When the process started, as Unix seconds; set once on first use (at start-up).
fn process_start_time() -> f64 {
    static START: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *START.get_or_init(unix_now)
}

/// Records the start time; call once early in `main`.
pub fn mark_process_start() {
    process_start_time();
}

/// `process_*` figures from `/proc/self`; families that cannot be read are left out.
fn process_families() -> Vec<(&'static str, MetricKind, f64)> {
    let mut out = vec![(
        "process_start_time_seconds",
        MetricKind::Gauge,
        process_start_time(),
    )];
    // Linux reports CPU times in clock ticks (USER_HZ, 100 on every mainstream platform)
    // and RSS in pages (4 KiB on x86_64 and most aarch64 kernels).
    const TICKS_PER_SECOND: f64 = 100.0;
    const PAGE_SIZE: f64 = 4096.0;
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the parenthesised command name, which may itself contain spaces.
        if let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) {
            let fields: Vec<&str> = after.split_whitespace().collect();
            let field = |n: usize| fields.get(n).and_then(|f| f.parse::<f64>().ok());
            // utime and stime are fields 14 and 15 of the whole line, 11 and 12 here.
            if let (Some(utime), Some(stime)) = (field(11), field(12)) {
                out.push((
                    "process_cpu_seconds_total",
                    MetricKind::Counter,
                    (utime + stime) / TICKS_PER_SECOND,
                ));
            }
            if let Some(vsize) = field(20) {
                out.push(("process_virtual_memory_bytes", MetricKind::Gauge, vsize));
            }
            if let Some(rss) = field(21) {
                out.push((
                    "process_resident_memory_bytes",
                    MetricKind::Gauge,
                    rss * PAGE_SIZE,
                ));
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        out.push((
            "process_open_fds",
            MetricKind::Gauge,
            entries.count() as f64,
        ));
    }
    if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
        let soft = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse::<f64>().ok());
        if let Some(soft) = soft {
            out.push(("process_max_fds", MetricKind::Gauge, soft));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_are_lower_case_whatever_the_method() {
        for (method, label) in [
            ("PUT", "put"),
            ("post", "post"),
            ("Patch", "patch"),
            ("PROPFIND", "propfind"),
        ] {
            assert_eq!(method_label(method), label);
        }
        assert!(matches!(method_label("DELETE"), Cow::Borrowed("delete")));
    }

    #[test]
    fn collects_sorted_families_matching_reserved_types() {
        let telemetry = Telemetry::default();
        telemetry.count_request("push", "PUT", 200);
        telemetry.count_request("push", "PUT", 200);
        telemetry.observe_push("PUT", 0.5, 100);
        telemetry.count_rejection("timestamp");
        let families = telemetry.collect(&StoreStats {
            groups: 3,
            series: 7,
            persistence: None,
            expired: 0,
        });
        let names: Vec<&str> = families.iter().map(|f| f.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        let reserved = reserved_families();
        for family in &families {
            let r = reserved
                .iter()
                .find(|r| r.name == family.name)
                .expect("reserved");
            assert_eq!(r.kind, family.kind, "{}", family.name);
        }
        let requests = families.iter().find(|f| f.name == REQUESTS).unwrap();
        assert_eq!(requests.metrics.len(), 1);
        assert_eq!(requests.metrics[0].value, MetricValue::counter(2.0));
        assert!(names.contains(&"process_resident_memory_bytes"));
        let value = |name: &str| {
            families.iter().find(|f| f.name == name).unwrap().metrics[0]
                .value
                .simple_value()
        };
        assert_eq!(value(GROUPS), Some(3.0));
        assert_eq!(value(SERIES), Some(7.0));
        assert_eq!(value(REJECTED), Some(1.0));
        assert!(!names.contains(&PERSIST_FAILURES));
    }

    #[test]
    fn window_quantiles() {
        let mut window = Window::default();
        for v in 1..=100 {
            window.observe(v as f64);
        }
        let summary = window.summary();
        assert_eq!(summary.sample_count, 100);
        assert_eq!(summary.sample_sum, 5050.0);
        assert_eq!(summary.quantiles[1].value, 51.0);
    }
}
