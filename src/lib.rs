//! pushgateway-rs: a Prometheus Pushgateway that is a drop-in for `prom/pushgateway`.
//!
//! Data flows one way: an HTTP request ([`http`]) is decoded and parsed ([`exposition`]),
//! its grouping key read from the path ([`grouping`]; [`selector`] picks groups by
//! Prometheus selector), checked and committed by the
//! [`store`], and rendered back on scrape. [`config`] holds the command line,
//! [`web_config`] the `--web.config.file` (TLS, basic auth), and [`telemetry`] the gateway's
//! own metrics.

pub mod config;
pub mod exposition;
pub mod grouping;
pub mod http;
pub mod parallel;
pub mod selector;
pub mod store;
pub mod telemetry;
pub mod web_config;
