//! Synthetic captures: a small pcap writer and TCP/TLS conversation builder.
//!
//! These are test doubles for *captures*, used by unit tests for cases a live loopback capture
//! cannot produce on demand (reordering, retransmission, snapped packets, big-endian files) and
//! by `benches/mtls.rs` to generate 100+ MB inputs. Live behaviour is tested on real `tcpdump`
//! captures in `tests/check_mtls.rs`.

use etherparse::PacketBuilder;
use std::io::{self, Write};
use std::net::SocketAddr;

/// Writes a classic pcap file (little- or big-endian, µs or ns timestamps).
pub struct PcapWriter<W: Write> {
    out: W,
    big_endian: bool,
    snaplen: u32,
    packets: u64,
    bytes: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header. `linktype` e.g. 1 (Ethernet), 101 (raw IP).
    pub fn new(
        mut out: W,
        linktype: u32,
        nanos: bool,
        big_endian: bool,
        snaplen: u32,
    ) -> io::Result<Self> {
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut h = Vec::with_capacity(24);
        let put32 = |h: &mut Vec<u8>, v: u32| {
            h.extend_from_slice(&if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
        };
        let put16 = |h: &mut Vec<u8>, v: u16| {
            h.extend_from_slice(&if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
        };
        put32(&mut h, magic);
        put16(&mut h, 2);
        put16(&mut h, 4);
        put32(&mut h, 0);
        put32(&mut h, 0);
        put32(&mut h, snaplen);
        put32(&mut h, linktype);
        out.write_all(&h)?;
        Ok(PcapWriter {
            out,
            big_endian,
            snaplen,
            packets: 0,
            bytes: 24,
        })
    }

    /// Writes one packet record, cutting it to the snap length like a real capture.
    pub fn packet(&mut self, frame: &[u8]) -> io::Result<()> {
        self.packets += 1;
        let caplen = frame.len().min(self.snaplen as usize);
        let fields = [
            (self.packets / 1000) as u32,
            (self.packets % 1000) as u32,
            caplen as u32,
            frame.len() as u32,
        ];
        for v in fields {
            self.out.write_all(&if self.big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })?;
        }
        self.bytes += 16 + caplen as u64;
        self.out.write_all(&frame[..caplen])
    }

    /// Bytes written so far (header included).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn packets(&self) -> u64 {
        self.packets
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// TCP flags for [`tcp_frame`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}

/// An Ethernet/IPv4 or IPv6/TCP frame with valid checksums (both ends must be the same family;
/// a mixed pair yields an empty frame).
pub fn tcp_frame(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: Flags,
    payload: &[u8],
) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let ip = match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => eth.ipv4(s.ip().octets(), d.ip().octets(), 64),
        (SocketAddr::V6(s), SocketAddr::V6(d)) => eth.ipv6(s.ip().octets(), d.ip().octets(), 64),
        _ => return Vec::new(),
    };
    let mut b = ip.tcp(src.port(), dst.port(), seq, 65535);
    if flags.syn {
        b = b.syn();
    }
    if flags.ack {
        b = b.ack(ack);
    }
    if flags.fin {
        b = b.fin();
    }
    if flags.rst {
        b = b.rst();
    }
    let mut out = Vec::with_capacity(b.size(payload.len()));
    // Writing into a Vec cannot fail for I/O reasons; a payload too large for IPv4 is a caller bug.
    if b.write(&mut out, payload).is_err() {
        out.clear();
    }
    out
}

/// One TCP connection being written, tracking both sequence spaces.
pub struct Conn {
    pub client: SocketAddr,
    pub server: SocketAddr,
    cseq: u32,
    sseq: u32,
}

impl Conn {
    pub fn new(
        client: impl Into<SocketAddr>,
        server: impl Into<SocketAddr>,
        client_isn: u32,
        server_isn: u32,
    ) -> Self {
        Conn {
            client: client.into(),
            server: server.into(),
            cseq: client_isn,
            sseq: server_isn,
        }
    }

