//! The command line, under upstream's flag names, and what follows from it.
//!
//! Every flag of the Go Pushgateway is accepted with its name and default, so a unit file or
//! container spec written for `prom/pushgateway` runs unchanged. Boolean flags take the
//! kingpin forms `--flag`, `--flag=true|false` and `--no-flag`.

use std::time::Duration;

use clap::{ArgAction, Parser, ValueHint};

/// A Prometheus Pushgateway: keeps the latest metrics pushed by batch jobs and exposes them
/// for Prometheus to scrape.
///
/// Jobs push to /metrics/job/<JOB>{/<LABEL>/<VALUE>} with PUT (replace the group), POST
/// (replace the pushed metric families) or DELETE; Prometheus scrapes /metrics with
/// honor_labels: true. The URLs, flags, formats and status codes are those of the Go
/// prom/pushgateway.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "pushgateway",
    disable_version_flag = true,
    after_long_help = "Boolean flags take --flag, --flag=true, --flag=false and --no-flag."
)]
pub struct Flags {
    /// Addresses on which to expose metrics and the web interface. Repeatable.
    #[arg(long = "web.listen-address", value_name = "ADDRESS", default_value = ":9091", action = ArgAction::Append)]
    pub listen_addresses: Vec<String>,

    /// Use systemd socket activation listeners instead of port listeners (Linux only).
    #[arg(long = "web.systemd-socket", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, value_name = "BOOL", hide_possible_values = true)]
    pub systemd_socket: bool,

    /// Path to a configuration file that can enable TLS or authentication.
    #[arg(long = "web.config.file", value_name = "FILE", value_hint = ValueHint::FilePath, default_value = "")]
    pub web_config_file: String,

    /// Path under which to expose the gateway's metrics.
    #[arg(
        long = "web.telemetry-path",
        value_name = "PATH",
        default_value = "/metrics"
    )]
    pub telemetry_path: String,

    /// The URL under which the gateway is externally reachable.
    #[arg(long = "web.external-url", value_name = "URL", value_hint = ValueHint::Url, default_value = "")]
    pub external_url: String,

    /// Prefix for the internal routes of web endpoints. Defaults to the path of
    /// --web.external-url.
    #[arg(long = "web.route-prefix", value_name = "PATH", default_value = "")]
    pub route_prefix: String,

    /// Enable shutdown via HTTP request.
    #[arg(long = "web.enable-lifecycle", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, value_name = "BOOL", hide_possible_values = true)]
    pub enable_lifecycle: bool,

    /// Enable API endpoints for admin control actions.
    #[arg(long = "web.enable-admin-api", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, value_name = "BOOL", hide_possible_values = true)]
    pub enable_admin_api: bool,

    /// File to persist metrics. If empty, metrics are only kept in memory.
    #[arg(long = "persistence.file", value_name = "FILE", value_hint = ValueHint::FilePath, default_value = "")]
    pub persistence_file: String,

    /// The longest time between compactions of the persistence file (every change is
    /// written and fsynced at once; compaction rewrites the file as one snapshot).
    #[arg(long = "persistence.interval", value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub persistence_interval: Duration,

    /// Start from the readable part of a corrupt persistence file instead of refusing to
    /// start (the damaged file is copied aside first).
    #[arg(long = "persistence.start-from-readable", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, value_name = "BOOL", hide_possible_values = true)]
    pub persistence_start_from_readable: bool,

    /// Do not check consistency of pushed metrics. DANGEROUS.
    #[arg(long = "push.disable-consistency-check", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, value_name = "BOOL", hide_possible_values = true)]
    pub disable_consistency_check: bool,

    /// Allow UTF-8 characters in metric and label names.
    #[arg(long = "push.enable-utf8-names", num_args = 0..=1, default_missing_value = "true", default_value = "false", require_equals = true, value_name = "BOOL", hide_possible_values = true)]
    pub enable_utf8_names: bool,

    /// Groups expire this long after their last successful push, unless a push set their own
    /// TTL with the Pushgateway-Group-TTL header. 0: never (upstream's behaviour).
    #[arg(long = "push.group-ttl", default_value = "0", value_parser = parse_duration)]
    pub group_ttl: Duration,

    /// Most groups stored; a push creating one more is refused (429). 0: unlimited.
    #[arg(long = "push.max-groups", default_value_t = 0)]
    pub max_groups: usize,

    /// Most pushed series stored in total (the push-time gauges not counted); a push going
    /// over is refused (429). 0: unlimited.
    #[arg(long = "push.max-series", default_value_t = 0)]
    pub max_series: usize,

    /// Most series in one push (413 beyond). 0: unlimited.
    #[arg(long = "push.max-series-per-push", default_value_t = 0)]
    pub max_series_per_push: usize,

    /// Longest label name or value in a push, in bytes (400 beyond). 0: unlimited.
    #[arg(long = "push.max-label-length", default_value_t = 0)]
    pub max_label_length: usize,

    /// Largest request body accepted, in bytes, after decompression (413 beyond it).
    #[arg(long = "push.max-body-bytes", value_name = "BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Only log messages with the given severity or above: debug, info, warn, error.
    #[arg(long = "log.level", value_name = "LEVEL", default_value = "info", value_parser = ["debug", "info", "warn", "error"])]
    pub log_level: String,

    /// Output format of log messages: logfmt, json.
    #[arg(long = "log.format", value_name = "FORMAT", default_value = "logfmt", value_parser = ["logfmt", "json"])]
    pub log_format: String,

    /// Show application version.
    #[arg(long = "version", action = ArgAction::SetTrue)]
    pub version: bool,

    /// Print a bash completion script and exit (kingpin's flag, hidden as upstream hides it).
    #[arg(long = "completion-script-bash", hide = true, action = ArgAction::SetTrue)]
    pub completion_script_bash: bool,

    /// Print a zsh completion script and exit.
    #[arg(long = "completion-script-zsh", hide = true, action = ArgAction::SetTrue)]
    pub completion_script_zsh: bool,

    /// Print a fish completion script and exit (ours; kingpin has none for fish).
    #[arg(long = "completion-script-fish", hide = true, action = ArgAction::SetTrue)]
    pub completion_script_fish: bool,

    /// Print the man page (roff) and exit.
    #[arg(long = "help-man", hide = true, action = ArgAction::SetTrue)]
    pub help_man: bool,
}

