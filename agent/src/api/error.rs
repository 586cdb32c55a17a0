//! The one place where domain errors become `tonic::Status`.

use tonic::Status;

use super::handler::ControlError;
use crate::consensus::ConsensusError;
use crate::deploy::delivery::DeliveryError;
use crate::health::ProbeError;
use crate::node::formation::FormError;
use crate::quorum::VoteRejection;
use crate::runtime::RuntimeError;

/// How an `Unavailable` status says that no Raft leader is known.
pub const NO_LEADER: &str = "no Raft leader is known yet";

/// Whether `status` (from another agent) says that it knows no leader.
pub fn is_no_leader(status: &Status) -> bool {
    status.code() == tonic::Code::Unavailable && status.message().starts_with(NO_LEADER)
}

/// Errors a handler can return, before they hit the wire.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request field `{field}`: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("not available yet: {0}")]
    NotAvailableYet(&'static str),
    #[error("probe failed: {0}")]
    Probe(#[from] ProbeError),
    #[error("caller's certificate does not name observer `{0}`")]
    NotTheObserver(String),
    #[error("caller's certificate does not name the joining agent `{0}`")]
    NotTheNode(String),
    #[error("{0} is for operators: the caller's certificate is a node certificate")]
    NotAnOperator(&'static str),
    #[error("cannot form the cluster: {0}")]
    Form(#[from] FormError),
    #[error("vote rejected: {0:?}")]
    VoteRejected(VoteRejection),
    #[error("agent isolated by fault injection")]
    Isolated,
    #[error("cannot serialize status: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("{NO_LEADER} (election in progress); retry shortly")]
    NoLeader,
    #[error("cannot forward to the leader {leader}: {reason}")]
    Forward { leader: String, reason: String },
    #[error("a forwarded call reached {0}, which is not the leader; retry shortly")]
    ForwardLoop(String),
    #[error(transparent)]
    Consensus(#[from] ConsensusError),
    #[error("image delivery: {0}")]
    Delivery(#[from] DeliveryError),
    #[error("container runtime: {0}")]
    Runtime(#[from] RuntimeError),
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Status {
        let msg = err.to_string();
        match err {
            ApiError::InvalidArgument { .. } => Status::invalid_argument(msg),
            ApiError::NotAvailableYet(_) => Status::unimplemented(msg),
            ApiError::Probe(_) | ApiError::Isolated => Status::unavailable(msg),
            ApiError::VoteRejected(_) => Status::failed_precondition(msg),
            ApiError::NotTheObserver(_) | ApiError::NotTheNode(_) | ApiError::NotAnOperator(_) => {
                Status::permission_denied(msg)
            }
            ApiError::Form(FormError::WrongCluster { .. }) => Status::invalid_argument(msg),
            ApiError::Form(FormError::OthersLive { .. } | FormError::CannotLead) => {
                Status::failed_precondition(msg)
            }
            ApiError::Form(FormError::Joining | FormError::NoFirstLeader(_)) => {
                Status::unavailable(msg)
            }
            ApiError::Form(FormError::Consensus(_)) => Status::internal(msg),
            ApiError::Serialize(_) => Status::internal(msg),
            ApiError::Control(ControlError::NotAvailable(_)) => Status::unimplemented(msg),
            ApiError::Control(ControlError::Invalid(_)) => Status::invalid_argument(msg),
            ApiError::Control(ControlError::Failed(_)) => Status::aborted(msg),
            ApiError::NoLeader | ApiError::Forward { .. } | ApiError::ForwardLoop(_) => {
                Status::unavailable(msg)
            }
            ApiError::Consensus(ConsensusError::NotLeader(_)) => Status::unavailable(msg),
            ApiError::Consensus(_) => Status::internal(msg),
            ApiError::Delivery(DeliveryError::NoImage) => Status::invalid_argument(msg),
            ApiError::Delivery(DeliveryError::Mismatch { .. }) => Status::data_loss(msg),
            ApiError::Delivery(DeliveryError::Runtime(_)) => Status::unavailable(msg),
            ApiError::Runtime(RuntimeError::Invalid { .. }) => Status::invalid_argument(msg),
            ApiError::Runtime(RuntimeError::Connect(_)) => Status::unavailable(msg),
            ApiError::Runtime(RuntimeError::Engine { .. } | RuntimeError::Build { .. }) => {
                Status::aborted(msg)
            }
            ApiError::Runtime(RuntimeError::Io { .. }) => Status::internal(msg),
        }
    }
}

/// A required non-empty string field.
pub fn required(field: &'static str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::InvalidArgument {
            field,
            reason: "must not be empty".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let s: Status = ApiError::NotAvailableYet("Deploy").into();
        assert_eq!(s.code(), tonic::Code::Unimplemented);
        assert_eq!(s.message(), "not available yet: Deploy");
        let s: Status = required("target", "").unwrap_err().into();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert!(s.message().contains("`target`"));
        let s: Status = ApiError::from(ControlError::NotAvailable("Scale")).into();
        assert_eq!(s.code(), tonic::Code::Unimplemented);
        assert_eq!(s.message(), "not available on this agent yet: Scale");
        let s: Status = ApiError::NoLeader.into();
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert!(is_no_leader(&s), "{s:?}");
        let s: Status = ApiError::from(DeliveryError::NoImage).into();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        let s: Status = ApiError::from(DeliveryError::Mismatch {
            expected: "sha256:a".into(),
            loaded: "sha256:b".into(),
        })
        .into();
        assert_eq!(s.code(), tonic::Code::DataLoss);
        assert!(s.message().contains("sha256:a") && s.message().contains("sha256:b"));
        let s: Status =
            ApiError::from(crate::runtime::check_name("name", "a/b").unwrap_err()).into();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert!(s.message().contains("name `a/b`"), "{}", s.message());
        let s: Status = ApiError::from(RuntimeError::Connect("down".into())).into();
        assert_eq!(s.code(), tonic::Code::Unavailable);
        let s: Status = ApiError::from(RuntimeError::Engine {
            op: "create container",
            target: "web".into(),
            message: "conflict".into(),
        })
        .into();
        assert_eq!(s.code(), tonic::Code::Aborted);
    }
}
