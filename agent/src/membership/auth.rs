//! Authenticated gossip datagrams: HMAC-SHA256 over a versioned header
//! (timestamp, nonce) and the chitchat payload, keyed by the cluster gossip
//! key. Forged, tampered, stale and replayed datagrams are dropped and
//! counted. Pure sealing/opening logic here; the socket glue is in
//! `transport.rs`.

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ring::hmac;

/// Version of the authenticated datagram format.
pub const AUTH_FORMAT_VERSION: u8 = 1;
const MAGIC: &[u8; 3] = b"IAG";
const HEADER_LEN: usize = 3 + 1 + 8 + 8;
const TAG_LEN: usize = 32;
/// Minimum gossip key length in bytes.
pub const MIN_KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read gossip key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "gossip key file {path} must hold at least {MIN_KEY_LEN} bytes as hex (got {len} bytes)"
    )]
    Invalid { path: String, len: usize },
}

/// The cluster gossip key. Its bytes never appear in Debug output.
#[derive(Clone)]
pub struct GossipKey(Vec<u8>);

impl std::fmt::Debug for GossipKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GossipKey(<redacted>)")
    }
}

impl GossipKey {
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GossipKey, KeyError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(KeyError::Invalid {
                path: "<memory>".into(),
                len: bytes.len(),
            });
        }
        Ok(GossipKey(bytes))
    }

    /// A fresh random 32-byte key.
    pub fn generate() -> GossipKey {
        GossipKey(rand::random::<[u8; 32]>().to_vec())
    }

    /// A 32-byte key for another use of the cluster key, derived with
    /// HKDF-SHA256 under the domain `label` (e.g. `infra secrets v1`).
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        struct Len32;
        impl ring::hkdf::KeyType for Len32 {
            fn len(&self) -> usize {
                32
            }
        }
        let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"infra-agent key derivation");
        let mut out = [0u8; 32];
        salt.extract(&self.0)
            .expand(&[label], Len32)
            .and_then(|okm| okm.fill(&mut out))
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    }

    /// The key as the hex text stored in a key file.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// Reads a hex key file.
    pub fn load(path: &Path) -> Result<GossipKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let bytes = hex::decode(text.trim()).unwrap_or_default();
        if bytes.len() < MIN_KEY_LEN {
            return Err(KeyError::Invalid {
                path: path.display().to_string(),
                len: bytes.len(),
            });
        }
        Ok(GossipKey(bytes))
    }
}

/// Counters of the authenticated transport.
#[derive(Debug, Default)]
pub struct AuthStats {
    pub accepted: AtomicU64,
    /// Bad tag, bad magic/version or truncated.
    pub forged: AtomicU64,
    /// A (timestamp, nonce) seen before.
    pub replayed: AtomicU64,
    /// Timestamp outside the acceptance window.
    pub stale: AtomicU64,
}

/// A plain copy of [`AuthStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AuthCounts {
    pub accepted: u64,
    pub forged: u64,
    pub replayed: u64,
    pub stale: u64,
}

impl AuthStats {
    pub fn counts(&self) -> AuthCounts {
        AuthCounts {
            accepted: self.accepted.load(Ordering::Relaxed),
            forged: self.forged.load(Ordering::Relaxed),
            replayed: self.replayed.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
        }
    }
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    Forged,
    Replayed,
    Stale,
}

/// Seals outgoing and opens incoming datagrams.
pub struct Authenticator {
    key: hmac::Key,
    window_ms: u64,
    seen: BTreeSet<(u64, u64)>,
    seen_order: VecDeque<(u64, u64)>,
    stats: Arc<AuthStats>,
}

