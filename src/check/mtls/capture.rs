//! Reading a packet capture (pcap or pcapng) from any byte stream, and peeling link layers.
//!
//! This is the only place where the `mtls` engine does I/O. It works on any [`Read`] — a file, or
//! `tcpdump -w -` streamed from an ephemeral debug container — and hands packets to a callback
//! one at a time with memory bounded by the largest packet, so a capture never has to fit in RAM.
//!
//! A capture that ends in the middle of a packet (or turns to garbage after valid packets) is not
//! an error here: what was read is handed on and [`CaptureStats::truncated`] says where and why it
//! stopped; the judge decides what that means for the verdict.

use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{Block, Linktype, PcapBlockOwned, PcapError};
use serde::Serialize;
use std::io::Read;

/// Initial reader buffer; grown (up to [`MAX_BLOCK`]) for captures with jumbo/GRO packets.
const BUFFER_CAPACITY: usize = 1 << 20;
/// The largest single block we accept; a larger one means a corrupt length field.
const MAX_BLOCK: usize = 64 << 20;
/// Bytes read up front so that a pipe delivering the header in small pieces is still recognised.
const HEADER_PROBE: usize = 64 << 10;

/// Why a capture could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("capture is empty (0 bytes): not a pcap or pcapng file")]
    Empty,
    #[error("not a pcap or pcapng capture (unrecognised file header; first bytes: {first_bytes})")]
    NotACapture { first_bytes: String },
    #[error("capture header is incomplete: the input ended after {0} bytes")]
    HeaderTruncated(usize),
    #[error("could not read the capture: {0}")]
    Io(#[from] std::io::Error),
    #[error("could not parse the capture header: {0}")]
    Header(String),
}

/// Which container format the capture used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureFormat {
    Pcap,
    Pcapng,
}

/// Facts about the capture as a whole, reported in the evidence.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureStats {
    pub format: CaptureFormat,
    /// Link types seen (pcapng may hold several interfaces), as `NAME (number)`.
    pub linktypes: Vec<String>,
    /// pcap: nanosecond-resolution timestamps (magic `a1b23c4d`).
    pub nanosecond_timestamps: bool,
    /// pcap: the file was written big-endian.
    pub big_endian: bool,
    /// Packet records read (frame numbers in evidence count these, starting at 1).
    pub packets: u64,
    /// Bytes of input consumed.
    pub bytes_read: u64,
    /// Set when the input stopped in the middle of a record or turned unparseable: the analysis
    /// covers only what came before.
    pub truncated: Option<String>,
}

/// One packet record, borrowed from the reader's buffer.
pub struct RawPacket<'a> {
    /// 1-based frame number, as Wireshark/tshark number them.
    pub number: u64,
    pub linktype: Linktype,
    pub data: &'a [u8],
    /// Bytes the packet had on the wire; more than `data.len()` when cut by the snap length.
    pub orig_len: u32,
}

