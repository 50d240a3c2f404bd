//! Mutual TLS for every link: identities in certificates, one private CA per cluster.
//!
//! Every node holds a certificate signed by the cluster's CA whose subject alternative name
//! of type URI names its [`Identity`]: `just-hungry://<role>/<name>`, e.g.
//! `just-hungry://replica/replica-1` ([`identity_uri`]), exactly one such URI per certificate.
//! Both sides of every connection present their certificate and verify the other's chain
//! against the CA: TLS 1.3 only, rustls on the `ring` provider ([`TlsConfig::acceptor`],
//! [`TlsConfig::connector`]). After the handshake, [`peer_identity`] reads who the peer is
//! from its verified certificate.
//!
//! ## No host names
//!
//! Nodes dial each other by `host:port` and are identified by their identity URI, so the
//! connecting side checks no host name: its verifier checks the server's chain up to the CA,
//! validity period, extended key usage (server authentication) and handshake signature
//! exactly as rustls's WebPKI verifier does (it calls the same functions), and skips only the
//! name match. Certificates therefore need no DNS name or IP address, and the connector sends
//! no SNI; [`server_name`] is the placeholder that [`TlsConnector::connect`] wants. The
//! accepting side is rustls's own [`WebPkiClientVerifier`]: a client certificate is required
//! and must chain to the CA and allow client authentication.
//!
//! Session resumption is off on both sides: every connection verifies the peer's certificate
//! afresh (an expired or replaced certificate is noticed on the next connection), which costs
//! little since connections are long-lived.
//!
//! ## Files
//!
//! [`TlsConfig::from_dir`] reads `ca.pem`, `<name>.pem` and `<name>.key` from a directory, as
//! `cargo run --example certs` writes them ([`write_dir`]); [`TlsConfig::reload`] reads them
//! again, so a renewed certificate is used without a restart.
//!
//! [`DevPki`] makes a development CA and node certificates (rcgen, ECDSA P-256), for that
//! example and the tests; a production cluster may use any CA that issues such certificates.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use just_hungry_core::ids::{Identity, NodeRole};
use just_hungry_core::protocol::trust::MAX_NODE_NAME_BYTES;
use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{NoServerSessionStorage, ParsedCertificate, WebPkiClientVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The prefix of the identity URI in every node certificate: `just-hungry://`.
pub const IDENTITY_URI_SCHEME: &str = "just-hungry://";

/// The placeholder server name of [`server_name`]: never sent (no SNI) and never checked.
pub const SERVER_NAME: &str = "just-hungry.invalid";

/// How long a [`DevPki`] CA is valid: 10 years.
pub const DEV_CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// How far in the past a [`DevPki`] certificate's validity starts (5 minutes), so that a peer
/// whose clock is a little behind accepts a certificate issued just now.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(5 * 60);

/// Why a certificate, a key, a file or a peer could not be used. Each message names the input
/// (a file's path, or `the CA PEM`, `the certificate PEM`, `the key PEM` for in-memory text).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file or directory could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An input holds no PEM item of the kind expected.
    #[error("{input}: no PEM {expected} in it")]
    NoPem {
        /// Which input.
        input: String,
        /// What was looked for: `certificate` or `private key`.
        expected: &'static str,
    },
    /// An input is not well-formed PEM (bad base64, a section without its end line, ...).
    #[error("{input}: bad PEM: {detail}")]
    BadPem {
        /// Which input.
        input: String,
        /// What is wrong.
        detail: String,
    },
    /// A certificate that does not parse as X.509, or that cannot serve its purpose (a CA
    /// certificate that is not a CA).
    #[error("{input}: unusable certificate: {detail}")]
    BadCertificate {
        /// Which input.
        input: String,
        /// What is wrong.
        detail: String,
    },
    /// A private key that cannot be used: an unsupported algorithm, a malformed key, or not
    /// the key of its certificate.
    #[error("{input}: unusable private key: {detail}")]
    Key {
        /// Which input.
        input: String,
        /// What is wrong.
        detail: String,
    },
    /// A node certificate that the CA did not issue (checked when a [`TlsConfig`] is made,
    /// so that a mismatch is reported at start rather than by every peer).
    #[error("{input}: not issued by the CA: {detail}")]
    NotIssuedByCa {
        /// Which input.
        input: String,
        /// What rustls's chain check says.
        detail: String,
    },
    /// A certificate with no `just-hungry://` identity URI.
    #[error(
        "{input}: no just-hungry://<role>/<name> identity URI in its subject alternative names"
    )]
    NoIdentityUri {
        /// Which certificate.
        input: String,
    },
    /// A certificate with more than one `just-hungry://` identity URI.
    #[error("{input}: {count} just-hungry:// identity URIs; a certificate must name exactly one")]
    MultipleIdentityUris {
        /// Which certificate.
        input: String,
        /// How many it names.
        count: usize,
    },
    /// An identity URI that does not say `just-hungry://<role>/<name>`.
    #[error("`{uri}` is not an identity URI (just-hungry://<role>/<name>): {reason}")]
    BadIdentityUri {
        /// The URI (its first 200 characters).
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A node name that is not 1 to [`MAX_NODE_NAME_BYTES`] bytes of `[A-Za-z0-9._-]`, or
    /// that cannot be used where it was given (`ca` as a file name, a name given twice).
    #[error("invalid node name `{name}`: {reason}")]
    InvalidName {
        /// The name (its first 200 characters).
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A reload found a certificate naming another identity than the node's: a node keeps
    /// its identity for its lifetime (its peers, its registration and its protocol state
    /// know it by that name), so the new certificate is not used.
    #[error(
        "{input}: names {found}, but this node is {current}; restart the node to change its identity"
    )]
    IdentityChanged {
        /// Which certificate.
        input: String,
        /// The node's identity, from the certificate it started with.
        current: Box<Identity>,
        /// The identity the new certificate names.
        found: Box<Identity>,
    },
    /// rustls refused to build a configuration from otherwise well-formed inputs.
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
    /// The peer presented no certificate (never the case after a handshake of these
    /// configurations, which require one).
    #[error("the peer presented no certificate")]
    NoPeerCertificate,
    /// rcgen could not generate or sign a certificate.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

