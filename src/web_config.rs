//! The `--web.config.file` of the Prometheus exporter-toolkit: TLS, HTTP server options and
//! basic-auth users, in the YAML format every Prometheus server and exporter reads.
//!
//! This module owns the file: it reads it, refuses what it cannot honour (unknown keys, TLS
//! versions or cipher suites rustls does not speak, malformed bcrypt hashes) with a message
//! naming the file, resolves relative paths against the file's folder, and notices changes.
//! Upstream re-reads the file on every request; [`WebConfigFile::current`] re-reads it only
//! when its size, modification time or inode changed, which one `stat` tells (or while it
//! was written too recently for the modification time to tell). It serves nothing:
//! [`crate::http::auth`] applies the users, headers and rate limit, and [`crate::http::tls`]
//! turns [`TlsSettings`] into a rustls server configuration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use serde::Deserialize;

/// The file as written. Every level refuses unknown keys, as upstream's strict YAML does.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    tls_server_config: Option<TlsModel>,
    http_server_config: Option<HttpModel>,
    basic_auth_users: Option<BTreeMap<String, Option<String>>>,
    rate_limit: Option<RateLimitModel>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsModel {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpModel {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, Option<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitModel {
    interval: Option<String>,
    burst: Option<u32>,
}

/// The file once checked: what the HTTP layers apply.
#[derive(Debug, Clone, PartialEq)]
pub struct WebConfig {
    /// `None` when `tls_server_config` sets nothing: plain HTTP.
    pub tls: Option<TlsSettings>,
    /// `http_server_config.http2` (default true): offer HTTP/2 in TLS negotiation.
    pub http2: bool,
    /// `http_server_config.headers`: added to every response.
    pub headers: Vec<(String, String)>,
    /// `basic_auth_users`: user → bcrypt hash. Empty: no authentication.
    pub users: BTreeMap<String, String>,
    /// The bcrypt cost most of the users' hashes have (the highest on a tie): an unknown user
    /// is checked against a dummy hash of this cost, so it takes as long as a wrong password.
    pub dummy_cost: Option<u32>,
    /// `rate_limit`: one request per `interval`, bursts of `burst`.
    pub rate_limit: Option<RateLimit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub interval: Duration,
    pub burst: u32,
}

/// Where TLS material comes from: a file (re-read when it changes) or the PEM inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    Inline(String),
}

/// `tls_server_config`, checked. Files are read by [`crate::http::tls`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert: Pem,
    pub key: Pem,
    pub client_ca: Option<Pem>,
    pub client_auth: ClientAuth,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// TLS 1.2 cipher suites in order of preference (Go names); empty: the defaults. Go
    /// does not let TLS 1.3 suites be chosen, so TLS 1.3 names are accepted and ignored.
    pub cipher_suites: Vec<String>,
    pub prefer_server_cipher_suites: bool,
    /// Key-exchange groups in order of preference (Go names); empty: the defaults.
    pub curve_preferences: Vec<String>,
}

