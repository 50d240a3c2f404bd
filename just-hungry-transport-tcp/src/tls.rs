//! Mutual TLS for every link: identities in certificates, one private CA per cluster.
//!
//! Every node holds a certificate signed by the cluster's CA whose subject alternative name
//! of type URI names its [`Identity`]: `just-hungry://<role>/<name>`, e.g.
//! `just-hungry://replica/replica-1` ([`identity_uri`]). Both sides of every connection present
//! their certificate and verify the other's chain against the CA (TLS 1.3 only, rustls on the
//! `ring` provider). The peer's identity is then read from its certificate
//! ([`peer_identity`]), and the transport checks that the hello names the same one.
//!
//! The connecting side does not check a host name: nodes dial each other by `host:port`, and
//! who is at the other end is what the certificate's identity URI says. Chain, validity
//! period, key usage and the handshake signature are checked as rustls's WebPKI verifier does.
//!
//! [`DevPki`] makes a development CA and node certificates (rcgen), for the `certs` example
//! and the tests; production clusters may use any CA that issues such certificates.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use just_hungry_core::ids::{Identity, NodeRole};
use just_hungry_core::protocol::trust::MAX_NODE_NAME_BYTES;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The scheme of the identity URI in every node certificate.
pub const IDENTITY_URI_SCHEME: &str = "just-hungry://";

/// The server name the connecting side asks for. It is not checked (see the module docs); a
/// certificate need not carry it.
pub const SERVER_NAME: &str = "just-hungry.invalid";

/// Why a certificate, a key or a peer could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM input holds no certificate, or not one that parses.
    #[error("{what}: no PEM certificate in it")]
    NoCertificate {
        /// Which input (a path, or `the CA`, `the certificate`).
        what: String,
    },
    /// A PEM input holds no private key, or not one that parses.
    #[error("{what}: no PEM private key in it")]
    NoKey {
        /// Which input.
        what: String,
    },
    /// A certificate carries no `just-hungry://` identity URI, or several.
    #[error("the certificate names {found} just-hungry:// identities; it must name exactly one")]
    IdentityCount {
        /// How many it names.
        found: usize,
    },
    /// An identity URI that does not say `just-hungry://<role>/<name>`.
    #[error("`{uri}` is not an identity URI (just-hungry://<role>/<name>): {why}")]
    BadIdentityUri {
        /// The URI.
        uri: String,
        /// What is wrong with it.
        why: String,
    },
    /// A certificate that does not parse as X.509.
    #[error("the certificate does not parse: {0}")]
    BadCertificate(String),
    /// rustls refused the configuration (a key that does not match its certificate, ...).
    #[error("TLS configuration refused: {0}")]
    Config(#[from] rustls::Error),
    /// The CA certificate cannot be a trust anchor.
    #[error("the CA certificate cannot be used: {0}")]
    Ca(String),
    /// The peer presented no certificate (cannot happen once the handshake verified one).
    #[error("the peer presented no certificate")]
    NoPeerCertificate,
    /// Generating a certificate failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The identity URI of `identity`: `just-hungry://<role>/<name>`.
pub fn identity_uri(identity: &Identity) -> String {
    format!("{IDENTITY_URI_SCHEME}{}/{}", identity.role, identity.name)
}

/// Whether `name` is a node name: 1 to [`MAX_NODE_NAME_BYTES`] bytes of `[A-Za-z0-9._-]`.
pub fn is_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NODE_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The identity an identity URI names.
pub fn parse_identity_uri(uri: &str) -> Result<Identity, TlsError> {
    let bad = |why: &str| TlsError::BadIdentityUri {
        uri: uri.chars().take(200).collect(),
        why: why.to_owned(),
    };
    let rest = uri
        .strip_prefix(IDENTITY_URI_SCHEME)
        .ok_or_else(|| bad("another scheme"))?;
    let (role, name) = rest.split_once('/').ok_or_else(|| bad("no /<name>"))?;
    let role: NodeRole = role
        .parse()
        .map_err(|e: just_hungry_core::ids::UnknownRole| bad(&e.to_string()))?;
    if !is_node_name(name) {
        return Err(bad(&format!(
            "a name has 1 to {MAX_NODE_NAME_BYTES} bytes of letters, digits, `.`, `_`, `-`"
        )));
    }
    Ok(Identity::new(role, name))
}

/// The identity in a certificate: its one `just-hungry://` URI.
pub fn certificate_identity(der: &CertificateDer<'_>) -> Result<Identity, TlsError> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let names = cert
        .subject_alternative_name()
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let uris: Vec<&str> = names
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) if uri.starts_with(IDENTITY_URI_SCHEME) => Some(*uri),
            _ => None,
        })
        .collect();
    match uris.as_slice() {
        [uri] => parse_identity_uri(uri),
        _ => Err(TlsError::IdentityCount { found: uris.len() }),
    }
}