fn truncated(s: &str) -> String {
    s.chars().take(200).collect()
}

/// The identity URI of `identity`: `just-hungry://<role>/<name>`. It does not check the name
/// (see [`check_node_name`]); [`parse_identity_uri`] gives back `identity` for a valid one.
pub fn identity_uri(identity: &Identity) -> String {
    format!("{IDENTITY_URI_SCHEME}{}/{}", identity.role, identity.name)
}

/// Whether `name` is a node name: 1 to [`MAX_NODE_NAME_BYTES`] bytes of `[A-Za-z0-9._-]`.
pub fn is_node_name(name: &str) -> bool {
    check_node_name(name).is_ok()
}

/// `Ok` if `name` is a node name (1 to [`MAX_NODE_NAME_BYTES`] bytes of `[A-Za-z0-9._-]`),
/// else [`TlsError::InvalidName`] saying why. A valid name holds no `/`, so it is also a safe
/// file name stem.
pub fn check_node_name(name: &str) -> Result<(), TlsError> {
    let invalid = |reason: String| TlsError::InvalidName {
        name: truncated(name),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("it is empty".into()));
    }
    if name.len() > MAX_NODE_NAME_BYTES {
        return Err(invalid(format!(
            "{} bytes long; at most {MAX_NODE_NAME_BYTES}",
            name.len()
        )));
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => Err(invalid(format!(
            "{c:?} is not a letter, digit, `.`, `_` or `-`"
        ))),
        None => Ok(()),
    }
}

/// The identity an identity URI names. Strict: exactly `just-hungry://<role>/<name>`, the
/// scheme and role in lower case, the name valid ([`check_node_name`]); no port, path, query,
/// fragment or percent-encoding.
pub fn parse_identity_uri(uri: &str) -> Result<Identity, TlsError> {
    let bad = |reason: String| TlsError::BadIdentityUri {
        uri: truncated(uri),
        reason,
    };
    let rest = uri
        .strip_prefix(IDENTITY_URI_SCHEME)
        .ok_or_else(|| bad(format!("it does not start with {IDENTITY_URI_SCHEME}")))?;
    let (role, name) = rest
        .split_once('/')
        .ok_or_else(|| bad("no /<name> after the role".into()))?;
    let role: NodeRole = role
        .parse()
        .map_err(|e: just_hungry_core::ids::UnknownRole| bad(e.to_string()))?;
    check_node_name(name).map_err(|e| bad(e.to_string()))?;
    Ok(Identity::new(role, name))
}