/// `client_auth_type`, with Go's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// The TLS 1.2 cipher suites rustls implements, by their Go names. (Go also knows CBC and
/// RSA key-exchange suites; rustls has none of them.)
pub const TLS12_CIPHER_SUITES: [&str; 6] = [
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// TLS 1.3 suite names Go accepts in `cipher_suites` (and then ignores).
const TLS13_CIPHER_SUITES: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// The curves of `curve_preferences` rustls (with ring) implements. Go also knows
/// `CurveP521`, which ring lacks.
pub const CURVES: [&str; 3] = ["X25519", "CurveP256", "CurveP384"];

/// The headers upstream lets the file set, with the values allowed (empty: any value).
const CONFIGURABLE_HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

impl WebConfig {
    /// Parses and checks the text of the file found at `path` (relative TLS paths are taken
    /// from its folder). The error names the problem, not the file.
    pub fn parse(text: &str, path: &Path) -> Result<WebConfig, String> {
        // An empty file (or one of only comments) is an empty document: every default.
        let model: FileModel = serde_norway::from_str::<Option<FileModel>>(text)
            .map_err(|error| error.to_string())?
            .unwrap_or_default();
        let folder = path.parent().unwrap_or(Path::new(""));
        let http = model.http_server_config.unwrap_or_default();
        let users: BTreeMap<String, String> = model
            .basic_auth_users
            .unwrap_or_default()
            .into_iter()
            .map(|(user, hash)| (user, hash.unwrap_or_default()))
            .collect();
        Ok(WebConfig {
            tls: tls_settings(model.tls_server_config.unwrap_or_default(), folder)?,
            http2: http.http2.unwrap_or(true),
            headers: headers(http.headers.unwrap_or_default())?,
            dummy_cost: dummy_cost(&users)?,
            users,
            rate_limit: rate_limit(model.rate_limit.unwrap_or_default())?,
        })
    }
}

fn tls_settings(model: TlsModel, folder: &Path) -> Result<Option<TlsSettings>, String> {
    let set = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.is_empty());
    let enabled = set(&model.cert)
        || set(&model.key)
        || set(&model.cert_file)
        || set(&model.key_file)
        || set(&model.client_ca)
        || set(&model.client_ca_file)
        || set(&model.client_auth_type);
    if !enabled {
        return Ok(None);
    }
    // A file wins over inline PEM, as upstream has it.
    let pem = |file: Option<String>, inline: Option<String>| match (file, inline) {
        (Some(file), _) if !file.is_empty() => Some(Pem::File(folder.join(file))),
        (_, Some(inline)) if !inline.is_empty() => Some(Pem::Inline(inline)),
        _ => None,
    };
    let cert = pem(model.cert_file, model.cert)
        .ok_or("tls_server_config: missing one of cert or cert_file")?;
    let key = pem(model.key_file, model.key)
        .ok_or("tls_server_config: missing one of key or key_file")?;
    let client_ca = pem(model.client_ca_file, model.client_ca);
    let client_auth = match model.client_auth_type.as_deref().unwrap_or("") {
        "" | "NoClientCert" => ClientAuth::NoClientCert,
        "RequestClientCert" => ClientAuth::RequestClientCert,
        // "RequireClientCert" is upstream's older name.
        "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
        "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
        "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
        other => {
            return Err(format!(
                "tls_server_config: invalid client_auth_type {other:?} (one of NoClientCert, \
                 RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, \
                 RequireAndVerifyClientCert)"
            ))
        }
    };
    match (client_auth, &client_ca) {
        (ClientAuth::NoClientCert, Some(_)) => {
            return Err(
                "tls_server_config: client_ca_file (or client_ca) is set but \
                        client_auth_type is NoClientCert; set a client_auth_type"
                    .into(),
            )
        }
        (ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert, None) => {
            return Err(format!(
                "tls_server_config: client_auth_type {client_auth:?} needs client_ca_file (or \
                 client_ca) to verify client certificates against"
            ))
        }
        _ => {}
    }
    if model
        .client_allowed_sans
        .is_some_and(|sans| !sans.is_empty())
    {
        return Err(
            "tls_server_config: client_allowed_sans is not supported by this gateway; \
                    issue client certificates from a dedicated client_ca_file instead"
                .into(),
        );
    }
    let min_version = tls_version("min_version", model.min_version, TlsVersion::Tls12)?;
    let max_version = tls_version("max_version", model.max_version, TlsVersion::Tls13)?;
    if min_version > max_version {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    let cipher_suites = model.cipher_suites.unwrap_or_default();
    for suite in &cipher_suites {
        if !TLS12_CIPHER_SUITES.contains(&suite.as_str())
            && !TLS13_CIPHER_SUITES.contains(&suite.as_str())
        {
            return Err(format!(
                "tls_server_config: cipher suite {suite:?} is not supported (supported: {})",
                TLS12_CIPHER_SUITES.join(", ")
            ));
        }
    }
    let curve_preferences = model.curve_preferences.unwrap_or_default();
    for curve in &curve_preferences {
        if !CURVES.contains(&curve.as_str()) {
            return Err(format!(
                "tls_server_config: curve {curve:?} is not supported (supported: {})",
                CURVES.join(", ")
            ));
        }
    }
    Ok(Some(TlsSettings {
        cert,
        key,
        client_ca,
        client_auth,
        min_version,
        max_version,
        cipher_suites,
        prefer_server_cipher_suites: model.prefer_server_cipher_suites.unwrap_or(true),
        curve_preferences,
    }))
}

fn tls_version(
    field: &str,
    value: Option<String>,
    default: TlsVersion,
) -> Result<TlsVersion, String> {
    match value.as_deref().unwrap_or("") {
        "" => Ok(default),
        "TLS12" => Ok(TlsVersion::Tls12),
        "TLS13" => Ok(TlsVersion::Tls13),
        old @ ("TLS10" | "TLS11") => Err(format!(
            "tls_server_config: {field} {old} is not supported: this gateway speaks TLS 1.2 \
             and 1.3 only (use TLS12 or TLS13)"
        )),
        other => Err(format!(
            "tls_server_config: unknown TLS version {other:?} in {field} (TLS12 or TLS13)"
        )),
    }
}

fn headers(configured: BTreeMap<String, Option<String>>) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (name, value) in configured {
        let value = value.unwrap_or_default();
        let Some((_, allowed)) = CONFIGURABLE_HEADERS
            .iter()
            .find(|(known, _)| *known == name)
        else {
            let known: Vec<&str> = CONFIGURABLE_HEADERS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "http_server_config: HTTP header {name:?} can not be configured (only {})",
                known.join(", ")
            ));
        };
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err(format!(
                "http_server_config: invalid value for {name}: expected one of {allowed:?}, \
                 got {value:?}"
            ));
        }
        if axum::http::HeaderValue::from_str(&value).is_err() {
            return Err(format!(
                "http_server_config: the value of {name} is not a valid header value"
            ));
        }
        // Blank means unset, as upstream documents.
        if !value.is_empty() {
            out.push((name, value));
        }
    }
    Ok(out)
}

