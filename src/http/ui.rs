//! The web UI: `GET /` shows every group with its metrics, `GET /status` the build, the start
//! time and the flags, and `GET /static/…` serves the stylesheet, the script and the icon.
//!
//! Plain server-rendered HTML with one small script (collapsing groups and remembering that
//! in `localStorage`, local times, the delete buttons). The assets in `ui/` are compiled into
//! the binary, nothing is loaded from elsewhere, and the pages forbid inline script with a
//! Content-Security-Policy, so even an escaping mistake could not run injected code. Every
//! string a client chose (label names and values, help text, the filter, the `Host` header)
//! goes through [`Esc`].
//!
//! Built for many groups: a page shows at most [`PAGE_SIZE`] groups (`?page=N`), and
//! `?filter=` narrows them by grouping label (`job=backup`, or any text found in
//! `job="backup", instance="db1"`), so the HTML stays small however much is stored.
//!
//! Links start with the path of `--web.external-url` when it is given (that is where browsers
//! reach the gateway, possibly through a proxy), else with the route prefix. Requests are
//! counted under upstream's handler names: `status` for the pages, `static` for the assets.

use std::fmt::{self, Write as _};
use std::sync::{Arc, OnceLock};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;

use super::api_v1::{build_information, native_buckets, system_time_rfc3339, unix_seconds_rfc3339};
use super::errors::ApiError;
use super::AppState;
use crate::exposition::model::{Histogram, Metric, MetricFamily, MetricKind, MetricValue};
use crate::exposition::names::{escape_label_name, label_needs_quoting, EscapingScheme};
use crate::exposition::text_write::format_float;
use crate::grouping::GroupingKey;
use crate::store::GroupSnapshot;

/// Groups shown on one page.
pub const PAGE_SIZE: usize = 100;
/// Up to this many groups on a page are shown expanded unless the visitor closed them.
const OPEN_BY_DEFAULT: usize = 5;
/// Series shown per family; the rest are counted, and the JSON API has them all.
const MAX_SERIES: usize = 500;
/// Buckets or quantiles shown in a cell before the rest fold away.
const INLINE_BUCKETS: usize = 12;

const LAYOUT: &str = include_str!("ui/layout.html");
const CSS: &str = include_str!("ui/ui.css");
const JS: &str = include_str!("ui/ui.js");
const ICON: &str = include_str!("ui/favicon.svg");

/// `(file name, content type, content)` of every static asset.
const ASSETS: [(&str, &str, &str); 3] = [
    ("ui.css", "text/css; charset=utf-8", CSS),
    ("ui.js", "text/javascript; charset=utf-8", JS),
    ("favicon.svg", "image/svg+xml", ICON),
];

/// No inline script or style, nothing from other origins.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// What the UI handlers share: the gateway, and where links point.
#[derive(Clone)]
struct Ui {
    app: AppState,
    /// Prefix of every link: "" or "/something".
    base: Arc<str>,
    telemetry_path: Arc<str>,
}

/// The UI's routes, to be merged into the gateway's router under the route prefix. `/` and
/// `/status` are left out if the telemetry path is one of them.
pub fn routes<S>(app: AppState, route_prefix: &str, telemetry_path: &str) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let ui = Ui::new(app, route_prefix, telemetry_path);
    let mut router = Router::new().route("/static/{*file}", get(asset));
    if telemetry_path != "/" {
        router = router.route("/", get(index));
    }
    if telemetry_path != "/status" {
        router = router.route("/status", get(status));
    }
    router.with_state(ui)
}

/// `<route prefix>/` with its trailing slash, which a router nested under the prefix does not
/// match; upstream serves the UI there.
pub fn prefix_root_route<S>(app: AppState, route_prefix: &str, telemetry_path: &str) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let ui = Ui::new(app, route_prefix, telemetry_path);
    if telemetry_path == "/" {
        return Router::new();
    }
    Router::new()
        .route(&format!("{route_prefix}/"), get(index))
        .with_state(ui)
}

impl Ui {
    fn new(app: AppState, route_prefix: &str, telemetry_path: &str) -> Ui {
        let base = match app.api.flags.get("web.external-url") {
            Some(url) if !url.is_empty() => url_path(url),
            _ => route_prefix.trim_end_matches('/').to_string(),
        };
        Ui {
            app,
            base: base.into(),
            telemetry_path: telemetry_path.into(),
        }
    }
}

/// The path of a URL without a trailing slash ("" for the root).
fn url_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map(|(_, rest)| rest).unwrap_or(url);
    let path = after_scheme
        .find('/')
        .map_or("", |slash| &after_scheme[slash..]);
    let path = path.split(['?', '#']).next().unwrap_or("");
    path.trim_end_matches('/').to_string()
}