/// Whether a SAN URI claims to be an identity URI (scheme `just-hungry`, in any case): such a
/// URI counts towards the one a certificate must carry, and must then parse.
fn is_identity_uri_claim(uri: &str) -> bool {
    uri.len() >= IDENTITY_URI_SCHEME.len()
        && uri.as_bytes()[..IDENTITY_URI_SCHEME.len()]
            .eq_ignore_ascii_case(IDENTITY_URI_SCHEME.as_bytes())
}

/// What a node certificate says: its identity, and when it starts being valid.
struct LeafInfo {
    identity: Identity,
    not_before: UnixTime,
}

// x509-parser, not rustls-webpki (which rustls uses to verify chains): webpki checks names
// against a reference but does not expose the URIs in a certificate. x509-parser is the
// rusticata parser that rcgen itself uses to read a CA back, so it adds no second parser;
// without default features it pulls in no crypto at all. This runs once per connection
// (`peer_identity`) and once per configuration load.
fn leaf_info(der: &[u8], input: &str) -> Result<LeafInfo, TlsError> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let bad = |detail: String| TlsError::BadCertificate {
        input: input.to_owned(),
        detail,
    };
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
    let names = cert
        .subject_alternative_name()
        .map_err(|e| bad(e.to_string()))?;
    let uris: Vec<&str> = names
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) if is_identity_uri_claim(uri) => Some(*uri),
            _ => None,
        })
        .collect();
    let identity = match uris.as_slice() {
        [] => {
            return Err(TlsError::NoIdentityUri {
                input: input.to_owned(),
            });
        }
        [uri] => parse_identity_uri(uri)?,
        _ => {
            return Err(TlsError::MultipleIdentityUris {
                input: input.to_owned(),
                count: uris.len(),
            });
        }
    };
    let not_before = u64::try_from(cert.validity().not_before.timestamp()).unwrap_or(0);
    Ok(LeafInfo {
        identity,
        not_before: UnixTime::since_unix_epoch(Duration::from_secs(not_before)),
    })
}

/// The identity in a certificate: its one `just-hungry://` SAN URI. Fails if the
/// certificate does not parse, names no identity URI or several, or names a bad one. It does
/// not verify the certificate.
pub fn certificate_identity(der: &CertificateDer<'_>) -> Result<Identity, TlsError> {
    Ok(leaf_info(der, "the certificate")?.identity)
}

/// The identity in the peer's leaf certificate, on a connection whose handshake is done:
/// verified by the handshake (chained to the cluster's CA) when the connection comes from
/// [`TlsConfig::acceptor`] or [`TlsConfig::connector`]. Pass `stream.get_ref().1` of a
/// `tokio_rustls` stream. Fails with [`TlsError::NoPeerCertificate`] before the handshake,
/// and if the certificate names no identity, several, or a bad one.
pub fn peer_identity(conn: &rustls::CommonState) -> Result<Identity, TlsError> {
    let leaf = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or(TlsError::NoPeerCertificate)?;
    Ok(leaf_info(leaf, "the peer's certificate")?.identity)
}

/// The server name to give [`TlsConnector::connect`]: [`SERVER_NAME`], a placeholder. The
/// connector sends no SNI and checks no name: who the server is comes from its identity URI
/// ([`peer_identity`]).
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from(SERVER_NAME).expect("SERVER_NAME is a valid DNS name")
}

/// Verifies a server's certificate as rustls's `WebPkiServerVerifier` does (chain up to the
/// CA, validity period, server-authentication usage, handshake signature), with the same
/// functions, but without matching a host name.
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
        let cert = ParsedCertificate::try_from(end_entity)?;
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
        // Unreachable: the connector speaks TLS 1.3 only.
        Err(rustls::PeerIncompatible::Tls12NotOffered.into())
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

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn pem_error(input: &str, expected: &'static str, error: pem::Error) -> TlsError {
    match error {
        pem::Error::NoItemsFound => TlsError::NoPem {
            input: input.to_owned(),
            expected,
        },
        other => TlsError::BadPem {
            input: input.to_owned(),
            detail: other.to_string(),
        },
    }
}

fn certificates(pem: &[u8], input: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| pem_error(input, "certificate", e))?;
    if certs.is_empty() {
        return Err(pem_error(input, "certificate", pem::Error::NoItemsFound));
    }
    Ok(certs)
}

/// Names of the three inputs of a configuration, for error messages.
struct Inputs<'a> {
    ca: &'a str,
    cert: &'a str,
    key: &'a str,
}

