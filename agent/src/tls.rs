//! Cluster PKI: the cluster CA, node and client certificate issuance
//! (rcgen, ring), PEM files written with mode 0600, and the tonic mutual-TLS
//! configurations that only admit peers holding a certificate of that CA.

use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// The DNS name every node certificate carries, so clients can verify a
/// server by one stable name whatever address they dialled.
pub const CLUSTER_DNS_NAME: &str = "agent.infra.internal";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("CA certificate {path} does not match its key for cluster id `{cluster_id}`")]
    CaMismatch { path: PathBuf, cluster_id: String },
    #[error("invalid key in {path}: {source}")]
    Key { path: PathBuf, source: rcgen::Error },
}

/// A certificate and its private key, PEM encoded. Debug hides the key.
#[derive(Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert")
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl IssuedCert {
    /// Writes `<dir>/<stem>.pem` and `<dir>/<stem>.key` (both 0600).
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), TlsError> {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        write_private(&cert, self.cert_pem.as_bytes())?;
        write_private(&key, self.key_pem.as_bytes())?;
        Ok((cert, key))
    }

    pub fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert_pem, &self.key_pem)
    }
}

/// The cluster certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

fn ca_params(cluster_id: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("infra cluster CA {cluster_id}"));
    dn.push(DnType::OrganizationName, "infra");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

impl Ca {
    /// Creates a new CA for `cluster_id` with a fresh key.
    pub fn create(cluster_id: &str) -> Result<Ca, TlsError> {
        let key = KeyPair::generate()?;
        let params = ca_params(cluster_id);
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(Ca {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
            key_pem,
        })
    }

    /// Loads a CA written by [`Ca::write`] for `cluster_id`.
    pub fn load(cert_path: &Path, key_path: &Path, cluster_id: &str) -> Result<Ca, TlsError> {
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|source| TlsError::Key {
            path: key_path.to_path_buf(),
            source,
        })?;
        let ca = Ca {
            issuer: Issuer::new(ca_params(cluster_id), key),
            cert_pem,
            key_pem,
        };
        // The issuer is rebuilt from `cluster_id`: prove that what it signs
        // chains to the certificate on disk (wrong id or mismatched files).
        if !ca.verifies(&ca.issue_client("ca-self-check")?) {
            return Err(TlsError::CaMismatch {
                path: cert_path.to_path_buf(),
                cluster_id: cluster_id.to_string(),
            });
        }
        Ok(ca)
    }

    /// Whether `cert` chains to this CA (as a client certificate).
    pub fn verifies(&self, cert: &IssuedCert) -> bool {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, UnixTime};
        let (Ok(root), Ok(leaf)) = (
            CertificateDer::from_pem_slice(self.cert_pem.as_bytes()),
            CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()),
        ) else {
            return false;
        };
        let mut roots = rustls::RootCertStore::empty();
        if roots.add(root).is_err() {
            return false;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let Ok(verifier) = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider,
        )
        .build() else {
            return false;
        };
        verifier
            .verify_client_cert(&leaf, &[], UnixTime::now())
            .is_ok()
    }

    /// The CA private key (PEM), for the bootstrap of nodes that issue
    /// certificates (the orchestrating leader).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Writes `<dir>/ca.pem` and `<dir>/ca.key` (0600).
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
        IssuedCert {
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
        }
        .write(dir, "ca")
    }

    /// Issues a node certificate (server and client use) valid for `name`,
    /// [`CLUSTER_DNS_NAME`] and the given IP/DNS subject alternative names.
    pub fn issue_node(&self, name: &str, sans: &[String]) -> Result<IssuedCert, TlsError> {
        let mut all = vec![CLUSTER_DNS_NAME.to_string(), name.to_string()];
        all.extend(sans.iter().cloned());
        all.dedup();
        self.issue(
            name,
            all,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
    }

    /// Issues a client-only certificate (e.g. for `infractl`).
    pub fn issue_client(&self, name: &str) -> Result<IssuedCert, TlsError> {
        self.issue(
            name,
            vec![name.to_string()],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        )
    }

    fn issue(
        &self,
        name: &str,
        sans: Vec<String>,
        ekus: Vec<ExtendedKeyUsagePurpose>,
    ) -> Result<IssuedCert, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = ekus;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// PEM material a node or client uses for mutual TLS.
#[derive(Clone)]
pub struct TlsMaterial {
    pub ca_cert_pem: String,
    pub identity: IssuedCert,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// Reads the CA certificate and this node's certificate and key.
    pub fn load(ca_cert: &Path, cert: &Path, key: &Path) -> Result<TlsMaterial, TlsError> {
        Ok(TlsMaterial {
            ca_cert_pem: read(ca_cert)?,
            identity: IssuedCert {
                cert_pem: read(cert)?,
                key_pem: read(key)?,
            },
        })
    }

    /// Server config: presents our identity and requires a client
    /// certificate signed by the cluster CA.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.identity())
            .client_ca_root(Certificate::from_pem(&self.ca_cert_pem))
    }

    /// Client config: trusts only the cluster CA, verifies the server as
    /// [`CLUSTER_DNS_NAME`], and presents our identity.
    pub fn client_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_cert_pem))
            .domain_name(CLUSTER_DNS_NAME)
            .identity(self.identity.identity())
    }
}

