//! Test support for `check tls`: a throwaway PKI made with rcgen and real TLS servers on
//! loopback (tokio-rustls). Nothing here is a double: the servers speak real TLS with the
//! certificates the tests create.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{ServerConfig, SignatureAlgorithm, SignatureScheme, SupportedProtocolVersion};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A certificate authority for one test.
pub struct Ca {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

/// A served chain (leaf first) with the leaf's private key.
pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// A validity window relative to now, in days.
pub fn window(from_days: i64, to_days: i64) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (
        now + time::Duration::days(from_days),
        now + time::Duration::days(to_days),
    )
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn leaf_params(names: &[&str], validity: (OffsetDateTime, OffsetDateTime)) -> CertificateParams {
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("valid SANs");
    params.distinguished_name = dn(names.first().copied().unwrap_or("leaf"));
    params.not_before = validity.0;
    params.not_after = validity.1;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params
}

impl Ca {
    pub fn new(cn: &str) -> Ca {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = dn(cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA cert");
        Ca { cert, key }
    }

    /// An intermediate CA signed by this CA.
    pub fn intermediate(&self, cn: &str) -> Ca {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("intermediate key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = dn(cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("intermediate cert");
        Ca { cert, key }
    }

    /// Writes the CA certificate as PEM into `dir` and returns the path.
    pub fn write_pem(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.cert.pem()).expect("write CA PEM");
        path
    }

    /// A P-256 leaf for `names` (DNS names or IP literals) signed by this CA.
    pub fn leaf(&self, names: &[&str], validity: (OffsetDateTime, OffsetDateTime)) -> Leaf {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("leaf key");
        let cert = leaf_params(names, validity)
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign leaf");
        Leaf {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }

    /// An RSA-1024 leaf signed by this CA. ring refuses RSA keys below 2048 bits, so the key is
    /// made and used for signing with the `rsa` crate.
    pub fn rsa1024_leaf(
        &self,
        names: &[&str],
        validity: (OffsetDateTime, OffsetDateTime),
    ) -> (Vec<CertificateDer<'static>>, Arc<dyn SigningKey>) {
        use rsa::pkcs8::EncodePublicKey;
        let private =
            rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).expect("RSA-1024 key");
        let spki = private.to_public_key().to_public_key_der().expect("SPKI");
        let public = rcgen::SubjectPublicKeyInfo::from_der(spki.as_bytes()).expect("rcgen SPKI");
        let cert = leaf_params(names, validity)
            .signed_by(&public, &self.cert, &self.key)
            .expect("sign RSA leaf");
        (
            vec![cert.der().clone()],
            Arc::new(Rsa1024(Arc::new(private))),
        )
    }
}

/// A self-signed leaf (its own issuer), as a misconfigured server would serve.
pub fn self_signed_leaf(names: &[&str]) -> Leaf {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let cert = leaf_params(names, window(-1, 90))
        .self_signed(&key)
        .expect("self-signed");
    Leaf {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

/// An RSA-PSS signer backed by the `rsa` crate, for keys ring will not load.
#[derive(Debug)]
struct Rsa1024(Arc<rsa::RsaPrivateKey>);

impl SigningKey for Rsa1024 {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::RSA_PSS_SHA256)
            .then(|| Box::new(PssSigner(self.0.clone())) as Box<dyn Signer>)
    }
    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::RSA
    }
}

#[derive(Debug)]
struct PssSigner(Arc<rsa::RsaPrivateKey>);

impl Signer for PssSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        use rsa::signature::{RandomizedSigner, SignatureEncoding};
        let key = rsa::pss::BlindedSigningKey::<sha2::Sha256>::new((*self.0).clone());
        let sig = key
            .try_sign_with_rng(&mut rsa::rand_core::OsRng, message)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        Ok(sig.to_vec())
    }
    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::RSA_PSS_SHA256
    }
}

#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn builder(
    versions: &[&'static SupportedProtocolVersion],
) -> rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier> {
    ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .expect("protocol versions")
}

/// A server config for a chain and key, restricted to `versions`, offering ALPN h2/http1.1.
pub fn server_config(leaf: Leaf, versions: &[&'static SupportedProtocolVersion]) -> ServerConfig {
    let mut cfg = builder(versions)
        .with_no_client_auth()
        .with_single_cert(leaf.chain, leaf.key)
        .expect("server cert");
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg
}

/// A server config serving a chain with an arbitrary signing key.
pub fn server_config_with_key(
    chain: Vec<CertificateDer<'static>>,
    key: Arc<dyn SigningKey>,
) -> ServerConfig {
    builder(rustls::ALL_VERSIONS)
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(Arc::new(CertifiedKey::new(chain, key)))))
}

/// A server on 127.0.0.1 that stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub fn from_parts(addr: SocketAddr, task: JoinHandle<()>) -> Server {
        Server { addr, task }
    }
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    /// `https://HOST:PORT` for this server.
    pub fn url(&self, host: &str) -> String {
        format!("https://{host}:{}", self.addr.port())
    }
}

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = l.local_addr().expect("local addr");
    (l, addr)
}

/// A real TLS server: handshakes, answers one small HTTP response, closes.
pub async fn tls_server(config: ServerConfig) -> Server {
    tls_server_answering(
        config,
        Some(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"),
    )
    .await
}

/// A TLS server that completes the handshake, then writes `answer` (or, with `None`, says
/// nothing and holds the connection for a minute).
pub async fn tls_server_answering(config: ServerConfig, answer: Option<&'static [u8]>) -> Server {
    let (l, addr) = listener().await;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(Ok(mut tls)) =
                    tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await
                {
                    match answer {
                        Some(a) => {
                            // Read the request head first (if the client sends one) so that the
                            // answer never races the client's write.
                            let mut head = Vec::new();
                            let mut buf = [0u8; 512];
                            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                                    match tls.read(&mut buf).await {
                                        Ok(0) | Err(_) => break,
                                        Ok(n) => head.extend_from_slice(&buf[..n]),
                                    }
                                }
                            })
                            .await;
                            let _ = tls.write_all(a).await;
                            let _ = tls.shutdown().await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(60)).await,
                    }
                }
            });
        }
    });
    Server { addr, task }
}

/// Accepts TCP and never sends a byte (holds each connection for a minute).
pub async fn silent_server() -> Server {
    let (l, addr) = listener().await;
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(tcp);
            });
        }
    });
    Server { addr, task }
}

/// A plain HTTP/1.1 server: whatever arrives, it answers `400 Bad Request` as nginx does to a
/// ClientHello on a plaintext port, then closes.
pub async fn plain_http_server() -> Server {
    let (l, addr) = listener().await;
    let task = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf)).await;
                let _ = tcp
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 11\r\nconnection: close\r\n\r\nbad request")
                    .await;
                let _ = tcp.shutdown().await;
                // Drain so that closing does not turn into a reset before the client reads.
                let _ = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf)).await;
            });
        }
    });
    Server { addr, task }
}

/// A port on 127.0.0.1 with nothing listening (bound, then released).
pub async fn closed_port() -> u16 {
    let (l, addr) = listener().await;
    drop(l);
    addr.port()
}

pub mod http_servers;
