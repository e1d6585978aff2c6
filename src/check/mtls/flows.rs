//! TCP flow tracking and reassembly, just deep enough to search payloads and read ClientHellos.
//!
//! Per direction, segments are put in sequence order; retransmitted and overlapping bytes are
//! dropped (first copy wins); holes are tolerated — after a bounded wait (or at the end of the
//! capture) the stream skips over them and the gap is recorded in the evidence, because a hole is
//! exactly where a sentinel could hide unseen.
//!
//! Nothing is kept per direction beyond the out-of-order backlog (bounded), the first bytes of
//! the client stream until its ClientHello is decided (bounded) and `sentinel.len() - 1` bytes of
//! carry so that a sentinel split across segments is still found.

use super::capture::{link_payload, LinkPayload, RawPacket};
use super::tls_hello::{self, FirstRecord, Inspect};
use etherparse::{LaxIpSlice, TcpSlice};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

/// Out-of-order bytes held per direction before giving up on a hole.
const MAX_PENDING_BYTES: usize = 4 << 20;
/// Client-stream bytes kept for ClientHello inspection.
const HELLO_PREFIX_CAP: usize = tls_hello::MAX_HELLO + 8 * 1024;
/// Sentinel hits kept in full in the evidence (all are counted).
const MAX_HITS_KEPT: usize = 100;
/// Gaps listed per direction (all are counted).
const MAX_GAPS_LISTED: usize = 16;

/// What the analyzer looks for and how it orients flows.
#[derive(Debug, Clone)]
pub struct AnalyzerConfig {
    /// The plaintext marker the test traffic carries.
    pub sentinel: String,
    /// An endpoint on one of these ports is taken as the server of a flow whose handshake was
    /// not captured.
    pub ports: Vec<u16>,
}

/// Packet-level counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PacketCounts {
    pub ip: u64,
    pub tcp: u64,
    /// TCP packets carrying payload.
    pub tcp_with_payload: u64,
    /// IP packets that are not TCP (UDP, ICMP, …): not judged.
    pub non_tcp: u64,
    /// Frames that do not carry IP (ARP, …).
    pub non_ip: u64,
    /// Frames of an unsupported link type or too short to decode.
    pub undecodable: u64,
    /// IP fragments (not reassembled; their bytes are not searched).
    pub ip_fragments: u64,
    /// Packets cut short by the capture's snap length.
    pub snapped: u64,
}

/// Which way bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dir {
    ClientToServer,
    ServerToClient,
}

/// How the client side of a flow was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Orientation {
    /// From the SYN / SYN-ACK: certain, and the client stream's first byte is known.
    Handshake,
    /// From `--port`: the endpoint on that port is the server.
    Port,
    /// The sender of the first packet seen (the capture began mid-connection).
    FirstPacket,
}

/// A hole in one direction's stream.
#[derive(Debug, Clone, Serialize)]
pub struct Gap {
    pub stream_offset: u64,
    pub bytes: u64,
}

/// What was seen in one direction of a flow.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DirectionSummary {
    pub packets: u64,
    /// Payload bytes seen on the wire (including retransmissions).
    pub payload_bytes: u64,
    /// Bytes delivered to the reassembled stream.
    pub stream_bytes: u64,
    pub retransmitted_bytes: u64,
    pub gap_count: u64,
    pub gap_bytes: u64,
    pub gaps: Vec<Gap>,
    /// The frame number of the first payload byte of this direction.
    pub first_payload_packet: Option<u64>,
}

/// One TCP connection as the judge sees it.
#[derive(Debug, Clone, Serialize)]
pub struct FlowRecord {
    /// Index in capture order (first packet), 1-based.
    pub id: usize,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub orientation: Orientation,
    pub first_packet: u64,
    pub client_to_server: DirectionSummary,
    pub server_to_client: DirectionSummary,
    /// Whether the client stream is known from its first byte (handshake seen and no gap there).
    pub client_stream_start_seen: bool,
    /// Classification of the client's first bytes; `None` when the client sent nothing.
    pub first_client_record: Option<FirstRecord>,
    /// Classification of the server's first bytes (for server-speaks-first cleartext).
    pub first_server_record: Option<FirstRecord>,
}

impl FlowRecord {
    pub fn has_payload(&self) -> bool {
        self.client_to_server.payload_bytes > 0 || self.server_to_client.payload_bytes > 0
    }
}

