//! Machines behind droplets: nothing (`NoMachines`) or one child process per droplet (`ProcessMachines`).

use crate::config::ProcessBacking;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

#[derive(Debug, thiserror::Error)]
pub enum BackingError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {command} for droplet {id}: {source}")]
    Spawn {
        command: PathBuf,
        id: u64,
        source: std::io::Error,
    },
}

/// What a droplet's machine is started with.
#[derive(Debug, Clone)]
pub struct MachineSpec {
    pub id: u64,
    pub name: String,
    pub addr: Ipv4Addr,
    pub user_data: Option<String>,
}

/// How to stop a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM, then SIGKILL after a grace period.
    Graceful,
    /// SIGKILL.
    Kill,
}

/// The I/O side of droplets. Calls are synchronous and short.
pub trait Machines: Send {
    fn start(&mut self, spec: &MachineSpec) -> Result<(), BackingError>;
    fn stop(&mut self, id: u64, how: Stop);
    fn is_running(&mut self, id: u64) -> bool;
    /// Copies the droplet's data into snapshot `image`; returns its size in GB, if known.
    fn snapshot(&mut self, droplet: u64, image: u64) -> Result<Option<f64>, BackingError>;
    /// Replaces the droplet's data with snapshot `image` (or empties it when `None`).
    fn restore(&mut self, droplet: u64, image: Option<u64>) -> Result<(), BackingError>;
    /// Stops the machine and removes its files.
    fn destroy(&mut self, droplet: u64);
    fn delete_snapshot(&mut self, image: u64);
    /// Reaps exited children and escalates overdue graceful stops.
    fn reap(&mut self);
    /// Kills every child.
    fn shutdown(&mut self);
}

/// No machines: the API alone.
#[derive(Debug, Default)]
pub struct NoMachines;

impl Machines for NoMachines {
    fn start(&mut self, _: &MachineSpec) -> Result<(), BackingError> {
        Ok(())
    }
    fn stop(&mut self, _: u64, _: Stop) {}
    fn is_running(&mut self, _: u64) -> bool {
        false
    }
    fn snapshot(&mut self, _: u64, _: u64) -> Result<Option<f64>, BackingError> {
        Ok(None)
    }
    fn restore(&mut self, _: u64, _: Option<u64>) -> Result<(), BackingError> {
        Ok(())
    }
    fn destroy(&mut self, _: u64) {}
    fn delete_snapshot(&mut self, _: u64) {}
    fn reap(&mut self) {}
    fn shutdown(&mut self) {}
}

const GRACE: Duration = Duration::from_secs(10);

/// One child process per running droplet, in its own process group.
pub struct ProcessMachines {
    cfg: ProcessBacking,
    api_url: String,
    children: HashMap<u64, Child>,
    stopping: Vec<(Child, Instant)>,
}

impl ProcessMachines {
    pub fn new(cfg: ProcessBacking, api_url: String) -> Self {
        ProcessMachines {
            cfg,
            api_url,
            children: HashMap::new(),
            stopping: Vec::new(),
        }
    }
    pub fn droplet_dir(&self, id: u64) -> PathBuf {
        self.cfg.base_dir.join("droplets").join(id.to_string())
    }
    fn snapshot_dir(&self, image: u64) -> PathBuf {
        self.cfg.base_dir.join("snapshots").join(image.to_string())
    }
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BackingError + 'a {
    move |source| BackingError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn signal_group(child: &Child, sig: i32) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) with a negative pid signals the child's process group (created with
        // process_group(0)); it has no memory-safety preconditions.
        unsafe {
            libc::kill(-(pid as i32), sig);
        }
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<u64, BackingError> {
    std::fs::create_dir_all(to).map_err(io("create", to))?;
    let mut total = 0;
    for entry in std::fs::read_dir(from).map_err(io("read", from))? {
        let entry = entry.map_err(io("read", from))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let ty = entry.file_type().map_err(io("stat", &src))?;
        if ty.is_dir() {
            total += copy_dir(&src, &dst)?;
        } else if ty.is_file() {
            total += std::fs::copy(&src, &dst).map_err(io("copy", &src))?;
        }
    }
    Ok(total)
}

