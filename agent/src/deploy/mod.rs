//! Deploys on a droplet: release versions and git, secret resolution, the
//! health-gated cutover from an old container to a new one, and release
//! bookkeeping (what to keep, what to roll back to). On a cluster the
//! leader drives each droplet through its agent ([`agent_runtime`]), which
//! starts the droplet's containers on its own engine.

pub mod agent_runtime;
pub mod cutover;
pub mod delivery;
pub mod git;
pub mod pipeline;
pub mod release_log;
pub mod releases;
pub mod reproduce;
pub mod rollout;
pub mod sealed;
pub mod secrets;
pub mod service;
pub mod state_log;
pub mod version;

pub use secrets::{MissingSecret, SecretValue, resolve_secrets};
pub use version::{Semver, UatTag};