impl Flags {
    /// Parses the process arguments, accepting kingpin's `--no-<flag>` for boolean flags.
    pub fn from_args() -> Flags {
        Flags::parse_from(std::env::args().map(rewrite_negated_bool))
    }

    /// The completion script or man page asked for with the hidden kingpin flags, if any
    /// (the first one when several are given).
    pub fn cli_doc(&self) -> Option<CliDoc> {
        [
            (self.completion_script_bash, CliDoc::Bash),
            (self.completion_script_zsh, CliDoc::Zsh),
            (self.completion_script_fish, CliDoc::Fish),
            (self.help_man, CliDoc::Man),
        ]
        .into_iter()
        .find_map(|(asked, doc)| asked.then_some(doc))
    }

    /// The flags whose value differs from the default, as `(name, value)`, for the status
    /// page and `/api/v1/status`.
    pub fn as_pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("web.listen-address", self.listen_addresses.join(",")),
            ("web.systemd-socket", self.systemd_socket.to_string()),
            ("web.config.file", self.web_config_file.clone()),
            ("web.telemetry-path", self.telemetry_path.clone()),
            ("web.external-url", self.external_url.clone()),
            ("web.route-prefix", self.route_prefix.clone()),
            ("web.enable-lifecycle", self.enable_lifecycle.to_string()),
            ("web.enable-admin-api", self.enable_admin_api.to_string()),
            ("persistence.file", self.persistence_file.clone()),
            (
                "persistence.interval",
                format_duration(self.persistence_interval),
            ),
            (
                "persistence.start-from-readable",
                self.persistence_start_from_readable.to_string(),
            ),
            (
                "push.disable-consistency-check",
                self.disable_consistency_check.to_string(),
            ),
            ("push.enable-utf8-names", self.enable_utf8_names.to_string()),
            ("push.max-body-bytes", self.max_body_bytes.to_string()),
            ("push.group-ttl", format_duration(self.group_ttl)),
            ("push.max-groups", self.max_groups.to_string()),
            ("push.max-series", self.max_series.to_string()),
            (
                "push.max-series-per-push",
                self.max_series_per_push.to_string(),
            ),
            ("push.max-label-length", self.max_label_length.to_string()),
            ("log.level", self.log_level.clone()),
            ("log.format", self.log_format.clone()),
        ]
    }

    /// The prefix all routes live under: `--web.route-prefix`, else the path of
    /// `--web.external-url`; "/" becomes "", a leading "/" is ensured and a trailing one
    /// dropped.
    pub fn route_prefix(&self) -> String {
        let raw = if self.route_prefix.is_empty() {
            external_url_path(&self.external_url)
        } else {
            self.route_prefix.clone()
        };
        let trimmed = raw.trim_end_matches('/');
        if trimmed.is_empty() {
            String::new()
        } else if trimmed.starts_with('/') {
            trimmed.to_string()
        } else {
            format!("/{trimmed}")
        }
    }
}

/// What the hidden kingpin flags print instead of starting the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CliDoc {
    Bash,
    Zsh,
    Fish,
    Man,
}

