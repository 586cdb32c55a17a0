//! Applying the deploy commands to the cluster state: release history with
//! the live tag per project environment, and sealed secrets (merged, never
//! plaintext: the state machine only stores what the leader sealed).

use std::collections::BTreeMap;

use super::{ClusterState, MAX_RELEASES, Release, Response, rejected, release_key};

impl ClusterState {
    pub(super) fn record_release(
        &mut self,
        project: &str,
        environment: &str,
        release: Release,
        log_index: u64,
    ) -> Response {
        let key = release_key(project, environment);
        let history = self.releases.entry(key.clone()).or_default();
        let live = self.live_releases.get(&key);
        let same_as_last = history
            .last()
            .is_some_and(|r| r.tag == release.tag && r.images == release.images);
        if same_as_last && live.is_none_or(|l| *l == release.tag) {
            return Response::Unchanged;
        }
        let (tag, at_ms) = (release.tag.clone(), release.deployed_at_ms);
        if !same_as_last {
            history.push(release);
            if history.len() > MAX_RELEASES {
                history.remove(0);
            }
        }
        self.live_releases.insert(key, tag.clone());
        let msg = format!("release {tag} deployed to {project}/{environment}");
        self.event(log_index, at_ms, msg);
        Response::Applied
    }

    pub(super) fn set_live_release(
        &mut self,
        project: &str,
        environment: &str,
        tag: &str,
        at_ms: u64,
        log_index: u64,
    ) -> Response {
        let key = release_key(project, environment);
        let known = self
            .releases
            .get(&key)
            .is_some_and(|h| h.iter().any(|r| r.tag == tag));
        if !known {
            return rejected(format!("{key}: no recorded release {tag}"));
        }
        if self.live_releases.get(&key).map(String::as_str) == Some(tag) {
            return Response::Unchanged;
        }
        self.live_releases.insert(key, tag.to_string());
        let msg = format!("{project}/{environment} rolled back to {tag}");
        self.event(log_index, at_ms, msg);
        Response::Applied
    }

    pub(super) fn store_secrets(
        &mut self,
        project: &str,
        environment: &str,
        sealed: &BTreeMap<String, String>,
        at_ms: u64,
        log_index: u64,
    ) -> Response {
        let stored = self
            .secrets
            .entry(release_key(project, environment))
            .or_default();
        let before = stored.clone();
        stored.extend(sealed.iter().map(|(k, v)| (k.clone(), v.clone())));
        if *stored == before {
            return Response::Unchanged;
        }
        let names: Vec<&str> = sealed.keys().map(String::as_str).collect();
        let msg = format!(
            "secrets {} of {project}/{environment} stored (sealed)",
            names.join(", ")
        );
        self.event(log_index, at_ms, msg);
        Response::Applied
    }
}
