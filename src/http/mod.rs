//! The HTTP surface: the routes, the state every handler shares, and the listeners.
//!
//! One file per surface: [`push`] (push and delete), [`scrape`], [`lifecycle`] (health,
//! readiness, quit), [`api_v1`] (the JSON API), [`admin`] (wipe) and [`ui`] (the web UI and
//! its static files); [`body`] reads request bodies and [`errors`] is the one place errors
//! become responses. Handlers turn HTTP into store calls and back; they never touch the
//! store's insides.
//!
//! The web config file applies around them: [`auth`] (basic auth, headers, rate limit) and
//! [`tls`]; [`systemd`] takes over the sockets of systemd socket activation.

pub mod admin;
pub mod api_v1;
pub mod auth;
pub mod body;
pub mod errors;
pub mod lifecycle;
pub mod push;
pub mod scrape;
#[cfg(unix)]
pub mod systemd;
pub mod tls;
pub mod ui;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::routing::{any, delete, get, put};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::store::Store;
use crate::telemetry::Telemetry;

/// What every handler receives: cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub telemetry: Telemetry,
    pub max_body_bytes: usize,
    pub enable_lifecycle: bool,
    /// `--web.enable-admin-api`: whether `/api/v1/admin/wipe` is routed.
    pub enable_admin_api: bool,
    /// Flags and start time for `/api/v1/status`.
    pub api: Arc<api_v1::ApiInfo>,
    pub shutdown: Shutdown,
    last_scrape_size: Arc<AtomicUsize>,
}

impl AppState {
    pub fn new(
        store: Store,
        telemetry: Telemetry,
        max_body_bytes: usize,
        enable_lifecycle: bool,
        shutdown: Shutdown,
    ) -> AppState {
        AppState {
            store,
            telemetry,
            max_body_bytes,
            enable_lifecycle,
            enable_admin_api: false,
            api: Arc::new(api_v1::ApiInfo::default()),
            shutdown,
            last_scrape_size: Arc::new(AtomicUsize::new(64 * 1024)),
        }
    }

    /// Sets what `/api/v1/status` reports and whether the admin API is routed.
    pub fn with_api(mut self, api: api_v1::ApiInfo, enable_admin_api: bool) -> AppState {
        self.api = Arc::new(api);
        self.enable_admin_api = enable_admin_api;
        self
    }

    /// How large the previous scrape was, so the next buffer is allocated once.
    fn scrape_size_hint(&self) -> usize {
        self.last_scrape_size.load(Ordering::Relaxed) + 4096
    }

    fn remember_scrape_size(&self, size: usize) {
        self.last_scrape_size.store(size, Ordering::Relaxed);
    }
}

/// A one-shot signal that stops every listener gracefully.
#[derive(Clone)]
pub struct Shutdown {
    sender: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            sender: Arc::new(watch::channel(false).0),
        }
    }
}

impl Shutdown {
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Completes once [`Shutdown::trigger`] has been called.
    pub async fn wait(&self) {
        let mut receiver = self.sender.subscribe();
        // An error means the sender is gone, which cannot happen while `self` lives.
        let _ = receiver.wait_for(|stopped| *stopped).await;
    }
}

