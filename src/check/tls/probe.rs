//! The network half of `check tls`: resolve, connect, handshake, and record what was served.
//!
//! The handshake uses rustls directly with a *recording* certificate verifier: it accepts any
//! chain during the handshake and records handshake-signature failures instead of aborting, so
//! that the served chain is captured even when it would not validate. Nothing is ever sent over
//! the connection after the handshake; the chain is judged afterwards (see [`super::judge`]), and
//! a recorded failure always turns into a *fail* reason, so letting the handshake finish cannot
//! make a bad endpoint pass.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::timeout_at;

use super::judge::TlsVersion;
use super::target::{CheckedName, ConnectTo, TlsTarget};

/// ALPN protocols offered, so that the evidence shows what the server would pick for HTTP.
pub const OFFERED_ALPN: [&str; 2] = ["h2", "http/1.1"];

/// How many of the peer's first bytes are kept to recognise a non-TLS peer.
const FIRST_BYTES: usize = 64;

/// Why no handshake facts could be gathered.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("DNS lookup of {host} failed: {message}")]
    Resolve { host: String, message: String },
    #[error("DNS lookup of {host} returned no address")]
    NoAddress { host: String },
    #[error("TCP connect to {addr} failed: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("timed out after {after:?} during {stage}")]
    Timeout {
        stage: &'static str,
        after: Duration,
    },
    #[error(
        "the peer at {addr} is not speaking TLS{hint}: it answered the ClientHello with \"{first_bytes}\""
    )]
    NotTls {
        addr: SocketAddr,
        /// The first bytes received, ASCII-escaped.
        first_bytes: String,
        /// " (it looks like plain HTTP)" when it does, else empty.
        hint: &'static str,
    },
    #[error(
        "the peer at {addr} closed the connection during the TLS handshake without a TLS alert"
    )]
    ClosedDuringHandshake { addr: SocketAddr },
    /// Decided, not an error: the server supports no protocol version ≥ TLS 1.2.
    #[error("the server negotiates no TLS version this check accepts (TLSv1.2 or TLSv1.3 were offered): {0}")]
    NoCommonProtocol(String),
    #[error("TLS handshake with {addr} failed: {message}")]
    Handshake { addr: SocketAddr, message: String },
}

impl ProbeError {
    /// The stage for evidence.
    pub fn stage(&self) -> &'static str {
        match self {
            ProbeError::Resolve { .. } | ProbeError::NoAddress { .. } => "resolve",
            ProbeError::Connect { .. } => "connect",
            ProbeError::Timeout { stage, .. } => stage,
            _ => "handshake",
        }
    }
}

/// What a completed handshake showed.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// The answer to the [`HttpGet`] sent after the handshake, if one was asked for: the status
    /// code, or why none arrived.
    pub http: Option<Result<u16, String>>,
    pub peer: SocketAddr,
    /// Served chain, leaf first, exactly as sent.
    pub served: Vec<CertificateDer<'static>>,
    pub protocol: Option<TlsVersion>,
    pub cipher_suite: Option<String>,
    pub alpn: Option<String>,
    pub signature_error: Option<String>,
    pub connect_ms: f64,
    pub handshake_ms: f64,
}

/// A request sent over the TLS session once the handshake is done: a certificate that checks out
/// proves little if the endpoint behind it does not serve the application (an ingress route
/// that points nowhere answers 404 over a perfect handshake).
#[derive(Debug, Clone)]
pub struct HttpGet {
    /// The `Host` header (the name the certificate is checked against).
    pub host: String,
    pub path: String,
}

/// Longest response head read while looking for the status line.
const MAX_STATUS_LINE: usize = 8 * 1024;