/// Where a sentinel was found.
#[derive(Debug, Clone, Serialize)]
pub struct SentinelHit {
    pub flow: usize,
    /// `client -> server` of the flow, for reading without cross-referencing.
    pub flow_label: String,
    pub direction: Dir,
    /// Frame number of the packet holding the sentinel's first byte.
    pub packet: u64,
    /// Offset of the sentinel's first byte in the reassembled direction stream; `None` for a
    /// segment that could not be placed in its stream (found in that packet alone).
    pub stream_offset: Option<u64>,
}

/// Everything the analysis of one capture found: the judge's only input besides the rules.
#[derive(Debug, Clone, Serialize)]
pub struct FlowAnalysis {
    pub counts: PacketCounts,
    pub flows: Vec<FlowRecord>,
    pub sentinel_hits: Vec<SentinelHit>,
    pub sentinel_hits_total: u64,
}

type Endpoint = (IpAddr, u16);

/// Incremental analyzer: feed packets with [`FlowTable::packet`], then [`FlowTable::finish`].
pub struct FlowTable {
    finder: regex::bytes::Regex,
    sentinel_len: usize,
    ports: Vec<u16>,
    counts: PacketCounts,
    live: HashMap<(Endpoint, Endpoint), usize>,
    flows: Vec<Flow>,
    hits: Vec<SentinelHit>,
    hits_total: u64,
}

struct Flow {
    id: usize,
    client: Endpoint,
    server: Endpoint,
    orientation: Orientation,
    first_packet: u64,
    client_isn: Option<u32>,
    dirs: [Stream; 2],
    /// Set once a FIN or RST was seen, so that a later SYN on the same ports starts a new flow.
    ending: bool,
}

/// One direction's reassembly state.
struct Stream {
    summary: DirectionSummary,
    /// Sequence number of stream offset 0.
    base: Option<u32>,
    /// `base` came from a SYN / SYN-ACK, so offset 0 is the real first byte.
    start_known: bool,
    next: u64,
    /// Early segments by stream offset: (frame, bytes, snapped tail length).
    pending: BTreeMap<u64, (u64, Vec<u8>, u64)>,
    pending_bytes: usize,
    /// Last `sentinel_len - 1` delivered bytes and the frames they came from.
    carry: Vec<u8>,
    carry_frames: VecDeque<(u64, u64)>,
    /// Scratch for the boundary search (reused: no allocation per segment).
    window: Vec<u8>,
    /// Start of the stream, kept until its first record is decided.
    prefix: Vec<u8>,
    prefix_open: bool,
    first: Option<FirstRecord>,
}

impl Stream {
    fn new() -> Self {
        Stream {
            summary: DirectionSummary::default(),
            base: None,
            start_known: false,
            next: 0,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            carry: Vec::new(),
            carry_frames: VecDeque::new(),
            window: Vec::new(),
            prefix: Vec::new(),
            prefix_open: true,
            first: None,
        }
    }
}

impl FlowTable {
    /// `sentinel` must be non-empty (the CLI enforces a minimum length). Fails only for a
    /// sentinel too large for the search automaton.
    pub fn new(cfg: &AnalyzerConfig) -> Result<Self, regex::Error> {
        // An escaped literal: the regex engine reduces it to a SIMD substring search.
        let finder = regex::bytes::Regex::new(&regex::escape(&cfg.sentinel))?;
        Ok(FlowTable {
            finder,
            sentinel_len: cfg.sentinel.len().max(1),
            ports: cfg.ports.clone(),
            counts: PacketCounts::default(),
            live: HashMap::new(),
            flows: Vec::new(),
            hits: Vec::new(),
            hits_total: 0,
        })
    }

