//! The droplet agent library: everything that runs on a droplet, plus the
//! pure decision code (`spec`, `plan`) that `infractl` shares.

pub mod deploy;
pub mod lb;
pub mod runtime;
pub mod spec;
pub mod topology;
