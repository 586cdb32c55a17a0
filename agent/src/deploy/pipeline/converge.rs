//! Bringing one droplet to a live release (the recovery's "place the
//! services"): deliver the release's images to it where missing and roll
//! the named services out on it alone, without recording a release. A
//! container already running the release is left as it is; one of another
//! tag is replaced through the health-gated cutover; a new container that
//! never gets healthy is removed.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::{Pipeline, PipelineError, placed_services};
use crate::deploy::release_log::ReleaseRecord;
use crate::deploy::resolve_secrets;
use crate::topology::ServiceState;

impl Pipeline<'_> {
    /// Runs `services` of `rec` on `droplet`; returns `(droplet, service,
    /// container, address)` of each.
    pub async fn converge_droplet(
        &self,
        droplet: &str,
        rec: &ReleaseRecord,
        services: &[String],
        vars: &BTreeMap<String, String>,
    ) -> Result<Vec<(String, String, String, Option<SocketAddr>)>, PipelineError> {
        let (project, env) = (rec.project.as_str(), rec.env.as_str());
        let d = self
            .droplets
            .get(droplet)
            .ok_or_else(|| PipelineError::UnknownDroplet(droplet.into()))?;
        let all = placed_services(self.deployment, self.topology, project, env)?;
        let mut here: Vec<(&str, _, ServiceState)> = Vec::new();
        for service in services {
            let (name, spec, st) = all
                .iter()
                .find(|(name, _, st)| name == service && st.droplets.iter().any(|x| x == droplet))
                .ok_or_else(|| PipelineError::NotPlacedOn {
                    project: project.into(),
                    env: env.into(),
                    service: service.clone(),
                    droplet: droplet.into(),
                })?;
            let only_here = ServiceState {
                droplets: vec![droplet.to_string()],
                ..(*st).clone()
            };
            here.push((name, *spec, only_here));
        }
        let mut secrets = BTreeMap::new();
        for (service, spec, _) in &here {
            secrets.insert(
                *service,
                resolve_secrets(project, env, &spec.secrets, vars)?,
            );
        }
        let placed: Vec<_> = here.iter().map(|(n, s, st)| (*n, *s, st)).collect();
        self.deliver_and_route(rec, &placed).await?;
        let mut out = Vec::new();
        for (service, spec, st) in &placed {
            out.push(
                self.roll_one(d, rec, service, spec, st.port, &secrets[service])
                    .await?,
            );
        }
        Ok(out)
    }
}
