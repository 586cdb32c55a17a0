//! `Secret`: a string (an API token) that never shows up in `Debug`, `Display` or logs.

use std::fmt;

/// A secret string. `Debug` and `Display` print `Secret(<redacted>)`; only
/// [`Secret::expose`] gives the value, and only the HTTP layer calls it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value. Call it only where the value leaves the process
    /// (the `Authorization` header), never to format a message.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact_the_value() {
        let s = Secret::new("dop_v1_supersecret");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{s}"), "<redacted>");
        assert!(!format!("{s:#?}").contains("supersecret"));
        assert_eq!(s.expose(), "dop_v1_supersecret");
    }

    #[test]
    fn redacted_inside_containing_structs() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Cfg {
            token: Secret,
        }
        let c = Cfg {
            token: Secret::new("abc123token"),
        };
        assert!(!format!("{c:?}").contains("abc123token"));
    }
}