impl Authenticator {
    /// `window_ms`: how far a datagram's timestamp may be from our clock.
    pub fn new(key: &GossipKey, window_ms: u64, stats: Arc<AuthStats>) -> Authenticator {
        Authenticator {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key.0),
            window_ms,
            seen: BTreeSet::new(),
            seen_order: VecDeque::new(),
            stats,
        }
    }

    /// Frames and signs `payload` with our timestamp and a random nonce.
    pub fn seal(&self, payload: &[u8], now_ms: u64, nonce: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.push(AUTH_FORMAT_VERSION);
        out.extend_from_slice(&now_ms.to_be_bytes());
        out.extend_from_slice(&nonce.to_be_bytes());
        out.extend_from_slice(payload);
        let tag = hmac::sign(&self.key, &out);
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Verifies a datagram and returns its payload, or why it was dropped
    /// (and counts it).
    pub fn open<'a>(&mut self, packet: &'a [u8], now_ms: u64) -> Result<&'a [u8], Rejected> {
        let result = self.check(packet, now_ms);
        let counter = match result {
            Ok(_) => &self.stats.accepted,
            Err(Rejected::Forged) => &self.stats.forged,
            Err(Rejected::Replayed) => &self.stats.replayed,
            Err(Rejected::Stale) => &self.stats.stale,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    fn check<'a>(&mut self, packet: &'a [u8], now_ms: u64) -> Result<&'a [u8], Rejected> {
        if packet.len() < HEADER_LEN + TAG_LEN
            || &packet[..3] != MAGIC
            || packet[3] != AUTH_FORMAT_VERSION
        {
            return Err(Rejected::Forged);
        }
        let (signed, tag) = packet.split_at(packet.len() - TAG_LEN);
        hmac::verify(&self.key, signed, tag).map_err(|_| Rejected::Forged)?;
        let ts = u64::from_be_bytes(packet[4..12].try_into().expect("8 bytes"));
        let nonce = u64::from_be_bytes(packet[12..20].try_into().expect("8 bytes"));
        if ts.abs_diff(now_ms) > self.window_ms {
            return Err(Rejected::Stale);
        }
        self.expire(now_ms);
        if !self.seen.insert((ts, nonce)) {
            return Err(Rejected::Replayed);
        }
        self.seen_order.push_back((ts, nonce));
        Ok(&signed[HEADER_LEN..])
    }

    /// Forgets nonces whose timestamps can no longer pass the window check.
    fn expire(&mut self, now_ms: u64) {
        while let Some(&(ts, nonce)) = self.seen_order.front() {
            if now_ms.saturating_sub(ts) <= self.window_ms {
                break;
            }
            self.seen_order.pop_front();
            self.seen.remove(&(ts, nonce));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> GossipKey {
        GossipKey::from_bytes(vec![b; 32]).unwrap()
    }

    fn auth(k: &GossipKey) -> (Authenticator, Arc<AuthStats>) {
        let stats = Arc::new(AuthStats::default());
        (Authenticator::new(k, 5_000, stats.clone()), stats)
    }

    #[test]
    fn roundtrip_accepts_once() {
        let (mut a, stats) = auth(&key(1));
        let packet = a.seal(b"hello", 1_000, 42);
        assert_eq!(a.open(&packet, 1_100), Ok(&b"hello"[..]));
        assert_eq!(a.open(&packet, 1_200), Err(Rejected::Replayed));
        let c = stats.counts();
        assert_eq!((c.accepted, c.replayed), (1, 1));
    }

    #[test]
    fn forged_and_tampered_packets_are_dropped() {
        let (mut a, stats) = auth(&key(1));
        let (other, _) = auth(&key(2));
        let forged = other.seal(b"evil", 1_000, 1);
        assert_eq!(a.open(&forged, 1_000), Err(Rejected::Forged));
        let mut tampered = a.seal(b"good", 1_000, 2);
        tampered[HEADER_LEN] ^= 0xff;
        assert_eq!(a.open(&tampered, 1_000), Err(Rejected::Forged));
        assert_eq!(a.open(b"junk", 1_000), Err(Rejected::Forged));
        // A tampered timestamp breaks the tag too.
        let mut moved = a.seal(b"good", 1_000, 3);
        moved[11] ^= 1;
        assert_eq!(a.open(&moved, 1_000), Err(Rejected::Forged));
        assert_eq!(stats.counts().forged, 4);
        assert_eq!(stats.counts().accepted, 0);
    }

    #[test]
    fn stale_packets_are_dropped_and_old_nonces_forgotten() {
        let (mut a, stats) = auth(&key(1));
        let old = a.seal(b"x", 1_000, 7);
        assert_eq!(a.open(&old, 7_000), Err(Rejected::Stale));
        assert_eq!(stats.counts().stale, 1);
        let p = a.seal(b"x", 10_000, 7);
        assert!(a.open(&p, 10_000).is_ok());
        let later = a.seal(b"y", 20_000, 8);
        assert!(a.open(&later, 20_000).is_ok());
        assert_eq!(a.seen.len(), 1, "expired nonce forgotten");
        // The expired one is still refused: now by the window.
        assert_eq!(a.open(&p, 20_000), Err(Rejected::Stale));
    }

    #[test]
    fn key_file_rules() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "abcd").unwrap();
        let err = GossipKey::load(&short).unwrap_err().to_string();
        assert!(err.contains("at least 32 bytes"), "{err}");
        let good = dir.path().join("good");
        let k = GossipKey::generate();
        std::fs::write(&good, k.to_hex()).unwrap();
        let loaded = GossipKey::load(&good).unwrap();
        assert_eq!(loaded.0, k.0);
        assert_eq!(format!("{loaded:?}"), "GossipKey(<redacted>)");
    }
}