    /// Feeds one captured packet.
    pub fn packet(&mut self, pkt: &RawPacket<'_>) {
        let ip = match link_payload(pkt.linktype, pkt.data) {
            LinkPayload::Ip(ip) => ip,
            LinkPayload::NotIp => {
                self.counts.non_ip += 1;
                return;
            }
            LinkPayload::Undecodable => {
                self.counts.undecodable += 1;
                return;
            }
        };
        if (pkt.data.len() as u64) < pkt.orig_len as u64 {
            self.counts.snapped += 1;
        }
        let Ok((ip, _)) = LaxIpSlice::from_slice(ip) else {
            self.counts.undecodable += 1;
            return;
        };
        self.counts.ip += 1;
        let payload = ip.payload();
        if payload.ip_number != etherparse::IpNumber::TCP {
            self.counts.non_tcp += 1;
            return;
        }
        self.counts.tcp += 1;
        if payload.fragmented {
            self.counts.ip_fragments += 1;
            return;
        }
        let missing = if payload.incomplete {
            declared_missing(&ip)
        } else {
            0
        };
        let Ok(tcp) = TcpSlice::from_slice(payload.payload) else {
            self.counts.undecodable += 1;
            return;
        };
        let src = (ip.source_addr(), tcp.source_port());
        let dst = (ip.destination_addr(), tcp.destination_port());
        let seg = Segment {
            frame: pkt.number,
            seq: tcp.sequence_number(),
            ack: tcp.acknowledgment_number(),
            syn: tcp.syn(),
            ack_flag: tcp.ack(),
            fin_or_rst: tcp.fin() || tcp.rst(),
            payload: tcp.payload(),
            missing,
        };
        if !seg.payload.is_empty() {
            self.counts.tcp_with_payload += 1;
        }
        self.segment(src, dst, seg);
    }

    fn segment(&mut self, src: Endpoint, dst: Endpoint, seg: Segment<'_>) {
        let key = if src <= dst { (src, dst) } else { (dst, src) };
        let fresh_syn = seg.syn && !seg.ack_flag;
        let idx = match self.live.get(&key) {
            Some(&i) => {
                let f = &self.flows[i];
                // A new SYN on the same ports after the old connection ended (or with another
                // ISN) is a new connection.
                if fresh_syn
                    && f.client_isn != Some(seg.seq)
                    && (f.ending || f.client_isn.is_some())
                {
                    self.retire(i);
                    self.open(key, src, dst, &seg)
                } else {
                    i
                }
            }
            None => {
                if seg.payload.is_empty() && !seg.syn && seg.missing == 0 {
                    // Bare ACK/FIN/RST of a connection we never saw: nothing to judge.
                    return;
                }
                self.open(key, src, dst, &seg)
            }
        };
        let flow = &mut self.flows[idx];
        let d = if src == flow.client { 0 } else { 1 };
        if seg.fin_or_rst {
            flow.ending = true;
        }
        if seg.syn {
            if d == 0 && !seg.ack_flag {
                flow.client_isn = Some(seg.seq);
                set_base(&mut flow.dirs[0], seg.seq.wrapping_add(1));
            } else if d == 1 && seg.ack_flag {
                set_base(&mut flow.dirs[1], seg.seq.wrapping_add(1));
                // The SYN-ACK acknowledges the client's ISN+1: the client stream start is known
                // even if the SYN itself was not captured.
                set_base(&mut flow.dirs[0], seg.ack);
            }
        }
        let stream = &mut flow.dirs[d];
        stream.summary.packets += 1;
        let len = seg.payload.len() as u64 + seg.missing;
        if len == 0 {
            return;
        }
        stream.summary.payload_bytes += seg.payload.len() as u64;
        // Data on a SYN (TFO) starts at ISN+1.
        let seq = if seg.syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        if stream.base.is_none() {
            stream.base = Some(seq);
        }
        let base = stream.base.unwrap_or(seq);
        // Offset relative to `next`, via signed 32-bit distance (handles wrap-around).
        let expected_seq = base.wrapping_add(stream.next as u32);
        let delta = seq.wrapping_sub(expected_seq) as i32 as i64;
        let off = stream.next as i64 + delta;
        let ctx = Ctx::new(
            &self.finder,
            self.sentinel_len,
            (flow.id, flow.client, flow.server),
            d,
        );
        let mut sink = HitSink {
            hits: &mut self.hits,
            total: &mut self.hits_total,
        };
        if off < 0 {
            // Before the stream start (reordered before the first segment we anchored on):
            // cannot be placed, but must not hide a sentinel.
            stream.summary.retransmitted_bytes += seg.payload.len() as u64;
            search_standalone(&ctx, seg.frame, seg.payload, &mut sink);
            return;
        }
        accept(
            stream,
            &ctx,
            off as u64,
            seg.frame,
            seg.payload,
            seg.missing,
            &mut sink,
        );
    }

