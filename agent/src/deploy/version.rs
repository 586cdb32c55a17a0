//! Release versions: `vX.Y.Z` release tags and the UAT deploy tags
//! `v<semver>-uat-<YYYYMMDD-HHMM>` built on them. Pure parsing and ordering.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};

/// A `vMAJOR.MINOR.PATCH` release version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Semver {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

/// The version used when a repository has no release tag yet.
pub const INITIAL_VERSION: Semver = Semver {
    major: 0,
    minor: 1,
    patch: 0,
};

impl Semver {
    /// Parses exactly `vX.Y.Z` (digits only, no leading zeros except `0`).
    pub fn parse_tag(tag: &str) -> Option<Semver> {
        let rest = tag.strip_prefix('v')?;
        let mut parts = rest.split('.');
        let mut next = || -> Option<u64> {
            let p = parts.next()?;
            let ok = !p.is_empty()
                && p.chars().all(|c| c.is_ascii_digit())
                && (p == "0" || !p.starts_with('0'));
            if ok { p.parse().ok() } else { None }
        };
        let v = Semver {
            major: next()?,
            minor: next()?,
            patch: next()?,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(v)
    }
}

impl fmt::Display for Semver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The newest `vX.Y.Z` among `tags` (other tags are ignored).
pub fn newest_release<'a>(tags: impl IntoIterator<Item = &'a str>) -> Option<Semver> {
    tags.into_iter().filter_map(Semver::parse_tag).max()
}

/// A UAT deploy tag: `v<semver>-uat-<YYYYMMDD-HHMM>` (UTC). Orders by
/// version, then time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UatTag {
    pub version: Semver,
    pub at: NaiveDateTime,
}

const STAMP: &str = "%Y%m%d-%H%M";

impl UatTag {
    /// The tag for a deploy at `now` on top of the newest release in `tags`
    /// (`v0.1.0` when there is none). Seconds are dropped.
    pub fn for_deploy<'a>(tags: impl IntoIterator<Item = &'a str>, now: DateTime<Utc>) -> UatTag {
        let version = newest_release(tags).unwrap_or(INITIAL_VERSION);
        let stamp = now.naive_utc().format(STAMP).to_string();
        let at = NaiveDateTime::parse_from_str(&stamp, STAMP).expect("own format parses");
        UatTag { version, at }
    }

    pub fn parse(tag: &str) -> Option<UatTag> {
        let (ver, stamp) = tag.split_once("-uat-")?;
        let version = Semver::parse_tag(ver)?;
        if stamp.len() != 13 {
            return None;
        }
        let at = NaiveDateTime::parse_from_str(stamp, STAMP).ok()?;
        Some(UatTag { version, at })
    }
}

impl fmt::Display for UatTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-uat-{}", self.version, self.at.format(STAMP))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn parses_release_tags_strictly() {
        assert_eq!(
            Semver::parse_tag("v1.2.3"),
            Some(Semver {
                major: 1,
                minor: 2,
                patch: 3
            })
        );
        for bad in [
            "1.2.3",
            "v1.2",
            "v1.2.3.4",
            "v1.02.3",
            "v1.2.3-rc1",
            "v1..3",
            "vx.y.z",
            "",
        ] {
            assert_eq!(Semver::parse_tag(bad), None, "{bad}");
        }
    }

    #[test]
    fn newest_release_compares_numerically() {
        let tags = [
            "v1.9.0",
            "v1.10.0",
            "v1.2.0-uat-20260101-1200",
            "junk",
            "v0.9.9",
        ];
        assert_eq!(newest_release(tags).unwrap().to_string(), "v1.10.0");
        assert_eq!(newest_release(["junk"]), None);
    }

    #[test]
    fn uat_tag_uses_newest_release_or_initial() {
        let now = at(2026, 11, 25, 9, 7, 59);
        let t = UatTag::for_deploy(["v1.2.0", "v1.1.5"], now);
        assert_eq!(t.to_string(), "v1.2.0-uat-20261125-0907");
        let t = UatTag::for_deploy(std::iter::empty(), now);
        assert_eq!(t.to_string(), "v0.1.0-uat-20261125-0907");
    }

    #[test]
    fn uat_tag_round_trips_and_orders() {
        let a = UatTag::parse("v1.2.0-uat-20261125-0907").unwrap();
        assert_eq!(a.to_string(), "v1.2.0-uat-20261125-0907");
        let b = UatTag::parse("v1.2.0-uat-20261125-1000").unwrap();
        let c = UatTag::parse("v1.10.0-uat-20200101-0000").unwrap();
        assert!(a < b && b < c);
        for bad in [
            "v1.2.0-uat-2026112-0907",
            "v1.2.0-uat-20261325-0907",
            "v1.2.0-prod-20261125-0907",
            "v1.2-uat-20261125-0907",
        ] {
            assert_eq!(UatTag::parse(bad), None, "{bad}");
        }
    }
}
