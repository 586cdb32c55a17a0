//! The naming rules of the config files: DNS labels, DigitalOcean hostnames,
//! size and region slugs, identifiers, and the ordering of size slugs.

/// Largest `web_droplets` a project may ask for.
pub const MAX_WEB_DROPLETS: u32 = 50;
/// Longest DNS label (and so the longest droplet or container name we build).
pub const MAX_DNS_LABEL: usize = 63;
/// Longest DigitalOcean droplet name.
pub const MAX_DO_HOSTNAME: usize = 255;

/// A lowercase DNS label: `[a-z0-9]`, inner `-`, 1..=63 characters.
pub fn is_dns_label(s: &str) -> bool {
    label_like(s, false)
}

/// A service name: like a DNS label but `_` is also allowed inside (the
/// reference names workers `worker_email`); [`dns_label`] maps it to DNS.
pub fn is_service_label(s: &str) -> bool {
    label_like(s, true)
}

fn label_like(s: &str, underscore: bool) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_DNS_LABEL
        && b.iter().all(|&c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || (underscore && c == b'_')
        })
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// The DNS form of a name: `_` becomes `-` (k8s objects, hostnames).
pub fn dns_label(name: &str) -> String {
    name.replace('_', "-")
}

/// A valid DigitalOcean droplet name:
/// `^[a-zA-Z0-9]?[a-z0-9A-Z.\-]*[a-z0-9A-Z]$`, at most 255 characters, and
/// every dot-separated label at most 63.
pub fn is_do_hostname(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_DO_HOSTNAME
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-')
        && b[b.len() - 1].is_ascii_alphanumeric()
        && s.split('.').all(|l| l.len() <= MAX_DNS_LABEL)
}

/// An identifier (secret names, environment variable names): `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_identifier(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
}

/// A DigitalOcean region slug: three lowercase letters and a number (`lon1`, `nyc3`).
pub fn is_region_slug(s: &str) -> bool {
    let b = s.as_bytes();
    (4..=5).contains(&b.len())
        && b[..3].iter().all(u8::is_ascii_lowercase)
        && b[3..].iter().all(u8::is_ascii_digit)
}

/// A well-formed DigitalOcean size slug: `s-2vcpu-4gb`, `s-1vcpu-512mb-10gb`,
/// `c-4`, `g-2vcpu-8gb`, `so1_5-2vcpu-16gb`, `s-4vcpu-8gb-amd`, legacy `1gb`.
pub fn is_size_slug(s: &str) -> bool {
    if s.is_empty() || s.len() > 64 || !s.bytes().any(|c| c.is_ascii_digit()) {
        return false;
    }
    let segs: Vec<&str> = s.split('-').collect();
    let seg_ok = |g: &str| {
        !g.is_empty()
            && g.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
            && !g.starts_with('_')
            && !g.ends_with('_')
    };
    if !segs.iter().all(|g| seg_ok(g)) {
        return false;
    }
    if segs.len() == 1 {
        return memory_mb(segs[0]).is_some();
    }
    if !segs[0].as_bytes()[0].is_ascii_lowercase() {
        return false;
    }
    // `<n>vcpu` must be followed by a memory size.
    for (i, g) in segs.iter().enumerate() {
        if vcpus(g).is_some() && segs.get(i + 1).and_then(|m| memory_mb(m)).is_none() {
            return false;
        }
    }
    true
}

fn vcpus(seg: &str) -> Option<u32> {
    seg.strip_suffix("vcpu").and_then(number)
}

fn memory_mb(seg: &str) -> Option<u64> {
    if let Some(n) = seg.strip_suffix("gb") {
        number(n).map(|n| u64::from(n) * 1024)
    } else {
        seg.strip_suffix("mb").and_then(number).map(u64::from)
    }
}