    fn open(
        &mut self,
        key: (Endpoint, Endpoint),
        src: Endpoint,
        dst: Endpoint,
        seg: &Segment<'_>,
    ) -> usize {
        let (client, server, orientation) = if seg.syn {
            if seg.ack_flag {
                (dst, src, Orientation::Handshake)
            } else {
                (src, dst, Orientation::Handshake)
            }
        } else if let Some(p) = self
            .ports
            .iter()
            .copied()
            .find(|&p| p == src.1 || p == dst.1)
        {
            if dst.1 == p {
                (src, dst, Orientation::Port)
            } else {
                (dst, src, Orientation::Port)
            }
        } else {
            (src, dst, Orientation::FirstPacket)
        };
        let idx = self.flows.len();
        self.flows.push(Flow {
            id: idx + 1,
            client,
            server,
            orientation,
            first_packet: seg.frame,
            client_isn: None,
            dirs: [Stream::new(), Stream::new()],
            ending: false,
        });
        self.live.insert(key, idx);
        idx
    }

    /// Flushes a connection that will receive no more packets.
    fn retire(&mut self, idx: usize) {
        let flow = &mut self.flows[idx];
        for (d, stream) in flow.dirs.iter_mut().enumerate() {
            let ctx = Ctx::new(
                &self.finder,
                self.sentinel_len,
                (flow.id, flow.client, flow.server),
                d,
            );
            let mut sink = HitSink {
                hits: &mut self.hits,
                total: &mut self.hits_total,
            };
            flush_all(stream, &ctx, &mut sink);
            finish_first(stream);
        }
    }

    /// Ends the analysis: flushes every backlog (recording the holes) and summarises.
    pub fn finish(mut self) -> FlowAnalysis {
        for i in 0..self.flows.len() {
            self.retire(i);
        }
        let flows = self
            .flows
            .into_iter()
            .map(|f| {
                let [c, s] = f.dirs;
                FlowRecord {
                    id: f.id,
                    client: SocketAddr::new(f.client.0, f.client.1),
                    server: SocketAddr::new(f.server.0, f.server.1),
                    orientation: f.orientation,
                    first_packet: f.first_packet,
                    client_stream_start_seen: c.start_known
                        && c.summary.gaps.first().is_none_or(|g| g.stream_offset > 0),
                    first_client_record: c.first,
                    first_server_record: s.first,
                    client_to_server: c.summary,
                    server_to_client: s.summary,
                }
            })
            .collect();
        FlowAnalysis {
            counts: self.counts,
            flows,
            sentinel_hits: self.hits,
            sentinel_hits_total: self.hits_total,
        }
    }
}

struct Segment<'a> {
    frame: u64,
    seq: u32,
    ack: u32,
    syn: bool,
    ack_flag: bool,
    fin_or_rst: bool,
    payload: &'a [u8],
    /// Payload bytes the TCP segment had but the capture did not keep (snap length).
    missing: u64,
}

struct Ctx<'a> {
    finder: &'a regex::bytes::Regex,
    sentinel_len: usize,
    flow: usize,
    /// (client, server), rendered only when a hit is recorded.
    ends: (Endpoint, Endpoint),
    dir: Dir,
}

impl<'a> Ctx<'a> {
    /// The context of direction `d` (0: client to server) of the flow `(id, client, server)`.
    /// Takes the flow's fields, not the flow, so that its streams can be borrowed mutably beside.
    fn new(
        finder: &'a regex::bytes::Regex,
        sentinel_len: usize,
        (flow, client, server): (usize, Endpoint, Endpoint),
        d: usize,
    ) -> Ctx<'a> {
        Ctx {
            finder,
            sentinel_len,
            flow,
            ends: (client, server),
            dir: if d == 0 {
                Dir::ClientToServer
            } else {
                Dir::ServerToClient
            },
        }
    }
}

struct HitSink<'a> {
    hits: &'a mut Vec<SentinelHit>,
    total: &'a mut u64,
}

impl HitSink<'_> {
    fn push(&mut self, ctx: &Ctx<'_>, packet: u64, stream_offset: Option<u64>) {
        *self.total += 1;
        if self.hits.len() < MAX_HITS_KEPT {
            self.hits.push(SentinelHit {
                flow: ctx.flow,
                flow_label: format!("{} -> {}", sock(ctx.ends.0), sock(ctx.ends.1)),
                direction: ctx.dir,
                packet,
                stream_offset,
            });
        }
    }
}

