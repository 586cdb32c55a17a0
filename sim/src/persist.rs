//! The state file: versioned JSON written atomically (temp file + rename).

use crate::error::SimError;
use crate::model::{STATE_VERSION, State};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Saves state snapshots in order of their generation.
#[derive(Debug)]
pub struct Persister {
    path: PathBuf,
    saved: Mutex<u64>,
}

fn err(path: &Path, message: impl Into<String>) -> SimError {
    SimError::State {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl Persister {
    pub fn new(path: PathBuf) -> Self {
        Persister {
            path,
            saved: Mutex::new(0),
        }
    }

    /// Loads the state file, or a fresh state when it does not exist.
    pub fn load(&self) -> Result<State, SimError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(err(&self.path, e.to_string())),
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| err(&self.path, format!("not valid JSON: {e}")))?;
        let version = value.get("version").and_then(|v| v.as_u64());
        if version != Some(u64::from(STATE_VERSION)) {
            return Err(err(
                &self.path,
                format!("field `version` is {version:?}, expected {STATE_VERSION}"),
            ));
        }
        serde_json::from_value(value).map_err(|e| err(&self.path, format!("bad state: {e}")))
    }

    /// Writes `bytes` (state at `generation`) unless a newer generation was already written.
    pub fn save(&self, generation: u64, bytes: &[u8]) -> Result<(), SimError> {
        let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        if generation <= *saved {
            return Ok(());
        }
        let dir = self.path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir).map_err(|e| err(&self.path, e.to_string()))?;
        }
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).map_err(|e| err(&tmp, e.to_string()))?;
        f.write_all(bytes).map_err(|e| err(&tmp, e.to_string()))?;
        f.sync_all().map_err(|e| err(&tmp, e.to_string()))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| err(&self.path, e.to_string()))?;
        *saved = generation;
        Ok(())
    }
}

impl Persister {
    /// The generation last written.
    pub fn saved_generation(&self) -> u64 {
        *self.saved.lock().unwrap_or_else(|e| e.into_inner())
    }
}