impl CliDoc {
    /// Writes the completion script or the man page, generated from the clap definition of
    /// [`Flags`], so it always lists the flags the binary really takes.
    pub fn write(self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        use clap::CommandFactory;
        use clap_complete::Shell;
        // The documented command: every flag but the hidden ones (clap_complete would
        // otherwise offer the generator flags themselves).
        let full = Flags::command();
        let mut command = clap::Command::new("pushgateway")
            .version(env!("CARGO_PKG_VERSION"))
            .disable_version_flag(true)
            .about(full.get_about().cloned().unwrap_or_default())
            .long_about(full.get_long_about().cloned().unwrap_or_default())
            .after_long_help(full.get_after_long_help().cloned().unwrap_or_default())
            .args(
                full.get_arguments()
                    .filter(|arg| !arg.is_hide_set())
                    .cloned(),
            );
        let shell = match self {
            CliDoc::Bash => Shell::Bash,
            CliDoc::Zsh => Shell::Zsh,
            CliDoc::Fish => Shell::Fish,
            CliDoc::Man => return clap_mangen::Man::new(command).render(out),
        };
        // Generated into memory first: clap_complete panics when a write fails, and a
        // reader that stops early (`| head`) is no reason to panic.
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command, "pushgateway", &mut script);
        out.write_all(&script)
    }
}

/// `--no-web.enable-lifecycle` → `--web.enable-lifecycle=false`, for the boolean flags.
fn rewrite_negated_bool(arg: String) -> String {
    const BOOLS: [&str; 6] = [
        "web.systemd-socket",
        "persistence.start-from-readable",
        "web.enable-lifecycle",
        "web.enable-admin-api",
        "push.disable-consistency-check",
        "push.enable-utf8-names",
    ];
    match arg.strip_prefix("--no-") {
        Some(name) if BOOLS.contains(&name) => format!("--{name}=false"),
        _ => arg,
    }
}

fn external_url_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map(|(_, rest)| rest).unwrap_or(url);
    match after_scheme.find('/') {
        Some(slash) => after_scheme[slash..].to_string(),
        None => String::new(),
    }
}

/// Parses a Prometheus/Go duration such as `90s`, `5m`, `1h30m`, `7d`, `1w`, `500ms`, `0`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("not a valid duration: {text:?}"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("not a valid duration: {text:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => {
                return Err(format!(
                    "not a valid duration: {text:?} (units: ms, s, m, h, d, w, y)"
                ))
            }
        };
        rest = &rest[unit_len..];
        let ms = number
            .checked_mul(unit_ms)
            .ok_or_else(|| format!("duration too long: {text:?}"))?;
        total += Duration::from_millis(ms);
    }
    Ok(total)
}

/// Formats a duration the way Prometheus prints one (`5m`, `1h30m`, `0s`).
pub fn format_duration(duration: Duration) -> String {
    let mut ms = duration.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        let all =
            std::iter::once("pushgateway".to_string()).chain(args.iter().map(|a| a.to_string()));
        Flags::parse_from(all.map(rewrite_negated_bool))
    }

    #[test]
    fn defaults_are_upstreams() {
        let f = flags(&[]);
        assert_eq!(f.listen_addresses, vec![":9091"]);
        assert_eq!(f.telemetry_path, "/metrics");
        assert_eq!(f.persistence_interval, Duration::from_secs(300));
        assert!(!f.enable_lifecycle && !f.enable_admin_api && !f.disable_consistency_check);
        assert_eq!(f.route_prefix(), "");
    }

    #[test]
    fn boolean_forms_and_repeated_addresses() {
        let f = flags(&[
            "--web.enable-lifecycle",
            "--web.enable-admin-api=true",
            "--no-push.disable-consistency-check",
            "--web.listen-address=:1",
            "--web.listen-address",
            "127.0.0.1:2",
        ]);
        assert!(f.enable_lifecycle && f.enable_admin_api && !f.disable_consistency_check);
        assert_eq!(f.listen_addresses, vec![":1", "127.0.0.1:2"]);
    }

    #[test]
    fn completion_and_man_flags_leave_the_no_forms_working() {
        let f = flags(&["--no-web.enable-lifecycle", "--completion-script-zsh"]);
        assert_eq!(f.cli_doc(), Some(CliDoc::Zsh));
        assert!(!f.enable_lifecycle);
        assert_eq!(flags(&["--help-man"]).cli_doc(), Some(CliDoc::Man));
        assert_eq!(flags(&[]).cli_doc(), None);
    }

    #[test]
    fn route_prefix_from_flag_or_external_url() {
        assert_eq!(flags(&["--web.route-prefix=/pfx/"]).route_prefix(), "/pfx");
        assert_eq!(flags(&["--web.route-prefix=pfx"]).route_prefix(), "/pfx");
        assert_eq!(flags(&["--web.route-prefix=/"]).route_prefix(), "");
        assert_eq!(
            flags(&["--web.external-url=http://example.org:9091/gw/"]).route_prefix(),
            "/gw"
        );
        assert_eq!(
            flags(&["--web.external-url=http://example.org"]).route_prefix(),
            ""
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5x").is_err());
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }
}