/// Resolves, connects and handshakes with `target`, then sends `get` if given (offering only
/// ALPN `http/1.1` then, so that the server does not pick h2), all within `timeout`.
pub async fn handshake(
    target: &TlsTarget,
    timeout: Duration,
    get: Option<&HttpGet>,
) -> Result<Handshake, ProbeError> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let timed_out = |stage| ProbeError::Timeout {
        stage,
        after: timeout,
    };

    let addrs: Vec<SocketAddr> = match &target.connect {
        ConnectTo::Ip(ip) => vec![SocketAddr::new(*ip, target.port)],
        ConnectTo::Lookup(host) => {
            let found: Vec<SocketAddr> = timeout_at(
                deadline,
                tokio::net::lookup_host((host.as_str(), target.port)),
            )
            .await
            .map_err(|_| timed_out("resolve"))?
            .map_err(|e| ProbeError::Resolve {
                host: host.clone(),
                message: e.to_string(),
            })?
            .collect();
            if found.is_empty() {
                return Err(ProbeError::NoAddress { host: host.clone() });
            }
            found
        }
    };
    // Try each address in order (e.g. `localhost` → ::1, then 127.0.0.1); report the last failure.
    let mut connected = None;
    let mut last_error = None;
    for addr in &addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => return Err(timed_out("connect")),
            Ok(Ok(tcp)) => {
                connected = Some((tcp, *addr));
                break;
            }
            Ok(Err(source)) => {
                last_error = Some(ProbeError::Connect {
                    addr: *addr,
                    source,
                })
            }
        }
    }
    let (tcp, addr) = match (connected, last_error) {
        (Some(c), _) => c,
        (None, Some(e)) => return Err(e),
        (None, None) => return Err(timed_out("connect")),
    };
    let connect_ms = ms(started.elapsed());

    let verifier = Arc::new(RecordingVerifier::new());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| ProbeError::Handshake {
            addr,
            message: format!("client configuration: {e}"),
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    config.alpn_protocols = match get {
        Some(_) => vec![b"http/1.1".to_vec()],
        None => OFFERED_ALPN.iter().map(|p| p.as_bytes().to_vec()).collect(),
    };
    let server_name: ServerName<'static> = match &target.name {
        CheckedName::Ip(ip) => ServerName::IpAddress((*ip).into()),
        CheckedName::Dns(d) => {
            ServerName::try_from(d.clone()).map_err(|e| ProbeError::Handshake {
                addr,
                message: format!("invalid server name {d:?}: {e}"),
            })?
        }
    };

    let first = Arc::new(Mutex::new(Vec::with_capacity(FIRST_BYTES)));
    let stream = Recorder {
        inner: tcp,
        first: first.clone(),
    };
    let hs_start = Instant::now();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let result = timeout_at(deadline, connector.connect(server_name, stream)).await;
    let first_bytes = first.lock().map(|b| b.clone()).unwrap_or_default();
    let tls = match result {
        Err(_) => {
            return Err(timed_out(
                "handshake (the peer accepted TCP but did not complete a TLS handshake)",
            ))
        }
        Ok(Err(e)) => return Err(classify_handshake_error(addr, &e, &first_bytes)),
        Ok(Ok(tls)) => tls,
    };
    let handshake_ms = ms(hs_start.elapsed());
    let mut tls = tls;
    let http = match get {
        None => None,
        Some(g) => Some(match timeout_at(deadline, get_status(&mut tls, g)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no HTTP status line within {timeout:?} of the start"
            )),
        }),
    };
    let (_, conn) = tls.get_ref();
    let protocol = conn.protocol_version().and_then(|v| match v {
        rustls::ProtocolVersion::TLSv1_2 => Some(TlsVersion::Tls12),
        rustls::ProtocolVersion::TLSv1_3 => Some(TlsVersion::Tls13),
        _ => None,
    });
    Ok(Handshake {
        http,
        peer: addr,
        served: conn
            .peer_certificates()
            .map(|c| c.to_vec())
            .unwrap_or_default(),
        protocol,
        cipher_suite: conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite())),
        alpn: conn
            .alpn_protocol()
            .map(|a| String::from_utf8_lossy(a).into_owned()),
        signature_error: verifier.recorded(),
        connect_ms,
        handshake_ms,
    })
}

/// Sends `g` as an HTTP/1.1 GET and reads the status code of the answer.
async fn get_status<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    tls: &mut S,
    g: &HttpGet,
) -> Result<u16, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: meshproof\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        g.path, g.host
    );
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending GET {}: {e}", g.path))?;
    tls.flush()
        .await
        .map_err(|e| format!("sending GET {}: {e}", g.path))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") {
        if head.len() > MAX_STATUS_LINE {
            return Err(format!(
                "no status line in the first {MAX_STATUS_LINE} bytes"
            ));
        }
        let n = tls
            .read(&mut buf)
            .await
            .map_err(|e| format!("reading the answer to GET {}: {e}", g.path))?;
        if n == 0 {
            return Err(format!(
                "the server closed the connection without answering GET {}",
                g.path
            ));
        }
        head.extend_from_slice(&buf[..n]);
    }
    parse_status_line(&head).ok_or_else(|| {
        let line: String = String::from_utf8_lossy(&head)
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(80)
            .collect();
        format!("not an HTTP/1.x status line: {line:?}")
    })
}

