//! Pure rendering of what operators are told: a [`Message`] (subject and
//! body) from a recovery [`Notice`], a [`HeartbeatSummary`] or a
//! [`DeployConfirmation`], built from plain values.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::recovery::{Fence, Notice, Replacement, SourceImage};

/// One notification, channel independent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub body: String,
}

impl Message {
    /// The short form an SMS carries: the subject, then the first body line.
    pub fn sms_text(&self) -> String {
        match self.body.lines().next() {
            Some(first) if !first.is_empty() => format!("{}: {first}", self.subject),
            _ => self.subject.clone(),
        }
    }
}

/// A recovery one heartbeat reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryLine {
    pub droplet: String,
    pub at: DateTime<Utc>,
}

/// A release serving traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRelease {
    pub project: String,
    pub env: String,
    pub tag: String,
}

/// What a heartbeat e-mail says about the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatSummary {
    pub cluster_id: String,
    pub at: DateTime<Utc>,
    /// Length of the window `recoveries` covers.
    pub window_minutes: u64,
    pub alive: Vec<String>,
    pub failed: Vec<String>,
    pub leader: Option<String>,
    pub recoveries: Vec<RecoveryLine>,
    pub releases: Vec<LiveRelease>,
}

/// A finished deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployConfirmation {
    pub project: String,
    pub env: String,
    pub tag: String,
}

fn subject(prefix: &str, text: &str) -> String {
    if prefix.is_empty() {
        text.to_string()
    } else {
        format!("{prefix} {text}")
    }
}

fn describe_image(image: &SourceImage) -> String {
    match image {
        SourceImage::Snapshot { id } => format!("snapshot {id}"),
        SourceImage::Base { slug } => format!("base image {slug} (services redeployed)"),
    }
}

/// The message of a recovery notice.
pub fn render_notice(prefix: &str, notice: &Notice) -> Message {
    match notice {
        Notice::Recovered(o) => {
            let how = match &o.replacement {
                Replacement::RebuildInPlace { droplet_id, image } => {
                    format!(
                        "rebuilt in place (droplet {droplet_id}) from {}",
                        describe_image(image)
                    )
                }
                Replacement::Create { image } => {
                    format!("replaced by a new droplet from {}", describe_image(image))
                }
            };
            let fence = match o.fence {
                Fence::PoweredOff => "powered off",
                Fence::Destroyed => "destroyed",
                Fence::AlreadyGone => "already gone",
            };
            let ip =
                o.ip.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
            Message {
                subject: subject(prefix, &format!("Recovered droplet {}", o.droplet)),
                body: format!(
                    "Droplet {} failed and was recovered automatically.\n\n\
                     Method: {how}\n\
                     New droplet id: {}\n\
                     Generation: {}\n\
                     IP: {ip}\n\
                     Old incarnation: {fence}{}\n",
                    o.droplet,
                    o.droplet_id,
                    o.generation,
                    if o.old_destroyed { ", destroyed" } else { "" },
                ),
            }
        }
        Notice::Flapping { droplet, count } => Message {
            subject: subject(prefix, &format!("Droplet {droplet} is flapping: left down")),
            body: format!(
                "Droplet {droplet} was recovered {count} times within the last hour.\n\
                 It is left down and needs an operator: find the cause, then run \
                 `infractl recover {droplet}`.\n"
            ),
        },
        Notice::ManualRecoveryNeeded {
            droplet,
            cluster_size,
        } => Message {
            subject: subject(prefix, &format!("Manual recovery needed for {droplet}")),
            body: format!(
                "Droplet {droplet} failed, but the cluster has only {cluster_size} droplets: \
                 too few for automatic recovery.\n\
                 Run `infractl recover {droplet}` to recover it.\n"
            ),
        },
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// The periodic "all is well / this is what happened" e-mail.
pub fn render_heartbeat(prefix: &str, s: &HeartbeatSummary) -> Message {
    let state = if s.failed.is_empty() {
        "healthy".to_string()
    } else {
        format!("{} failed", s.failed.len())
    };
    let mut body = String::new();
    let _ = writeln!(body, "Cluster {} at {}", s.cluster_id, s.at.to_rfc3339());
    let _ = writeln!(body, "Leader: {}", s.leader.as_deref().unwrap_or("none"));
    let _ = writeln!(
        body,
        "Members alive ({}): {}",
        s.alive.len(),
        list(&s.alive)
    );
    let _ = writeln!(
        body,
        "Members failed ({}): {}",
        s.failed.len(),
        list(&s.failed)
    );
    let _ = writeln!(
        body,
        "Recoveries in the last {} minutes: {}",
        s.window_minutes,
        s.recoveries.len()
    );
    for r in &s.recoveries {
        let _ = writeln!(body, "  - {} at {}", r.droplet, r.at.to_rfc3339());
    }
    let _ = writeln!(body, "Live releases: {}", s.releases.len());
    for r in &s.releases {
        let _ = writeln!(body, "  - {}/{}: {}", r.project, r.env, r.tag);
    }
    Message {
        subject: subject(
            prefix,
            &format!(
                "Heartbeat {}: {} alive, {state}",
                s.cluster_id,
                s.alive.len()
            ),
        ),
        body,
    }
}

/// The message confirming a deploy.
pub fn render_deploy(prefix: &str, d: &DeployConfirmation) -> Message {
    Message {
        subject: subject(
            prefix,
            &format!("Deployed {}/{} {}", d.project, d.env, d.tag),
        ),
        body: format!(
            "Release {} of project {} is live in {}.\n",
            d.tag, d.project, d.env
        ),
    }
}