/// One loaded configuration: what a reload swaps.
struct Inner {
    identity: Identity,
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

fn build(
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
    inputs: Inputs<'_>,
) -> Result<Inner, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());

    let mut roots = RootCertStore::empty();
    for ca in certificates(ca_pem, inputs.ca)? {
        roots.add(ca).map_err(|e| TlsError::BadCertificate {
            input: inputs.ca.to_owned(),
            detail: e.to_string(),
        })?;
    }
    let roots = Arc::new(roots);

    let chain = certificates(cert_pem, inputs.cert)?;
    let leaf = leaf_info(&chain[0], inputs.cert)?;
    // The chain must lead to the CA. Checked at the certificate's own start of validity: its
    // validity period is for the peers to check in every handshake, and an expired
    // certificate may still be loaded (to see what peers make of it).
    let parsed = ParsedCertificate::try_from(&chain[0]).map_err(|e| TlsError::BadCertificate {
        input: inputs.cert.to_owned(),
        detail: e.to_string(),
    })?;
    rustls::client::verify_server_cert_signed_by_trust_anchor(
        &parsed,
        &roots,
        &chain[1..],
        leaf.not_before,
        provider.signature_verification_algorithms.all,
    )
    .map_err(|e| TlsError::NotIssuedByCa {
        input: inputs.cert.to_owned(),
        detail: e.to_string(),
    })?;

    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| pem_error(inputs.key, "private key", e))?;
    let certified = Arc::new(certified_key(chain, key, &provider, inputs.key)?);

    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::BadCertificate {
                input: inputs.ca.to_owned(),
                detail: e.to_string(),
            })?;
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(client_verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified.clone())));
    server.session_storage = Arc::new(NoServerSessionStorage {});
    server.send_tls13_tickets = 0;

    let server_verifier = Arc::new(ClusterServerVerifier {
        roots,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(server_verifier)
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    client.resumption = Resumption::disabled();
    client.enable_sni = false;

    Ok(Inner {
        identity: leaf.identity,
        acceptor: TlsAcceptor::from(Arc::new(server)),
        connector: TlsConnector::from(Arc::new(client)),
    })
}

/// The chain and its key, checked to belong together.
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
    input: &str,
) -> Result<CertifiedKey, TlsError> {
    let unusable = |detail: String| TlsError::Key {
        input: input.to_owned(),
        detail,
    };
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| unusable(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(unusable("it is not the key of the certificate".into()))
        }
        Err(e) => Err(unusable(e.to_string())),
    }
}

/// What a [`TlsConfig`] was made from, to read again on [`TlsConfig::reload`].
#[derive(Debug)]
enum Source {
    Pem,
    Files {
        ca: PathBuf,
        cert: PathBuf,
        key: PathBuf,
    },
}

impl Source {
    fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Inner, TlsError> {
        let (ca_name, cert_name, key_name) = (
            ca.display().to_string(),
            cert.display().to_string(),
            key.display().to_string(),
        );
        build(
            &read(ca)?,
            &read(cert)?,
            &read(key)?,
            Inputs {
                ca: &ca_name,
                cert: &cert_name,
                key: &key_name,
            },
        )
    }
}

struct Shared {
    source: Source,
    current: RwLock<Arc<Inner>>,
}

/// One node's TLS setup: the cluster's CA, this node's certificate chain and key, and the
/// rustls configurations made of them (TLS 1.3 only, `ring`). Cheap to clone: the clones
/// share one configuration, reloads included. Its `Debug` shows the identity and the files,
/// never the key.
#[derive(Clone)]
pub struct TlsConfig {
    shared: Arc<Shared>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("identity", &self.identity())
            .field("source", &self.shared.source)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    fn new(source: Source, inner: Inner) -> Self {
        TlsConfig {
            shared: Arc::new(Shared {
                source,
                current: RwLock::new(Arc::new(inner)),
            }),
        }
    }

    /// From PEM text: the CA certificate (several, while CAs are rotated: each is trusted),
    /// this node's certificate chain (leaf first) and its private key (PKCS#8, SEC1 or
    /// PKCS#1). Fails if any does not parse, the leaf names no valid identity URI or several,
    /// the CA did not issue it, or the key is not the leaf's. [`TlsConfig::reload`] then has
    /// nothing to read: it returns `Ok` and changes nothing.
    pub fn from_pem(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsConfig, TlsError> {
        let inputs = Inputs {
            ca: "the CA PEM",
            cert: "the certificate PEM",
            key: "the key PEM",
        };
        Ok(Self::new(
            Source::Pem,
            build(ca_pem, cert_pem, key_pem, inputs)?,
        ))
    }

    /// From three PEM files, as [`TlsConfig::from_pem`]; the paths are remembered for
    /// [`TlsConfig::reload`], and errors name the file at fault.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<TlsConfig, TlsError> {
        let inner = Source::load(ca, cert, key)?;
        let source = Source::Files {
            ca: ca.to_owned(),
            cert: cert.to_owned(),
            key: key.to_owned(),
        };
        Ok(Self::new(source, inner))
    }

