//! How long simulated operations take under each profile.

use crate::config::Profile;
use rand::Rng;
use std::time::Duration;

/// Action durations for one profile, already divided by the time scale.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    profile: Profile,
    scale: f64,
}

/// Kinds of timed operation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op<'a> {
    Create { restore_gb: Option<f64> },
    Power,
    Reboot,
    Snapshot { gb: f64 },
    Rebuild { gb: f64 },
    Resize,
    Rename,
    Firewall,
    Other(&'a str),
}

impl Timing {
    pub fn new(profile: Profile, scale: f64) -> Self {
        Timing { profile, scale }
    }

    /// Range in seconds (before scaling) for an operation.
    pub fn range_secs(&self, op: Op<'_>) -> (f64, f64) {
        match self.profile {
            Profile::Instant => (0.0, 0.0),
            Profile::Fast => match op {
                Op::Create { .. } => (1.0, 2.0),
                Op::Snapshot { .. } | Op::Rebuild { .. } => (1.0, 1.5),
                Op::Rename | Op::Firewall => (0.2, 0.5),
                _ => (0.5, 1.0),
            },
            Profile::Realistic => match op {
                Op::Create { restore_gb: None } => (30.0, 70.0),
                // A restore takes about a normal create plus ~20 s per GB of snapshot.
                Op::Create {
                    restore_gb: Some(gb),
                } => (30.0 + 15.0 * gb, 70.0 + 25.0 * gb),
                Op::Power => (5.0, 20.0),
                Op::Reboot => (10.0, 30.0),
                // Snapshots: 50-70 s per GB of used disk (average 59 s/GB).
                Op::Snapshot { gb } => (50.0 * gb.max(0.1), 70.0 * gb.max(0.1)),
                Op::Rebuild { gb } => (30.0 + 15.0 * gb, 70.0 + 25.0 * gb),
                Op::Resize => (60.0, 120.0),
                Op::Rename => (1.0, 3.0),
                Op::Firewall => (2.0, 8.0),
                Op::Other(_) => (5.0, 20.0),
            },
        }
    }

    /// A random duration from the operation's range, divided by the time scale.
    pub fn duration(&self, op: Op<'_>) -> Duration {
        let (lo, hi) = self.range_secs(op);
        let secs = if hi > lo {
            rand::rng().random_range(lo..hi)
        } else {
            lo
        };
        let scale = if self.scale > 0.0 { self.scale } else { 1.0 };
        Duration::from_secs_f64(secs / scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_is_zero_and_scale_divides() {
        let t = Timing::new(Profile::Instant, 1.0);
        assert_eq!(t.duration(Op::Create { restore_gb: None }), Duration::ZERO);
        let r = Timing::new(Profile::Realistic, 10.0);
        let d = r.duration(Op::Create { restore_gb: None });
        assert!(
            d >= Duration::from_secs(3) && d <= Duration::from_secs(7),
            "{d:?}"
        );
        let s = r.duration(Op::Snapshot { gb: 10.0 });
        assert!(
            s >= Duration::from_secs(50) && s <= Duration::from_secs(70),
            "{s:?}"
        );
    }
}
