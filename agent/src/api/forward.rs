//! Forwarding of control calls: a follower relays each call to the Raft
//! leader over mTLS and streams the answer back, so a caller can talk to
//! any agent. A forwarded call carries [`FORWARDED_BY`]; an agent that is
//! not the leader refuses it instead of forwarding again (no loops while
//! views of the leader disagree).

use std::future::Future;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use infra_proto::v1::Progress;
use infra_proto::v1::control_client::ControlClient;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

use super::error::ApiError;
use super::handler::{ControlError, Outcome, ProgressEvent, ProgressSink};
use crate::node::{ClusterLink, Route};

/// Metadata key naming the agent that forwarded a call.
pub const FORWARDED_BY: &str = "x-infra-forwarded-by";

pub type ProgressStream = Pin<Box<dyn Stream<Item = Result<Progress, Status>> + Send>>;

/// Where one call runs.
pub enum Target {
    Local,
    Leader(ControlClient<Channel>),
}

/// Decides where a call received by `me` runs.
pub fn target<T>(link: &ClusterLink, me: &str, req: &Request<T>) -> Result<Target, ApiError> {
    match link.route() {
        Route::Local => Ok(Target::Local),
        Route::NoLeader => Err(ApiError::NoLeader),
        Route::Leader(_) if req.metadata().contains_key(FORWARDED_BY) => {
            Err(ApiError::ForwardLoop(me.to_string()))
        }
        Route::Leader(leader) => link
            .control_client(&leader.addr)
            .map(Target::Leader)
            .map_err(|e| ApiError::Forward {
                leader: leader.name.clone(),
                reason: e.reason,
            }),
    }
}

/// The request as sent on to the leader, marked as forwarded by `me`.
pub fn outgoing<T>(me: &str, req: Request<T>) -> Request<T> {
    let mut out = Request::new(req.into_inner());
    if let Ok(value) = me.parse() {
        out.metadata_mut().insert(FORWARDED_BY, value);
    }
    out
}

/// Runs a streaming control call: forwarded with `forward` when another
/// agent leads, else `local` runs here and its progress is streamed.
pub async fn streamed<Req, Fwd, FwdFut, Local, LocalFut>(
    link: &ClusterLink,
    me: &str,
    request: Request<Req>,
    forward: Fwd,
    local: Local,
) -> Result<Response<ProgressStream>, Status>
where
    Fwd: FnOnce(ControlClient<Channel>, Request<Req>) -> FwdFut,
    FwdFut: Future<Output = Result<Response<Streaming<Progress>>, Status>>,
    Local: FnOnce(Req, ProgressSink) -> LocalFut,
    LocalFut: Future<Output = Result<Outcome, ControlError>> + Send + 'static,
{
    match target(link, me, &request)? {
        Target::Leader(client) => {
            let answer = forward(client, outgoing(me, request)).await?;
            Ok(Response::new(Box::pin(answer.into_inner())))
        }
        Target::Local => {
            let (sink, events) = ProgressSink::channel();
            let run = local(request.into_inner(), sink.clone());
            Ok(Response::new(progress_stream(run, sink, events)))
        }
    }
}

/// Steps then the final result of `run`, as wire messages. The handler
/// runs as the stream is polled (dropping the stream cancels it).
fn progress_stream(
    run: impl Future<Output = Result<Outcome, ControlError>> + Send + 'static,
    sink: ProgressSink,
    events: futures::channel::mpsc::UnboundedReceiver<ProgressEvent>,
) -> ProgressStream {
    let driver = futures::stream::once(async move {
        let result = run.await;
        sink.finish(result);
    })
    .filter_map(|()| std::future::ready(None));
    let events = events.map(|event| match event {
        ProgressEvent::Step(message) => Ok(Progress {
            message,
            ..Progress::default()
        }),
        ProgressEvent::Done(Ok(outcome)) => Ok(Progress {
            message: outcome.message,
            done: true,
            failed: false,
            result_json: outcome.result.map(|v| v.to_string()).unwrap_or_default(),
        }),
        ProgressEvent::Done(Err(err)) => Err(Status::from(ApiError::from(err))),
    });
    Box::pin(futures::stream::select(events, driver))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn steps_then_the_result_in_order() {
        let (sink, events) = ProgressSink::channel();
        let steps = sink.clone();
        let run = async move {
            for i in 0..3 {
                steps.step(format!("step {i}"));
                tokio::task::yield_now().await;
            }
            Ok(Outcome {
                message: "done".into(),
                result: Some(serde_json::json!({"n": 3})),
            })
        };
        let got: Vec<Result<Progress, Status>> = progress_stream(run, sink, events).collect().await;
        let messages: Vec<&str> = got
            .iter()
            .map(|p| p.as_ref().unwrap().message.as_str())
            .collect();
        assert_eq!(messages, ["step 0", "step 1", "step 2", "done"]);
        let last = got.last().unwrap().as_ref().unwrap();
        assert!(last.done && !last.failed);
        assert_eq!(last.result_json, r#"{"n":3}"#);
    }

    #[tokio::test]
    async fn a_handler_error_ends_the_stream_with_its_status() {
        let (sink, events) = ProgressSink::channel();
        let run = async { Err(ControlError::NotAvailable("Deploy")) };
        let got: Vec<Result<Progress, Status>> = progress_stream(run, sink, events).collect().await;
        assert_eq!(got.len(), 1);
        let status = got[0].as_ref().unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented);
        assert_eq!(status.message(), "not available on this agent yet: Deploy");
    }
}