/// Reads every packet of a pcap/pcapng stream and hands it to `on_packet`.
///
/// Errors only when the input is not a capture at all (empty, unknown header, I/O failure before
/// the header). Problems after the header end the reading and are reported in
/// [`CaptureStats::truncated`].
pub fn read_packets<R: Read>(
    input: R,
    mut on_packet: impl FnMut(RawPacket<'_>),
) -> Result<CaptureStats, CaptureError> {
    let mut probe = ProbeFirst::new(input, HEADER_PROBE);
    let first = probe.peek_prefix()?;
    if first.is_empty() {
        return Err(CaptureError::Empty);
    }
    let format = match sniff_format(first) {
        Some(f) => f,
        None => {
            return Err(CaptureError::NotACapture {
                first_bytes: hex_preview(first, 16),
            })
        }
    };
    let first_len = first.len();
    let mut reader: Box<dyn PcapReaderIterator> = match format {
        CaptureFormat::Pcapng => pcap_parser::PcapNGReader::new(BUFFER_CAPACITY, probe)
            .map(|r| Box::new(r) as Box<dyn PcapReaderIterator>),
        CaptureFormat::Pcap => pcap_parser::LegacyPcapReader::new(BUFFER_CAPACITY, probe)
            .map(|r| Box::new(r) as Box<dyn PcapReaderIterator>),
    }
    .map_err(|e| match e {
        PcapError::Incomplete(_) | PcapError::UnexpectedEof => {
            CaptureError::HeaderTruncated(first_len)
        }
        PcapError::ReadError => CaptureError::Io(std::io::Error::other("read error")),
        other => CaptureError::Header(other.to_string()),
    })?;

    let mut stats = CaptureStats {
        format,
        linktypes: Vec::new(),
        nanosecond_timestamps: false,
        big_endian: false,
        packets: 0,
        bytes_read: 0,
        truncated: None,
    };
    // Legacy pcap has one link type; pcapng has one per interface (reset by each section).
    let mut legacy_linktype = Linktype(-1);
    let mut interfaces: Vec<Linktype> = Vec::new();
    let mut capacity = BUFFER_CAPACITY;

    loop {
        // Errors borrow the reader, so they are turned into owned outcomes before acting.
        let step = match reader.next() {
            Ok((consumed, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy_linktype = h.network;
                        stats.nanosecond_timestamps = h.is_nanosecond_precision();
                        stats.big_endian = h.is_bigendian();
                        note_linktype(&mut stats, h.network);
                    }
                    PcapBlockOwned::Legacy(b) => {
                        stats.packets += 1;
                        on_packet(RawPacket {
                            number: stats.packets,
                            linktype: legacy_linktype,
                            data: b.data,
                            orig_len: b.origlen,
                        });
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                        interfaces.clear();
                        stats.big_endian = shb.big_endian();
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        interfaces.push(idb.linktype);
                        note_linktype(&mut stats, idb.linktype);
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        stats.packets += 1;
                        let lt = interfaces
                            .get(epb.if_id as usize)
                            .copied()
                            .unwrap_or(Linktype(-1));
                        let caplen = (epb.caplen as usize).min(epb.data.len());
                        on_packet(RawPacket {
                            number: stats.packets,
                            linktype: lt,
                            data: &epb.data[..caplen],
                            orig_len: epb.origlen,
                        });
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        stats.packets += 1;
                        let lt = interfaces.first().copied().unwrap_or(Linktype(-1));
                        let caplen = (spb.origlen as usize).min(spb.data.len());
                        on_packet(RawPacket {
                            number: stats.packets,
                            linktype: lt,
                            data: &spb.data[..caplen],
                            orig_len: spb.origlen,
                        });
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                Step::Consume(consumed)
            }
            Err(PcapError::Eof) => Step::Done,
            Err(PcapError::Incomplete(_)) => Step::Refill,
            Err(PcapError::BufferTooSmall) => Step::Grow,
            Err(PcapError::UnexpectedEof) => {
                Step::Stop("input ended in the middle of a packet record".into())
            }
            Err(PcapError::ReadError) => Step::Stop("read error".into()),
            Err(e) => Step::Stop(format!(
                "unparseable record: {}",
                short_error(&e.to_owned_vec())
            )),
        };
        match step {
            Step::Consume(n) => {
                stats.bytes_read += n as u64;
                reader.consume(n);
            }
            Step::Refill => {
                if let Err(e) = reader.refill() {
                    let msg = short_error(&e.to_owned_vec());
                    stats.truncated = Some(format!(
                        "after {} bytes ({} packets): {msg}",
                        stats.bytes_read, stats.packets
                    ));
                    break;
                }
            }
            Step::Grow => {
                capacity *= 2;
                if capacity > MAX_BLOCK || !reader.grow(capacity) {
                    stats.truncated = Some(format!(
                        "after {} bytes ({} packets): a record claims more than {} bytes (corrupt length?)",
                        stats.bytes_read,
                        stats.packets,
                        MAX_BLOCK
                    ));
                    break;
                }
                if let Err(e) = reader.refill() {
                    let msg = short_error(&e.to_owned_vec());
                    stats.truncated = Some(format!(
                        "after {} bytes ({} packets): {msg}",
                        stats.bytes_read, stats.packets
                    ));
                    break;
                }
            }
            Step::Stop(why) => {
                stats.truncated = Some(format!(
                    "after {} bytes ({} packets): {why}",
                    stats.bytes_read, stats.packets
                ));
                break;
            }
            Step::Done => break,
        }
    }
    Ok(stats)
}

enum Step {
    Consume(usize),
    Refill,
    Grow,
    Stop(String),
    Done,
}

fn short_error(e: &PcapError<&'static [u8]>) -> String {
    match e {
        PcapError::OwnedNomError(_, kind) => format!("parser error {kind:?}"),
        other => other.to_string(),
    }
}

fn note_linktype(stats: &mut CaptureStats, lt: Linktype) {
    let name = format!("{} ({})", linktype_name(lt), lt.0);
    if !stats.linktypes.contains(&name) {
        stats.linktypes.push(name);
    }
}

fn linktype_name(lt: Linktype) -> &'static str {
    match lt.0 {
        0 => "NULL",
        1 => "ETHERNET",
        12 | 14 | 101 => "RAW",
        108 => "LOOP",
        113 => "LINUX_SLL",
        276 => "LINUX_SLL2",
        _ => "UNSUPPORTED",
    }
}

/// Recognises the container by its magic number (both byte orders; µs and ns pcap).
fn sniff_format(first: &[u8]) -> Option<CaptureFormat> {
    let magic: [u8; 4] = first.get(..4)?.try_into().ok()?;
    match magic {
        [0x0a, 0x0d, 0x0d, 0x0a] => Some(CaptureFormat::Pcapng),
        [0xd4, 0xc3, 0xb2, 0xa1] | [0xa1, 0xb2, 0xc3, 0xd4] => Some(CaptureFormat::Pcap),
        [0x4d, 0x3c, 0xb2, 0xa1] | [0xa1, 0xb2, 0x3c, 0x4d] => Some(CaptureFormat::Pcap),
        // "modified" (Kuznetzov) pcap, which pcap-parser also reads.
        [0x34, 0xcd, 0xb2, 0xa1] | [0xa1, 0xb2, 0xcd, 0x34] => Some(CaptureFormat::Pcap),
        _ => None,
    }
}

pub(crate) fn hex_preview(b: &[u8], max: usize) -> String {
    let take = &b[..b.len().min(max)];
    let mut s = hex::encode(take);
    if b.len() > max {
        s.push('…');
    }
    s
}

/// What is under the link layer of one packet.
pub enum LinkPayload<'a> {
    /// An IPv4 or IPv6 packet.
    Ip(&'a [u8]),
    /// A valid frame that does not carry IP (ARP, LLDP, …).
    NotIp,
    /// The link type is not one we decode, or the frame is too short for its header.
    Undecodable,
}

/// Strips the link-layer header of `data` according to `linktype`.
pub fn link_payload(linktype: Linktype, data: &[u8]) -> LinkPayload<'_> {
    match linktype.0 {
        1 => ethernet(data),
        113 => match data.get(14..16) {
            Some(p) => by_ethertype(u16::from_be_bytes([p[0], p[1]]), &data[16..]),
            None => LinkPayload::Undecodable,
        },
        276 => match data.get(0..2) {
            Some(p) if data.len() >= 20 => {
                by_ethertype(u16::from_be_bytes([p[0], p[1]]), &data[20..])
            }
            _ => LinkPayload::Undecodable,
        },
        12 | 14 | 101 => by_version_nibble(data),
        // NULL (host-order AF_ value) and LOOP (network-order): the AF_INET6 value differs per
        // OS, so the IP version nibble is the reliable discriminator.
        0 | 108 => match data.get(4..) {
            Some(rest) => by_version_nibble(rest),
            None => LinkPayload::Undecodable,
        },
        _ => LinkPayload::Undecodable,
    }
}