    /// From a directory as [`write_dir`] (and `cargo run --example certs`) writes it:
    /// `dir/ca.pem`, `dir/<name>.pem` and `dir/<name>.key`, as [`TlsConfig::from_files`].
    /// `name` is the node's name (`replica-1`, `frontend`, `client`): it must be a valid node
    /// name ([`check_node_name`]), so it cannot point outside `dir`.
    pub fn from_dir(dir: &Path, name: &str) -> Result<TlsConfig, TlsError> {
        check_node_name(name)?;
        let (cert, key) = node_paths(dir, name);
        Self::from_files(&dir.join(CA_CERT_FILE), &cert, &key)
    }

    fn inner(&self) -> Arc<Inner> {
        // A poisoned lock still holds a complete configuration: swaps are single writes.
        self.shared
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The identity in this node's own certificate (its leaf's identity URI); after a
    /// [`TlsConfig::reload`], the new certificate's.
    pub fn identity(&self) -> Identity {
        self.inner().identity.clone()
    }

    /// The accepting side: requires a client certificate chained to the CA (client
    /// authentication allowed) and presents this node's certificate; TLS 1.3 only, no session
    /// resumption. Read [`peer_identity`] after the handshake.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.inner().acceptor.clone()
    }

    /// The connecting side: presents this node's certificate and verifies the server's chain
    /// against the CA, but no host name (see the module docs); TLS 1.3 only, no SNI, no session
    /// resumption. Connect with [`server_name`], then read [`peer_identity`].
    pub fn connector(&self) -> TlsConnector {
        self.inner().connector.clone()
    }

    /// Reads the files this configuration was made from again and, if they make a valid
    /// configuration, swaps it in atomically: later [`TlsConfig::acceptor`],
    /// [`TlsConfig::connector`] and [`TlsConfig::identity`] calls (on every clone) use the new
    /// certificate; connections already open keep theirs. The new certificate must name the
    /// same identity ([`TlsError::IdentityChanged`] otherwise): a node's identity is fixed for
    /// its lifetime. If the files are not valid, the current configuration stays and the
    /// error is returned.
    /// Made by [`TlsConfig::from_pem`], there is nothing to read: `Ok`, nothing changes.
    pub fn reload(&self) -> Result<(), TlsError> {
        let Source::Files { ca, cert, key } = &self.shared.source else {
            return Ok(());
        };
        let inner = Arc::new(Source::load(ca, cert, key)?);
        let current = self.identity();
        if inner.identity != current {
            return Err(TlsError::IdentityChanged {
                input: cert.display().to_string(),
                current: Box::new(current),
                found: Box::new(inner.identity.clone()),
            });
        }
        *self
            .shared
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = inner;
        Ok(())
    }
}

/// The CA certificate's file in a directory of certificates.
pub const CA_CERT_FILE: &str = "ca.pem";

/// The CA key's file in a directory of certificates (only where more certificates are issued).
pub const CA_KEY_FILE: &str = "ca.key";

fn node_paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    )
}

/// One node's certificate and private key, in PEM, as [`DevPki::issue`] makes them.
#[derive(Clone)]
pub struct NodeCert {
    /// Whom the certificate names.
    pub identity: Identity,
    /// The certificate.
    pub cert_pem: String,
    /// Its private key, PKCS#8 (keep it secret).
    pub key_pem: String,
}

impl fmt::Debug for NodeCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeCert")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// A development CA (ECDSA P-256, valid for [`DEV_CA_VALIDITY`]) that issues node
/// certificates, for `cargo run --example certs` and the tests. Its key is in memory:
/// [`DevPki::write_ca_key`] saves it so that [`DevPki::load`] can issue more later. Its
/// `Debug` never shows the key.
pub struct DevPki {
    /// The CA certificate, PEM: every node's trust anchor (`ca.pem`).
    pub ca_cert_pem: String,
    /// The CA's private key, PKCS#8 PEM (`ca.key`): whoever holds it can make any identity.
    pub ca_key_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl fmt::Debug for DevPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevPki").finish_non_exhaustive()
    }
}

