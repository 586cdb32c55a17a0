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

impl From<anyhow::Error> for CliError {
    fn from(err: anyhow::Error) -> Self {
        CliError::Runtime(err)
    }
}

impl From<std::io::Error> for CliError {
    fn from(err: std::io::Error) -> Self {
        CliError::Runtime(err.into())
    }
}