fn dummy_cost(users: &BTreeMap<String, String>) -> Result<Option<u32>, String> {
    let mut costs: BTreeMap<u32, usize> = BTreeMap::new();
    for (user, hash) in users {
        let parts: bcrypt::HashParts = hash.parse().map_err(|error| {
            format!("basic_auth_users: the password of {user:?} is not a bcrypt hash: {error}")
        })?;
        *costs.entry(parts.get_cost()).or_default() += 1;
    }
    // The most frequent cost; the highest one on a tie.
    Ok(costs
        .into_iter()
        .max_by_key(|&(cost, count)| (count, cost))
        .map(|(cost, _)| cost))
}

fn rate_limit(model: RateLimitModel) -> Result<Option<RateLimit>, String> {
    let interval = match model.interval.as_deref() {
        None | Some("") | Some("0") => return Ok(None),
        Some(text) => crate::config::parse_duration(text)
            .map_err(|error| format!("rate_limit: interval: {error}"))?,
    };
    if interval.is_zero() {
        return Ok(None);
    }
    Ok(Some(RateLimit {
        interval,
        burst: model.burst.unwrap_or(0),
    }))
}

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    modified: SystemTime,
    inode: u64,
}

/// How far apart two writes must be for their modification times to surely differ:
/// file systems keep them at a coarse clock's resolution (a few milliseconds on Linux).
const MTIME_RESOLUTION: Duration = Duration::from_secs(2);

impl FileStamp {
    /// The stamp of `path` now (following symbolic links), `None` if it cannot be read.
    pub fn of(path: &Path) -> Option<FileStamp> {
        let metadata = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&metadata);
        #[cfg(not(unix))]
        let inode = 0;
        Some(FileStamp {
            len: metadata.len(),
            modified: metadata.modified().ok()?,
            inode,
        })
    }

    /// Whether what was read at `read_at` is surely this version of the file: the stamp has
    /// not changed since, and the file was last written well before. A write within the
    /// modification time's resolution of the read could leave the same stamp (as git's
    /// "racily clean" index entries), so such a file is read again until it settles.
    pub fn still_matches(
        this: Option<FileStamp>,
        then: Option<FileStamp>,
        read_at: SystemTime,
    ) -> bool {
        match (this, then) {
            (Some(now), Some(then)) => now == then && now.modified + MTIME_RESOLUTION < read_at,
            _ => false,
        }
    }
}

