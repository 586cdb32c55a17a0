//! The CLI's error type and its mapping to exit codes.

use std::fmt;

/// 1: something failed at run time (I/O, network, cluster).
pub const EXIT_RUNTIME: u8 = 1;
/// 2: the user's input is wrong (usage, validation).
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug)]
pub enum CliError {
    /// Bad input: a flag, an argument, a config file.
    Invalid(String),
    /// A failure while doing the work.
    Runtime(anyhow::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Invalid(_) => EXIT_USAGE,
            CliError::Runtime(_) => EXIT_RUNTIME,
        }
    }

    pub fn invalid(msg: impl fmt::Display) -> Self {
        CliError::Invalid(msg.to_string())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Invalid(msg) => write!(f, "error: {msg}"),
            CliError::Runtime(err) => write!(f, "error: {err:#}"),
        }
    }
}

/// An error caused by the user's input, raised deep inside a command:
/// it exits with [`EXIT_USAGE`] like [`CliError::Invalid`].
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

impl From<anyhow::Error> for CliError {
    fn from(err: anyhow::Error) -> Self {
        match err.downcast::<UsageError>() {
            Ok(usage) => CliError::Invalid(usage.0),
            Err(err) => CliError::Runtime(err),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(err: std::io::Error) -> Self {
        CliError::Runtime(err.into())
    }
}
