//! The multi-request flows of `DoClient`: exactly-once droplet creation,
//! droplet actions that wait out a pending event, action polling, and
//! firewall creation that survives a lost answer.

use std::time::Duration;

use chrono::Utc;
use reqwest::Method;
use tokio::time::Instant;

use super::do_client::{DoClient, take_key};
use super::error::ProviderError;
use super::http::{Failure, decode};
use super::ops::{self, MAX_NAMES_PER_CREATE, OperationId};
use super::types::{WireAction, WireCreated, WireFirewall};
use super::{
    Action, ActionStatus, CloudProvider, CreateDroplets, Created, Droplet, DropletAction, Firewall,
    FirewallSpec,
};

/// How many times a droplet action waits for another running action before giving up.
const MAX_PENDING_ROUNDS: u32 = 5;

impl DoClient {
    /// Sleeps before retry `attempt`, or returns the error when retries are spent.
    async fn backoff_or_fail(&self, attempt: u32, f: Failure) -> Result<(), ProviderError> {
        if !f.retryable {
            return Err(f.error);
        }
        if attempt >= self.http.policy.max_retries {
            return Err(ProviderError::RetriesExhausted {
                attempts: attempt + 1,
                last: Box::new(f.error),
            });
        }
        let wait = self.http.policy.wait(attempt, f.wait_hint)?;
        tracing::debug!(error = %f.error, ?wait, attempt, "retrying");
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Creates the droplets of `req` exactly once. With a caller-supplied
    /// operation id it first adopts droplets an earlier call already made
    /// (one list by the `infra-op:<id>` tag), so a repeated call is a no-op.
    pub(super) async fn create_exactly_once(
        &self,
        req: &CreateDroplets,
    ) -> Result<Created, ProviderError> {
        let op = req.operation_id.clone().unwrap_or_else(OperationId::random);
        let mut out = Created {
            droplets: Vec::new(),
            action_ids: Vec::new(),
            operation_id: op.clone(),
        };
        let mut missing: Vec<String> = req.names.clone();
        if req.operation_id.is_some() {
            self.adopt_tagged(&op, &mut missing, &mut out).await?;
        }
        let chunks: Vec<Vec<String>> = missing
            .chunks(MAX_NAMES_PER_CREATE)
            .map(<[String]>::to_vec)
            .collect();
        for names in chunks {
            self.create_chunk(req, names, &op, &mut out).await?;
        }
        Ok(out)
    }

    /// Moves droplets tagged `infra-op:<op>` whose names are in `missing` (and that
    /// are not in `out` yet) into `out`, with their create actions.
    async fn adopt_tagged(
        &self,
        op: &OperationId,
        missing: &mut Vec<String>,
        out: &mut Created,
    ) -> Result<(), ProviderError> {
        let tag = op.tag();
        for d in self.list_droplets(Some(&tag)).await? {
            if out.droplets.iter().any(|x| x.id == d.id) {
                continue;
            }
            let Some(pos) = missing.iter().position(|n| *n == d.name) else {
                continue;
            };
            tracing::info!(droplet = d.id, %tag, "droplet already created; adopting");
            missing.remove(pos);
            if let Some(a) = self.create_action_of(d.id).await? {
                out.action_ids.push(a);
            }
            out.droplets.push(d);
        }
        Ok(())
    }

    /// One `POST /v2/droplets` (at most 10 names). After an ambiguous failure it
    /// adopts what was created and only asks again for the names still missing.
    async fn create_chunk(
        &self,
        req: &CreateDroplets,
        mut missing: Vec<String>,
        op: &OperationId,
        out: &mut Created,
    ) -> Result<(), ProviderError> {
        let url = self.url("/v2/droplets", &[]);
        let mut attempt = 0;
        loop {
            let body = ops::create_body(req, &missing, op);
            let failure = match self.http.attempt(&Method::POST, &url, Some(&body)).await {
                Ok(reply) => {
                    let created: WireCreated = decode(&Method::POST, &url, &reply.body)?;
                    out.droplets.extend(
                        created
                            .droplet
                            .into_iter()
                            .chain(created.droplets.into_iter().flatten())
                            .map(Droplet::from),
                    );
                    out.action_ids
                        .extend(created.links.actions.iter().map(|a| a.id));
                    return Ok(());
                }
                Err(f) => f,
            };
            let ambiguous = failure.error.is_ambiguous();
            self.backoff_or_fail(attempt, failure).await?;
            attempt += 1;
            if ambiguous {
                self.adopt_tagged(op, &mut missing, out).await?;
                if missing.is_empty() {
                    return Ok(());
                }
            }
        }
    }

    async fn create_action_of(&self, droplet_id: u64) -> Result<Option<u64>, ProviderError> {
        let list = self.list_droplet_actions(droplet_id).await?;
        Ok(list.into_iter().find(|a| a.kind == "create").map(|a| a.id))
    }

    /// `POST /v2/droplets/{id}/actions`; on 422 "pending event" it waits for the
    /// running action and tries again; after an ambiguous failure it adopts an
    /// action of the same type started since the first attempt.
    pub(super) async fn start_action(
        &self,
        droplet_id: u64,
        action: &DropletAction,
    ) -> Result<Action, ProviderError> {
        let url = self.url(&format!("/v2/droplets/{droplet_id}/actions"), &[]);
        let body = ops::action_body(action);
        let since = Utc::now() - chrono::Duration::seconds(5);
        let mut attempt = 0;
        let mut pending_rounds = 0;
        let mut had_ambiguous = false;
        loop {
            let failure = match self.http.attempt(&Method::POST, &url, Some(&body)).await {
                Ok(reply) => {
                    let v: serde_json::Value = decode(&Method::POST, &url, &reply.body)?;
                    let a: WireAction = take_key(&Method::POST, &url, v, "action")?;
                    return Ok(a.into());
                }
                Err(f) => f,
            };
            if failure.error.is_pending_event() && pending_rounds < MAX_PENDING_ROUNDS {
                pending_rounds += 1;
                // The pending event may be our own action from an answer we lost.
                if had_ambiguous && let Some(a) = self.adoptable(droplet_id, action, since).await? {
                    return Ok(a);
                }
                self.wait_running_actions(droplet_id, pending_rounds)
                    .await?;
                continue;
            }
            let ambiguous = failure.error.is_ambiguous();
            had_ambiguous |= ambiguous;
            self.backoff_or_fail(attempt, failure).await?;
            attempt += 1;
            if ambiguous && let Some(a) = self.adoptable(droplet_id, action, since).await? {
                return Ok(a);
            }
        }
    }

    /// The latest action of `action`'s type on the droplet started since `since`.
    async fn adoptable(
        &self,
        droplet_id: u64,
        action: &DropletAction,
        since: chrono::DateTime<Utc>,
    ) -> Result<Option<Action>, ProviderError> {
        let found = self
            .list_droplet_actions(droplet_id)
            .await?
            .into_iter()
            .filter(|a| a.kind == action.kind())
            .filter(|a| a.started_at.is_some_and(|t| t >= since))
            .max_by_key(|a| a.id);
        if let Some(a) = &found {
            tracing::info!(action = a.id, "action had started; adopting");
        }
        Ok(found)
    }

    /// Waits for every in-progress action of the droplet (their outcome is not ours).
    async fn wait_running_actions(&self, droplet_id: u64, round: u32) -> Result<(), ProviderError> {
        let running: Vec<Action> = self
            .list_droplet_actions(droplet_id)
            .await?
            .into_iter()
            .filter(|a| a.status == ActionStatus::InProgress)
            .collect();
        if running.is_empty() {
            // The event ended between the 422 and our listing, or is not listed: back off.
            let wait = self.http.policy.backoff(round, rand::random::<f64>());
            tokio::time::sleep(wait).await;
        }
        for a in running {
            tracing::debug!(droplet_id, action = a.id, "waiting for pending event");
            match self.poll_action(a.id).await {
                Ok(_) | Err(ProviderError::ActionErrored { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Polls `GET /v2/actions/{id}` with doubling intervals until done or the deadline.
    pub(super) async fn poll_action(&self, action_id: u64) -> Result<Action, ProviderError> {
        let start = Instant::now();
        let deadline = start + self.poll.timeout;
        let mut interval = self.poll.min;
        loop {
            let a = self.get_action(action_id).await?;
            match a.status {
                ActionStatus::Completed => return Ok(a),
                ActionStatus::Errored => {
                    return Err(ProviderError::ActionErrored {
                        action_id,
                        kind: a.kind,
                        resource: format!(
                            "{} {}",
                            a.resource_type.as_deref().unwrap_or("resource"),
                            a.resource_id.map(|i| i.to_string()).unwrap_or_default()
                        ),
                    });
                }
                ActionStatus::InProgress => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ProviderError::Timeout {
                    what: format!("action {action_id} ({})", a.kind),
                    after: now - start,
                });
            }
            tokio::time::sleep(interval.min(deadline - now)).await;
            interval = (interval * 2)
                .min(self.poll.max)
                .max(Duration::from_millis(1));
        }
    }

    /// `POST /v2/firewalls`; after an ambiguous failure, adopts a firewall with the same name.
    pub(super) async fn create_firewall_once(
        &self,
        spec: &FirewallSpec,
    ) -> Result<Firewall, ProviderError> {
        let url = self.url("/v2/firewalls", &[]);
        let body = ops::firewall_body(spec);
        let mut attempt = 0;
        loop {
            let failure = match self.http.attempt(&Method::POST, &url, Some(&body)).await {
                Ok(reply) => {
                    let v: serde_json::Value = decode(&Method::POST, &url, &reply.body)?;
                    let f: WireFirewall = take_key(&Method::POST, &url, v, "firewall")?;
                    return Ok(f.into());
                }
                Err(f) => f,
            };
            let ambiguous = failure.error.is_ambiguous();
            self.backoff_or_fail(attempt, failure).await?;
            attempt += 1;
            if ambiguous {
                let list: Vec<WireFirewall> =
                    self.list_all("/v2/firewalls", &[], "firewalls").await?;
                if let Some(f) = list.into_iter().find(|f| f.name == spec.name) {
                    return Ok(f.into());
                }
            }
        }
    }
}
