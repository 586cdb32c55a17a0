//! The recovery saga's record (what the Raft log stores) and its pure step
//! machine: which step comes next, how a dead droplet is fenced, and how it
//! is replaced. No I/O: the executor observes facts and feeds them in here.

use std::fmt;
use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Version of the serialized [`SagaRecord`].
pub const SAGA_VERSION: u32 = 1;

/// Prefix of the tag that carries a saga's fencing token on every droplet it touches.
pub const FENCE_TAG_PREFIX: &str = "infra-fence:";

/// The fencing token of a saga run: the Raft term and log index of the entry
/// that opened (or took over) the saga. Larger tokens win.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FencingToken {
    pub term: u64,
    pub index: u64,
}

impl FencingToken {
    /// The DigitalOcean tag `infra-fence:<term>-<index>` (matches `^[a-zA-Z0-9_\-\:]+$`).
    pub fn tag(&self) -> String {
        format!("{FENCE_TAG_PREFIX}{self}")
    }

    /// The provider operation id (`fence:<term>-<index>`; the droplets get `infra-op:fence:...`).
    pub fn operation_id(&self) -> String {
        format!("fence:{self}")
    }

    /// Parses a tag made by [`FencingToken::tag`].
    pub fn from_tag(tag: &str) -> Option<Self> {
        let (term, index) = tag.strip_prefix(FENCE_TAG_PREFIX)?.split_once('-')?;
        Some(Self {
            term: term.parse().ok()?,
            index: index.parse().ok()?,
        })
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.term, self.index)
    }
}

/// The saga's steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// a. Power the failed droplet off (destroy it if that fails).
    Fence,
    /// b. Take it out of the load-balancer targets in the state.
    Unroute,
    /// c. Rebuild it in place, or create a replacement.
    Replace,
    /// d. Wait until the droplet is active and its agent has joined.
    AwaitJoin,
    /// e. Place its services on it again, at the live releases.
    Place,
    /// f. Put it back in the load-balancer targets.
    Route,
    /// g. Destroy the fenced old droplet if it was replaced by a new one.
    DestroyOld,
    /// h. Tell the operator.
    Notify,
}

impl Step {
    pub const ALL: [Step; 8] = [
        Step::Fence,
        Step::Unroute,
        Step::Replace,
        Step::AwaitJoin,
        Step::Place,
        Step::Route,
        Step::DestroyOld,
        Step::Notify,
    ];

    /// The step after this one (`None` after the last).
    pub fn next(self) -> Option<Step> {
        let i = Step::ALL.iter().position(|s| *s == self)?;
        Step::ALL.get(i + 1).copied()
    }
}

/// Whether the record's step was only begun or is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Progress {
    Started,
    Finished,
}

/// How the failed droplet was fenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fence {
    PoweredOff,
    Destroyed,
    /// It no longer existed at the provider.
    AlreadyGone,
}

/// The image a replacement is built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceImage {
    Snapshot {
        id: u64,
    },
    /// The base image; the services need a full redeploy afterwards.
    Base {
        slug: String,
    },
}

/// How the droplet is replaced (decided when step c starts, recorded with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Replacement {
    /// Rebuild the existing droplet (it keeps its id and IP).
    RebuildInPlace { droplet_id: u64, image: SourceImage },
    /// Create a new droplet with the same logical name.
    Create { image: SourceImage },
}

impl Replacement {
    pub fn image(&self) -> &SourceImage {
        match self {
            Replacement::RebuildInPlace { image, .. } | Replacement::Create { image } => image,
        }
    }

    /// Whether the services must be redeployed (no snapshot was available).
    pub fn needs_redeploy(&self) -> bool {
        matches!(self.image(), SourceImage::Base { .. })
    }
}

/// What a new droplet looks like (kept in the record so a new leader can create it).
/// `Debug` leaves out the user-data, which may carry a join secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropletTemplate {
    pub region: String,
    pub size: String,
    /// Base image slug, used when there is no snapshot.
    pub base_image: String,
    pub ssh_key_ids: Vec<u64>,
    /// Tags every system droplet carries (e.g. `infra-managed`).
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_uuid: Option<String>,
}

impl fmt::Debug for DropletTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropletTemplate")
            .field("region", &self.region)
            .field("size", &self.size)
            .field("base_image", &self.base_image)
            .field("ssh_key_ids", &self.ssh_key_ids)
            .field("tags", &self.tags)
            .field("user_data", &self.user_data.as_ref().map(|_| "<redacted>"))
            .field("vpc_uuid", &self.vpc_uuid)
            .finish()
    }
}

/// How the saga ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaOutcome {
    pub droplet: String,
    pub generation: u64,
    pub droplet_id: u64,
    pub ip: Option<Ipv4Addr>,
    pub replacement: Replacement,
    pub fence: Fence,
    pub old_destroyed: bool,
}

/// One saga, as committed to the log before and after each step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaRecord {
    pub version: u32,
    /// Logical droplet name (`master`, `<project>-web<N>`).
    pub droplet: String,
    /// The generation that was confirmed dead; the replacement gets `failed_generation + 1`.
    pub failed_generation: u64,
    /// Provider id of the failed droplet, if it had one.
    pub old_droplet_id: Option<u64>,
    pub template: DropletTemplate,
    /// The token of the current run.
    pub token: FencingToken,
    /// Tokens of earlier runs (leaders that stopped mid-saga), oldest first.
    #[serde(default)]
    pub previous_tokens: Vec<FencingToken>,
    /// The last step committed and whether it finished; `None` before the first step.
    pub at: Option<(Step, Progress)>,
    pub opened_at: DateTime<Utc>,
    /// When the current step was started (used to recognise actions it began).
    pub step_started_at: Option<DateTime<Utc>>,
    pub fence: Option<Fence>,
    pub replacement: Option<Replacement>,
    /// The droplet that carries the logical name after step c.
    pub new_droplet_id: Option<u64>,
    pub new_ip: Option<Ipv4Addr>,
    pub old_destroyed: bool,
}