impl Machines for ProcessMachines {
    fn start(&mut self, spec: &MachineSpec) -> Result<(), BackingError> {
        if self.is_running(spec.id) {
            return Ok(());
        }
        let dir = self.droplet_dir(spec.id);
        let data = dir.join("data");
        std::fs::create_dir_all(&data).map_err(io("create", &data))?;
        let ud = dir.join("user_data");
        std::fs::write(&ud, spec.user_data.as_deref().unwrap_or("")).map_err(io("write", &ud))?;
        let log_path = dir.join("output.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io("open", &log_path))?;
        let log2 = log.try_clone().map_err(io("open", &log_path))?;
        let child = Command::new(&self.cfg.command)
            .args(&self.cfg.args)
            .env("INFRA_SIM_DROPLET_ID", spec.id.to_string())
            .env("INFRA_SIM_DROPLET_NAME", &spec.name)
            .env("INFRA_SIM_DATA_DIR", &data)
            .env("INFRA_SIM_ADDR", spec.addr.to_string())
            .env("INFRA_SIM_USER_DATA_FILE", &ud)
            .env("INFRA_SIM_API_URL", &self.api_url)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| BackingError::Spawn {
                command: self.cfg.command.clone(),
                id: spec.id,
                source,
            })?;
        tracing::info!(droplet = spec.id, addr = %spec.addr, pid = ?child.id(), "started droplet process");
        self.children.insert(spec.id, child);
        Ok(())
    }

    fn stop(&mut self, id: u64, how: Stop) {
        let Some(mut child) = self.children.remove(&id) else {
            return;
        };
        match how {
            Stop::Kill => {
                signal_group(&child, libc::SIGKILL);
                let _ = child.start_kill();
                self.stopping.push((child, Instant::now()));
            }
            Stop::Graceful => {
                signal_group(&child, libc::SIGTERM);
                self.stopping.push((child, Instant::now() + GRACE));
            }
        }
        tracing::info!(droplet = id, ?how, "stopping droplet process");
    }

    fn is_running(&mut self, id: u64) -> bool {
        match self.children.get_mut(&id) {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn snapshot(&mut self, droplet: u64, image: u64) -> Result<Option<f64>, BackingError> {
        let from = self.droplet_dir(droplet).join("data");
        let to = self.snapshot_dir(image);
        std::fs::create_dir_all(&from).map_err(io("create", &from))?;
        let bytes = copy_dir(&from, &to)?;
        Ok(Some(bytes as f64 / 1e9))
    }

    fn restore(&mut self, droplet: u64, image: Option<u64>) -> Result<(), BackingError> {
        let data = self.droplet_dir(droplet).join("data");
        if data.exists() {
            std::fs::remove_dir_all(&data).map_err(io("remove", &data))?;
        }
        match image {
            Some(img) => {
                let src = self.snapshot_dir(img);
                if src.exists() {
                    copy_dir(&src, &data)?;
                } else {
                    std::fs::create_dir_all(&data).map_err(io("create", &data))?;
                }
            }
            None => std::fs::create_dir_all(&data).map_err(io("create", &data))?,
        }
        Ok(())
    }

    fn destroy(&mut self, droplet: u64) {
        self.stop(droplet, Stop::Kill);
        let dir = self.droplet_dir(droplet);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %dir.display(), error = %e, "cannot remove droplet dir");
        }
    }

    fn delete_snapshot(&mut self, image: u64) {
        let _ = std::fs::remove_dir_all(self.snapshot_dir(image));
    }

    fn reap(&mut self) {
        let now = Instant::now();
        self.stopping.retain_mut(|(child, deadline)| {
            if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                return false;
            }
            if now >= *deadline {
                signal_group(child, libc::SIGKILL);
                let _ = child.start_kill();
            }
            true
        });
    }

    fn shutdown(&mut self) {
        let ids: Vec<u64> = self.children.keys().copied().collect();
        for id in ids {
            self.stop(id, Stop::Kill);
        }
        for (child, _) in &mut self.stopping {
            signal_group(child, libc::SIGKILL);
            let _ = child.start_kill();
        }
    }
}

impl Drop for ProcessMachines {
    fn drop(&mut self) {
        self.shutdown();
    }
}