/// `now + later - earlier` as rcgen's dates are (`time::OffsetDateTime`), at most the end of
/// year 9999 (the last date X.509 can write): a huge validity means "forever", not a panic.
fn at(now: SystemTime, later: Duration, earlier: Duration) -> time::OffsetDateTime {
    let last = rcgen::date_time_ymd(9999, 12, 31);
    let offset = |d: Duration| time::Duration::try_from(d).unwrap_or(time::Duration::MAX);
    time::OffsetDateTime::from(now)
        .checked_add(offset(later))
        .and_then(|t| t.checked_sub(offset(earlier)))
        .map_or(last, |t| t.min(last))
}

impl DevPki {
    /// A fresh CA whose subject is `just-hungry CA <cluster_name>`: self-signed, ECDSA P-256,
    /// valid for [`DEV_CA_VALIDITY`] from [`CLOCK_SKEW_ALLOWANCE`] ago, allowed to sign node
    /// certificates only (path length 0).
    pub fn generate(cluster_name: &str) -> Result<DevPki, TlsError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("just-hungry CA {cluster_name}"),
        );
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let now = SystemTime::now();
        params.not_before = at(now, Duration::ZERO, CLOCK_SKEW_ALLOWANCE);
        params.not_after = at(now, DEV_CA_VALIDITY, Duration::ZERO);
        let ca_cert_pem = params.self_signed(&key)?.pem();
        Ok(DevPki {
            ca_cert_pem,
            ca_key_pem: key.serialize_pem(),
            issuer: rcgen::Issuer::new(params, key),
        })
    }

    /// A certificate for `identity`, signed by this CA: ECDSA P-256 with a fresh key, its only
    /// subject alternative name the identity URI, usable for both server and client
    /// authentication, not a CA, valid from [`CLOCK_SKEW_ALLOWANCE`] ago until `valid_for`
    /// from now. Fails if the identity's name is not a valid node name.
    pub fn issue(&self, identity: &Identity, valid_for: Duration) -> Result<NodeCert, TlsError> {
        check_node_name(&identity.name)?;
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, identity.to_string());
        let uri = rcgen::string::Ia5String::try_from(identity_uri(identity))?;
        params.subject_alt_names = vec![rcgen::SanType::URI(uri)];
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let now = SystemTime::now();
        params.not_before = at(now, Duration::ZERO, CLOCK_SKEW_ALLOWANCE);
        params.not_after = at(now, valid_for, Duration::ZERO);
        // The serial number is rcgen's default: derived from the fresh key, so unique.
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(NodeCert {
            identity: identity.clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The [`TlsConfig`] of a node holding a certificate issued now for `identity`, valid for
    /// `valid_for` ([`DevPki::issue`], [`TlsConfig::from_pem`]): for in-process clusters and
    /// tests, with no files.
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

    /// Writes the CA's key to `dir/ca.key` (mode 0600 on Unix; `dir` is made if missing),
    /// so that [`DevPki::load`] can issue more certificates later; returns the path.
    /// [`write_dir`] never writes it: nodes need only `ca.pem`.
    pub fn write_ca_key(&self, dir: &Path) -> Result<PathBuf, TlsError> {
        make_dir(dir)?;
        let path = dir.join(CA_KEY_FILE);
        write_file(&path, &self.ca_key_pem, true)?;
        Ok(path)
    }

    /// The CA saved in `dir`: `ca.pem` ([`write_dir`]) and `ca.key`
    /// ([`DevPki::write_ca_key`]), to issue more certificates with it. Fails if either is
    /// missing or unusable, `ca.pem` is not a CA certificate, or the key is not its key.
    pub fn load(dir: &Path) -> Result<DevPki, TlsError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let (cert_input, key_input) = (
            cert_path.display().to_string(),
            key_path.display().to_string(),
        );
        let ca_cert_pem = String::from_utf8_lossy(&read(&cert_path)?).into_owned();
        let ca_key_pem = String::from_utf8_lossy(&read(&key_path)?).into_owned();

        let ca_der = certificates(ca_cert_pem.as_bytes(), &cert_input)?.remove(0);
        let bad_cert = |detail: String| TlsError::BadCertificate {
            input: cert_input.clone(),
            detail,
        };
        let (_, parsed) =
            x509_parser::parse_x509_certificate(&ca_der).map_err(|e| bad_cert(e.to_string()))?;
        if !parsed.is_ca() {
            return Err(bad_cert("not a CA certificate".into()));
        }
        let key = rcgen::KeyPair::from_pem(&ca_key_pem).map_err(|e| TlsError::Key {
            input: key_input.clone(),
            detail: e.to_string(),
        })?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(TlsError::Key {
                input: key_input,
                detail: format!("it is not the key of {cert_input}"),
            });
        }
        let issuer =
            rcgen::Issuer::from_ca_cert_der(&ca_der, key).map_err(|e| bad_cert(e.to_string()))?;
        Ok(DevPki {
            ca_cert_pem,
            ca_key_pem,
            issuer,
        })
    }
}