impl SagaRecord {
    /// A fresh saga for a quorum-confirmed failure.
    pub fn open(
        droplet: impl Into<String>,
        failed_generation: u64,
        old_droplet_id: Option<u64>,
        template: DropletTemplate,
        token: FencingToken,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            version: SAGA_VERSION,
            droplet: droplet.into(),
            failed_generation,
            old_droplet_id,
            template,
            token,
            previous_tokens: Vec::new(),
            at: None,
            opened_at: now,
            step_started_at: None,
            fence: None,
            replacement: None,
            new_droplet_id: None,
            new_ip: None,
            old_destroyed: false,
        }
    }

    /// The generation of the replacement.
    pub fn new_generation(&self) -> u64 {
        self.failed_generation + 1
    }

    /// A new leader takes the saga over with its own (larger) token.
    pub fn take_over(&mut self, token: FencingToken) -> Result<(), StaleToken> {
        if token <= self.token {
            return Err(StaleToken {
                offered: token,
                current: self.token,
            });
        }
        self.previous_tokens.push(self.token);
        self.token = token;
        Ok(())
    }

    /// Every token that ever ran this saga, oldest first (creates are looked up by all).
    pub fn all_tokens(&self) -> impl Iterator<Item = FencingToken> + '_ {
        self.previous_tokens
            .iter()
            .copied()
            .chain(std::iter::once(self.token))
    }

    pub fn is_finished(&self) -> bool {
        self.at == Some((Step::Notify, Progress::Finished))
    }

    /// The outcome, once step c has produced a droplet.
    pub fn outcome(&self) -> Option<SagaOutcome> {
        Some(SagaOutcome {
            droplet: self.droplet.clone(),
            generation: self.new_generation(),
            droplet_id: self.new_droplet_id?,
            ip: self.new_ip,
            replacement: self.replacement.clone()?,
            fence: self.fence?,
            old_destroyed: self.old_destroyed,
        })
    }
}

/// A take-over with a token that is not newer than the saga's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("fencing token {offered} is not newer than the saga's {current}")]
pub struct StaleToken {
    pub offered: FencingToken,
    pub current: FencingToken,
}

/// What the executor does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Commit `step` as started, then run it.
    Start(Step),
    /// `step` was started (maybe by a previous leader) and not finished: run it again,
    /// checking first what it already did.
    Resume(Step),
    /// Every step is finished.
    Done,
}

/// The pure step machine: a finished step is never repeated.
pub fn next_step(saga: &SagaRecord) -> Decision {
    match saga.at {
        None => Decision::Start(Step::Fence),
        Some((step, Progress::Started)) => Decision::Resume(step),
        Some((step, Progress::Finished)) => match step.next() {
            Some(next) => Decision::Start(next),
            None => Decision::Done,
        },
    }
}

/// What the executor saw of the failed droplet before fencing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FenceFacts {
    /// `None`: the droplet does not exist (404) or never had an id.
    pub droplet_off: Option<bool>,
    /// A power-off was tried and failed.
    pub power_off_failed: bool,
}

/// How to fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceAction {
    /// Nothing to do: already fenced this way.
    Done(Fence),
    PowerOff,
    Destroy,
}

/// Fencing: power off; destroy when power-off failed; nothing when already off or gone.
pub fn fence_action(facts: FenceFacts) -> FenceAction {
    match facts.droplet_off {
        None => FenceAction::Done(Fence::AlreadyGone),
        Some(true) => FenceAction::Done(Fence::PoweredOff),
        Some(false) if facts.power_off_failed => FenceAction::Destroy,
        Some(false) => FenceAction::PowerOff,
    }
}

/// What the executor saw before replacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplaceFacts {
    /// The old droplet's id if it still exists.
    pub old_droplet: Option<u64>,
    pub latest_snapshot: Option<u64>,
    /// A rebuild in place was tried and errored.
    pub rebuild_failed: bool,
}

/// Rebuild in place from the latest snapshot when the droplet still exists (it keeps its IP),
/// else create a new droplet; with no snapshot, from the base image (and redeploy).
pub fn choose_replacement(facts: ReplaceFacts, base_image: &str) -> Replacement {
    let image = match facts.latest_snapshot {
        Some(id) => SourceImage::Snapshot { id },
        None => SourceImage::Base {
            slug: base_image.to_string(),
        },
    };
    match facts.old_droplet {
        Some(droplet_id) if !facts.rebuild_failed => {
            Replacement::RebuildInPlace { droplet_id, image }
        }
        _ => Replacement::Create { image },
    }
}

/// Step g applies when a new droplet replaced an old one that may still exist.
pub fn old_needs_destroy(saga: &SagaRecord) -> Option<u64> {
    let old = saga.old_droplet_id?;
    let replaced = matches!(saga.replacement, Some(Replacement::Create { .. }));
    let gone = matches!(saga.fence, Some(Fence::Destroyed | Fence::AlreadyGone));
    (replaced && !gone && !saga.old_destroyed && saga.new_droplet_id != Some(old)).then_some(old)
}