/// `HTTP/1.1 200 OK` → 200.
pub fn parse_status_line(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    let code = parts.next()?;
    (version.starts_with("HTTP/1.") && code.len() == 3)
        .then(|| code.parse().ok())
        .flatten()
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

/// True when `bytes` cannot be the start of a TLS record: a record starts with a content type
/// in 20..=24 followed by major version 3.
pub fn looks_like_tls(bytes: &[u8]) -> bool {
    match bytes {
        [] => true,
        [t] => (20..=24).contains(t),
        [t, major, ..] => (20..=24).contains(t) && *major == 3,
    }
}

fn classify_handshake_error(addr: SocketAddr, e: &io::Error, first_bytes: &[u8]) -> ProbeError {
    if !looks_like_tls(first_bytes) {
        let lower = String::from_utf8_lossy(first_bytes).to_ascii_lowercase();
        let http = lower.starts_with("http/")
            || lower.contains("<html")
            || lower.contains("<!doctype html");
        return ProbeError::NotTls {
            addr,
            first_bytes: first_bytes.escape_ascii().to_string(),
            hint: if http {
                " (it looks like plain HTTP)"
            } else {
                ""
            },
        };
    }
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        use rustls::PeerIncompatible as P;
        return match tls {
            rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion)
            | rustls::Error::PeerIncompatible(
                P::ServerDoesNotSupportTls12Or13 | P::ServerTlsVersionIsDisabledByOurConfig,
            ) => ProbeError::NoCommonProtocol(tls.to_string()),
            other => ProbeError::Handshake {
                addr,
                message: other.to_string(),
            },
        };
    }
    if e.kind() == io::ErrorKind::UnexpectedEof
        || (e.kind() == io::ErrorKind::ConnectionReset && first_bytes.is_empty())
    {
        return ProbeError::ClosedDuringHandshake { addr };
    }
    ProbeError::Handshake {
        addr,
        message: e.to_string(),
    }
}

/// Accepts any chain during the handshake (the chain is judged afterwards, from
/// `peer_certificates`) but really verifies the handshake signature, recording a failure
/// instead of aborting. A deliberately permissive verifier: only ever used for a connection that
/// carries no application data.
#[derive(Debug)]
struct RecordingVerifier {
    algs: WebPkiSupportedAlgorithms,
    signature_error: Mutex<Option<String>>,
}

impl RecordingVerifier {
    fn new() -> Self {
        RecordingVerifier {
            algs: rustls::crypto::ring::default_provider().signature_verification_algorithms,
            signature_error: Mutex::new(None),
        }
    }

    fn record(
        &self,
        r: Result<HandshakeSignatureValid, rustls::Error>,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if let Err(e) = r {
            if let Ok(mut slot) = self.signature_error.lock() {
                slot.get_or_insert(e.to_string());
            }
        }
        Ok(HandshakeSignatureValid::assertion())
    }

    fn recorded(&self) -> Option<String> {
        self.signature_error.lock().ok().and_then(|s| s.clone())
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.record(rustls::crypto::verify_tls12_signature(
            message, cert, dss, &self.algs,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.record(rustls::crypto::verify_tls13_signature(
            message, cert, dss, &self.algs,
        ))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// A TCP stream that keeps a copy of the first bytes the peer sent, to tell "not TLS" apart
/// from other handshake failures.
struct Recorder {
    inner: TcpStream,
    first: Arc<Mutex<Vec<u8>>>,
}

impl AsyncRead for Recorder {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll {
            let new = &buf.filled()[before..];
            if let Ok(mut first) = self.first.lock() {
                let room = FIRST_BYTES.saturating_sub(first.len());
                first.extend_from_slice(&new[..new.len().min(room)]);
            }
        }
        poll
    }
}

impl AsyncWrite for Recorder {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_record_starts_are_recognised() {
        assert!(looks_like_tls(&[0x16, 0x03, 0x03, 0x00]));
        assert!(looks_like_tls(&[0x15, 0x03]));
        assert!(looks_like_tls(&[]));
        assert!(!looks_like_tls(b"HTTP/1.1 400 Bad Request\r\n"));
        assert!(!looks_like_tls(b"SSH-2.0-OpenSSH"));
    }
}