// ---------------------------------------------------------------------------------------
// Handlers

#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    page: Option<String>,
    filter: Option<String>,
}

/// `GET /`: the groups, filtered and paginated.
async fn index(State(ui): State<Ui>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let query = Query::<PageQuery>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost:9091")
        .to_string();
    // Rebuilding every group's families costs a parse of what is stored: keep it off the
    // async workers.
    let page_ui = ui.clone();
    let rendered = tokio::task::spawn_blocking(move || render_index(&page_ui, &query, &host)).await;
    let response = match rendered {
        Ok(body) => html_response(body),
        Err(error) => {
            tracing::error!(%error, "Rendering the web UI failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    };
    ui.app
        .telemetry
        .count_request("status", method.as_str(), response.status().as_u16());
    response
}

/// `GET /status`: build information, start time and flags.
async fn status(State(ui): State<Ui>, method: Method) -> Response {
    let response = html_response(render_status(&ui));
    ui.app
        .telemetry
        .count_request("status", method.as_str(), response.status().as_u16());
    response
}

/// `GET /static/<file>`.
async fn asset(State(ui): State<Ui>, Path(file): Path<String>, method: Method) -> Response {
    let found = ASSETS.iter().find(|(name, _, _)| *name == file);
    let response = match found {
        Some((_, content_type, content)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=86400"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *content,
        )
            .into_response(),
        None => ApiError::NotFound.into_response(),
    };
    ui.app
        .telemetry
        .count_request("static", method.as_str(), response.status().as_u16());
    response
}

fn html_response(body: String) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A short hash of the assets, appended to their URLs so browsers fetch new ones after an
/// upgrade.
fn asset_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        // FNV-1a: stable across builds and processes, unlike the std hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for (_, _, content) in ASSETS {
            for byte in content.bytes() {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{:08x}", hash as u32)
    })
}

// ---------------------------------------------------------------------------------------
// Escaping and the layout

/// Text escaped for HTML element content and double- or single-quoted attribute values.
struct Esc<'a>(&'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

/// Appends formatted text to a `String` (which cannot fail).
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {
        let _ = write!($out, $($arg)*);
    };
}

#[derive(Clone, Copy, PartialEq)]
enum Tab {
    Metrics,
    Status,
}

