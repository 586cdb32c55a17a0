//! The store: state plus the machinery that advances time (actions, firewalls) and drives machines.

use crate::backing::{MachineSpec, Machines, Stop};
use crate::error::{ApiError, ApiResult};
use crate::model::{Action, ActionStatus, DropletStatus, Effect, State, addr_ip};
use crate::timing::{Op, Timing};
use chrono::{DateTime, Utc};

/// State plus timing, machines and pending action faults; guarded by one mutex in the server.
pub struct Store {
    pub state: State,
    pub timing: Timing,
    pub machines: Box<dyn Machines>,
    /// (action type, remaining count): the next actions of that type end `errored`.
    pub action_faults: Vec<(String, u32)>,
    /// Bumped on every change; the persister saves when it moves.
    pub generation: u64,
}

impl Store {
    pub fn new(state: State, timing: Timing, machines: Box<dyn Machines>) -> Self {
        Store {
            state,
            timing,
            machines,
            action_faults: Vec::new(),
            generation: 0,
        }
    }

    pub fn touch(&mut self) {
        self.generation += 1;
    }

    pub fn spec(&self, id: u64) -> Option<MachineSpec> {
        self.state.droplets.get(&id).map(|d| MachineSpec {
            id,
            name: d.name.clone(),
            addr: addr_ip(d.addr),
            user_data: d.user_data.clone(),
        })
    }

    /// Starts the machines of every droplet that should be running (after loading a state file).
    pub fn start_running(&mut self) {
        let ids: Vec<u64> = self
            .state
            .droplets
            .values()
            .filter(|d| d.status == DropletStatus::Active)
            .map(|d| d.id)
            .collect();
        for id in ids {
            self.start_machine(id);
        }
    }