fn set_base(stream: &mut Stream, base: u32) {
    // Only before any byte was placed: afterwards offsets are already anchored.
    if stream.next == 0 && stream.pending.is_empty() {
        stream.base = Some(base);
        stream.start_known = true;
    }
}

/// Places a segment at stream offset `off`: delivers it if it is next, queues it if early, trims
/// what was already delivered.
fn accept(
    stream: &mut Stream,
    ctx: &Ctx<'_>,
    off: u64,
    frame: u64,
    payload: &[u8],
    missing: u64,
    sink: &mut HitSink<'_>,
) {
    let end = off + payload.len() as u64 + missing;
    if end <= stream.next {
        stream.summary.retransmitted_bytes += payload.len() as u64;
        return;
    }
    if off <= stream.next {
        let skip = (stream.next - off) as usize;
        stream.summary.retransmitted_bytes += skip.min(payload.len()) as u64;
        let data = payload.get(skip..).unwrap_or(&[]);
        deliver(stream, ctx, frame, data, sink);
        if missing > 0 {
            let hole_start = stream.next;
            let hole = end - hole_start;
            skip_gap(stream, hole_start, hole);
        }
        drain_pending(stream, ctx, sink);
        return;
    }
    // Early: keep for later (first copy of an offset wins).
    if stream.pending.contains_key(&off) {
        stream.summary.retransmitted_bytes += payload.len() as u64;
        return;
    }
    stream.pending_bytes += payload.len();
    stream
        .pending
        .insert(off, (frame, payload.to_vec(), missing));
    while stream.pending_bytes > MAX_PENDING_BYTES {
        // The hole before the backlog is not going to fill in time: skip it.
        let Some((&first, _)) = stream.pending.iter().next() else {
            break;
        };
        let hole_start = stream.next;
        skip_gap(stream, hole_start, first.saturating_sub(hole_start));
        drain_pending(stream, ctx, sink);
    }
}

/// Delivers queued segments that have become contiguous.
fn drain_pending(stream: &mut Stream, ctx: &Ctx<'_>, sink: &mut HitSink<'_>) {
    while let Some(entry) = stream.pending.first_entry() {
        let off = *entry.key();
        if off > stream.next {
            break;
        }
        let (frame, data, missing) = entry.remove();
        stream.pending_bytes -= data.len();
        let end = off + data.len() as u64 + missing;
        if end <= stream.next {
            stream.summary.retransmitted_bytes += data.len() as u64;
            continue;
        }
        let skip = ((stream.next - off) as usize).min(data.len());
        stream.summary.retransmitted_bytes += skip as u64;
        deliver(stream, ctx, frame, &data[skip..], sink);
        if missing > 0 {
            // The snapped tail never arrives: it is a hole.
            let hole_start = stream.next;
            skip_gap(stream, hole_start, end - hole_start);
        }
    }
}

/// End of stream: whatever is still queued comes after a hole that will never fill.
fn flush_all(stream: &mut Stream, ctx: &Ctx<'_>, sink: &mut HitSink<'_>) {
    while let Some((&first, _)) = stream.pending.iter().next() {
        if first > stream.next {
            let hole_start = stream.next;
            skip_gap(stream, hole_start, first - hole_start);
        }
        drain_pending(stream, ctx, sink);
    }
}

fn skip_gap(stream: &mut Stream, at: u64, bytes: u64) {
    if bytes == 0 {
        return;
    }
    stream.summary.gap_count += 1;
    stream.summary.gap_bytes += bytes;
    if stream.summary.gaps.len() < MAX_GAPS_LISTED {
        stream.summary.gaps.push(Gap {
            stream_offset: at,
            bytes,
        });
    }
    stream.next = at + bytes;
    // Nothing spans a hole: neither a sentinel nor the record at the stream start.
    stream.carry.clear();
    stream.carry_frames.clear();
    if stream.prefix_open && stream.first.is_none() {
        stream.prefix_open = false;
    }
}

