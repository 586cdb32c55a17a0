//! The agent's gRPC services. Handlers only translate wire types to domain
//! calls and back; errors become `tonic::Status` in `error.rs` alone.

pub mod containers;
pub mod containers_wire;
pub mod control;
pub mod error;
pub mod forward;
pub mod handler;
pub mod health;
pub mod images;
pub mod raft;
