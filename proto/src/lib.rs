//! Wire types of the agent's gRPC API. Only the `api` module of the agent and
//! `infractl` touch these; domain code works on its own types.

#![allow(clippy::all, clippy::pedantic)]

/// Version 1 of the agent API (`infra.v1`).
pub mod v1 {
    tonic::include_proto!("infra.v1");
}
