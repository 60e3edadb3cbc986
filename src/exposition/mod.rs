//! Wire formats: turning bytes into [`model::MetricFamily`] values and back.
//!
//! Nothing in here performs I/O or knows about the store or HTTP; each submodule is one
//! direction of one format, and all of them meet in [`model`].

pub mod model;
pub mod names;
pub mod negotiate;
pub mod openmetrics;
pub mod proto;
pub mod protobuf;
pub mod text_parse;
pub mod text_write;