    fn start_machine(&mut self, id: u64) -> bool {
        let Some(spec) = self.spec(id) else {
            return false;
        };
        match self.machines.start(&spec) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(droplet = id, error = %e, "cannot start droplet machine");
                false
            }
        }
    }

    fn take_action_fault(&mut self, kind: &str) -> bool {
        for (k, n) in &mut self.action_faults {
            if k == kind && *n > 0 {
                *n -= 1;
                return true;
            }
        }
        false
    }

    /// Creates an in-progress action; fails with 422 if the droplet already has one.
    pub fn begin_action(
        &mut self,
        droplet_id: u64,
        kind: &str,
        effect: Effect,
        op: Op<'_>,
    ) -> ApiResult<Action> {
        let region = match self.state.droplets.get(&droplet_id) {
            Some(d) => d.region.clone(),
            None => return Err(ApiError::not_found()),
        };
        if self.state.pending_action(droplet_id).is_some() {
            return Err(ApiError::pending_event());
        }
        let now = Utc::now();
        let id = self.state.next_action_id;
        self.state.next_action_id += 1;
        let due = chrono::Duration::from_std(self.timing.duration(op)).unwrap_or_default();
        let action = Action {
            id,
            kind: kind.to_string(),
            status: ActionStatus::InProgress,
            droplet_id,
            region,
            started_at: now,
            completed_at: None,
            due_at: now + due,
            fails: self.take_action_fault(kind),
            effect,
        };
        self.state.actions.insert(id, action.clone());
        self.touch();
        Ok(action)
    }

    /// Completes every action and firewall change that is due at `now`.
    pub fn advance(&mut self, now: DateTime<Utc>) {
        let due: Vec<u64> = self
            .state
            .actions
            .values()
            .filter(|a| a.status == ActionStatus::InProgress && a.due_at <= now)
            .map(|a| a.id)
            .collect();
        for id in due {
            self.complete(id, now);
        }
        let mut changed = false;
        for fw in &mut self.state.firewalls {
            if fw.settles_at.is_some_and(|t| t <= now) {
                fw.status = "succeeded".into();
                fw.settles_at = None;
                changed = true;
            }
        }
        if changed {
            self.touch();
        }
        self.machines.reap();
    }

    fn complete(&mut self, id: u64, now: DateTime<Utc>) {
        let Some(action) = self.state.actions.get(&id).cloned() else {
            return;
        };
        let ok = !action.fails && self.apply(&action);
        if !ok && let Effect::Snapshot { image_id } = action.effect {
            self.state.snapshots.remove(&image_id);
            self.machines.delete_snapshot(image_id);
        }
        if let Some(a) = self.state.actions.get_mut(&id) {
            a.status = if ok {
                ActionStatus::Completed
            } else {
                ActionStatus::Errored
            };
            a.completed_at = Some(now);
        }
        self.touch();
    }

    /// Applies an action's effect to the droplet and its machine; false if it failed.
    fn apply(&mut self, action: &Action) -> bool {
        let id = action.droplet_id;
        if !self.state.droplets.contains_key(&id) {
            return false;
        }
        let set = |s: &mut Self, status: DropletStatus| {
            if let Some(d) = s.state.droplets.get_mut(&id) {
                d.status = status;
            }
        };
        match &action.effect {
            Effect::Create { restore_from } => {
                if restore_from.is_some()
                    && let Err(e) = self.machines.restore(id, *restore_from)
                {
                    tracing::warn!(droplet = id, error = %e, "restore failed");
                    return false;
                }
                set(self, DropletStatus::Active);
                self.start_machine(id)
            }
            Effect::PowerOff => {
                self.machines.stop(id, Stop::Kill);
                set(self, DropletStatus::Off);
                true
            }
            Effect::Shutdown => {
                self.machines.stop(id, Stop::Graceful);
                set(self, DropletStatus::Off);
                true
            }
            Effect::PowerOn => {
                set(self, DropletStatus::Active);
                self.start_machine(id)
            }
            Effect::Reboot | Effect::PowerCycle => {
                self.machines.stop(id, Stop::Kill);
                set(self, DropletStatus::Active);
                self.start_machine(id)
            }
            Effect::Snapshot { image_id } => {
                if let Some(s) = self.state.snapshots.get_mut(image_id) {
                    s.available = true;
                }
                if let Some(d) = self.state.droplets.get_mut(&id) {
                    d.snapshot_ids.push(*image_id);
                }
                true
            }
            Effect::Rebuild { image, snapshot } => {
                self.machines.stop(id, Stop::Kill);
                if let Err(e) = self.machines.restore(id, *snapshot) {
                    tracing::warn!(droplet = id, error = %e, "rebuild failed");
                    return false;
                }
                if let Some(d) = self.state.droplets.get_mut(&id) {
                    d.image = image.clone();
                }
                set(self, DropletStatus::Active);
                self.start_machine(id)
            }
            Effect::Resize { size } => {
                if let Some(d) = self.state.droplets.get_mut(&id) {
                    d.size_slug = size.clone();
                }
                true
            }
            Effect::Rename { name } => {
                if let Some(d) = self.state.droplets.get_mut(&id) {
                    d.name = name.clone();
                }
                true
            }
        }
    }

    /// Removes a droplet, kills its machine and removes it from firewalls.
    pub fn destroy_droplet(&mut self, id: u64) -> bool {
        if self.state.droplets.remove(&id).is_none() {
            return false;
        }
        self.machines.destroy(id);
        for fw in &mut self.state.firewalls {
            fw.droplet_ids.retain(|d| *d != id);
        }
        self.touch();
        true
    }

    /// Simulated hardware failure: kills the machine, the API still reports the old status.
    pub fn kill(&mut self, id: u64) -> bool {
        let running = self.machines.is_running(id);
        self.machines.stop(id, Stop::Kill);
        running
    }

    /// Resolves a droplet by numeric id or by name.
    pub fn find_droplet(&self, key: &str) -> Option<u64> {
        if let Ok(id) = key.parse::<u64>()
            && self.state.droplets.contains_key(&id)
        {
            return Some(id);
        }
        self.state
            .droplets
            .values()
            .find(|d| d.name == key)
            .map(|d| d.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backing::NoMachines;
    use crate::config::Profile;
    use crate::model::Droplet;

    fn store_with_droplet() -> Store {
        let mut s = Store::new(
            State::default(),
            Timing::new(Profile::Instant, 1.0),
            Box::new(NoMachines),
        );
        s.state.droplets.insert(
            1,
            Droplet {
                id: 1,
                name: "one".into(),
                size_slug: "s-1vcpu-1gb".into(),
                region: "nyc3".into(),
                image: serde_json::Value::Null,
                status: DropletStatus::New,
                created_at: Utc::now(),
                tags: vec![],
                snapshot_ids: vec![],
                user_data: None,
                ssh_keys: vec![],
                addr: 2,
                ipv6: false,
                monitoring: false,
                backups: false,
                vpc_uuid: String::new(),
            },
        );
        s
    }

    #[test]
    fn one_pending_action_then_effects_apply_on_advance() {
        let mut s = store_with_droplet();
        let create = Effect::Create { restore_from: None };
        let op = Op::Create { restore_gb: None };
        let a = s.begin_action(1, "create", create, op).unwrap();
        let again = s.begin_action(1, "power_off", Effect::PowerOff, Op::Power);
        assert_eq!(
            again.unwrap_err().message,
            "Droplet already has a pending event."
        );
        s.advance(Utc::now());
        assert_eq!(s.state.actions[&a.id].status, ActionStatus::Completed);
        assert_eq!(s.state.droplets[&1].status, DropletStatus::Active);
        s.begin_action(1, "power_off", Effect::PowerOff, Op::Power)
            .unwrap();
        s.advance(Utc::now());
        assert_eq!(s.state.droplets[&1].status, DropletStatus::Off);
        assert!(
            s.begin_action(2, "power_on", Effect::PowerOn, Op::Power)
                .is_err()
        );
    }

    #[test]
    fn injected_fault_errors_the_action_without_effect() {
        let mut s = store_with_droplet();
        s.action_faults.push(("rename".into(), 1));
        let rename = |n: &str| Effect::Rename { name: n.into() };
        let a = s
            .begin_action(1, "rename", rename("two"), Op::Rename)
            .unwrap();
        s.advance(Utc::now());
        assert_eq!(s.state.actions[&a.id].status, ActionStatus::Errored);
        assert_eq!(s.state.droplets[&1].name, "one");
        let b = s
            .begin_action(1, "rename", rename("three"), Op::Rename)
            .unwrap();
        s.advance(Utc::now());
        assert_eq!(s.state.actions[&b.id].status, ActionStatus::Completed);
        assert_eq!(s.state.droplets[&1].name, "three");
        // Actions of a deleted droplet end errored.
        let c = s
            .begin_action(1, "reboot", Effect::Reboot, Op::Reboot)
            .unwrap();
        assert!(s.destroy_droplet(1));
        s.advance(Utc::now());
        assert_eq!(s.state.actions[&c.id].status, ActionStatus::Errored);
    }
}
