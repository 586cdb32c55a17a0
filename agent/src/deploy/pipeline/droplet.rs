//! The per-droplet half of the pipeline: deliver images, roll one service
//! out on one droplet, return droplets to the previous release after a
//! failed rollout, record the release and prune unused images.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use super::balancer::DropletSwitch;
use super::{
    DeployOutcome, Droplet, LABEL_DROPLET, Pipeline, PipelineError, alternate_port, placed_services,
};
use crate::deploy::SecretValue;
use crate::deploy::cutover::Cutover;
use crate::deploy::release_log::ReleaseRecord;
use crate::deploy::resolve_secrets;
use crate::deploy::rollout::{RolloutReport, roll_out};
use crate::deploy::service::{Placement, container_spec, image_ref, next_host_port};
use crate::spec::{ServiceKind, ServiceSpec, service_name};
use crate::topology::ServiceState;

impl Pipeline<'_> {
    /// Delivers, rolls out and records `rec` on its project+env.
    pub(super) async fn roll(
        &self,
        rec: &ReleaseRecord,
        vars: &BTreeMap<String, String>,
        record: bool,
    ) -> Result<DeployOutcome, PipelineError> {
        let started = tokio::time::Instant::now();
        let (project, env) = (rec.project.as_str(), rec.env.as_str());
        let placed = placed_services(self.deployment, self.topology, project, env)?;
        let mut secrets = BTreeMap::new();
        for (service, spec, _) in &placed {
            secrets.insert(
                *service,
                resolve_secrets(project, env, &spec.secrets, vars)?,
            );
        }
        self.deliver_and_route(rec, &placed).await?;
        let order: BTreeSet<&str> = placed
            .iter()
            .flat_map(|(_, _, st)| st.droplets.iter().map(String::as_str))
            .collect();
        let previous = self.releases.live(project, env).await?;
        let mut containers = Vec::new();
        let mut touched: Vec<&Droplet> = Vec::new();
        for droplet in order {
            let d = self
                .droplets
                .get(droplet)
                .ok_or_else(|| PipelineError::UnknownDroplet(droplet.into()))?;
            touched.push(d);
            for (service, spec, st) in placed
                .iter()
                .filter(|(_, _, st)| st.droplets.iter().any(|x| x == droplet))
            {
                match self
                    .roll_one(d, rec, service, spec, st.port, &secrets[service])
                    .await
                {
                    Ok(done) => containers.push(done),
                    Err(e) => {
                        if let Some(prev) = previous.as_ref().filter(|p| p.tag != rec.tag) {
                            self.undo(&touched, prev, &placed, &secrets).await;
                        }
                        return Err(e);
                    }
                }
            }
        }
        let mut pruned = Vec::new();
        if record {
            for p in self.releases.record(rec.clone()).await? {
                self.prune_images(&p, &placed).await;
                pruned.push(p.tag);
            }
        } else {
            self.releases.set_live(project, env, &rec.tag).await?;
        }
        self.progress
            .step(&format!("{project}/{env} now runs {}", rec.tag));
        Ok(DeployOutcome {
            project: project.into(),
            env: env.into(),
            tag: rec.tag.clone(),
            commit: rec.commit.clone(),
            images: rec.images.clone(),
            containers,
            pruned,
            build_ms: 0,
            rollout_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Puts `prev` back on droplets a failed rollout already switched
    /// (best effort: failures are reported as progress).
    async fn undo(
        &self,
        touched: &[&Droplet],
        prev: &ReleaseRecord,
        placed: &[(&str, &ServiceSpec, &ServiceState)],
        secrets: &BTreeMap<&str, BTreeMap<String, SecretValue>>,
    ) {
        for d in touched {
            self.progress
                .step(&format!("returning {} to {}", d.name, prev.tag));
            for (service, spec, st) in placed
                .iter()
                .filter(|(_, _, st)| st.droplets.contains(&d.name))
            {
                if let Err(e) = self
                    .roll_one(d, prev, service, spec, st.port, &secrets[service])
                    .await
                {
                    self.progress
                        .step(&format!("returning {service} on {}: {e}", d.name));
                }
            }
        }
    }

    /// Delivers the release's images to the droplets that run them and
    /// makes sure nginx has a route for each of its web services.
    pub(super) async fn deliver_and_route(
        &self,
        rec: &ReleaseRecord,
        placed: &[(&str, &ServiceSpec, &ServiceState)],
    ) -> Result<(), PipelineError> {
        self.deliver(rec, placed).await?;
        let web: Vec<_> = placed
            .iter()
            .filter(|(_, s, _)| s.kind == ServiceKind::Web)
            .map(|(name, _, _)| (rec.project.clone(), rec.env.clone(), name.to_string()))
            .collect();
        self.lb.ensure_routes(&web).await.map_err(PipelineError::Lb)
    }

    /// Loads each image where it is missing (save from the builder, load).
    pub(super) async fn deliver(
        &self,
        rec: &ReleaseRecord,
        placed: &[(&str, &ServiceSpec, &ServiceState)],
    ) -> Result<(), PipelineError> {
        for (service, _, st) in placed {
            let Some(image) = rec.images.get(*service) else {
                continue;
            };
            for droplet in &st.droplets {
                let d = self
                    .droplets
                    .get(droplet)
                    .ok_or_else(|| PipelineError::UnknownDroplet(droplet.clone()))?;
                let err = |source| PipelineError::Deliver {
                    image: image.clone(),
                    droplet: droplet.clone(),
                    source,
                };
                if d.runtime.image_exists(image).await.map_err(err)? {
                    self.progress
                        .step(&format!("{service} image already on {droplet}"));
                    continue;
                }
                self.progress
                    .step(&format!("delivering {service} image to {droplet}"));
                let stream = self.builder.save_image(image).await.map_err(err)?;
                d.runtime.load_image(stream).await.map_err(err)?;
            }
        }
        Ok(())
    }

    /// Rolls one service out on one droplet.
    pub(super) async fn roll_one(
        &self,
        d: &Droplet,
        rec: &ReleaseRecord,
        service: &str,
        spec: &ServiceSpec,
        port: Option<u16>,
        secrets: &BTreeMap<String, SecretValue>,
    ) -> Result<(String, String, String, Option<SocketAddr>), PipelineError> {
        let (project, env) = (rec.project.as_str(), rec.env.as_str());
        let rt_err = |source| PipelineError::Runtime {
            droplet: d.name.clone(),
            source,
        };
        let mut labels = BTreeMap::from([
            (
                crate::runtime::LABEL_PROJECT.to_string(),
                project.to_string(),
            ),
            (crate::runtime::LABEL_ENV.to_string(), env.to_string()),
            (
                crate::runtime::LABEL_SERVICE.to_string(),
                service.to_string(),
            ),
            (LABEL_DROPLET.to_string(), d.name.clone()),
        ]);
        labels.extend(self.config.extra_labels.clone());
        let existing = d.runtime.list(&labels).await.map_err(rt_err)?;
        let current = existing.iter().find(|c| c.running);
        for stale in existing.iter().filter(|c| !c.running) {
            d.runtime.remove(&stale.name).await.map_err(rt_err)?;
        }
        let primary = port.unwrap_or(spec.container_port());
        let current_port = current.and_then(|c| c.ports.first().map(|p| p.2));
        let host_port = next_host_port(primary, alternate_port(primary), current_port);
        let at = Placement {
            project,
            env,
            service,
            tag: &rec.tag,
            host_ip: d.address,
            host_port,
        };
        let mut c = container_spec(spec, &at, secrets.clone());
        c.name = format!("{}.{}", c.name, d.name);
        if let Some(id) = rec.images.get(service) {
            c.image = id.clone();
        }
        c.extra_labels = labels;
        c.extra_labels.remove(crate::runtime::LABEL_PROJECT);
        c.extra_labels.remove(crate::runtime::LABEL_ENV);
        c.extra_labels.remove(crate::runtime::LABEL_SERVICE);
        let upstream = service_name(project, env, service);
        if let Some(cur) = current.filter(|cur| cur.name == c.name) {
            self.progress
                .step(&format!("{service} on {} already runs {}", d.name, rec.tag));
            let addr = cur.ports.first().map(|p| SocketAddr::new(d.address, p.2));
            if let (Some(addr), ServiceKind::Web) = (addr, spec.kind) {
                self.lb
                    .set_backend(&upstream, addr)
                    .await
                    .map_err(PipelineError::Lb)?;
            }
            return Ok((d.name.clone(), service.into(), cur.name.clone(), addr));
        }
        self.progress.step(&format!(
            "rolling out {service} {} on {} ({})",
            rec.tag,
            d.name,
            if spec.kind == ServiceKind::Web {
                format!("port {host_port}, health {}", spec.health_path())
            } else {
                "worker".to_string()
            }
        ));
        let switch = DropletSwitch(self.lb);
        let parts = Cutover {
            runtime: d.runtime.as_ref(),
            probe: self.probe,
            switch: &switch,
            config: self.config.cutover,
        };
        let report = roll_out(
            &parts,
            spec.kind,
            &upstream,
            &c,
            spec.health_path(),
            current.map(|c| c.name.as_str()),
            self.config.worker_settle,
        )
        .await
        .map_err(|source| PipelineError::Rollout {
            service: service.into(),
            droplet: d.name.clone(),
            source: Box::new(source),
        })?;
        let addr = match &report {
            RolloutReport::Web(r) => {
                self.progress.step(&format!(
                    "{service} on {} healthy after {} ms, traffic switched",
                    d.name,
                    r.healthy_after.as_millis()
                ));
                Some(r.addr)
            }
            RolloutReport::Worker { .. } => {
                self.progress
                    .step(&format!("{service} on {} settled", d.name));
                None
            }
        };
        Ok((d.name.clone(), service.into(), c.name, addr))
    }

    /// Removes the images of a pruned release that no kept release of the
    /// project (any env) still uses. Failures are reported, not fatal.
    async fn prune_images(
        &self,
        pruned: &ReleaseRecord,
        placed: &[(&str, &ServiceSpec, &ServiceState)],
    ) {
        let mut in_use = BTreeSet::new();
        for env in ["uat", "prod"]
            .into_iter()
            .chain(std::iter::once(pruned.env.as_str()))
        {
            for r in self
                .releases
                .history(&pruned.project, env)
                .await
                .unwrap_or_default()
            {
                in_use.extend(r.images.into_values());
            }
        }
        for (service, image) in &pruned.images {
            if in_use.contains(image) {
                continue;
            }
            let droplets = placed
                .iter()
                .filter(|(s, _, _)| s == service)
                .flat_map(|(_, _, st)| st.droplets.iter());
            for droplet in droplets {
                if let Some(d) = self.droplets.get(droplet)
                    && let Err(e) = d.runtime.remove_image(image).await
                {
                    self.progress
                        .step(&format!("pruning {service} image on {droplet}: {e}"));
                }
            }
            let tagged = image_ref(&pruned.project, service, &pruned.tag);
            let _ = self.builder.remove_image(&tagged).await;
        }
    }
}
