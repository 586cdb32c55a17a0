//! Secrets at rest in the cluster state: sealed with ChaCha20-Poly1305
//! under a key derived (HKDF-SHA256, domain label [`SECRETS_LABEL`]) from
//! the cluster key every agent holds. Each value is bound to its
//! `project/env/name` (associated data), so a sealed value cannot be moved
//! to another secret. Stored as hex of nonce || ciphertext || tag.

use ring::aead::{self, Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::membership::GossipKey;

/// Domain label of the secrets key derivation.
pub const SECRETS_LABEL: &[u8] = b"infra secrets v1";

/// Why a sealed secret cannot be opened (never shows the value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed secret `{name}` is malformed (not hex, or too short)")]
    Malformed { name: String },
    #[error(
        "sealed secret `{name}` does not open with this cluster's key (another cluster key, or tampered)"
    )]
    Open { name: String },
    #[error("cannot seal secret `{name}`: no randomness")]
    Random { name: String },
}

/// The cluster's secrets key.
pub struct SecretsKey(LessSafeKey);

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(<redacted>)")
    }
}

fn aad(project: &str, env: &str, name: &str) -> String {
    format!("{project}/{env}/{name}")
}

impl SecretsKey {
    /// The key of the cluster whose gossip key is `key`.
    pub fn derive(key: &GossipKey) -> SecretsKey {
        let bytes = key.derive(SECRETS_LABEL);
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &bytes).expect("32-byte key");
        SecretsKey(LessSafeKey::new(unbound))
    }

    /// Seals `value` of secret `name` of `project`/`env` (fresh nonce).
    pub fn seal(
        &self,
        project: &str,
        env: &str,
        name: &str,
        value: &[u8],
    ) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealError::Random { name: name.into() })?;
        let mut buf = value.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(project, env, name).as_bytes()),
                &mut buf,
            )
            .map_err(|_| SealError::Random { name: name.into() })?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(hex::encode(out))
    }

    /// Opens a value sealed by [`SecretsKey::seal`] for the same secret.
    pub fn open(
        &self,
        project: &str,
        env: &str,
        name: &str,
        sealed: &str,
    ) -> Result<Vec<u8>, SealError> {
        let bytes = hex::decode(sealed).map_err(|_| SealError::Malformed { name: name.into() })?;
        if bytes.len() < NONCE_LEN + aead::MAX_TAG_LEN {
            return Err(SealError::Malformed { name: name.into() });
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| SealError::Malformed { name: name.into() })?;
        let mut buf = rest.to_vec();
        let plain = self
            .0
            .open_in_place(
                nonce,
                Aad::from(aad(project, env, name).as_bytes()),
                &mut buf,
            )
            .map_err(|_| SealError::Open { name: name.into() })?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_binds_to_the_secret() {
        let cluster = GossipKey::generate();
        let key = SecretsKey::derive(&cluster);
        let sealed = key.seal("shop", "uat", "api_key", b"hunter2").unwrap();
        assert!(!sealed.contains(&hex::encode(b"hunter2")));
        let again = key.seal("shop", "uat", "api_key", b"hunter2").unwrap();
        assert_ne!(sealed, again, "a fresh nonce each time");
        let same = SecretsKey::derive(
            &GossipKey::from_bytes(hex::decode(cluster.to_hex()).unwrap()).unwrap(),
        );
        assert_eq!(
            same.open("shop", "uat", "api_key", &sealed).unwrap(),
            b"hunter2"
        );
        let moved = key.open("shop", "prod", "api_key", &sealed).unwrap_err();
        assert_eq!(
            moved,
            SealError::Open {
                name: "api_key".into()
            }
        );
        let other = SecretsKey::derive(&GossipKey::generate());
        assert!(other.open("shop", "uat", "api_key", &sealed).is_err());
        assert!(matches!(
            key.open("shop", "uat", "api_key", "zz"),
            Err(SealError::Malformed { .. })
        ));
        assert!(!format!("{key:?}").contains("hunter2"));
        // The derived key is not the gossip key itself.
        assert_ne!(hex::encode(cluster.derive(SECRETS_LABEL)), cluster.to_hex());
    }
}
