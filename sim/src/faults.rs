//! Injected faults: error statuses, latency and dropped responses for matching requests.

use serde::{Deserialize, Serialize};

/// Which requests a fault applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// HTTP method (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Path prefix, or the exact path when `exact` is true.
    pub path: String,
    #[serde(default)]
    pub exact: bool,
}

impl Target {
    pub fn matches(&self, method: &str, path: &str) -> bool {
        let method_ok = self
            .method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method));
        let path_ok = if self.exact {
            path == self.path
        } else {
            path.starts_with(&self.path)
        };
        method_ok && path_ok
    }
}

/// A fault, as posted to `POST /_sim/faults` (tagged by `kind`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// The next `count` matching requests answer `status` (429 carries `retry-after`).
    Status {
        #[serde(flatten)]
        target: Target,
        status: u16,
        count: u32,
        #[serde(default)]
        retry_after_secs: Option<u64>,
    },
    /// Matching requests are delayed by `ms` (the next `count`, or all when absent).
    Latency {
        #[serde(flatten)]
        target: Target,
        ms: u64,
        #[serde(default)]
        count: Option<u32>,
    },
    /// The next `count` matching requests are processed, then answered with a 500:
    /// the client cannot tell whether the change happened.
    DropResponse {
        #[serde(flatten)]
        target: Target,
        count: u32,
    },
    /// The next `count` matching requests get their connection closed without an answer;
    /// with `executed` the request is processed first (e.g. the droplet is created).
    Reset {
        #[serde(flatten)]
        target: Target,
        count: u32,
        #[serde(default)]
        executed: bool,
    },
    /// The next `count` actions of `action_type` (e.g. "snapshot", "create") end `errored`.
    ActionError { action_type: String, count: u32 },
}

/// What to do with one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    pub delay_ms: u64,
    pub status: Option<(u16, Option<u64>)>,
    pub drop_response: bool,
    /// Close the connection without an answer; `Some(true)` = after executing the request.
    pub reset: Option<bool>,
}

/// The active request faults.
#[derive(Debug, Default)]
pub struct FaultSet {
    faults: Vec<Fault>,
}

impl FaultSet {
    pub fn add(&mut self, fault: Fault) {
        self.faults.push(fault);
    }
    pub fn clear(&mut self) {
        self.faults.clear();
    }
    pub fn list(&self) -> Vec<Fault> {
        self.faults.clone()
    }

    /// Consumes the matching faults for one request.
    pub fn check(&mut self, method: &str, path: &str) -> Verdict {
        let mut v = Verdict::default();
        for f in &mut self.faults {
            match f {
                Fault::Status {
                    target,
                    status,
                    count,
                    retry_after_secs,
                } if *count > 0 && v.status.is_none() && target.matches(method, path) => {
                    *count -= 1;
                    let ra = retry_after_secs.or((*status == 429).then_some(1));
                    v.status = Some((*status, ra));
                }
                Fault::Latency { target, ms, count }
                    if count.is_none_or(|c| c > 0) && target.matches(method, path) =>
                {
                    if let Some(c) = count {
                        *c -= 1;
                    }
                    v.delay_ms += *ms;
                }
                Fault::DropResponse { target, count }
                    if *count > 0 && !v.drop_response && target.matches(method, path) =>
                {
                    *count -= 1;
                    v.drop_response = true;
                }
                Fault::Reset {
                    target,
                    count,
                    executed,
                } if *count > 0 && v.reset.is_none() && target.matches(method, path) => {
                    *count -= 1;
                    v.reset = Some(*executed);
                }
                _ => {}
            }
        }
        self.faults.retain(|f| match f {
            Fault::Status { count, .. }
            | Fault::DropResponse { count, .. }
            | Fault::Reset { count, .. } => *count > 0,
            Fault::Latency { count, .. } => count.is_none_or(|c| c > 0),
            Fault::ActionError { .. } => false,
        });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str, exact: bool) -> Target {
        Target {
            method: Some("POST".into()),
            path: path.into(),
            exact,
        }
    }

    #[test]
    fn status_fault_fires_count_times_on_matching_requests() {
        let mut set = FaultSet::default();
        set.add(Fault::Status {
            target: target("/v2/droplets", false),
            status: 429,
            count: 2,
            retry_after_secs: None,
        });
        assert_eq!(set.check("GET", "/v2/droplets").status, None);
        assert_eq!(
            set.check("POST", "/v2/droplets/1/actions").status,
            Some((429, Some(1)))
        );
        assert_eq!(
            set.check("post", "/v2/droplets").status,
            Some((429, Some(1)))
        );
        assert_eq!(set.check("POST", "/v2/droplets").status, None);
        assert!(set.list().is_empty());
    }

    #[test]
    fn exact_target_and_unbounded_latency() {
        let mut set = FaultSet::default();
        set.add(Fault::Latency {
            target: target("/v2/droplets", true),
            ms: 5,
            count: None,
        });
        assert_eq!(set.check("POST", "/v2/droplets/1").delay_ms, 0);
        assert_eq!(set.check("POST", "/v2/droplets").delay_ms, 5);
        assert_eq!(set.check("POST", "/v2/droplets").delay_ms, 5);
        let f: Fault = serde_json::from_str(
            r#"{"kind":"drop_response","method":"POST","path":"/v2/droplets","exact":true,"count":1}"#,
        )
        .unwrap();
        set.add(f);
        assert!(set.check("POST", "/v2/droplets").drop_response);
        assert!(!set.check("POST", "/v2/droplets").drop_response);
    }
}
