//! Mutual TLS over real loopback sockets: who is accepted, who is refused, reloads. Every
//! certificate is made at test time by a fresh development CA; no key is committed.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use just_hungry_core::ids::{Identity, NodeRole};
use just_hungry_transport_tcp::tls::{
    DevPki, TlsConfig, TlsError, peer_identity, server_name, write_dir,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

const HOUR: Duration = Duration::from_secs(3600);

/// Every test's bound: far more than a loopback handshake needs.
async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), test)
        .await
        .expect("the test took more than 10 s")
}

fn replica(name: &str) -> Identity {
    Identity::new(NodeRole::Replica, name)
}

fn client(name: &str) -> Identity {
    Identity::new(NodeRole::Client, name)
}

/// A server on 127.0.0.1 that accepts one connection with `tls`, answers `ping` with `pong`
/// and returns the client's identity, or the handshake's error.
async fn serve_once(
    tls: &TlsConfig,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<Result<Identity, String>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let acceptor = tls.acceptor();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut secured = acceptor.accept(stream).await.map_err(|e| e.to_string())?;
        let identity = peer_identity(secured.get_ref().1).map_err(|e| e.to_string())?;
        let mut ping = [0; 4];
        secured
            .read_exact(&mut ping)
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(&ping, b"ping");
        secured
            .write_all(b"pong")
            .await
            .map_err(|e| e.to_string())?;
        secured.shutdown().await.map_err(|e| e.to_string())?;
        Ok(identity)
    });
    (address, server)
}

/// Connects to `address` with `connector`, sends `ping`, expects `pong`; returns the server's
/// identity, or the first error.
async fn ping(connector: &TlsConnector, address: std::net::SocketAddr) -> Result<Identity, String> {
    ping_presenting(connector, address)
        .await
        .map(|(identity, _)| identity)
}

/// As [`ping`], also returning the certificate the server presented.
async fn ping_presenting(
    connector: &TlsConnector,
    address: std::net::SocketAddr,
) -> Result<(Identity, CertificateDer<'static>), String> {
    let stream = TcpStream::connect(address).await.unwrap();
    let mut secured = connector
        .connect(server_name(), stream)
        .await
        .map_err(|e| e.to_string())?;
    let identity = peer_identity(secured.get_ref().1).map_err(|e| e.to_string())?;
    let leaf = secured
        .get_ref()
        .1
        .peer_certificates()
        .ok_or("no certificate")?[0]
        .clone();
    secured
        .write_all(b"ping")
        .await
        .map_err(|e| e.to_string())?;
    let mut pong = [0; 4];
    secured
        .read_exact(&mut pong)
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(&pong, b"pong");
    Ok((identity, leaf.into_owned()))
}

/// The certificate a server of `server_tls` presents to a client of `client_tls`.
async fn presented(server_tls: &TlsConfig, client_tls: &TlsConfig) -> CertificateDer<'static> {
    let (address, server) = serve_once(server_tls).await;
    let (_, leaf) = ping_presenting(&client_tls.connector(), address)
        .await
        .unwrap();
    server.await.unwrap().unwrap();
    leaf
}

#[tokio::test]
async fn two_nodes_of_one_ca_authenticate_each_other() {
    bounded(async {
        let pki = DevPki::generate("test").unwrap();
        let server_tls = pki.config_for(&replica("replica-1"), HOUR).unwrap();
        let client_tls = pki.config_for(&client("alice"), HOUR).unwrap();

        let (address, server) = serve_once(&server_tls).await;
        let seen_by_client = ping(&client_tls.connector(), address).await.unwrap();
        let seen_by_server = server.await.unwrap().unwrap();

        assert_eq!(seen_by_client, replica("replica-1"));
        assert_eq!(seen_by_server, client("alice"));
    })
    .await
}

/// Accepts any server certificate: for clients that must get as far as the server's own
/// checks.
#[derive(Debug)]
struct TrustAnyServer(rustls::crypto::WebPkiSupportedAlgorithms);

impl ServerCertVerifier for TrustAnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::PeerIncompatible::Tls12NotOffered.into())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[tokio::test]
async fn a_server_refuses_a_client_without_a_certificate() {
    bounded(async {
        let pki = DevPki::generate("test").unwrap();
        let server_tls = pki.config_for(&replica("replica-1"), HOUR).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let anonymous = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(TrustAnyServer(algorithms)))
            .with_no_client_auth();

        let (address, server) = serve_once(&server_tls).await;
        // In TLS 1.3 the client finishes its side of the handshake before the server checks
        // its (missing) certificate: the refusal shows on the server, and as an alert or a
        // closed connection on the client.
        let client = ping(&TlsConnector::from(Arc::new(anonymous)), address).await;
        let refused = server.await.unwrap().unwrap_err();
        assert!(client.is_err(), "the client got an answer: {client:?}");
        assert!(refused.contains("peer sent no certificates"), "{refused}");
    })
    .await
}

