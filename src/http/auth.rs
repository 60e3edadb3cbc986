//! The web config file applied to every request: basic auth, extra response headers and
//! the rate limit, in front of every route (upstream guards every endpoint, health checks
//! included).
//!
//! The file is consulted on each request through [`WebConfigFile::current`] (one `stat`
//! while it is unchanged), so a new password applies at once. bcrypt is slow on purpose, so
//! a verdict is cached under (user, SHA-256 of the password, SHA-256 of the stored hash), as
//! exporter-toolkit does; keying on the stored hash too means a changed hash never matches an
//! old entry, and keying on the user means one user's password never opens another's
//! account (the hole of CVE-2022-46146). An unknown user is checked against a dummy hash of
//! the users' usual cost, so it takes as long as a wrong password. bcrypt runs on the
//! blocking pool, at most one per core at a time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use base64::Engine;
use parking_lot::Mutex;
use tokio::sync::Semaphore;

use super::errors::plain_text;
use crate::web_config::{RateLimit, WebConfig, WebConfigFile};

/// How many verdicts are cached; a tenth is dropped when full.
const CACHE_ENTRIES: usize = 256;

/// Puts the checks of `file` in front of every route of `router`, the fallback included.
pub fn layer(router: Router, file: Arc<WebConfigFile>) -> Result<Router, String> {
    let guard = Arc::new(Guard::new(file)?);
    Ok(router.layer(axum::middleware::from_fn_with_state(guard, check)))
}

struct Guard {
    file: Arc<WebConfigFile>,
    /// Set from the file at start, as upstream does: a change needs a restart.
    limiter: Option<Mutex<TokenBucket>>,
    verdicts: Mutex<HashMap<CacheKey, bool>>,
    bcrypt_slots: Semaphore,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CacheKey {
    user: Vec<u8>,
    password: [u8; 32],
    stored_hash: [u8; 32],
}

impl Guard {
    fn new(file: Arc<WebConfigFile>) -> Result<Guard, String> {
        let config = file.current()?;
        if let Some(cost) = config.dummy_cost {
            // Made now, so the first unknown user takes no longer than the next.
            tokio::task::spawn_blocking(move || dummy_hash(cost));
        }
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(Guard {
            limiter: config
                .rate_limit
                .map(|limit| Mutex::new(TokenBucket::new(limit))),
            file,
            verdicts: Mutex::new(HashMap::new()),
            bcrypt_slots: Semaphore::new(cores),
        })
    }

    /// Whether the request carries the basic-auth credentials of a configured user.
    async fn authenticated(&self, config: &WebConfig, headers: &HeaderMap) -> bool {
        let Some((user, password)) = basic_credentials(headers) else {
            return false;
        };
        let stored = std::str::from_utf8(&user)
            .ok()
            .and_then(|user| config.users.get(user))
            .cloned();
        let key = CacheKey {
            password: sha256(&password),
            stored_hash: sha256(stored.as_deref().unwrap_or("").as_bytes()),
            user,
        };
        if let Some(verdict) = self.verdicts.lock().get(&key) {
            return *verdict;
        }
        let cost = config.dummy_cost.unwrap_or(bcrypt::DEFAULT_COST);
        let verdict = {
            let _slot = self.bcrypt_slots.acquire().await;
            tokio::task::spawn_blocking(move || match stored {
                Some(hash) => bcrypt::verify(&password, &hash).unwrap_or(false),
                None => {
                    // The same work as for a known user, and always a refusal.
                    let _ = bcrypt::verify(&password, &dummy_hash(cost));
                    false
                }
            })
            .await
            .unwrap_or(false)
        };
        let mut verdicts = self.verdicts.lock();
        if verdicts.len() >= CACHE_ENTRIES {
            let mut to_drop = CACHE_ENTRIES / 10;
            verdicts.retain(|_, _| {
                let keep = to_drop == 0;
                to_drop = to_drop.saturating_sub(1);
                keep
            });
        }
        verdicts.insert(key, verdict);
        verdict
    }
}

async fn check(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let Ok(config) = guard.file.current() else {
        // Already logged by the file; refusing beats serving with stale users.
        return plain_text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let allowed = guard
        .limiter
        .as_ref()
        .is_none_or(|limiter| limiter.lock().take());
    let mut response = if !allowed {
        plain_text(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests")
    } else if config.users.is_empty() || guard.authenticated(&config, request.headers()).await {
        next.run(request).await
    } else {
        let mut refusal = plain_text(StatusCode::UNAUTHORIZED, "Unauthorized");
        refusal
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
        refusal
    };
    let headers = response.headers_mut();
    for (name, value) in &config.headers {
        // Both were checked when the file was read; a header a handler set stays its own.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.entry(name).or_insert(value);
        }
    }
    response
}

/// `Authorization: Basic base64(user:password)`, as Go's `Request.BasicAuth` reads it.
fn basic_credentials(headers: &HeaderMap) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let scheme = value.get(..6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&value[6..])
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// A bcrypt hash to check unknown users against, one per cost, made once. What it hashes
/// does not matter: an unknown user is refused whatever the outcome.
fn dummy_hash(cost: u32) -> String {
    static DUMMIES: Mutex<BTreeMap<u32, String>> = Mutex::new(BTreeMap::new());
    DUMMIES
        .lock()
        .entry(cost)
        .or_insert_with(|| bcrypt::hash("no such user", cost).unwrap_or_default())
        .clone()
}

/// `rate_limit`: a bucket of `burst` tokens, refilled by one every `interval`, full at start
/// (Go's `rate.Limiter`).
struct TokenBucket {
    per_token: Duration,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(limit: RateLimit) -> TokenBucket {
        TokenBucket {
            per_token: limit.interval,
            burst: f64::from(limit.burst),
            tokens: f64::from(limit.burst),
            last: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() / self.per_token.as_secs_f64();
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, authorization.parse().unwrap());
        headers
    }

    #[test]
    fn basic_credentials_as_go_reads_them() {
        // "alice:pa:ss"
        assert_eq!(
            basic_credentials(&headers("Basic YWxpY2U6cGE6c3M=")),
            Some((b"alice".to_vec(), b"pa:ss".to_vec()))
        );
        assert_eq!(
            basic_credentials(&headers("bAsIc YWxpY2U6cGE6c3M=")),
            Some((b"alice".to_vec(), b"pa:ss".to_vec()))
        );
        // No colon, not base64, another scheme, nothing.
        assert_eq!(basic_credentials(&headers("Basic YWxpY2U=")), None);
        assert_eq!(basic_credentials(&headers("Basic !!!")), None);
        assert_eq!(basic_credentials(&headers("Bearer YWxpY2U6cGE6c3M=")), None);
        assert_eq!(basic_credentials(&HeaderMap::new()), None);
    }

    #[test]
    fn token_bucket_allows_bursts_then_refills() {
        let mut bucket = TokenBucket::new(RateLimit {
            interval: Duration::from_millis(50),
            burst: 2,
        });
        assert!(bucket.take() && bucket.take());
        assert!(!bucket.take());
        std::thread::sleep(Duration::from_millis(60));
        assert!(bucket.take());
        assert!(!bucket.take());
    }

    #[test]
    fn dummy_hashes_have_the_cost_asked_for_and_are_made_once() {
        let hash = dummy_hash(4);
        let parts: bcrypt::HashParts = hash.parse().unwrap();
        assert_eq!(parts.get_cost(), 4);
        assert_eq!(dummy_hash(4), hash);
        assert!(bcrypt::verify("no such user", &hash).unwrap());
        assert!(!bcrypt::verify("password", &hash).unwrap());
    }
}
