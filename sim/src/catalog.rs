//! The fixed catalog: sizes, regions and public distribution images.

use serde_json::{Value, json};

/// A droplet size.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub slug: &'static str,
    pub memory: u64,
    pub vcpus: u64,
    pub disk: u64,
    pub price_monthly: f64,
}

pub const SIZES: &[Size] = &[
    Size {
        slug: "s-1vcpu-512mb-10gb",
        memory: 512,
        vcpus: 1,
        disk: 10,
        price_monthly: 4.0,
    },
    Size {
        slug: "s-1vcpu-1gb",
        memory: 1024,
        vcpus: 1,
        disk: 25,
        price_monthly: 6.0,
    },
    Size {
        slug: "s-1vcpu-2gb",
        memory: 2048,
        vcpus: 1,
        disk: 50,
        price_monthly: 12.0,
    },
    Size {
        slug: "s-2vcpu-2gb",
        memory: 2048,
        vcpus: 2,
        disk: 60,
        price_monthly: 18.0,
    },
    Size {
        slug: "s-2vcpu-4gb",
        memory: 4096,
        vcpus: 2,
        disk: 80,
        price_monthly: 24.0,
    },
    Size {
        slug: "s-4vcpu-8gb",
        memory: 8192,
        vcpus: 4,
        disk: 160,
        price_monthly: 48.0,
    },
    Size {
        slug: "s-8vcpu-16gb",
        memory: 16384,
        vcpus: 8,
        disk: 320,
        price_monthly: 96.0,
    },
];

pub const REGIONS: &[(&str, &str)] = &[
    ("nyc1", "New York 1"),
    ("nyc3", "New York 3"),
    ("sfo3", "San Francisco 3"),
    ("ams3", "Amsterdam 3"),
    ("fra1", "Frankfurt 1"),
    ("lon1", "London 1"),
    ("sgp1", "Singapore 1"),
    ("tor1", "Toronto 1"),
    ("blr1", "Bangalore 1"),
    ("syd1", "Sydney 1"),
];

pub const DEFAULT_REGION: &str = "nyc3";

/// A public distribution image.
#[derive(Debug, Clone, Copy)]
pub struct Distro {
    pub id: u64,
    pub slug: &'static str,
    pub distribution: &'static str,
    pub name: &'static str,
}

pub const DISTROS: &[Distro] = &[
    Distro {
        id: 160_000_001,
        slug: "ubuntu-24-04-x64",
        distribution: "Ubuntu",
        name: "24.04 (LTS) x64",
    },
    Distro {
        id: 160_000_002,
        slug: "ubuntu-22-04-x64",
        distribution: "Ubuntu",
        name: "22.04 (LTS) x64",
    },
    Distro {
        id: 160_000_003,
        slug: "debian-12-x64",
        distribution: "Debian",
        name: "12 x64",
    },
    Distro {
        id: 160_000_004,
        slug: "fedora-40-x64",
        distribution: "Fedora",
        name: "40 x64",
    },
    Distro {
        id: 160_000_005,
        slug: "rockylinux-9-x64",
        distribution: "Rocky Linux",
        name: "9 x64",
    },
];

pub fn size(slug: &str) -> Option<&'static Size> {
    SIZES.iter().find(|s| s.slug == slug)
}

pub fn region_known(slug: &str) -> bool {
    REGIONS.iter().any(|(s, _)| *s == slug)
}

pub fn distro_by_slug(slug: &str) -> Option<&'static Distro> {
    DISTROS.iter().find(|d| d.slug == slug)
}

pub fn distro_by_id(id: u64) -> Option<&'static Distro> {
    DISTROS.iter().find(|d| d.id == id)
}

pub fn region_slugs() -> Vec<&'static str> {
    REGIONS.iter().map(|(s, _)| *s).collect()
}

pub fn size_json(s: &Size) -> Value {
    json!({
        "slug": s.slug,
        "memory": s.memory,
        "vcpus": s.vcpus,
        "disk": s.disk,
        "transfer": 1.0,
        "price_monthly": s.price_monthly,
        "price_hourly": (s.price_monthly / 672.0 * 100000.0).round() / 100000.0,
        "regions": region_slugs(),
        "available": true,
        "description": "Basic",
    })
}

pub fn region_json(slug: &str) -> Value {
    let name = REGIONS
        .iter()
        .find(|(s, _)| *s == slug)
        .map(|(_, n)| *n)
        .unwrap_or(slug);
    json!({
        "name": name,
        "slug": slug,
        "features": ["backups", "ipv6", "metadata", "install_agent", "storage", "image_transfer"],
        "available": true,
        "sizes": SIZES.iter().map(|s| s.slug).collect::<Vec<_>>(),
    })
}

pub fn distro_json(d: &Distro) -> Value {
    json!({
        "id": d.id,
        "name": d.name,
        "distribution": d.distribution,
        "slug": d.slug,
        "public": true,
        "regions": region_slugs(),
        "created_at": "2024-04-25T00:00:00Z",
        "type": "base",
        "min_disk_size": 7,
        "size_gigabytes": 2.36,
        "description": format!("{} {}", d.distribution, d.name),
        "tags": [],
        "status": "available",
        "error_message": "",
    })
}