/// Builds every route under `route_prefix` ("" or "/something").
pub fn router(app: AppState, route_prefix: &str, telemetry_path: &str) -> Router {
    let routes = Router::new()
        .route(telemetry_path, get(scrape::handle))
        .route("/metrics/{*grouping}", any(push::handle))
        .route("/-/healthy", get(lifecycle::healthy))
        .route("/-/ready", get(lifecycle::ready))
        .route(
            "/-/quit",
            put(lifecycle::quit)
                .post(lifecycle::quit)
                .fallback(lifecycle::quit_wrong_method),
        )
        .route(
            "/api/v1/status",
            get(api_v1::status)
                .head(api_v1::get_only)
                .options(api_v1::options)
                .fallback(api_v1::get_only),
        )
        .route(
            "/api/v1/metrics",
            get(api_v1::metrics)
                .head(api_v1::get_only)
                .options(api_v1::options)
                .fallback(api_v1::get_only),
        )
        .route(
            "/api/v1/groups",
            get(api_v1::groups)
                .head(api_v1::get_only)
                .options(api_v1::options)
                .fallback(api_v1::get_only),
        )
        .route("/api/v1/{*path}", any(api_v1::other_path));
    let routes = if app.enable_admin_api {
        routes
            .route(
                "/api/v1/admin/wipe",
                put(admin::wipe)
                    .options(api_v1::options)
                    .fallback(admin::wipe_wrong_method),
            )
            .route(
                "/api/v1/admin/groups",
                delete(admin::delete_groups)
                    .options(api_v1::options)
                    .fallback(admin::groups_wrong_method),
            )
    } else {
        routes
    };
    let routes = routes
        .merge(ui::routes(app.clone(), route_prefix, telemetry_path))
        .with_state(app.clone());
    let routes = if route_prefix.is_empty() {
        routes
    } else {
        Router::new()
            .nest(route_prefix, routes)
            .merge(ui::prefix_root_route(
                app.clone(),
                route_prefix,
                telemetry_path,
            ))
    };
    // Upstream answers a GET on /-/quit without the route prefix too.
    let quit_outside_prefix = !route_prefix.is_empty();
    let routes = if quit_outside_prefix {
        routes.route("/-/quit", get(lifecycle::quit_wrong_method))
    } else {
        routes
    };
    routes.fallback(|| async { errors::ApiError::NotFound })
}

/// A socket to serve on: bound from `--web.listen-address`, or passed by systemd.
pub enum Bound {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener),
}

/// The sockets to serve on: systemd's with `--web.systemd-socket` (which then replaces the
/// listen addresses, as upstream), else one per `--web.listen-address`.
pub async fn listen(addresses: &[String], systemd_socket: bool) -> Result<Vec<Bound>, String> {
    if systemd_socket {
        tracing::info!("Listening on systemd activated listeners instead of port listeners");
        #[cfg(unix)]
        return systemd::listeners();
        #[cfg(not(unix))]
        return Err("--web.systemd-socket: socket activation needs a Unix system".into());
    }
    let mut bound = Vec::new();
    for address in addresses {
        let listener = bind(address)
            .await
            .map_err(|error| format!("cannot listen on {address}: {error}"))?;
        bound.push(Bound::Tcp(listener));
    }
    Ok(bound)
}

/// Binds one `--web.listen-address`. `:9091` means every interface, IPv6 and IPv4.
pub async fn bind(address: &str) -> std::io::Result<TcpListener> {
    if let Some(port) = address.strip_prefix(':') {
        match TcpListener::bind(format!("[::]:{port}")).await {
            Ok(listener) => return Ok(listener),
            Err(_) => return TcpListener::bind(format!("0.0.0.0:{port}")).await,
        }
    }
    TcpListener::bind(address).await
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until `shutdown` fires, then
/// finishes in-flight requests.
pub async fn serve(
    listener: Bound,
    router: Router,
    shutdown: Shutdown,
    tls: Option<Arc<tls::TlsSource>>,
) -> std::io::Result<()> {
    match listener {
        Bound::Tcp(listener) => serve_on(listener, router, shutdown, tls).await,
        #[cfg(unix)]
        Bound::Unix(listener) => serve_on(listener, router, shutdown, tls).await,
    }
}

async fn serve_on<L>(
    listener: L,
    router: Router,
    shutdown: Shutdown,
    tls: Option<Arc<tls::TlsSource>>,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug + Clone + Sync,
{
    match listener.local_addr() {
        Ok(address) => tracing::info!(?address, "Listening on address"),
        Err(error) => tracing::warn!(%error, "Listening on an address that cannot be named"),
    }
    let stopped = async move { shutdown.wait().await };
    match tls {
        None => {
            axum::serve(listener, router)
                .with_graceful_shutdown(stopped)
                .await
        }
        Some(tls) => {
            axum::serve(tls::TlsListener::new(listener, tls)?, router)
                .with_graceful_shutdown(stopped)
                .await
        }
    }
}
