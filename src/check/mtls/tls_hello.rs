//! Classifying the first bytes a client sends, and reading its ClientHello (SNI, ALPN, versions).
//!
//! Mesh mTLS is visible on the wire only through the ClientHello (TLS 1.3 encrypts everything
//! after it, including the server certificate), so this is where a flow's mesh identity is read.
//! A ClientHello may be split over several TLS records and several TCP segments: the caller feeds
//! the reassembled start of the client stream and [`inspect`] says whether it needs more bytes.

use serde::Serialize;
use tls_parser::{TlsExtension, TlsVersion};

/// The TLS record layer's plaintext limit (RFC 8446 §5.1); a larger handshake record is not TLS.
const MAX_PLAINTEXT_RECORD: usize = 1 << 14;
/// A ClientHello longer than this is treated as malformed (real ones are a few KiB at most, even
/// with post-quantum key shares).
pub const MAX_HELLO: usize = 64 << 10;

const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;

/// What the client's first bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FirstRecord {
    /// A TLS handshake record carrying a ClientHello that parsed.
    ClientHello {
        record_version: String,
        hello: ClientHelloInfo,
    },
    /// A TLS handshake record whose content is not a parseable ClientHello.
    MalformedHandshake {
        record_version: String,
        detail: String,
    },
    /// A well-formed TLS record header of another content type (e.g. application data first).
    OtherTlsRecord {
        content_type: u8,
        record_version: String,
    },
    /// Not a TLS record: the connection starts in cleartext (or some other protocol).
    NotTls {
        first_bytes_hex: String,
        first_bytes_text: String,
    },
    /// The stream ended before a whole record header / ClientHello arrived.
    Incomplete { bytes: usize },
}

/// What the ClientHello offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientHelloInfo {
    /// The ClientHello's legacy_version field.
    pub legacy_version: String,
    /// The `supported_versions` extension (GREASE removed), highest preference first.
    pub supported_versions: Vec<String>,
    /// The highest version offered (from `supported_versions` when present).
    pub max_version: String,
    /// `server_name` (host_name type) if present.
    pub sni: Option<String>,
    /// ALPN protocol names in offer order.
    pub alpn: Vec<String>,
}

/// Result of looking at the start of a client stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inspect {
    /// The bytes so far are consistent with a ClientHello that has not fully arrived.
    NeedMore,
    Done(FirstRecord),
}

/// Classifies the start of a client stream. `stream` is the reassembled client→server bytes
/// from offset 0; call again with more bytes while [`Inspect::NeedMore`].
pub fn inspect(stream: &[u8]) -> Inspect {
    let Some(hdr) = stream.get(..5) else {
        // Five bytes are enough to tell; decide earlier when the first byte already rules TLS out.
        return match stream.first() {
            Some(&b) if !(20..=24).contains(&b) => Inspect::Done(not_tls(stream)),
            _ => Inspect::NeedMore,
        };
    };
    let (ctype, version, len) = (
        hdr[0],
        u16::from_be_bytes([hdr[1], hdr[2]]),
        u16::from_be_bytes([hdr[3], hdr[4]]) as usize,
    );
    let sane_version = (0x0300..=0x0304).contains(&version);
    let sane_len = (1..=MAX_PLAINTEXT_RECORD + 2048).contains(&len);
    if !(20..=24).contains(&ctype) || !sane_version || !sane_len {
        return Inspect::Done(not_tls(stream));
    }
    let record_version = version_name(version);
    if ctype != CONTENT_HANDSHAKE {
        return Inspect::Done(FirstRecord::OtherTlsRecord {
            content_type: ctype,
            record_version,
        });
    }
    if len > MAX_PLAINTEXT_RECORD {
        return Inspect::Done(FirstRecord::MalformedHandshake {
            record_version,
            detail: format!(
                "handshake record length {len} exceeds the TLS limit {MAX_PLAINTEXT_RECORD}"
            ),
        });
    }
    // Gather the handshake message from consecutive handshake records.
    let mut msg: Vec<u8> = Vec::new();
    let mut rest = stream;
    loop {
        let Some(h) = rest.get(..5) else {
            return Inspect::NeedMore;
        };
        let rlen = u16::from_be_bytes([h[3], h[4]]) as usize;
        if h[0] != CONTENT_HANDSHAKE || rlen == 0 || rlen > MAX_PLAINTEXT_RECORD {
            return Inspect::Done(FirstRecord::MalformedHandshake {
                record_version,
                detail: format!(
                    "ClientHello interrupted by a record of type {} length {rlen}",
                    h[0]
                ),
            });
        }
        let Some(body) = rest.get(5..5 + rlen) else {
            return Inspect::NeedMore;
        };
        msg.extend_from_slice(body);
        rest = &rest[5 + rlen..];
        if msg.len() >= 4 {
            if msg[0] != HANDSHAKE_CLIENT_HELLO {
                return Inspect::Done(FirstRecord::MalformedHandshake {
                    record_version,
                    detail: format!(
                        "first handshake message has type {}, not ClientHello (1)",
                        msg[0]
                    ),
                });
            }
            let hlen = u32::from_be_bytes([0, msg[1], msg[2], msg[3]]) as usize;
            if hlen > MAX_HELLO {
                return Inspect::Done(FirstRecord::MalformedHandshake {
                    record_version,
                    detail: format!("ClientHello length {hlen} is implausible"),
                });
            }
            if msg.len() >= 4 + hlen {
                return Inspect::Done(match parse_client_hello(&msg[4..4 + hlen]) {
                    Ok(hello) => FirstRecord::ClientHello {
                        record_version,
                        hello,
                    },
                    Err(detail) => FirstRecord::MalformedHandshake {
                        record_version,
                        detail,
                    },
                });
            }
        }
    }
}