/// Writes a directory of certificates as [`TlsConfig::from_dir`] reads it: `dir/ca.pem`
/// (`ca_pem`), and `dir/<name>.pem` and `dir/<name>.key` (mode 0600 on Unix) for each of
/// `certs`; never the CA's key (see [`DevPki::write_ca_key`]). `dir` is made if missing (mode
/// 0700 on Unix). Each file is written whole, then renamed into place, so a node reloading
/// meanwhile reads the old file or the new one, never half of one. Fails before writing
/// anything if a name is invalid, is `ca`, or appears twice. Returns the paths written, in
/// order.
pub fn write_dir(dir: &Path, ca_pem: &str, certs: &[NodeCert]) -> Result<Vec<PathBuf>, TlsError> {
    let mut seen = HashSet::new();
    for cert in certs {
        let name = &cert.identity.name;
        check_node_name(name)?;
        let reason = if name == "ca" {
            "`ca` is the name of the CA's files"
        } else if !seen.insert(name.as_str()) {
            "two certificates for one name"
        } else {
            continue;
        };
        return Err(TlsError::InvalidName {
            name: name.clone(),
            reason: reason.into(),
        });
    }
    make_dir(dir)?;
    let mut written = Vec::with_capacity(1 + 2 * certs.len());
    let ca_path = dir.join(CA_CERT_FILE);
    write_file(&ca_path, ca_pem, false)?;
    written.push(ca_path);
    for cert in certs {
        let (cert_path, key_path) = node_paths(dir, &cert.identity.name);
        write_file(&cert_path, &cert.cert_pem, false)?;
        write_file(&key_path, &cert.key_pem, true)?;
        written.extend([cert_path, key_path]);
    }
    Ok(written)
}

fn make_dir(dir: &Path) -> Result<(), TlsError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| TlsError::Write {
        path: dir.to_owned(),
        source,
    })
}