/// Appends contiguous bytes at `stream.next`: searches the sentinel (including across the
/// previous segment boundary) and feeds the first-record inspection.
fn deliver(stream: &mut Stream, ctx: &Ctx<'_>, frame: u64, data: &[u8], sink: &mut HitSink<'_>) {
    if data.is_empty() {
        return;
    }
    let start = stream.next;
    if stream.summary.first_payload_packet.is_none() {
        stream.summary.first_payload_packet = Some(frame);
    }
    let l = ctx.sentinel_len;
    // Hits that begin in the carry (previous segments) and end in this one.
    if !stream.carry.is_empty() {
        stream.window.clear();
        stream.window.extend_from_slice(&stream.carry);
        stream
            .window
            .extend_from_slice(&data[..data.len().min(l - 1)]);
        for m in ctx.finder.find_iter(&stream.window) {
            if m.start() < stream.carry.len() {
                let at = start - stream.carry.len() as u64 + m.start() as u64;
                let hit_frame = stream
                    .carry_frames
                    .iter()
                    .rev()
                    .find(|(o, _)| *o <= at)
                    .map(|(_, f)| *f)
                    .unwrap_or(frame);
                sink.push(ctx, hit_frame, Some(at));
            }
        }
    }
    for m in ctx.finder.find_iter(data) {
        sink.push(ctx, frame, Some(start + m.start() as u64));
    }
    // Keep the last l-1 bytes for the next boundary.
    if l > 1 {
        let keep = l - 1;
        if data.len() >= keep {
            stream.carry.clear();
            stream.carry.extend_from_slice(&data[data.len() - keep..]);
            stream.carry_frames.clear();
            stream
                .carry_frames
                .push_back((start + (data.len() - keep) as u64, frame));
        } else {
            stream.carry.extend_from_slice(data);
            stream.carry_frames.push_back((start, frame));
            let excess = stream.carry.len().saturating_sub(keep);
            stream.carry.drain(..excess);
            let carry_start = start + data.len() as u64 - stream.carry.len() as u64;
            // Drop frames whose bytes all left the carry, keeping the one that spans its start.
            while stream.carry_frames.len() > 1 && stream.carry_frames[1].0 <= carry_start {
                stream.carry_frames.pop_front();
            }
        }
    }
    stream.next = start + data.len() as u64;
    stream.summary.stream_bytes += data.len() as u64;
    // First-record inspection on the stream start.
    if stream.prefix_open && stream.first.is_none() {
        if start != stream.prefix.len() as u64 {
            stream.prefix_open = false;
        } else {
            let room = HELLO_PREFIX_CAP.saturating_sub(stream.prefix.len());
            stream
                .prefix
                .extend_from_slice(&data[..data.len().min(room)]);
            if let Inspect::Done(first) = tls_hello::inspect(&stream.prefix) {
                stream.first = Some(first);
                stream.prefix = Vec::new();
            } else if stream.prefix.len() >= HELLO_PREFIX_CAP {
                stream.first = Some(tls_hello::incomplete(&stream.prefix));
                stream.prefix = Vec::new();
            }
        }
    }
}

/// Sentinel search in one packet's payload alone, for bytes that cannot be placed in a stream.
fn search_standalone(ctx: &Ctx<'_>, frame: u64, payload: &[u8], sink: &mut HitSink<'_>) {
    for _ in ctx.finder.find_iter(payload) {
        sink.push(ctx, frame, None);
    }
}

/// Freezes the first-record classification at end of stream.
fn finish_first(stream: &mut Stream) {
    if stream.first.is_none() && !stream.prefix.is_empty() {
        stream.first = Some(tls_hello::incomplete(&stream.prefix));
    }
    stream.prefix = Vec::new();
}

/// How many TCP payload bytes the IP header declares beyond what was captured.
fn declared_missing(ip: &LaxIpSlice<'_>) -> u64 {
    let captured = ip.payload().payload.len() as u64;
    let declared = match ip {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            (h.total_len() as u64).saturating_sub(
                h.slice().len() as u64 + v4.extensions().auth.map_or(0, |a| a.slice().len() as u64),
            )
        }
        LaxIpSlice::Ipv6(v6) => (v6.header().payload_length() as u64)
            .saturating_sub(v6.extensions().slice().len() as u64),
    };
    declared.saturating_sub(captured)
}

fn sock(e: Endpoint) -> String {
    SocketAddr::new(e.0, e.1).to_string()
}
