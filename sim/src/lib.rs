//! Local DigitalOcean API v2 compatible cloud ("infra-sim") for tests and `infractl up`.
//!
//! Start it with [`Sim::start`]; the returned [`SimHandle`] gives the base URL, the request log,
//! fault injection and simulated hardware failures.

mod api;
pub mod backing;
pub mod catalog;
pub mod config;
pub mod error;
pub mod faults;
mod fingerprint;
mod http;
pub mod model;
pub mod pagination;
mod persist;
pub mod ratelimit;
mod server;
mod store;
pub mod timing;
mod views;

pub use config::{Backing, ProcessBacking, Profile, RateLimitConfig, SimConfig};
pub use error::SimError;
pub use faults::{Fault, Target};
pub use http::RecordedRequest;
pub use server::{Sim, SimHandle};
