//! Simulator configuration: port, state file, timing profile, backing and auth/rate limits.

use std::fmt;
use std::path::PathBuf;

/// How long simulated operations (actions, firewall changes) take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Every action completes on the next request (or tick) after it was created.
    Instant,
    /// Actions take roughly 0.5-2 s.
    Fast,
    /// Timings of the real cloud (create 30-70 s, snapshot ~1 min/GB, ...).
    Realistic,
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "instant" => Ok(Profile::Instant),
            "fast" => Ok(Profile::Fast),
            "realistic" => Ok(Profile::Realistic),
            other => Err(format!(
                "unknown profile {other:?}: expected instant, fast or realistic"
            )),
        }
    }
}

/// What stands behind a droplet.
#[derive(Debug, Clone, Default)]
pub enum Backing {
    /// The API alone: droplets are records only.
    #[default]
    None,
    /// Each running droplet is a child process.
    Process(ProcessBacking),
}

/// Settings of process-backed droplets.
#[derive(Debug, Clone)]
pub struct ProcessBacking {
    /// The program started for every droplet (e.g. `infra-agent`).
    pub command: PathBuf,
    /// Arguments passed to it.
    pub args: Vec<String>,
    /// Directory holding `droplets/<id>/` and `snapshots/<id>/`.
    pub base_dir: PathBuf,
}

/// Per-token request limits (sliding one-hour window plus a per-minute burst limit).
#[derive(Debug, Clone, Copy)]
pub struct RateLimitConfig {
    pub per_hour: u32,
    pub per_minute: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_hour: 5000,
            per_minute: 250,
        }
    }
}

/// Everything [`crate::Sim::start`] needs.
#[derive(Clone)]
pub struct SimConfig {
    /// TCP port on 127.0.0.1; 0 picks an ephemeral port.
    pub port: u16,
    /// Versioned JSON state file; `None` keeps the state in memory only.
    pub state_file: Option<PathBuf>,
    pub profile: Profile,
    /// Divides every simulated duration (2.0 = twice as fast).
    pub time_scale: f64,
    pub backing: Backing,
    /// Accepted bearer tokens; empty accepts any non-empty token.
    pub tokens: Vec<String>,
    pub rate_limit: RateLimitConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            port: 0,
            state_file: None,
            profile: Profile::Instant,
            time_scale: 1.0,
            backing: Backing::None,
            tokens: Vec::new(),
            rate_limit: RateLimitConfig::default(),
        }
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("port", &self.port)
            .field("state_file", &self.state_file)
            .field("profile", &self.profile)
            .field("time_scale", &self.time_scale)
            .field("backing", &self.backing)
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .field("rate_limit", &self.rate_limit)
            .finish()
    }
}