/// The identity in the verified certificate of the peer of a finished handshake.
pub fn peer_identity(connection: &rustls::CommonState) -> Result<Identity, TlsError> {
    let leaf = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or(TlsError::NoPeerCertificate)?;
    certificate_identity(leaf)
}

/// The server name given to [`TlsConnector::connect`]: [`SERVER_NAME`], never checked.
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from(SERVER_NAME).expect("a valid DNS name")
}

/// Verifies a server's chain against the cluster's CA, and its handshake signature, without
/// a host name: who the server is comes from its identity URI.
#[derive(Debug)]
struct ClusterServerVerifier {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ClusterServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What a [`TlsConfig`] was made from, to read again on [`TlsConfig::reload`].
#[derive(Clone, Debug)]
enum Source {
    Pem,
    Files {
        ca: PathBuf,
        cert: PathBuf,
        key: PathBuf,
    },
}

struct Inner {
    identity: Identity,
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

/// One node's TLS setup: its certificate and key, and the cluster's CA. Cheap to clone (the
/// clones share it, reloads included).
#[derive(Clone)]
pub struct TlsConfig {
    source: Source,
    current: Arc<RwLock<Arc<Inner>>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("identity", &self.identity())
            .field("source", &self.source)
            .finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::NoCertificate { what: what.into() })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { what: what.into() });
    }
    Ok(chain)
}

fn build(
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
    names: [&str; 3],
) -> Result<Inner, TlsError> {
    let [ca_name, cert_name, key_name] = names;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in certificates(ca_pem, ca_name)? {
        roots.add(ca).map_err(|e| TlsError::Ca(e.to_string()))?;
    }
    let roots = Arc::new(roots);
    let chain = certificates(cert_pem, cert_name)?;
    let identity = certificate_identity(&chain[0])?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| TlsError::NoKey {
        what: key_name.into(),
    })?;
    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::Ca(e.to_string()))?;
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(chain.clone(), key.clone_key())?;
    let verifier = Arc::new(ClusterServerVerifier {
        roots,
        algorithms: provider.signature_verification_algorithms,
    });
    let client = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)?;
    Ok(Inner {
        identity,
        acceptor: TlsAcceptor::from(Arc::new(server)),
        connector: TlsConnector::from(Arc::new(client)),
    })
}

impl TlsConfig {
    /// From PEM text: the CA certificate, this node's certificate (chain) and its key.
    /// Fails if any does not parse, the certificate names no identity, or the key does not
    /// match the certificate.
    pub fn from_pem(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let inner = build(
            ca_pem,
            cert_pem,
            key_pem,
            ["the CA", "the certificate", "the key"],
        )?;
        Ok(TlsConfig {
            source: Source::Pem,
            current: Arc::new(RwLock::new(Arc::new(inner))),
        })
    }