fn number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// How big a size slug is, as (vCPUs, memory in MB), read from the slug
/// itself: `s-2vcpu-4gb` is (2, 4096); `c-4` is 4 vCPUs with DigitalOcean's
/// 2 GB per CPU-optimized vCPU; legacy `1gb` is 1 vCPU. `None` if the slug
/// says neither.
pub fn size_rank(slug: &str) -> Option<(u32, u64)> {
    let segs: Vec<&str> = slug.split('-').collect();
    if segs.len() == 1 {
        return memory_mb(segs[0]).map(|m| (1, m));
    }
    if let Some(i) = segs.iter().position(|g| vcpus(g).is_some()) {
        let cpu = vcpus(segs[i])?;
        let mem = segs.get(i + 1).and_then(|m| memory_mb(m)).unwrap_or(0);
        return Some((cpu, mem));
    }
    // `c-4`, `c2-8`: CPU-optimized, 2 GB per vCPU.
    let cpu = number(segs[1])?;
    Some((cpu, u64::from(cpu) * 2048))
}

/// Orders size slugs by vCPUs, then memory; slugs whose size is unknown
/// sort below every known one.
pub fn compare_sizes(a: &str, b: &str) -> std::cmp::Ordering {
    size_rank(a).cmp(&size_rank(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn dns_labels() {
        for ok in ["hostomatic", "a", "digital-pixo", "x1", &"a".repeat(63)] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in ["", "Host", "-a", "a-", "a_b", "a.b", &"a".repeat(64), "é"] {
            assert!(!is_dns_label(bad), "{bad}");
        }
        assert!(is_service_label("worker_email"));
        assert!(!is_service_label("_worker"));
        assert_eq!(dns_label("worker_email"), "worker-email");
    }

    #[test]
    fn do_hostnames() {
        for ok in ["master", "hostomatic-web1", "a.b.c", "A1"] {
            assert!(is_do_hostname(ok), "{ok}");
        }
        for bad in ["", "a-", "a_b", "a b", "a.", &"a".repeat(64)] {
            assert!(!is_do_hostname(bad), "{bad}");
        }
    }

    #[test]
    fn slugs() {
        for ok in [
            "s-2vcpu-4gb",
            "s-1vcpu-512mb-10gb",
            "c-4",
            "g-2vcpu-8gb",
            "so1_5-2vcpu-16gb",
            "s-4vcpu-8gb-amd",
            "1gb",
        ] {
            assert!(is_size_slug(ok), "{ok}");
        }
        for bad in [
            "",
            "large",
            "S-2VCPU-4GB",
            "s--4gb",
            "s-2vcpu",
            "-s-1",
            "s-2vcpu-4",
            "s 1",
        ] {
            assert!(!is_size_slug(bad), "{bad}");
        }
        for ok in ["lon1", "nyc3", "ams10"] {
            assert!(is_region_slug(ok), "{ok}");
        }
        for bad in ["", "lon", "LON1", "london1", "lo1", "lon-1"] {
            assert!(!is_region_slug(bad), "{bad}");
        }
        assert!(is_identifier("db_password") && is_identifier("_X9"));
        assert!(!is_identifier("9x") && !is_identifier("db-password") && !is_identifier(""));
    }

    #[test]
    fn sizes_order_by_cpu_then_memory() {
        assert_eq!(size_rank("s-2vcpu-4gb"), Some((2, 4096)));
        assert_eq!(size_rank("s-1vcpu-512mb-10gb"), Some((1, 512)));
        assert_eq!(size_rank("c-4"), Some((4, 8192)));
        assert_eq!(
            compare_sizes("s-2vcpu-4gb", "s-1vcpu-1gb"),
            Ordering::Greater
        );
        assert_eq!(compare_sizes("s-2vcpu-2gb", "s-2vcpu-4gb"), Ordering::Less);
        assert_eq!(compare_sizes("s-1vcpu-8gb", "s-2vcpu-2gb"), Ordering::Less);
        assert_eq!(compare_sizes("c-4", "s-4vcpu-8gb"), Ordering::Equal);
    }
}