/// The whole page: `layout.html` with its `{{placeholders}}` filled in one pass, so text
/// inserted for one placeholder is never read as another.
fn layout(ui: &Ui, tab: Tab, title: &str, content: &str) -> String {
    let base = Esc(&ui.base).to_string();
    let current = |t: Tab| {
        if t == tab {
            " aria-current=\"page\""
        } else {
            ""
        }
    };
    let values: [(&str, &str); 8] = [
        ("title", &Esc(title).to_string()),
        ("base", &base),
        ("version", asset_version()),
        ("telemetry", &Esc(&ui.telemetry_path).to_string()),
        ("metrics_current", current(Tab::Metrics)),
        ("status_current", current(Tab::Status)),
        ("gateway_version", env!("CARGO_PKG_VERSION")),
        ("content", content),
    ];
    let mut out = String::with_capacity(LAYOUT.len() + content.len() + 256);
    let mut rest = LAYOUT;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            rest = &rest[open..];
            break;
        };
        let name = &after[..close];
        match values.iter().find(|(key, _)| *key == name) {
            Some((_, value)) => out.push_str(value),
            None => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------------------
// The metrics page

/// The `?filter=` of the metrics page: terms separated by spaces or commas, all of which must
/// match. `name=value` (the value may be quoted) matches a grouping label exactly, a missing
/// `instance` counting as ""; any other term matches case-insensitively anywhere in the
/// group's label string, `job="backup", instance="db1"`.
#[derive(Debug, Default, PartialEq)]
struct Filter {
    terms: Vec<Term>,
}

#[derive(Debug, PartialEq)]
enum Term {
    Equals { name: String, value: String },
    Contains(String),
}

impl Filter {
    fn parse(text: &str) -> Filter {
        let terms = split_terms(text)
            .into_iter()
            .map(|token| match token.split_once('=') {
                Some((name, value)) if is_label_name(name) => Term::Equals {
                    name: name.to_string(),
                    value: unquote(value),
                },
                _ => Term::Contains(unquote(&token).to_lowercase()),
            })
            .filter(|term| !matches!(term, Term::Contains(text) if text.is_empty()))
            .collect();
        Filter { terms }
    }

    fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    fn matches(&self, key: &GroupingKey) -> bool {
        let mut label_string: Option<String> = None;
        self.terms.iter().all(|term| match term {
            Term::Equals { name, value } => {
                let actual = key.get(name);
                actual == Some(value.as_str())
                    || (actual.is_none() && name == "instance" && value.is_empty())
            }
            Term::Contains(needle) => label_string
                .get_or_insert_with(|| plain_label_string(key).to_lowercase())
                .contains(needle.as_str()),
        })
    }
}

/// Splits on whitespace and commas outside double quotes; quotes stay in the tokens.
fn split_terms(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            '\\' if quoted => {
                current.push(c);
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            c if !quoted && (c.is_whitespace() || c == ',') => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

/// `"a \"b\""` → `a "b"`; anything not fully quoted is returned as it is.
fn unquote(text: &str) -> String {
    let Some(inner) = text
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return text.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `job="backup", instance="db1"`, values as they are (for matching and the dialog text).
fn plain_label_string(key: &GroupingKey) -> String {
    let mut out = String::new();
    for (i, label) in ordered_labels(key).into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        w!(out, "{}=\"{}\"", shown_label_name(label.0), label.1);
    }
    out
}

/// A label name as the page shows it: quoted when it breaks the legacy rules, as upstream's
/// page shows UTF-8 label names (`"my.label"="v"`).
fn shown_label_name(name: &str) -> std::borrow::Cow<'_, str> {
    if label_needs_quoting(name) {
        std::borrow::Cow::Owned(format!("{name:?}"))
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// The grouping labels as shown: `job` first, then `instance`, then the rest by name.
fn ordered_labels(key: &GroupingKey) -> Vec<(&str, &str)> {
    let rank = |name: &str| match name {
        "job" => 0,
        "instance" => 1,
        _ => 2,
    };
    let mut labels: Vec<(&str, &str)> = key
        .labels()
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    labels.sort_by_key(|(name, _)| rank(name));
    labels
}

/// The path that deletes the group: `job@base64/<job>` and `<label>@base64/<value>`, so any
/// value (with `/`, empty, anything) survives. The `=` keeps an empty value non-empty. A
/// label name that breaks the legacy rules (only possible with `--push.enable-utf8-names`)
/// is written `U__`-escaped, which the gateway decodes under that flag.
fn delete_path(base: &str, key: &GroupingKey) -> String {
    let encode = |value: &str| format!("{}=", URL_SAFE_NO_PAD.encode(value));
    let mut path = format!(
        "{base}/metrics/job@base64/{}",
        encode(key.get("job").unwrap_or(""))
    );
    for label in key.labels().iter().filter(|l| l.name != "job") {
        let name = escape_label_name(&label.name, EscapingScheme::Values);
        w!(path, "/{}@base64/{}", name, encode(&label.value));
    }
    path
}

fn render_index(ui: &Ui, query: &PageQuery, host: &str) -> String {
    // Only the keys of all groups are listed; only the groups on this page are decoded.
    let groups = ui.app.store.group_keys();
    let filter_text = query.filter.as_deref().unwrap_or("").trim();
    let filter = Filter::parse(filter_text);
    let matching: Vec<&GroupingKey> = groups.iter().filter(|key| filter.matches(key)).collect();
    let pages = matching.len().div_ceil(PAGE_SIZE).max(1);
    let page = query
        .page
        .as_deref()
        .and_then(|p| p.trim().parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let first = (page - 1) * PAGE_SIZE;
    let shown: Vec<GroupSnapshot> = matching
        [first.min(matching.len())..(first + PAGE_SIZE).min(matching.len())]
        .iter()
        .filter_map(|key| ui.app.store.group(key))
        .collect();

    let mut out = String::with_capacity(16 * 1024);
    write_toolbar(&mut out, ui, filter_text, groups.len());
    if groups.is_empty() {
        write_empty_store(&mut out, ui, host);
    } else {
        w!(
            out,
            "<p class=\"summary-line\" id=\"summary-line\"><span id=\"group-count\" data-count=\"{}\">{}</span>",
            matching.len(),
            plural(matching.len(), "group", "groups")
        );
        if !filter.is_empty() {
            w!(
                out,
                " matching <code class=\"filter-echo\">{}</code> (of {})",
                Esc(filter_text),
                groups.len()
            );
        }
        if matching.len() > PAGE_SIZE {
            w!(out, " · showing {}–{}", first + 1, first + shown.len());
        }
        out.push_str("</p>\n");
        if matching.is_empty() {
            w!(
                out,
                "<div class=\"empty\"><p>No group matches <code>{}</code>.</p><p><a href=\"{}/\">Show all groups</a></p></div>\n",
                Esc(filter_text),
                Esc(&ui.base)
            );
        }
        write_pager(&mut out, ui, filter_text, page, pages);
        out.push_str("<div class=\"groups\" id=\"groups\">\n");
        let open = shown.len() <= OPEN_BY_DEFAULT;
        for group in &shown {
            write_group(&mut out, ui, group, open);
        }
        out.push_str("</div>\n");
        if !shown.is_empty() {
            write_pager(&mut out, ui, filter_text, page, pages);
        }
    }
    let title = if page > 1 {
        format!("Metrics, page {page}")
    } else {
        "Metrics".to_string()
    };
    layout(ui, Tab::Metrics, &title, &out)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn write_toolbar(out: &mut String, ui: &Ui, filter_text: &str, total: usize) {
    let base = Esc(&ui.base);
    w!(
        out,
        "<div class=\"toolbar\">\n<form class=\"filter\" method=\"get\" action=\"{base}/\" role=\"search\">\
         <input type=\"search\" name=\"filter\" id=\"filter\" value=\"{}\" placeholder=\"Filter: job=backup or any text\" aria-label=\"Filter groups by grouping label\" autocomplete=\"off\" spellcheck=\"false\">\
         <button class=\"btn\" type=\"submit\">Filter</button>",
        Esc(filter_text)
    );
    if !filter_text.is_empty() {
        w!(out, "<a class=\"btn btn-quiet\" href=\"{base}/\">Clear</a>");
    }
    out.push_str("</form>\n<div class=\"toolbar-actions\">");
    if total > 0 {
        out.push_str(
            "<button type=\"button\" class=\"btn\" id=\"expand-all\">Expand all</button>\
             <button type=\"button\" class=\"btn\" id=\"collapse-all\">Collapse all</button>",
        );
        if ui.app.enable_admin_api {
            w!(
                out,
                "<button type=\"button\" class=\"btn btn-danger\" id=\"delete-all\" data-url=\"{base}/api/v1/admin/wipe\" data-count=\"{total}\">Delete all groups</button>"
            );
        }
    }
    out.push_str("</div>\n</div>\n");
}

fn write_empty_store(out: &mut String, ui: &Ui, host: &str) {
    w!(
        out,
        "<div class=\"empty\"><h2>No metrics pushed yet</h2>\
         <p>Push a sample, and it appears here:</p>\
         <pre><code>echo \"some_metric 3.14\" | curl --data-binary @- http://{}{}/metrics/job/some_job</code></pre></div>\n",
        Esc(host),
        Esc(&ui.base)
    );
}

fn write_pager(out: &mut String, ui: &Ui, filter_text: &str, page: usize, pages: usize) {
    if pages <= 1 {
        return;
    }
    let href = |n: usize| {
        let mut href = format!("{}/?page={n}", ui.base);
        if !filter_text.is_empty() {
            w!(
                href,
                "&filter={}",
                utf8_percent_encode(filter_text, NON_ALPHANUMERIC)
            );
        }
        href
    };
    out.push_str("<nav class=\"pager\" aria-label=\"Pages\">");
    if page > 1 {
        w!(
            out,
            "<a class=\"btn\" rel=\"prev\" href=\"{}\">← Previous</a>",
            Esc(&href(page - 1))
        );
    } else {
        out.push_str("<span class=\"btn disabled\" aria-disabled=\"true\">← Previous</span>");
    }
    out.push_str("<span class=\"pages\">");
    // First, last, and two either side of the current page.
    let mut last_shown = 0;
    for n in 1..=pages {
        let near = n + 2 >= page && n <= page + 2;
        if n != 1 && n != pages && !near {
            continue;
        }
        if n > last_shown + 1 {
            out.push_str("<span class=\"gap\">…</span>");
        }
        if n == page {
            w!(
                out,
                "<span class=\"page current\" aria-current=\"page\">{n}</span>"
            );
        } else {
            w!(out, "<a class=\"page\" href=\"{}\">{n}</a>", Esc(&href(n)));
        }
        last_shown = n;
    }
    out.push_str("</span>");
    if page < pages {
        w!(
            out,
            "<a class=\"btn\" rel=\"next\" href=\"{}\">Next →</a>",
            Esc(&href(page + 1))
        );
    } else {
        out.push_str("<span class=\"btn disabled\" aria-disabled=\"true\">Next →</span>");
    }
    out.push_str("</nav>\n");
}

/// A `<time>` the script turns into local time (`abs`) or "5 minutes ago" (`rel`).
fn time_html(out: &mut String, seconds: f64, class: &str) {
    let rfc3339 = unix_seconds_rfc3339(seconds);
    w!(
        out,
        "<time class=\"{class}\" datetime=\"{rfc3339}\" title=\"{rfc3339}\">{}</time>",
        readable_utc(&rfc3339)
    );
}

/// `2026-11-24T18:31:47.859475Z` → `2026-11-24 18:31:47 UTC`, shown until the script runs.
fn readable_utc(rfc3339: &str) -> String {
    let seconds = rfc3339.split('.').next().unwrap_or(rfc3339);
    format!(
        "{} UTC",
        seconds.trim_end_matches('Z').replacen('T', " ", 1)
    )
}

fn write_group(out: &mut String, ui: &Ui, group: &GroupSnapshot, open: bool) {
    let failed = group.summary.failure_time > group.summary.push_time;
    let delete = delete_path(&ui.base, &group.summary.key);
    w!(
        out,
        "<details class=\"group{}\" data-key=\"{}\"{}>\n<summary>",
        if failed { " failed" } else { "" },
        Esc(&delete),
        if open { " open" } else { "" }
    );
    out.push_str(
        "<span class=\"chevron\" aria-hidden=\"true\"></span><span class=\"group-labels\">",
    );
    for (name, value) in ordered_labels(&group.summary.key) {
        let class = match name {
            "job" => "job",
            "instance" => "instance",
            _ => "other",
        };
        w!(
            out,
            "<span class=\"badge badge-{class}\"><span class=\"ln\">{}=</span><span class=\"lv\">\"{}\"</span></span>",
            Esc(&shown_label_name(name)),
            Esc(value)
        );
    }
    out.push_str("</span><span class=\"group-meta\">");
    if failed {
        out.push_str("<span class=\"badge badge-failed\" title=\"push_failure_time_seconds &gt; push_time_seconds\">last push failed</span>");
    }
    if group.summary.push_time > 0.0 {
        out.push_str("<span class=\"pushed\">pushed ");
        time_html(out, group.summary.push_time, "rel");
        out.push_str("</span>");
    } else {
        out.push_str("<span class=\"pushed\">never pushed successfully</span>");
    }
    w!(
        out,
        "<span class=\"family-count\">{}</span></span></summary>\n<div class=\"group-body\">\n<div class=\"group-info\"><dl>",
        plural(group.families.len(), "metric", "metrics")
    );
    out.push_str("<div><dt>Last push</dt><dd>");
    if group.summary.push_time > 0.0 {
        time_html(out, group.summary.push_time, "abs");
    } else {
        out.push_str("never");
    }
    w!(
        out,
        "</dd></div><div><dt>Last failed push</dt><dd{}>",
        if failed { " class=\"failed-time\"" } else { "" }
    );
    if group.summary.failure_time > 0.0 {
        time_html(out, group.summary.failure_time, "abs");
    } else {
        out.push_str("never");
    }
    if let Some(expires_at) = group.summary.expires_at {
        w!(
            out,
            "</dd></div><div><dt>Expires (TTL {})</dt><dd class=\"expires\">",
            Esc(&crate::config::format_duration(
                std::time::Duration::from_secs_f64(group.summary.ttl)
            ))
        );
        time_html(out, expires_at, "abs");
    }
    w!(
        out,
        "</dd></div></dl><button type=\"button\" class=\"btn btn-danger-outline delete-group\" data-url=\"{}\" data-name=\"{}\">Delete group</button></div>\n",
        Esc(&delete),
        Esc(&plain_label_string(&group.summary.key))
    );
    if group.families.is_empty() {
        out.push_str("<p class=\"muted no-families\">This group holds no metrics besides its push times.</p>\n");
    }
    for stored in &group.families {
        write_family(out, &stored.family, stored.pushed_at, &group.summary.key);
    }
    out.push_str("</div>\n</details>\n");
}

fn write_family(out: &mut String, family: &MetricFamily, pushed_at: f64, key: &GroupingKey) {
    let kind = family.kind;
    w!(
        out,
        "<section class=\"family\">\n<div class=\"family-head\"><h3 class=\"family-name\">{}</h3><span class=\"type type-{}\">{}</span>",
        Esc(&family.name),
        kind.as_text(),
        kind.as_text()
    );
    if let Some(unit) = family.unit.as_deref().filter(|u| !u.is_empty()) {
        w!(out, "<span class=\"unit\">unit: {}</span>", Esc(unit));
    }
    if let Some(help) = family.help.as_deref().filter(|h| !h.is_empty()) {
        w!(out, "<span class=\"help\">{}</span>", Esc(help));
    }
    out.push_str("<span class=\"pushed\">pushed ");
    time_html(out, pushed_at, "abs");
    out.push_str("</span></div>\n");
    let columns: &[&str] = match kind {
        MetricKind::Summary => &["Labels", "Quantiles", "Count", "Sum"],
        MetricKind::Histogram | MetricKind::GaugeHistogram => {
            &["Labels", "Buckets", "Count", "Sum"]
        }
        _ => &["Labels", "Value"],
    };
    out.push_str("<div class=\"table-wrap\"><table class=\"series\"><thead><tr>");
    for column in columns {
        w!(out, "<th scope=\"col\">{column}</th>");
    }
    out.push_str("</tr></thead><tbody>\n");
    for metric in family.metrics.iter().take(MAX_SERIES) {
        out.push_str("<tr>");
        write_series_labels(out, metric, key);
        write_value_cells(out, &metric.value);
        out.push_str("</tr>\n");
    }
    if family.metrics.len() > MAX_SERIES {
        w!(
            out,
            "<tr><td class=\"more-series\" colspan=\"{}\">… and {} more series (all of them are in <code>/api/v1/metrics</code>)</td></tr>\n",
            columns.len(),
            family.metrics.len() - MAX_SERIES
        );
    }
    out.push_str("</tbody></table></div>\n</section>\n");
}

/// The series' labels besides the grouping labels every series of the group carries.
fn write_series_labels(out: &mut String, metric: &Metric, key: &GroupingKey) {
    out.push_str("<td data-th=\"Labels\" class=\"labels-cell\">");
    let mut any = false;
    for label in &metric.labels {
        let from_key = match key.get(&label.name) {
            Some(value) => value == label.value,
            None => label.name == "instance" && label.value.is_empty(),
        };
        if from_key {
            continue;
        }
        any = true;
        w!(
            out,
            "<span class=\"label\"><span class=\"ln\">{}=</span><span class=\"lv\">\"{}\"</span></span>",
            Esc(&shown_label_name(&label.name)),
            Esc(&label.value)
        );
    }
    if !any {
        out.push_str("<span class=\"muted\" title=\"only the grouping labels\">—</span>");
    }
    out.push_str("</td>");
}

fn write_value_cells(out: &mut String, value: &MetricValue) {
    match value {
        MetricValue::Counter(counter) => number_cell(out, "Value", &format_float(counter.value)),
        MetricValue::Gauge(v) | MetricValue::Untyped(v) => {
            number_cell(out, "Value", &format_float(*v))
        }
        MetricValue::Summary(summary) => {
            let quantiles: Vec<Pair> = summary
                .quantiles
                .iter()
                .map(|q| Pair {
                    key: format!("φ {}", format_float(q.quantile)),
                    value: format_float(q.value),
                    title: None,
                })
                .collect();
            pairs_cell(out, "Quantiles", None, &quantiles);
            number_cell(out, "Count", &summary.sample_count.to_string());
            number_cell(out, "Sum", &format_float(summary.sample_sum));
        }
        MetricValue::Histogram(histogram) => write_histogram_cells(out, histogram),
    }
}

fn number_cell(out: &mut String, column: &str, text: &str) {
    w!(
        out,
        "<td data-th=\"{column}\" class=\"num\">{}</td>",
        Esc(text)
    );
}

/// One chip of a [`pairs_cell`]: a bucket or quantile and its count or value.
struct Pair {
    key: String,
    value: String,
    /// Shown on hover: the exact bounds when `key` shortens them.
    title: Option<String>,
}

/// A cell of `key value` chips, the first few inline and the rest folded away.
fn pairs_cell(out: &mut String, column: &str, note: Option<&str>, pairs: &[Pair]) {
    w!(out, "<td data-th=\"{column}\" class=\"pairs-cell\">");
    if let Some(note) = note {
        w!(out, "<div class=\"note\">{}</div>", Esc(note));
    }
    if pairs.is_empty() {
        out.push_str("<span class=\"muted\">none</span>");
    }
    let write_pairs = |out: &mut String, pairs: &[Pair]| {
        out.push_str("<span class=\"pairs\">");
        for pair in pairs {
            out.push_str("<span class=\"pair\"");
            if let Some(title) = &pair.title {
                w!(out, " title=\"{}\"", Esc(title));
            }
            w!(
                out,
                "><span class=\"k\">{}</span><span class=\"v\">{}</span></span>",
                Esc(&pair.key),
                Esc(&pair.value)
            );
        }
        out.push_str("</span>");
    };
    if pairs.len() > INLINE_BUCKETS + 2 {
        write_pairs(out, &pairs[..INLINE_BUCKETS]);
        w!(
            out,
            "<details class=\"more\"><summary>{} more</summary>",
            pairs.len() - INLINE_BUCKETS
        );
        write_pairs(out, &pairs[INLINE_BUCKETS..]);
        out.push_str("</details>");
    } else if !pairs.is_empty() {
        write_pairs(out, pairs);
    }
    out.push_str("</td>");
}

fn write_histogram_cells(out: &mut String, histogram: &Histogram) {
    let sum = format_float(histogram.sample_sum);
    let native = histogram.native.as_deref().filter(|n| {
        !n.positive_spans.is_empty() || !n.negative_spans.is_empty() || histogram.buckets.is_empty()
    });
    if let Some(native) = native {
        let (count, buckets) = native_buckets(histogram, native);
        let mut note = format!("native · schema {}", native.schema.unwrap_or(0));
        let zero_threshold = native.zero_threshold.unwrap_or(0.0);
        w!(note, " · zero threshold {}", format_float(zero_threshold));
        let pairs: Vec<Pair> = buckets
            .into_iter()
            .map(|(rule, lower, upper, count)| {
                let range = |lower: &str, upper: &str| match rule {
                    0 => format!("({lower}, {upper}]"),
                    1 => format!("[{lower}, {upper})"),
                    2 => format!("({lower}, {upper})"),
                    _ if lower.strip_prefix('-') == Some(upper) => {
                        format!("zero [{lower}, {upper}]")
                    }
                    _ => format!("[{lower}, {upper}]"),
                };
                let exact = range(&lower, &upper);
                let short = range(&short_bound(&lower), &short_bound(&upper));
                Pair {
                    title: (short != exact).then_some(exact),
                    key: short,
                    value: count,
                }
            })
            .collect();
        pairs_cell(out, "Buckets", Some(&note), &pairs);
        number_cell(out, "Count", &count);
    } else {
        let pairs: Vec<Pair> = histogram
            .buckets
            .iter()
            .map(|b| Pair {
                key: format!("≤ {}", format_float(b.upper_bound)),
                value: match b.cumulative_count_float {
                    Some(count) if count > 0.0 => format_float(count),
                    _ => b.cumulative_count.to_string(),
                },
                title: None,
            })
            .collect();
        pairs_cell(out, "Buckets", None, &pairs);
        let count = match histogram.sample_count_float {
            Some(count) if count > 0.0 => format_float(count),
            _ => histogram.sample_count.to_string(),
        };
        number_cell(out, "Count", &count);
    }
    number_cell(out, "Sum", &sum);
}

/// A native bucket bound for reading, to six significant digits (`0.210224` for
/// `0.2102241038134286`); the exact bounds are in the chip's title.
fn short_bound(text: &str) -> String {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => {
            let rounded: f64 = format!("{value:.5e}").parse().unwrap_or(value);
            format_float(rounded)
        }
        _ => text.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// The status page

fn render_status(ui: &Ui) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let build = build_information();
    out.push_str("<div class=\"cards\">\n<section class=\"card\"><h2>Build information</h2><table class=\"kv\"><tbody>\n");
    for (key, label) in [
        ("version", "Version"),
        ("revision", "Revision"),
        ("branch", "Branch"),
        ("buildUser", "Build user"),
        ("buildDate", "Build date"),
        ("goVersion", "Toolchain"),
    ] {
        let value = build.get(key).copied().unwrap_or("");
        w!(
            out,
            "<tr><th scope=\"row\">{label}</th><td>{}</td></tr>\n",
            if value.is_empty() {
                "<span class=\"muted\">—</span>".to_string()
            } else {
                format!("<code>{}</code>", Esc(value))
            }
        );
    }
    out.push_str("</tbody></table></section>\n<section class=\"card\"><h2>Runtime</h2><table class=\"kv\"><tbody>\n");
    let start = system_time_rfc3339(ui.app.api.start_time);
    w!(
        out,
        "<tr><th scope=\"row\">Start time</th><td><time class=\"abs\" datetime=\"{start}\" title=\"{start}\">{}</time></td></tr>\n\
         <tr><th scope=\"row\">Up for</th><td><time class=\"uptime\" datetime=\"{start}\">since {}</time></td></tr>\n",
        readable_utc(&start),
        readable_utc(&start)
    );
    let consistency = match ui.app.store.inconsistency() {
        None => "<span class=\"badge badge-ok\">consistent</span>".to_string(),
        Some(problem) => format!(
            "<span class=\"badge badge-failed\">inconsistent</span> {}",
            Esc(&problem)
        ),
    };
    w!(
        out,
        "<tr><th scope=\"row\">Stored metrics</th><td>{consistency}</td></tr>\n\
         <tr><th scope=\"row\">Admin API</th><td>{}</td></tr>\n\
         <tr><th scope=\"row\">Lifecycle API</th><td>{}</td></tr>\n",
        enabled(ui.app.enable_admin_api),
        enabled(ui.app.enable_lifecycle)
    );
    out.push_str(
        "</tbody></table></section>\n</div>\n<section class=\"card\"><h2>Command-line flags</h2>\n",
    );
    if ui.app.api.flags.is_empty() {
        out.push_str("<p class=\"muted\">No flags recorded.</p>\n");
    } else {
        out.push_str("<div class=\"table-wrap\"><table class=\"kv flags\"><tbody>\n");
        for (name, value) in &ui.app.api.flags {
            w!(
                out,
                "<tr><th scope=\"row\"><code>--{}</code></th><td>{}</td></tr>\n",
                Esc(name),
                if value.is_empty() {
                    "<span class=\"muted\">(empty)</span>".to_string()
                } else {
                    format!("<code>{}</code>", Esc(value))
                }
            );
        }
        out.push_str("</tbody></table></div>\n");
    }
    out.push_str("</section>\n");
    layout(ui, Tab::Status, "Status", &out)
}

fn enabled(on: bool) -> &'static str {
    if on {
        "enabled"
    } else {
        "disabled"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::model::Label;

    fn key(pairs: &[(&str, &str)]) -> GroupingKey {
        GroupingKey::new(pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect())
    }

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(
            Esc("<script>alert('x') & \"y\"</script>").to_string(),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(Esc("plain ü").to_string(), "plain ü");
    }

    #[test]
    fn filter_terms() {
        let filter = Filter::parse(r#"job=backup, instance="db 1"  Prod"#);
        assert_eq!(
            filter.terms,
            vec![
                Term::Equals {
                    name: "job".into(),
                    value: "backup".into()
                },
                Term::Equals {
                    name: "instance".into(),
                    value: "db 1".into()
                },
                Term::Contains("prod".into()),
            ]
        );
        let group = key(&[
            ("job", "backup"),
            ("instance", "db 1"),
            ("env", "production"),
        ]);
        assert!(filter.matches(&group));
        assert!(!filter.matches(&key(&[("job", "backup"), ("instance", "db 1")])));
        assert!(Filter::parse("").is_empty());
        assert!(Filter::parse(" , ").is_empty());
        // A missing instance is the empty instance every series gets.
        assert!(Filter::parse("instance=").matches(&key(&[("job", "a")])));
        assert!(Filter::parse("instance=\"\"").matches(&key(&[("job", "a")])));
        // `name=value` is exact; other text is a substring of the label string, quotes
        // included.
        assert!(!Filter::parse("job=\"back").matches(&group));
        assert!(Filter::parse("\"back").matches(&group));
        assert!(Filter::parse("=\"backup\", inst").matches(&group));
        assert!(!Filter::parse("ENV=\"PROD").matches(&group));
        assert!(Filter::parse("=\"prod").matches(&group));
        assert!(Filter::parse(r#""a \"b\"""#).matches(&key(&[("job", "x a \"b\" y")])));
    }

    #[test]
    fn delete_paths_survive_any_value() {
        let path = delete_path(
            "/pgw",
            &key(&[("job", "a/b"), ("instance", ""), ("x", "ü")]),
        );
        assert_eq!(
            path,
            "/pgw/metrics/job@base64/YS9i=/instance@base64/=/x@base64/w7w="
        );
        let parsed = crate::grouping::parse_push_path(path.strip_prefix("/pgw/metrics/").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(parsed, key(&[("job", "a/b"), ("instance", ""), ("x", "ü")]));
    }

    #[test]
    fn utf8_label_names_are_quoted_and_escaped_in_delete_paths() {
        let k = key(&[("job", "j"), ("my.label", "v")]);
        assert_eq!(plain_label_string(&k), "job=\"j\", \"my.label\"=\"v\"");
        let path = delete_path("", &k);
        assert_eq!(path, "/metrics/job@base64/ag=/U__my_2e_label@base64/dg=");
        let parsed = crate::grouping::parse_push_path_with(
            path.strip_prefix("/metrics/").unwrap(),
            crate::exposition::names::NameRules::Utf8,
        );
        assert_eq!(parsed, Ok(Some(k)));
    }

    #[test]
    fn url_paths() {
        assert_eq!(url_path("http://example.com/gw/"), "/gw");
        assert_eq!(url_path("https://example.com"), "");
        assert_eq!(url_path("http://example.com/a/b?x=1"), "/a/b");
        assert_eq!(url_path("example.com/gw"), "/gw");
    }

    #[test]
    fn short_bounds() {
        assert_eq!(short_bound("0.2102241038134286"), "0.210224");
        assert_eq!(short_bound("0.25"), "0.25");
        assert_eq!(short_bound("-1e-128"), "-1e-128");
        assert_eq!(short_bound("1.189207115002721"), "1.18921");
        assert_eq!(short_bound("1.7976931348623157e+308"), "1.79769e+308");
        assert_eq!(short_bound("+Inf"), "+Inf");
    }

    #[test]
    fn readable_times() {
        assert_eq!(
            readable_utc("2026-11-24T18:31:47.859475Z"),
            "2026-11-24 18:31:47 UTC"
        );
        assert_eq!(
            readable_utc("1970-01-01T00:00:00Z"),
            "1970-01-01 00:00:00 UTC"
        );
    }
}