    /// From three PEM files, remembered for [`TlsConfig::reload`].
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let source = Source::Files {
            ca: ca.to_owned(),
            cert: cert.to_owned(),
            key: key.to_owned(),
        };
        let inner = Self::load(&source)?;
        Ok(TlsConfig {
            source,
            current: Arc::new(RwLock::new(Arc::new(inner))),
        })
    }

    /// From a directory as `cargo run --example certs` writes it: `ca.pem`, `<name>.pem` and
    /// `<name>.key`.
    pub fn from_dir(dir: &Path, name: &str) -> Result<Self, TlsError> {
        Self::from_files(
            &dir.join("ca.pem"),
            &dir.join(format!("{name}.pem")),
            &dir.join(format!("{name}.key")),
        )
    }

    fn load(source: &Source) -> Result<Inner, TlsError> {
        match source {
            Source::Pem => Err(TlsError::NoCertificate {
                what: "a configuration made from PEM text has no files".into(),
            }),
            Source::Files { ca, cert, key } => {
                let names = [ca, cert, key].map(|p| p.display().to_string());
                build(
                    &read(ca)?,
                    &read(cert)?,
                    &read(key)?,
                    [&names[0], &names[1], &names[2]],
                )
            }
        }
    }

    fn inner(&self) -> Arc<Inner> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The identity in this node's certificate.
    pub fn identity(&self) -> Identity {
        self.inner().identity.clone()
    }

    /// The accepting side: requires a client certificate of the CA, TLS 1.3 only.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.inner().acceptor.clone()
    }

    /// The connecting side: presents this node's certificate and verifies the server's chain
    /// against the CA (not its host name).
    pub fn connector(&self) -> TlsConnector {
        self.inner().connector.clone()
    }

    /// Reads the files again and, if they make a usable configuration, uses it for every
    /// later connection (open connections keep theirs). On error the current configuration
    /// stays. A configuration made from PEM text has nothing to reload: `Ok` at once.
    pub fn reload(&self) -> Result<(), TlsError> {
        if matches!(self.source, Source::Pem) {
            return Ok(());
        }
        let inner = Self::load(&self.source)?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(inner);
        Ok(())
    }
}

/// One node's certificate and key, in PEM.
#[derive(Clone, Debug)]
pub struct NodeCert {
    /// Whom it names.
    pub identity: Identity,
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (keep it secret).
    pub key_pem: String,
}

/// A development CA (ECDSA P-256): issues node certificates for the `certs` example and the
/// tests. Its key is in memory; [`DevPki::write_ca`] saves it to issue more later.
pub struct DevPki {
    /// The CA certificate, in PEM: every node's trust anchor.
    pub ca_cert_pem: String,
    ca_key: rcgen::KeyPair,
}

impl fmt::Debug for DevPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevPki").finish_non_exhaustive()
    }
}

/// How long a development CA is valid.
pub const DEV_CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

fn write(path: &Path, contents: &str, secret: bool) -> Result<(), TlsError> {
    let fail = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(if secret { 0o600 } else { 0o644 })
            .open(path)
            .map_err(fail)?;
        file.write_all(contents.as_bytes()).map_err(fail)
    }
    #[cfg(not(unix))]
    {
        let _ = secret;
        std::fs::write(path, contents).map_err(fail)
    }
}

impl DevPki {
    /// A fresh CA named `cluster`.
    pub fn generate(cluster: &str) -> Result<Self, TlsError> {
        let ca_key = rcgen::KeyPair::generate()?;
        let ca_cert_pem = Self::ca_params(cluster)?.self_signed(&ca_key)?.pem();
        Ok(DevPki {
            ca_cert_pem,
            ca_key,
        })
    }