#[tokio::test]
async fn a_server_refuses_a_client_of_another_ca() {
    bounded(async {
        let pki = DevPki::generate("test").unwrap();
        let other = DevPki::generate("other").unwrap();
        let server_tls = pki.config_for(&replica("replica-1"), HOUR).unwrap();
        // The client trusts both CAs (so it accepts the server) but holds a certificate of
        // the other one.
        let foreign = other.issue(&client("mallory"), HOUR).unwrap();
        let both_cas = format!("{}{}", pki.ca_cert_pem, other.ca_cert_pem);
        let client_tls = TlsConfig::from_pem(
            both_cas.as_bytes(),
            foreign.cert_pem.as_bytes(),
            foreign.key_pem.as_bytes(),
        )
        .unwrap();

        let (address, server) = serve_once(&server_tls).await;
        let client = ping(&client_tls.connector(), address).await;
        let refused = server.await.unwrap().unwrap_err();
        assert!(client.is_err(), "the client got an answer: {client:?}");
        assert!(refused.contains("UnknownIssuer"), "{refused}");
    })
    .await
}

#[tokio::test]
async fn a_client_refuses_a_server_of_another_ca() {
    bounded(async {
        let pki = DevPki::generate("test").unwrap();
        let other = DevPki::generate("other").unwrap();
        let impostor = other.config_for(&replica("replica-1"), HOUR).unwrap();
        let client_tls = pki.config_for(&client("alice"), HOUR).unwrap();

        let (address, server) = serve_once(&impostor).await;
        let refused = ping(&client_tls.connector(), address).await.unwrap_err();
        assert!(refused.contains("UnknownIssuer"), "{refused}");
        assert!(server.await.unwrap().is_err());
    })
    .await
}

#[tokio::test]
async fn a_tls_1_2_client_hello_is_refused() {
    bounded(async {
        let pki = DevPki::generate("test").unwrap();
        let server_tls = pki.config_for(&replica("replica-1"), HOUR).unwrap();
        let (address, server) = serve_once(&server_tls).await;

        // rustls is built without TLS 1.2, so this ClientHello is written by hand: version
        // 1.2, no supported_versions extension, one ECDHE-ECDSA-AES128-GCM-SHA256 suite.
        let mut body = vec![0x03, 0x03];
        body.extend([0x42; 32]); // random
        body.push(0); // no session id
        body.extend([0x00, 0x02, 0xc0, 0x2b]); // cipher suites
        body.extend([0x01, 0x00]); // null compression
        let extensions: &[u8] = &[
            0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x17, // supported_groups: secp256r1
            0x00, 0x0b, 0x00, 0x02, 0x01, 0x00, // ec_point_formats: uncompressed
            0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03, // signature_algorithms
        ];
        body.extend((extensions.len() as u16).to_be_bytes());
        body.extend(extensions);
        let mut handshake = vec![0x01, 0x00];
        handshake.extend((body.len() as u16).to_be_bytes());
        handshake.extend(body);
        let mut record = vec![0x16, 0x03, 0x01];
        record.extend((handshake.len() as u16).to_be_bytes());
        record.extend(handshake);

        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(&record).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        // A fatal alert record: level 2, description 70 (protocol_version).
        assert_eq!(answer.first(), Some(&0x15), "not an alert: {answer:02x?}");
        assert_eq!(&answer[answer.len() - 2..], &[2, 70], "{answer:02x?}");
        assert!(server.await.unwrap().is_err());
    })
    .await
}