fn ethernet(data: &[u8]) -> LinkPayload<'_> {
    let Some(et) = data.get(12..14) else {
        return LinkPayload::Undecodable;
    };
    let mut ethertype = u16::from_be_bytes([et[0], et[1]]);
    let mut off = 14;
    // 802.1Q / 802.1ad tags (up to two).
    for _ in 0..2 {
        if ethertype == 0x8100 || ethertype == 0x88a8 {
            let Some(et) = data.get(off + 2..off + 4) else {
                return LinkPayload::Undecodable;
            };
            ethertype = u16::from_be_bytes([et[0], et[1]]);
            off += 4;
        }
    }
    by_ethertype(ethertype, &data[off.min(data.len())..])
}

fn by_ethertype(ethertype: u16, rest: &[u8]) -> LinkPayload<'_> {
    match ethertype {
        0x0800 | 0x86dd => LinkPayload::Ip(rest),
        _ => LinkPayload::NotIp,
    }
}

fn by_version_nibble(data: &[u8]) -> LinkPayload<'_> {
    match data.first().map(|b| b >> 4) {
        Some(4) | Some(6) => LinkPayload::Ip(data),
        Some(_) => LinkPayload::NotIp,
        None => LinkPayload::Undecodable,
    }
}

/// A reader whose first `read` returns as many bytes as it can (up to a limit), so that a pipe
/// that delivers the capture header in small pieces is still recognised — `pcap-parser` decides
/// the format from whatever its first `read` returned.
struct ProbeFirst<R> {
    inner: R,
    prefix: Vec<u8>,
    pos: usize,
    limit: usize,
}

