//! The droplet agent library: everything that runs on a droplet, plus the
//! pure decision code (`spec`, `plan`) that `infractl` shares.

pub mod api;
pub mod bootstrap;
pub mod config;
pub mod consensus;
pub mod deploy;
pub mod fault;
pub mod health;
pub mod lb;
pub mod local_cluster;
pub mod membership;
pub mod node;
pub mod notify;
pub mod orchestrator;
pub mod plan;
pub mod provider;
pub mod quorum;
pub mod recovery;
pub mod runtime;
pub mod spec;
pub mod state;
pub mod tls;
pub mod topology;
pub mod traffic;