/// The `--web.config.file`, re-read whenever it changes. Cheap to share behind an `Arc`.
pub struct WebConfigFile {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

struct Loaded {
    stamp: Option<FileStamp>,
    read_at: SystemTime,
    config: Result<Arc<WebConfig>, String>,
}

impl WebConfigFile {
    /// Reads the file once; any problem is an error naming the file, to stop start-up.
    pub fn load(path: impl Into<PathBuf>) -> Result<WebConfigFile, String> {
        let path = path.into();
        let stamp = FileStamp::of(&path);
        let read_at = SystemTime::now();
        let config = read(&path)?;
        Ok(WebConfigFile {
            path,
            loaded: Mutex::new(Loaded {
                stamp,
                read_at,
                config: Ok(config),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration now: the cached one while the file is unchanged (one `stat`), else
    /// the file read again. A file that has become unreadable or invalid is an error, so
    /// callers refuse to serve rather than fall back to old users; each change is logged.
    pub fn current(&self) -> Result<Arc<WebConfig>, String> {
        let stamp = FileStamp::of(&self.path);
        let mut loaded = self.loaded.lock();
        if !FileStamp::still_matches(stamp, loaded.stamp, loaded.read_at) {
            let read_at = SystemTime::now();
            let config = read(&self.path);
            let changed = match (&config, &loaded.config) {
                (Ok(new), Ok(old)) => new != old,
                (Err(new), Err(old)) => new != old,
                _ => true,
            };
            if changed {
                match &config {
                    Ok(_) => {
                        tracing::info!(file = %self.path.display(), "Web config file reloaded")
                    }
                    Err(error) => {
                        tracing::error!(%error, "Web config file is invalid; refusing requests until it is fixed")
                    }
                }
            }
            *loaded = Loaded {
                stamp,
                read_at,
                config,
            };
        }
        loaded.config.clone()
    }
}

fn read(path: &Path) -> Result<Arc<WebConfig>, String> {
    let name = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("web config file {name}: cannot read it: {error}"))?;
    WebConfig::parse(&text, path)
        .map(Arc::new)
        .map_err(|error| format!("web config file {name}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

    fn parse(text: &str) -> Result<WebConfig, String> {
        WebConfig::parse(text, Path::new("/etc/pgw/web.yml"))
    }

    #[test]
    fn empty_file_is_plain_http_without_users() {
        for text in ["", "# nothing\n", "tls_server_config:\n"] {
            let config = parse(text).unwrap();
            assert_eq!(config.tls, None, "{text:?}");
            assert!(config.users.is_empty() && config.headers.is_empty() && config.http2);
        }
    }

    #[test]
    fn full_file() {
        let config = parse(&format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: /abs/server.key\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  \
             min_version: TLS13\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n  \
             prefer_server_cipher_suites: false\n  curve_preferences: [X25519]\n\
             http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n\
             basic_auth_users:\n  alice: '{HASH}'\n\
             rate_limit:\n  interval: 1s\n  burst: 5\n"
        ))
        .unwrap();
        let tls = config.tls.unwrap();
        assert_eq!(tls.cert, Pem::File("/etc/pgw/server.crt".into()));
        assert_eq!(tls.key, Pem::File("/abs/server.key".into()));
        assert_eq!(tls.client_ca, Some(Pem::File("/etc/pgw/ca.crt".into())));
        assert_eq!(tls.client_auth, ClientAuth::RequireAndVerifyClientCert);
        assert_eq!(tls.min_version, TlsVersion::Tls13);
        assert!(!tls.prefer_server_cipher_suites);
        assert!(!config.http2);
        assert_eq!(
            config.headers,
            vec![("X-Frame-Options".to_string(), "deny".to_string())]
        );
        assert_eq!(config.users["alice"], HASH);
        assert_eq!(config.dummy_cost, Some(10));
        assert_eq!(
            config.rate_limit,
            Some(RateLimit {
                interval: Duration::from_secs(1),
                burst: 5
            })
        );
    }

    #[test]
    fn refusals_name_the_problem() {
        let cases = [
            ("basic_auth_user:\n  a: b\n", "unknown field `basic_auth_user`"),
            ("tls_server_config:\n  certfile: x\n", "unknown field `certfile`"),
            ("tls_server_config:\n  key_file: k\n", "missing one of cert"),
            ("tls_server_config:\n  cert_file: c\n", "missing one of key"),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS10\n",
                "min_version TLS10 is not supported",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS13\n  max_version: TLS12\n",
                "min_version is above max_version",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n",
                "cipher suite \"TLS_RSA_WITH_AES_128_CBC_SHA\" is not supported",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  curve_preferences: [CurveP521]\n",
                "curve \"CurveP521\" is not supported",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: Sometimes\n",
                "invalid client_auth_type \"Sometimes\"",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_ca_file: ca\n",
                "client_auth_type is NoClientCert",
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequireAndVerifyClientCert\n",
                "needs client_ca_file",
            ),
            ("basic_auth_users:\n  alice: plaintext\n", "not a bcrypt hash"),
            (
                "http_server_config:\n  headers:\n    X-Custom: 1\n",
                "\"X-Custom\" can not be configured",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: always\n",
                "invalid value for X-Frame-Options",
            ),
            ("rate_limit:\n  interval: soon\n", "rate_limit: interval"),
            ("- just\n- a list\n", "invalid type"),
        ];
        for (text, expected) in cases {
            let error = parse(text).expect_err(text);
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn file_errors_name_the_file_and_changes_are_noticed() {
        let dir = std::env::temp_dir().join(format!("pgw-webconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("web.yml");
        let error = WebConfigFile::load(&path).err().unwrap();
        assert!(
            error.contains("web.yml") && error.contains("cannot read"),
            "{error}"
        );

        std::fs::write(&path, "http_server_config:\n  http2: false\n").unwrap();
        let file = WebConfigFile::load(&path).unwrap();
        assert!(!file.current().unwrap().http2);
        std::fs::write(&path, "http_server_config:\n  http2: true \n").unwrap();
        assert!(file.current().unwrap().http2);
        std::fs::write(&path, "http_server_config:\n  http3: true\n").unwrap();
        let error = file.current().unwrap_err();
        assert!(
            error.contains("web.yml") && error.contains("http3"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