impl<R: Read> ProbeFirst<R> {
    fn new(inner: R, limit: usize) -> Self {
        ProbeFirst {
            inner,
            prefix: Vec::new(),
            pos: 0,
            limit,
        }
    }

    /// Reads up to `limit` bytes (fewer only at end of input) and returns them without consuming.
    fn peek_prefix(&mut self) -> std::io::Result<&[u8]> {
        let mut buf = vec![0u8; self.limit];
        let mut filled = 0;
        while filled < self.limit {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        buf.truncate(filled);
        self.prefix = buf;
        Ok(&self.prefix)
    }
}

impl<R: Read> Read for ProbeFirst<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos < self.prefix.len() {
            let n = (self.prefix.len() - self.pos).min(buf.len());
            buf[..n].copy_from_slice(&self.prefix[self.pos..self.pos + n]);
            self.pos += n;
            if self.pos == self.prefix.len() {
                self.prefix = Vec::new();
                self.pos = 0;
            }
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A legacy pcap (little-endian, microseconds, Ethernet) of `records`, each a record
    /// header and its bytes.
    fn legacy_pcap(records: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        for (i, r) in records.iter().enumerate() {
            out.extend_from_slice(&(i as u32 + 1).to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&(r.len() as u32).to_le_bytes());
            out.extend_from_slice(&(r.len() as u32).to_le_bytes());
            out.extend_from_slice(r);
        }
        out
    }

    /// Cut anywhere inside a record — its header or its data — the capture is reported as
    /// truncated, and the records before the cut are still read; cut at a record boundary it
    /// is whole (issue #21).
    #[test]
    fn a_cut_anywhere_inside_a_record_is_reported_as_truncated() {
        let a = [0xaau8; 60];
        let b = [0xbbu8; 70];
        let file = legacy_pcap(&[&a, &b]);
        let first_end = 24 + 16 + a.len();
        for cut in 24..=file.len() {
            let stats = read_packets(&file[..cut], |_| {}).expect("a capture");
            let boundary = cut == 24 || cut == first_end || cut == file.len();
            assert_eq!(
                stats.truncated.is_none(),
                boundary,
                "cut at {cut}: {:?}",
                stats.truncated
            );
            let whole = usize::from(cut >= first_end) + usize::from(cut == file.len());
            assert_eq!(stats.packets as usize, whole, "cut at {cut}");
        }
    }

