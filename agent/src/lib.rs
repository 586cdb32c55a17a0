//! The droplet agent library: everything that runs on a droplet, plus the
//! pure decision code (`spec`, `plan`) that `infractl` shares.

pub mod config;
pub mod fault;
pub mod membership;
pub mod plan;
pub mod provider;
pub mod quorum;
pub mod recovery;
pub mod spec;
pub mod tls;
pub mod topology;
