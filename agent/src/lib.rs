//! The droplet agent library: everything that runs on a droplet, plus the
//! pure decision code (`spec`, `plan`) that `infractl` shares.

pub mod api;
pub mod consensus;
pub mod spec;
pub mod state;
pub mod topology;