    /// A pcapng (little-endian) with one Ethernet interface and one Enhanced Packet Block per
    /// record; returns the bytes and the offsets where blocks end.
    fn pcapng(records: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let mut out = Vec::new();
        let mut ends = Vec::new();
        // Section Header Block.
        out.extend_from_slice(&0x0a0d_0d0au32.to_le_bytes());
        out.extend_from_slice(&28u32.to_le_bytes());
        out.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(-1i64).to_le_bytes());
        out.extend_from_slice(&28u32.to_le_bytes());
        ends.push(out.len());
        // Interface Description Block.
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&20u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&20u32.to_le_bytes());
        ends.push(out.len());
        for r in records {
            let padded = r.len().div_ceil(4) * 4;
            let total = (32 + padded) as u32;
            out.extend_from_slice(&6u32.to_le_bytes());
            out.extend_from_slice(&total.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
            out.extend_from_slice(&(r.len() as u32).to_le_bytes());
            out.extend_from_slice(&(r.len() as u32).to_le_bytes());
            out.extend_from_slice(r);
            out.resize(out.len() + padded - r.len(), 0);
            out.extend_from_slice(&total.to_le_bytes());
            ends.push(out.len());
        }
        (out, ends)
    }

    /// The same for pcapng (dumpcap's format): any cut inside a block after the section
    /// header is truncation; a cut at a block boundary is not.
    #[test]
    fn a_cut_anywhere_inside_a_pcapng_block_is_reported_as_truncated() {
        let a = [0xaau8; 61];
        let b = [0xbbu8; 70];
        let (file, ends) = pcapng(&[&a, &b]);
        for cut in ends[0]..=file.len() {
            let stats = read_packets(&file[..cut], |_| {}).expect("a capture");
            let boundary = ends.contains(&cut);
            assert_eq!(
                stats.truncated.is_none(),
                boundary,
                "cut at {cut} (blocks end at {ends:?}): {:?}",
                stats.truncated
            );
            let whole = ends[2..].iter().filter(|&&e| cut >= e).count();
            assert_eq!(stats.packets as usize, whole, "cut at {cut}");
        }
    }

    #[test]
    fn empty_input_is_an_error() {
        assert!(matches!(
            read_packets(&b""[..], |_| {}),
            Err(CaptureError::Empty)
        ));
    }

    #[test]
    fn garbage_is_not_a_capture() {
        let e = read_packets(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], |_| {}).unwrap_err();
        assert!(matches!(e, CaptureError::NotACapture { .. }), "{e}");
    }

    #[test]
    fn a_header_cut_short_is_an_error() {
        let e = read_packets(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0][..], |_| {}).unwrap_err();
        assert!(matches!(e, CaptureError::HeaderTruncated(6)), "{e}");
    }

    #[test]
    fn link_layers_are_peeled() {
        let ip = [0x45u8, 0, 0, 20];
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x81, 0x00, 0, 1, 0x08, 0x00]);
        eth.extend_from_slice(&ip);
        assert!(matches!(link_payload(Linktype(1), &eth), LinkPayload::Ip(p) if p == ip));
        let mut sll2 = vec![0x86, 0xdd];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(&[0x60, 0, 0, 0]);
        assert!(matches!(link_payload(Linktype(276), &sll2), LinkPayload::Ip(p) if p[0] == 0x60));
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x06, 1, 2]);
        assert!(matches!(
            link_payload(Linktype(113), &sll),
            LinkPayload::NotIp
        ));
        assert!(matches!(
            link_payload(Linktype(0), &[2, 0, 0, 0, 0x45]),
            LinkPayload::Ip(_)
        ));
        assert!(matches!(
            link_payload(Linktype(147), &ip),
            LinkPayload::Undecodable
        ));
        assert!(matches!(
            link_payload(Linktype(1), &[0u8; 5]),
            LinkPayload::Undecodable
        ));
    }
}
