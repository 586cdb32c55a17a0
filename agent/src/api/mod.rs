//! The agent's gRPC services: translate wire types, call domain code.

pub mod raft;