/// Whether a peer certificate (DER) is valid for `name`: the name is one of
/// its subject alternative names. Node certificates carry the node name, so
/// this ties a request to the node that sent it.
pub fn cert_is_for_name(cert: &rustls::pki_types::CertificateDer<'_>, name: &str) -> bool {
    let Ok(parsed) = rustls::server::ParsedCertificate::try_from(cert) else {
        return false;
    };
    let Ok(server_name) = rustls::pki_types::ServerName::try_from(name) else {
        return false;
    };
    rustls::client::verify_server_name(&parsed, &server_name).is_ok()
}

/// Whether `cert` is a node certificate (valid for the cluster's shared
/// agent name), as opposed to an operator's client-only certificate.
pub fn cert_is_node(cert: &rustls::pki_types::CertificateDer<'_>) -> bool {
    cert_is_for_name(cert, CLUSTER_DNS_NAME)
}

/// Selects rustls' `ring` provider for this process (tonic's server side
/// needs a process default when several providers are compiled in).
/// Idempotent: a provider already installed is kept.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `bytes` to `path` with mode 0600 (created that way, never wider).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(err)?;
    file.write_all(bytes).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_private_and_ca_reloads() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::create("demo").unwrap();
        let (cert, key) = ca.write(dir.path()).unwrap();
        for p in [&cert, &key] {
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        let node = ca.issue_node("web1", &["127.0.0.5".into()]).unwrap();
        let (ncert, nkey) = node.write(dir.path(), "web1").unwrap();
        assert!(
            std::fs::read_to_string(ncert)
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
        assert!(
            std::fs::read_to_string(nkey)
                .unwrap()
                .contains("PRIVATE KEY")
        );
        let reloaded = Ca::load(&cert, &key, "demo").unwrap();
        assert_eq!(reloaded.cert_pem(), ca.cert_pem());
        let issued = reloaded.issue_client("infractl").unwrap();
        assert!(ca.verifies(&issued), "reloaded CA signs for the original");
        assert!(!Ca::create("demo").unwrap().verifies(&issued));
        let err = Ca::load(&cert, &key, "other").unwrap_err();
        assert!(matches!(err, TlsError::CaMismatch { .. }), "{err}");
    }

    #[test]
    fn certificates_name_their_holder() {
        let ca = Ca::create("demo").unwrap();
        let der = |c: &IssuedCert| {
            use rustls::pki_types::pem::PemObject;
            rustls::pki_types::CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).unwrap()
        };
        let node = ca.issue_node("web1", &["127.0.0.5".into()]).unwrap();
        assert!(cert_is_for_name(&der(&node), "web1"));
        assert!(!cert_is_for_name(&der(&node), "web2"));
        let client = ca.issue_client("infractl").unwrap();
        assert!(!cert_is_for_name(&der(&client), "web1"));
    }

    #[test]
    fn debug_output_hides_keys() {
        let ca = Ca::create("demo").unwrap();
        let c = ca.issue_client("infractl").unwrap();
        let dbg = format!("{c:?} {ca:?}");
        assert!(!dbg.contains("PRIVATE"), "{dbg}");
        assert!(dbg.contains("redacted"));
    }
}