/// What to conclude when the stream ended while [`inspect`] still wanted more.
pub fn incomplete(stream: &[u8]) -> FirstRecord {
    FirstRecord::Incomplete {
        bytes: stream.len(),
    }
}

fn parse_client_hello(body: &[u8]) -> Result<ClientHelloInfo, String> {
    let (_, ch) = tls_parser::parse_tls_handshake_client_hello(body)
        .map_err(|e| format!("ClientHello does not parse: {e:?}"))?;
    let mut info = ClientHelloInfo {
        legacy_version: version_name(ch.version.0),
        supported_versions: Vec::new(),
        max_version: version_name(ch.version.0),
        sni: None,
        alpn: Vec::new(),
    };
    let Some(ext) = ch.ext else { return Ok(info) };
    let (_, exts) = tls_parser::parse_tls_client_hello_extensions(ext)
        .map_err(|e| format!("ClientHello extensions do not parse: {e:?}"))?;
    let mut max = ch.version.0;
    let mut saw_supported = false;
    for e in exts {
        match e {
            TlsExtension::SNI(names) => {
                // host_name is type 0 (RFC 6066).
                if let Some((_, name)) = names.iter().find(|(t, _)| t.0 == 0) {
                    info.sni = Some(String::from_utf8_lossy(name).into_owned());
                }
            }
            TlsExtension::ALPN(protos) => {
                info.alpn = protos
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
            }
            TlsExtension::SupportedVersions(vs) => {
                let real: Vec<TlsVersion> = vs.into_iter().filter(|v| !is_grease(v.0)).collect();
                if !real.is_empty() {
                    saw_supported = true;
                    max = real.iter().map(|v| v.0).max().unwrap_or(max);
                }
                info.supported_versions = real.iter().map(|v| version_name(v.0)).collect();
            }
            _ => {}
        }
    }
    if saw_supported {
        info.max_version = version_name(max);
    }
    Ok(info)
}

/// GREASE values (RFC 8701) look like `0x?a?a` and must be ignored.
fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL3.0".into(),
        0x0301 => "TLS1.0".into(),
        0x0302 => "TLS1.1".into(),
        0x0303 => "TLS1.2".into(),
        0x0304 => "TLS1.3".into(),
        other => format!("0x{other:04x}"),
    }
}

fn not_tls(stream: &[u8]) -> FirstRecord {
    let head = &stream[..stream.len().min(16)];
    FirstRecord::NotTls {
        first_bytes_hex: hex::encode(head),
        first_bytes_text: head
            .iter()
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::check::mtls::synth::client_hello_message as client_hello;

    fn records(hs: &[u8], split: usize) -> Vec<u8> {
        crate::check::mtls::synth::records(22, hs, split)
    }

    #[test]
    fn reads_sni_alpn_and_versions() {
        let wire = records(
            &client_hello(
                Some("outbound_.8080_._.gw.openfaas.svc.cluster.local"),
                &["istio-peer-exchange", "istio"],
            ),
            4096,
        );
        let Inspect::Done(FirstRecord::ClientHello {
            record_version,
            hello,
        }) = inspect(&wire)
        else {
            panic!("{:?}", inspect(&wire))
        };
        assert_eq!(record_version, "TLS1.2");
        assert_eq!(
            hello.sni.as_deref(),
            Some("outbound_.8080_._.gw.openfaas.svc.cluster.local")
        );
        assert_eq!(hello.alpn, vec!["istio-peer-exchange", "istio"]);
        assert_eq!(hello.supported_versions, vec!["TLS1.3", "TLS1.2"]);
        assert_eq!(hello.max_version, "TLS1.3");
    }

    #[test]
    fn a_hello_split_over_records_and_segments_needs_more_then_parses() {
        let wire = records(
            &client_hello(
                Some("a.b.serviceaccount.identity.linkerd.cluster.local"),
                &["h2"],
            ),
            20,
        );
        for cut in [1, 4, 5, 6, 30, wire.len() - 1] {
            assert_eq!(inspect(&wire[..cut]), Inspect::NeedMore, "cut at {cut}");
        }
        assert!(matches!(
            inspect(&wire),
            Inspect::Done(FirstRecord::ClientHello { .. })
        ));
    }

    #[test]
    fn cleartext_is_not_tls() {
        let Inspect::Done(FirstRecord::NotTls {
            first_bytes_text, ..
        }) = inspect(b"GET / HTTP/1.1\r\n")
        else {
            panic!()
        };
        assert_eq!(first_bytes_text, "GET / HTTP/1.1..");
        // One byte is enough when it cannot start a record.
        assert!(matches!(
            inspect(b"P"),
            Inspect::Done(FirstRecord::NotTls { .. })
        ));
        // A plausible first byte with an insane version is not TLS either.
        assert!(matches!(
            inspect(&[22, 9, 9, 0, 5, 1]),
            Inspect::Done(FirstRecord::NotTls { .. })
        ));
    }

    #[test]
    fn application_data_first_is_another_record_type() {
        assert!(matches!(
            inspect(&[23, 3, 3, 0, 2, 0, 0]),
            Inspect::Done(FirstRecord::OtherTlsRecord {
                content_type: 23,
                ..
            })
        ));
    }

    #[test]
    fn a_server_hello_first_is_malformed() {
        assert!(matches!(
            inspect(&[22, 3, 3, 0, 4, 2, 0, 0, 0]),
            Inspect::Done(FirstRecord::MalformedHandshake { .. })
        ));
    }

    #[test]
    fn grease_is_recognised() {
        assert!(is_grease(0x3a3a) && is_grease(0xfafa) && !is_grease(0x0304));
    }
}