/// A directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("jh-tls-{label}-{}-{unique}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn a_reload_presents_the_new_certificate_and_a_bad_one_keeps_the_old() {
    bounded(async {
        let dir = TempDir::new("reload");
        let pki = DevPki::generate("test").unwrap();
        let (ca, cert, key) = (
            dir.path().join("ca.pem"),
            dir.path().join("node.pem"),
            dir.path().join("node.key"),
        );
        let install = |identity: &Identity| {
            let issued = pki.issue(identity, HOUR).unwrap();
            std::fs::write(&cert, &issued.cert_pem).unwrap();
            std::fs::write(&key, &issued.key_pem).unwrap();
            CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap()
        };
        std::fs::write(&ca, &pki.ca_cert_pem).unwrap();
        install(&replica("replica-1"));
        let server_tls = TlsConfig::from_files(&ca, &cert, &key).unwrap();
        let client_tls = pki.config_for(&client("alice"), HOUR).unwrap();
        assert_eq!(server_tls.identity(), replica("replica-1"));

        // A connection opened before the reload...
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let old_acceptor = server_tls.acceptor();
        let accepting = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            old_acceptor.accept(stream).await.unwrap()
        });
        let stream = TcpStream::connect(address).await.unwrap();
        let mut before = client_tls
            .connector()
            .connect(server_name(), stream)
            .await
            .unwrap();
        let mut before_server = accepting.await.unwrap();

        let renewed = install(&replica("replica-1"));
        server_tls.reload().unwrap();
        assert_eq!(server_tls.identity(), replica("replica-1"));

        // ...keeps its certificate and still works...
        assert_eq!(
            peer_identity(before.get_ref().1).unwrap(),
            replica("replica-1")
        );
        before.write_all(b"still").await.unwrap();
        let mut still = [0; 5];
        before_server.read_exact(&mut still).await.unwrap();
        assert_eq!(&still, b"still");

        // ...while the next one gets the new certificate.
        assert_eq!(presented(&server_tls, &client_tls).await, renewed);

        // A certificate naming another node: a node keeps its identity, so the reload is
        // refused and the renewed certificate stays.
        install(&replica("replica-2"));
        let error = server_tls.reload().unwrap_err();
        assert!(
            matches!(&error, TlsError::IdentityChanged { current, found, .. }
                if **current == replica("replica-1") && **found == replica("replica-2")),
            "{error:?}"
        );
        assert_eq!(server_tls.identity(), replica("replica-1"));
        assert_eq!(presented(&server_tls, &client_tls).await, renewed);

        // A corrupt key: the reload fails, naming the file, and the old configuration stays.
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nnot a key\n").unwrap();
        let error = server_tls.reload().unwrap_err();
        assert!(
            matches!(&error, TlsError::BadPem { input, .. } if input.ends_with("node.key")),
            "{error:?}"
        );
        assert_eq!(presented(&server_tls, &client_tls).await, renewed);

        // A missing file: the same.
        std::fs::remove_file(&cert).unwrap();
        assert!(matches!(
            server_tls.reload(),
            Err(TlsError::Read { path, .. }) if path == cert
        ));
        assert_eq!(server_tls.identity(), replica("replica-1"));
    })
    .await
}

#[tokio::test]
async fn a_written_directory_loads_and_a_loaded_ca_issues_more() {
    bounded(async {
        let dir = TempDir::new("dir");
        let pki = DevPki::generate("test").unwrap();
        let frontend = Identity::new(NodeRole::Frontend, "frontend");
        let certs = [
            pki.issue(&frontend, HOUR).unwrap(),
            pki.issue(&replica("replica-1"), HOUR).unwrap(),
        ];
        let written = write_dir(dir.path(), &pki.ca_cert_pem, &certs).unwrap();
        let names: Vec<_> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "ca.pem",
                "frontend.pem",
                "frontend.key",
                "replica-1.pem",
                "replica-1.key"
            ]
        );
        assert!(
            !dir.path().join("ca.key").exists(),
            "the CA key is not written"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |name: &str| {
                std::fs::metadata(dir.path().join(name))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777
            };
            assert_eq!(mode("frontend.key"), 0o600);
            assert_eq!(mode("replica-1.key"), 0o600);
        }
        assert!(matches!(
            DevPki::load(dir.path()),
            Err(TlsError::Read { .. })
        ));
        pki.write_ca_key(dir.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let key = std::fs::metadata(dir.path().join("ca.key")).unwrap();
            assert_eq!(key.permissions().mode() & 0o777, 0o600);
        }

        // The CA loaded back issues a certificate that the nodes of the first one accept.
        let reloaded = DevPki::load(dir.path()).unwrap();
        assert_eq!(reloaded.ca_cert_pem, pki.ca_cert_pem);
        let late = reloaded.issue(&client("late"), HOUR).unwrap();
        write_dir(dir.path(), &reloaded.ca_cert_pem, &[late]).unwrap();

        let server_tls = TlsConfig::from_dir(dir.path(), "replica-1").unwrap();
        let client_tls = TlsConfig::from_dir(dir.path(), "late").unwrap();
        assert_eq!(client_tls.identity(), client("late"));
        let (address, server) = serve_once(&server_tls).await;
        assert_eq!(
            ping(&client_tls.connector(), address).await.unwrap(),
            replica("replica-1")
        );
        assert_eq!(server.await.unwrap().unwrap(), client("late"));

        // `ca` would overwrite the CA's files; a name given twice, one of its own files.
        let ca_named = pki.issue(&client("ca"), HOUR).unwrap();
        assert!(matches!(
            write_dir(dir.path(), &pki.ca_cert_pem, &[ca_named]),
            Err(TlsError::InvalidName { .. })
        ));
        let twice = [
            pki.issue(&client("x"), HOUR).unwrap(),
            pki.issue(&replica("x"), HOUR).unwrap(),
        ];
        assert!(matches!(
            write_dir(dir.path(), &pki.ca_cert_pem, &twice),
            Err(TlsError::InvalidName { .. })
        ));
        // A key that is not the CA's.
        let other = DevPki::generate("other").unwrap();
        other.write_ca_key(dir.path()).unwrap();
        assert!(matches!(
            DevPki::load(dir.path()),
            Err(TlsError::Key { .. })
        ));
    })
    .await
}
