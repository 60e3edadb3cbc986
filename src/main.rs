//! The `pushgateway` binary: flags → store → routes → listeners. Wiring only.

use std::process::ExitCode;
use std::sync::Arc;

use pushgateway::config::Flags;
use pushgateway::exposition::names::NameRules;
use pushgateway::http::api_v1::ApiInfo;
use pushgateway::http::tls::TlsSource;
use pushgateway::http::{self, AppState, Shutdown};
use pushgateway::store::persist::PersistOptions;
use pushgateway::store::{Limits, Store, StoreOptions};
use pushgateway::telemetry::{self, Telemetry};
use pushgateway::web_config::WebConfigFile;

/// mimalloc instead of glibc's malloc: a push allocates and frees many small buffers, and
/// under load glibc's allocator took about 15% of the server's CPU (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let flags = Flags::from_args();
    if flags.version {
        println!("{}", version_text());
        return ExitCode::SUCCESS;
    }
    if let Some(doc) = flags.cli_doc() {
        return match doc.write(&mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            // The reader stopped early (`| head`): nothing is wrong.
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("pushgateway: writing {doc:?} to stdout: {error}");
                ExitCode::FAILURE
            }
        };
    }
    init_logging(&flags);
    telemetry::mark_process_start();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "Could not start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "Exiting");
            ExitCode::FAILURE
        }
    }
}

async fn run(flags: Flags) -> Result<(), String> {
    let start_time = std::time::SystemTime::now();
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "Starting pushgateway");
    let options = StoreOptions {
        consistency_check: !flags.disable_consistency_check,
        reserved: telemetry::reserved_families(),
        names: if flags.enable_utf8_names {
            NameRules::Utf8
        } else {
            NameRules::Legacy
        },
        limits: Limits {
            max_groups: flags.max_groups,
            max_series: flags.max_series,
            max_series_per_push: flags.max_series_per_push,
            max_label_length: flags.max_label_length,
        },
        group_ttl: flags.group_ttl,
    };
    let store = if flags.persistence_file.is_empty() {
        Store::new(options)
    } else {
        ignore_file_size_signal();
        let persistence = PersistOptions {
            path: flags.persistence_file.clone().into(),
            interval: flags.persistence_interval,
            start_from_readable: flags.persistence_start_from_readable,
        };
        Store::open(options, &persistence).map_err(|error| error.to_string())?
    };
    // Groups whose TTL ran out while the gateway was down go before the first scrape.
    let expired = store
        .expire_due()
        .await
        .map_err(|error| format!("cannot remove expired groups: {error}"))?;
    if expired > 0 {
        tracing::info!(
            groups = expired,
            "Removed groups that expired while stopped"
        );
    }
    tokio::spawn(store.clone().run_expiry());
    let shutdown = Shutdown::default();
    let app = AppState::new(
        store.clone(),
        Telemetry::default(),
        flags.max_body_bytes,
        flags.enable_lifecycle,
        shutdown.clone(),
    )
    .with_api(
        ApiInfo::from_flags(&flags, start_time),
        flags.enable_admin_api,
    );
    let router = http::router(app, &flags.route_prefix(), &flags.telemetry_path);
    let (router, tls) = if flags.web_config_file.is_empty() {
        (router, None)
    } else {
        let file = Arc::new(WebConfigFile::load(&flags.web_config_file)?);
        let tls = TlsSource::for_file(file.clone())?.map(Arc::new);
        tracing::info!(
            file = %flags.web_config_file,
            tls = tls.is_some(),
            "Web config file loaded"
        );
        (http::auth::layer(router, file)?, tls)
    };

    let mut servers = tokio::task::JoinSet::new();
    for listener in http::listen(&flags.listen_addresses, flags.systemd_socket).await? {
        servers.spawn(http::serve(
            listener,
            router.clone(),
            shutdown.clone(),
            tls.clone(),
        ));
    }
    tokio::spawn(stop_on_signal(shutdown.clone()));
    while let Some(result) = servers.join_next().await {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(format!("listener failed: {error}")),
            Err(error) => return Err(format!("listener task failed: {error}")),
        }
    }
    // Every request has been answered; leave the persistence file compact.
    tokio::task::block_in_place(|| store.close());
    tracing::info!("Stopped");
    Ok(())
}

/// SIGINT or SIGTERM start a graceful shutdown.
async fn stop_on_signal(shutdown: Shutdown) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("Received SIGINT, exiting gracefully"),
        _ = terminate => tracing::info!("Received SIGTERM, exiting gracefully"),
    }
    shutdown.trigger();
}

/// A file-size limit (`ulimit -f`) must make a write fail with an error the store handles,
/// not kill the process with SIGXFSZ.
fn ignore_file_size_signal() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to "ignore" installs no handler code.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

fn version_text() -> String {
    format!(
        "pushgateway, version {} (branch: {}, revision: {})\n  build user:       {}\n  build date:       {}\n  rust version:     {}\n  platform:         {}/{}",
        env!("CARGO_PKG_VERSION"),
        option_env!("PUSHGATEWAY_BRANCH").unwrap_or("unknown"),
        option_env!("PUSHGATEWAY_REVISION").unwrap_or("unknown"),
        option_env!("PUSHGATEWAY_BUILD_USER").unwrap_or("unknown"),
        option_env!("PUSHGATEWAY_BUILD_DATE").unwrap_or("unknown"),
        option_env!("PUSHGATEWAY_RUSTC").unwrap_or("unknown"),
        std::env::consts::OS,
        std::env::consts::ARCH,
    )
}

fn init_logging(flags: &Flags) {
    let level = match flags.log_level.as_str() {
        "debug" => tracing::Level::DEBUG,
        "warn" => tracing::Level::WARN,
        "error" => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    if flags.log_format == "json" {
        tracing_subscriber::fmt()
            .json()
            .with_max_level(level)
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_logfmt::builder()
            .with_span_name(false)
            .with_span_path(false)
            .subscriber_builder()
            .with_max_level(level)
            .with_writer(std::io::stderr)
            .init();
    }
}