/// Writes `contents` to a temporary file next to `path` (mode 0600 if `secret`, on Unix),
/// then renames it over `path`.
fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), TlsError> {
    use std::io::Write;
    let fail = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if secret { 0o600 } else { 0o644 });
    #[cfg(not(unix))]
    let _ = secret;
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&temporary, path)) {
        let _ = std::fs::remove_file(&temporary);
        return Err(fail(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_uris_round_trip() {
        for role in NodeRole::ALL {
            for name in [
                "replica-1",
                "a",
                "Node_2.eu-west",
                &"x".repeat(MAX_NODE_NAME_BYTES),
            ] {
                let id = Identity::new(role, name);
                let uri = identity_uri(&id);
                assert_eq!(uri, format!("just-hungry://{}/{name}", role.as_str()));
                assert_eq!(parse_identity_uri(&uri).unwrap(), id);
            }
        }
        assert_eq!(
            identity_uri(&Identity::new(NodeRole::Replica, "replica-1")),
            "just-hungry://replica/replica-1"
        );
    }

    #[test]
    fn bad_identity_uris_are_refused() {
        let too_long = format!(
            "just-hungry://client/{}",
            "x".repeat(MAX_NODE_NAME_BYTES + 1)
        );
        for bad in [
            "",
            "https://replica/replica-1",
            "just-hungry:/replica/replica-1",
            "JUST-HUNGRY://replica/replica-1",
            "just-hungry://Replica/replica-1",
            "just-hungry://replica",
            "just-hungry://replica/",
            "just-hungry:///replica-1",
            "just-hungry://admin/root",
            "just-hungry://replica:443/replica-1",
            "just-hungry://replica/a b",
            "just-hungry://replica/a/b",
            "just-hungry://replica/replica-1/",
            "just-hungry://replica/replica-1?x=1",
            "just-hungry://replica/replica-1#f",
            "just-hungry://replica/replica%2D1",
            "just-hungry://replica/réplica",
            too_long.as_str(),
        ] {
            assert!(
                matches!(
                    parse_identity_uri(bad),
                    Err(TlsError::BadIdentityUri { .. })
                ),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn invalid_names_are_refused() {
        for good in [
            "a",
            "replica-1",
            "A.b_c-9",
            &"z".repeat(MAX_NODE_NAME_BYTES),
        ] {
            assert!(is_node_name(good), "{good:?}");
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "../x",
            "é",
            "tab\t",
            "nul\0",
            &"z".repeat(MAX_NODE_NAME_BYTES + 1),
        ] {
            assert!(
                matches!(check_node_name(bad), Err(TlsError::InvalidName { .. })),
                "{bad:?} was accepted"
            );
        }
        let pki = DevPki::generate("test").unwrap();
        let bad = Identity::new(NodeRole::Client, "no/slashes");
        assert!(matches!(
            pki.issue(&bad, Duration::from_secs(60)),
            Err(TlsError::InvalidName { .. })
        ));
        assert!(matches!(
            TlsConfig::from_dir(Path::new("/nonexistent"), "../etc"),
            Err(TlsError::InvalidName { .. })
        ));
    }

    #[test]
    fn identity_uri_claims_are_case_insensitive_on_the_scheme() {
        assert!(is_identity_uri_claim("just-hungry://replica/a"));
        assert!(is_identity_uri_claim("Just-Hungry://x"));
        assert!(!is_identity_uri_claim("spiffe://cluster/replica"));
        assert!(!is_identity_uri_claim("just-hungry:"));
    }

    #[test]
    fn an_issued_certificate_names_its_identity_and_makes_a_config() {
        let pki = DevPki::generate("test").unwrap();
        let id = Identity::new(NodeRole::Frontend, "frontend");
        let config = pki.config_for(&id, Duration::from_secs(3600)).unwrap();
        assert_eq!(config.identity(), id);
        assert!(format!("{config:?}").contains("frontend"));
        assert!(!format!("{config:?}").contains("PRIVATE"));
        assert!(config.reload().is_ok(), "nothing to reload from PEM text");
        assert_eq!(config.identity(), id);

        let cert = pki.issue(&id, Duration::from_secs(60)).unwrap();
        assert_eq!(
            certificate_identity(
                &CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap()
            )
            .unwrap(),
            id
        );
        let other = DevPki::generate("other").unwrap();
        let foreign = other.issue(&id, Duration::from_secs(60)).unwrap();
        let ca = pki.ca_cert_pem.as_bytes();
        let mismatched =
            TlsConfig::from_pem(ca, cert.cert_pem.as_bytes(), foreign.key_pem.as_bytes());
        assert!(
            matches!(mismatched, Err(TlsError::Key { .. })),
            "{mismatched:?}"
        );
        let not_ours =
            TlsConfig::from_pem(ca, foreign.cert_pem.as_bytes(), foreign.key_pem.as_bytes());
        assert!(
            matches!(not_ours, Err(TlsError::NotIssuedByCa { .. })),
            "{not_ours:?}"
        );
        let no_uri = TlsConfig::from_pem(ca, ca, cert.key_pem.as_bytes());
        assert!(
            matches!(no_uri, Err(TlsError::NoIdentityUri { .. })),
            "{no_uri:?}"
        );
        let no_key = TlsConfig::from_pem(ca, cert.cert_pem.as_bytes(), cert.cert_pem.as_bytes());
        assert!(matches!(no_key, Err(TlsError::NoPem { .. })), "{no_key:?}");
        let garbled = cert.key_pem.replace("-----END PRIVATE KEY-----", "");
        let bad_pem = TlsConfig::from_pem(ca, cert.cert_pem.as_bytes(), garbled.as_bytes());
        assert!(
            matches!(bad_pem, Err(TlsError::BadPem { .. })),
            "{bad_pem:?}"
        );
    }

    #[test]
    fn a_certificate_with_two_identity_uris_is_refused() {
        let pki = DevPki::generate("test").unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = ["just-hungry://replica/a", "just-hungry://frontend/frontend"]
            .into_iter()
            .map(|uri| rcgen::SanType::URI(uri.try_into().unwrap()))
            .collect();
        let cert = params.signed_by(&key, &pki.issuer).unwrap();
        assert!(matches!(
            certificate_identity(cert.der()),
            Err(TlsError::MultipleIdentityUris { count: 2, .. })
        ));
    }
}
