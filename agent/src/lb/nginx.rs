//! [`Nginx`]: writes nginx.conf atomically under its prefix, checks it with
//! `nginx -t`, reloads it (`nginx -s reload`), and optionally runs its own
//! nginx instance (local cloud, tests) with `daemon off`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::{LbConfig, LbError, render};
use crate::deploy::cutover::{TrafficSwitch, http_get};

/// How long a start or reload may take to show on `/health`.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Default)]
struct State {
    config: Option<LbConfig>,
    generation: u64,
    child: Option<Child>,
}

/// An nginx whose config this process owns: `<prefix>/conf/nginx.conf`.
pub struct Nginx {
    binary: PathBuf,
    prefix: PathBuf,
    state: Mutex<State>,
    /// Serialises applies (render, check, reload, wait) end to end.
    apply_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Nginx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nginx")
            .field("binary", &self.binary)
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> LbError {
    move |source| LbError::Io { context, source }
}

impl Nginx {
    /// A manager for the nginx `binary` (e.g. `/usr/sbin/nginx`) with its
    /// own `prefix` directory (conf/, logs/, temp/ are created under it).
    pub fn new(binary: impl Into<PathBuf>, prefix: impl Into<PathBuf>) -> Self {
        Nginx {
            binary: binary.into(),
            prefix: prefix.into(),
            state: Mutex::new(State::default()),
            apply_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn conf_path(&self) -> PathBuf {
        self.prefix.join("conf/nginx.conf")
    }

    /// The config last applied successfully.
    pub fn config(&self) -> Option<LbConfig> {
        self.state.lock().expect("nginx state").config.clone()
    }

    pub fn generation(&self) -> u64 {
        self.state.lock().expect("nginx state").generation
    }

    /// The last lines of nginx's error log (for reports).
    pub fn error_log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    async fn nginx(&self, action: &'static str, args: &[&str]) -> Result<(), LbError> {
        let out = Command::new(&self.binary)
            .arg("-p")
            .arg(&self.prefix)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(io(format!("run {}", self.binary.display())))?;
        if out.status.success() {
            Ok(())
        } else {
            let output = String::from_utf8_lossy(&out.stderr).trim().to_string();
            Err(if action == "check" {
                LbError::Check { output }
            } else {
                LbError::Nginx { action, output }
            })
        }
    }

    /// Renders `cfg`, writes it beside the live file, checks it with
    /// `nginx -t` and renames it into place. On any failure the live file
    /// is untouched.
    async fn write_checked(&self, cfg: &LbConfig, generation: u64) -> Result<(), LbError> {
        let text = render(cfg, generation)?;
        for dir in ["conf", "logs", "temp"] {
            let d = self.prefix.join(dir);
            std::fs::create_dir_all(&d).map_err(io(format!("create {}", d.display())))?;
        }
        let live = self.conf_path();
        let tmp = self
            .prefix
            .join(format!("conf/nginx.conf.{generation}.new"));
        write_synced(&tmp, &text)?;
        let tmp_str = tmp.to_string_lossy().into_owned();
        if let Err(e) = self.nginx("check", &["-t", "-q", "-c", &tmp_str]).await {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &live).map_err(io(format!("rename into {}", live.display())))
    }

    /// Starts an nginx instance of our own serving `cfg` and waits until it
    /// answers `/health`.
    pub async fn start(&self, cfg: &LbConfig) -> Result<(), LbError> {
        let _guard = self.apply_lock.lock().await;
        let generation = self.generation() + 1;
        self.write_checked(cfg, generation).await?;
        let conf = self.conf_path();
        let child = Command::new(&self.binary)
            .arg("-p")
            .arg(&self.prefix)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(io(format!("start {}", self.binary.display())))?;
        self.state.lock().expect("nginx state").child = Some(child);
        self.wait_generation(cfg.listen, generation, "start")
            .await?;
        let mut st = self.state.lock().expect("nginx state");
        st.config = Some(cfg.clone());
        st.generation = generation;
        Ok(())
    }

    /// Applies `cfg` to the running nginx: write + check + reload, then
    /// waits until `/health` reports the new generation. A rejected config
    /// keeps the old one serving and returns [`LbError::Check`].
    pub async fn apply(&self, cfg: &LbConfig) -> Result<u64, LbError> {
        let _guard = self.apply_lock.lock().await;
        self.apply_locked(cfg).await
    }

    /// Like [`Nginx::apply`] with the config derived from the current one
    /// by `change`, atomically with respect to other applies.
    pub async fn update(
        &self,
        change: impl FnOnce(&mut LbConfig) -> Result<(), String>,
    ) -> Result<u64, String> {
        let _guard = self.apply_lock.lock().await;
        let mut cfg = self
            .config()
            .ok_or_else(|| "nginx has no config applied yet".to_string())?;
        change(&mut cfg)?;
        self.apply_locked(&cfg).await.map_err(|e| e.to_string())
    }

    async fn apply_locked(&self, cfg: &LbConfig) -> Result<u64, LbError> {
        let generation = self.generation() + 1;
        self.write_checked(cfg, generation).await?;
        let conf = self.conf_path().to_string_lossy().into_owned();
        let old_workers = self.master_pid().map(workers_of).unwrap_or_default();
        self.nginx("reload", &["-c", &conf, "-s", "reload"]).await?;
        self.wait_generation(cfg.listen, generation, "reload")
            .await?;
        self.wait_old_workers_quiet(&old_workers).await?;
        let mut st = self.state.lock().expect("nginx state");
        st.config = Some(cfg.clone());
        st.generation = generation;
        Ok(generation)
    }

    async fn wait_generation(
        &self,
        listen: SocketAddr,
        generation: u64,
        action: &'static str,
    ) -> Result<(), LbError> {
        let want = format!("ok generation={generation}");
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::new();
        while Instant::now() < deadline {
            match http_get(listen, "/health", Duration::from_secs(2)).await {
                Ok((200, body)) if body.trim() == want => return Ok(()),
                Ok((code, body)) => last = format!("HTTP {code} {}", body.trim()),
                Err(e) => last = e.to_string(),
            }
            let exited = {
                let mut st = self.state.lock().expect("nginx state");
                st.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
            };
            if let Some(status) = exited {
                last = format!("nginx exited: {status}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(LbError::Nginx {
            action,
            output: format!(
                "{want} not served on {listen} within {READY_TIMEOUT:?} (last: {last}); error log:\n{}",
                self.error_log_tail(10)
            ),
        })
    }

    /// The master's pid from `<prefix>/logs/nginx.pid`.
    pub fn master_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.prefix.join("logs/nginx.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// After a reload, old workers finish their requests but must stop
    /// accepting: wait until each is gone or titled "shutting down" (nginx
    /// sets that title as it closes its listening sockets).
    async fn wait_old_workers_quiet(&self, old: &[u32]) -> Result<(), LbError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let busy: Vec<u32> = old
                .iter()
                .copied()
                .filter(|pid| {
                    proc_title(*pid).is_some_and(|t| {
                        t.contains("worker process") && !t.contains("shutting down")
                    })
                })
                .collect();
            if busy.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LbError::Nginx {
                    action: "reload",
                    output: format!("old workers {busy:?} still accepting after {READY_TIMEOUT:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the instance started by [`Nginx::start`] (fast shutdown).
    pub async fn stop(&self) -> Result<(), LbError> {
        let child = self.state.lock().expect("nginx state").child.take();
        let Some(mut child) = child else {
            return Ok(());
        };
        let conf = self.conf_path().to_string_lossy().into_owned();
        let workers = self.master_pid().map(workers_of).unwrap_or_default();
        let stopped = self.nginx("stop", &["-c", &conf, "-s", "stop"]).await;
        let waited = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        if waited.is_err() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        kill_leftover_workers(&workers);
        stopped
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let child = self.state.get_mut().map(|s| s.child.take()).ok().flatten();
        if let Some(mut child) = child {
            // Ask the master to stop its workers, give it a bounded moment,
            // then kill what is left: a master killed first would leave its
            // workers holding the port.
            let workers = self.master_pid().map(workers_of).unwrap_or_default();
            let _ = std::process::Command::new(&self.binary)
                .arg("-p")
                .arg(&self.prefix)
                .arg("-c")
                .arg(self.conf_path())
                .args(["-s", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.start_kill();
            kill_leftover_workers(&workers);
        }
    }
}

/// SIGKILLs those of `workers` (our nginx's worker pids) still running.
fn kill_leftover_workers(workers: &[u32]) {
    for pid in workers {
        if proc_title(*pid).is_some_and(|t| t.contains("nginx: worker process")) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The process title (`/proc/<pid>/cmdline`), if the process exists.
fn proc_title(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&raw).replace('\0', " "))
}

/// Pids of the worker processes whose parent is `master`.
fn workers_of(master: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // Fields after the parenthesised command: state, ppid.
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(master)
        })
        .filter(|pid| proc_title(*pid).is_some_and(|t| t.contains("worker process")))
        .collect()
}

fn write_synced(path: &Path, text: &str) -> Result<(), LbError> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(io(format!("create {}", path.display())))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io(format!("write {}", path.display())))
}

#[async_trait]
impl TrafficSwitch for Nginx {
    /// Points upstream `upstream` at `addr` alone and reloads.
    async fn switch_to(&self, upstream: &str, addr: SocketAddr) -> Result<(), String> {
        self.update(|cfg| {
            let mut found = false;
            for r in cfg.routes.iter_mut().filter(|r| r.upstream() == upstream) {
                r.backends = vec![addr];
                found = true;
            }
            if found {
                Ok(())
            } else {
                Err(format!("no route for upstream {upstream}"))
            }
        })
        .await
        .map(|_| ())
    }
}