    fn ca_params(cluster: &str) -> Result<rcgen::CertificateParams, TlsError> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("just-hungry CA {cluster}"),
        );
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + DEV_CA_VALIDITY;
        Ok(params)
    }

    /// A certificate for `identity`, valid from now for `valid_for`, for both ends of a
    /// connection (server and client authentication).
    pub fn issue(&self, identity: &Identity, valid_for: Duration) -> Result<NodeCert, TlsError> {
        let issuer = rcgen::Issuer::from_ca_cert_pem(&self.ca_cert_pem, &self.ca_key)?;
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, identity.to_string());
        let uri = rcgen::string::Ia5String::try_from(identity_uri(identity))?;
        params.subject_alt_names = vec![rcgen::SanType::URI(uri)];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + valid_for;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(NodeCert {
            identity: identity.clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The TLS configuration of a node whose certificate this CA issues now, valid for
    /// `valid_for`: what an in-process cluster over TCP and the tests use.
    pub fn config_for(
        &self,
        identity: &Identity,
        valid_for: Duration,
    ) -> Result<TlsConfig, TlsError> {
        let cert = self.issue(identity, valid_for)?;
        TlsConfig::from_pem(
            self.ca_cert_pem.as_bytes(),
            cert.cert_pem.as_bytes(),
            cert.key_pem.as_bytes(),
        )
    }

    /// Writes `ca.pem` and `ca.key` (mode 0600) into `dir`, so more certificates can be issued
    /// later ([`DevPki::load`]).
    pub fn write_ca(&self, dir: &Path) -> Result<(), TlsError> {
        write(&dir.join("ca.pem"), &self.ca_cert_pem, false)?;
        write(&dir.join("ca.key"), &self.ca_key.serialize_pem(), true)
    }

    /// The CA that [`DevPki::write_ca`] wrote into `dir`.
    pub fn load(dir: &Path) -> Result<Self, TlsError> {
        let ca_cert_pem = String::from_utf8_lossy(&read(&dir.join("ca.pem"))?).into_owned();
        let key_path = dir.join("ca.key");
        let key_pem = String::from_utf8_lossy(&read(&key_path)?).into_owned();
        let ca_key = rcgen::KeyPair::from_pem(&key_pem).map_err(|_| TlsError::NoKey {
            what: key_path.display().to_string(),
        })?;
        rcgen::Issuer::from_ca_cert_pem(&ca_cert_pem, &ca_key)?;
        Ok(DevPki {
            ca_cert_pem,
            ca_key,
        })
    }
}

/// Writes `cert` into `dir` as `<name>.pem` and `<name>.key` (mode 0600): what
/// [`TlsConfig::from_dir`] reads. Returns the two paths.
pub fn write_node_cert(dir: &Path, cert: &NodeCert) -> Result<[PathBuf; 2], TlsError> {
    let pem = dir.join(format!("{}.pem", cert.identity.name));
    let key = dir.join(format!("{}.key", cert.identity.name));
    write(&pem, &cert.cert_pem, false)?;
    write(&key, &cert.key_pem, true)?;
    Ok([pem, key])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_uris_round_trip_and_bad_ones_are_refused() {
        let id = Identity::new(NodeRole::Replica, "replica-1");
        assert_eq!(identity_uri(&id), "just-hungry://replica/replica-1");
        assert_eq!(parse_identity_uri(&identity_uri(&id)).unwrap(), id);
        for bad in [
            "https://replica/replica-1",
            "just-hungry://replica",
            "just-hungry://admin/x",
            "just-hungry://replica/",
            "just-hungry://replica/a b",
            "just-hungry://replica/a/b",
        ] {
            assert!(parse_identity_uri(bad).is_err(), "{bad}");
        }
        let long = format!(
            "just-hungry://client/{}",
            "x".repeat(MAX_NODE_NAME_BYTES + 1)
        );
        assert!(parse_identity_uri(&long).is_err());
    }

    #[test]
    fn an_issued_certificate_names_its_identity_and_makes_a_config() {
        let pki = DevPki::generate("test").unwrap();
        let id = Identity::new(NodeRole::Frontend, "frontend");
        let config = pki.config_for(&id, Duration::from_secs(3600)).unwrap();
        assert_eq!(config.identity(), id);
        assert!(config.reload().is_ok(), "nothing to reload from PEM text");
        let other = DevPki::generate("other").unwrap();
        let cert = pki.issue(&id, Duration::from_secs(60)).unwrap();
        let mismatched = TlsConfig::from_pem(
            cert.cert_pem.as_bytes(),
            cert.cert_pem.as_bytes(),
            other
                .issue(&id, Duration::from_secs(60))
                .unwrap()
                .key_pem
                .as_bytes(),
        );
        assert!(mismatched.is_err(), "a key that is not the certificate's");
    }
}