    /// SYN, SYN-ACK, ACK.
    pub fn handshake<W: Write>(&mut self, w: &mut PcapWriter<W>) -> io::Result<()> {
        w.packet(&tcp_frame(
            self.client,
            self.server,
            self.cseq,
            0,
            Flags {
                syn: true,
                ..Flags::default()
            },
            &[],
        ))?;
        self.cseq = self.cseq.wrapping_add(1);
        w.packet(&tcp_frame(
            self.server,
            self.client,
            self.sseq,
            self.cseq,
            Flags {
                syn: true,
                ack: true,
                ..Flags::default()
            },
            &[],
        ))?;
        self.sseq = self.sseq.wrapping_add(1);
        w.packet(&tcp_frame(
            self.client,
            self.server,
            self.cseq,
            self.sseq,
            ack(),
            &[],
        ))
    }

    /// A client→server segment; returns the frame so that tests can replay or reorder it.
    pub fn client_segment(&mut self, payload: &[u8]) -> Vec<u8> {
        let f = tcp_frame(
            self.client,
            self.server,
            self.cseq,
            self.sseq,
            ack(),
            payload,
        );
        self.cseq = self.cseq.wrapping_add(payload.len() as u32);
        f
    }

    /// A server→client segment.
    pub fn server_segment(&mut self, payload: &[u8]) -> Vec<u8> {
        let f = tcp_frame(
            self.server,
            self.client,
            self.sseq,
            self.cseq,
            ack(),
            payload,
        );
        self.sseq = self.sseq.wrapping_add(payload.len() as u32);
        f
    }

    /// Sends `data` client→server in segments of at most `mss` bytes.
    pub fn client_send<W: Write>(
        &mut self,
        w: &mut PcapWriter<W>,
        data: &[u8],
        mss: usize,
    ) -> io::Result<()> {
        for chunk in data.chunks(mss.max(1)) {
            let f = self.client_segment(chunk);
            w.packet(&f)?;
        }
        Ok(())
    }

    /// Sends `data` server→client in segments of at most `mss` bytes.
    pub fn server_send<W: Write>(
        &mut self,
        w: &mut PcapWriter<W>,
        data: &[u8],
        mss: usize,
    ) -> io::Result<()> {
        for chunk in data.chunks(mss.max(1)) {
            let f = self.server_segment(chunk);
            w.packet(&f)?;
        }
        Ok(())
    }

    /// FIN from the client.
    pub fn close<W: Write>(&mut self, w: &mut PcapWriter<W>) -> io::Result<()> {
        w.packet(&tcp_frame(
            self.client,
            self.server,
            self.cseq,
            self.sseq,
            Flags {
                fin: true,
                ack: true,
                ..Flags::default()
            },
            &[],
        ))
    }
}

fn ack() -> Flags {
    Flags {
        ack: true,
        ..Flags::default()
    }
}

/// A ClientHello handshake message (not yet in records) with SNI, ALPN and supported_versions.
pub fn client_hello_message(sni: Option<&str>, alpn: &[&str]) -> Vec<u8> {
    let mut exts = Vec::new();
    if let Some(sni) = sni {
        let mut sn = vec![0u8];
        sn.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        sn.extend_from_slice(sni.as_bytes());
        let mut body = (sn.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(&sn);
        push_ext(&mut exts, 0, &body);
    }
    if !alpn.is_empty() {
        let mut list = Vec::new();
        for p in alpn {
            list.push(p.len() as u8);
            list.extend_from_slice(p.as_bytes());
        }
        let mut body = (list.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(&list);
        push_ext(&mut exts, 16, &body);
    }
    // supported_versions: GREASE, TLS 1.3, TLS 1.2
    push_ext(&mut exts, 43, &[6, 0x3a, 0x3a, 3, 4, 3, 3]);

    let mut body = vec![3, 3];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0x13, 0x01]);
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    hs
}

fn push_ext(exts: &mut Vec<u8>, ty: u16, body: &[u8]) {
    exts.extend_from_slice(&ty.to_be_bytes());
    exts.extend_from_slice(&(body.len() as u16).to_be_bytes());
    exts.extend_from_slice(body);
}

/// Wraps bytes in TLS records of `content_type`, at most `max_fragment` bytes each.
pub fn records(content_type: u8, data: &[u8], max_fragment: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 5 * (data.len() / max_fragment.max(1) + 1));
    for chunk in data.chunks(max_fragment.max(1)) {
        out.extend_from_slice(&[content_type, 3, 3]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}
