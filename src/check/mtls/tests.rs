//! Engine tests on synthetic captures (see [`super::synth`]): the cases a live capture cannot
//! produce on demand. Live captures are tested in `tests/check_mtls.rs`.

use super::synth::{client_hello_message, records, Conn, PcapWriter};
use super::*;
use crate::check::Outcome;
use std::net::SocketAddrV4;

const SENTINEL: &str = "MESHPROOF-SENTINEL-7f3a";

fn ep(s: &str) -> SocketAddrV4 {
    s.parse().expect("test address")
}

fn istio_hello() -> Vec<u8> {
    records(
        22,
        &client_hello_message(
            Some("outbound_.8080_._.echo.default.svc.cluster.local"),
            &["istio-peer-exchange", "istio"],
        ),
        16384,
    )
}

fn spec(mesh: Option<Mesh>, port: Option<u16>) -> CheckSpec {
    CheckSpec {
        sentinel: SENTINEL.into(),
        ports: port.into_iter().collect(),
        rules: HelloRules::build(mesh, &[], None),
        port_rules: Vec::new(),
    }
}

fn run(bytes: &[u8], spec: &CheckSpec) -> Verdict<MtlsEvidence> {
    check(bytes, "synthetic", spec)
}

fn writer() -> PcapWriter<Vec<u8>> {
    PcapWriter::new(Vec::new(), 1, false, false, 262144).expect("vec writer")
}

#[test]
fn plaintext_sentinel_fails_with_the_packet_number() {
    let mut w = writer();
    let mut c = Conn::new(ep("10.0.0.1:40000"), ep("10.0.0.2:8080"), 1000, 5000);
    c.handshake(&mut w).unwrap();
    c.client_send(
        &mut w,
        format!("POST / HTTP/1.1\r\n\r\n{SENTINEL}").as_bytes(),
        1400,
    )
    .unwrap();
    let v = run(&w.into_inner(), &spec(Some(Mesh::Istio), Some(8080)));
    assert_eq!(v.outcome, Outcome::Fail, "{:?}", v.reasons);
    assert_eq!(v.evidence.sentinel_hits.len(), 1);
    let h = &v.evidence.sentinel_hits[0];
    assert_eq!(h.packet, 4);
    assert_eq!(h.stream_offset, Some(19));
    assert!(
        v.reasons.iter().any(|r| r.contains("packet 4")),
        "{:?}",
        v.reasons
    );
}

#[test]
fn tls_with_istio_alpn_passes_and_without_fails() {
    let mut w = writer();
    let mut c = Conn::new(
        ep("10.0.0.1:40000"),
        ep("10.0.0.2:8080"),
        u32::MAX - 3,
        5000,
    ); // wraps
    c.handshake(&mut w).unwrap();
    c.client_send(&mut w, &istio_hello(), 100).unwrap();
    c.server_send(&mut w, &records(22, &[2, 0, 0, 4, 3, 3, 0, 0], 100), 1400)
        .unwrap();
    c.client_send(&mut w, &records(23, &[0x55; 3000], 1000), 1400)
        .unwrap();
    let bytes = w.into_inner();
    let v = run(&bytes, &spec(Some(Mesh::Istio), Some(8080)));
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    assert_eq!(v.evidence.flows.len(), 1);
    assert!(!v
        .reasons
        .iter()
        .any(|r| r.contains("not mutual authentication")));
    // Without a mesh's rules the pass says what it did not check.
    let v = run(&bytes, &spec(None, Some(8080)));
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("TLS on the wire only, not mutual authentication")),
        "{:?}",
        v.reasons
    );
    let v = run(&bytes, &spec(Some(Mesh::Linkerd), Some(8080)));
    assert_eq!(v.outcome, Outcome::Fail, "{:?}", v.reasons);
    assert!(v.reasons[0].contains("SNI"), "{:?}", v.reasons);
}

#[test]
fn sentinel_split_across_reordered_and_retransmitted_segments_is_found() {
    let mut w = writer();
    let mut c = Conn::new(ep("10.0.0.1:40000"), ep("10.0.0.2:8080"), 1000, 5000);
    c.handshake(&mut w).unwrap();
    let s1 = c.client_segment(b"GET /?t=MESHPROOF-SEN");
    let s2 = c.client_segment(b"TINEL-7f3a HTTP/1.1\r\n");
    let s3 = c.client_segment(b"\r\n");
    w.packet(&s1).unwrap(); // frame 4
    w.packet(&s3).unwrap(); // frame 5: early
    w.packet(&s1).unwrap(); // frame 6: retransmit
    w.packet(&s2).unwrap(); // frame 7: fills the hole
    let v = run(&w.into_inner(), &spec(None, None));
    assert_eq!(v.outcome, Outcome::Fail);
    assert_eq!(
        v.evidence.sentinel_hits_total, 1,
        "{:?}",
        v.evidence.sentinel_hits
    );
    assert_eq!(v.evidence.sentinel_hits[0].packet, 4);
    assert_eq!(v.evidence.sentinel_hits[0].stream_offset, Some(8));
    let f = &v.evidence.flows[0].flow;
    assert_eq!(f.client_to_server.retransmitted_bytes, 21);
    assert_eq!(f.client_to_server.gap_count, 0);
}

#[test]
fn a_hole_is_noted_and_nothing_is_matched_across_it() {
    let mut w = writer();
    let mut c = Conn::new(ep("10.0.0.1:40000"), ep("10.0.0.2:8080"), 1000, 5000);
    c.handshake(&mut w).unwrap();
    let s1 = c.client_segment(b"xxMESHPROOF-SEN");
    let _lost = c.client_segment(b"lost");
    let s3 = c.client_segment(b"TINEL-7f3a");
    w.packet(&s1).unwrap();
    w.packet(&s3).unwrap();
    let v = run(&w.into_inner(), &spec(None, None));
    assert_eq!(v.evidence.sentinel_hits_total, 0);
    let f = &v.evidence.flows[0].flow;
    assert_eq!(f.client_to_server.gap_count, 1);
    assert_eq!(f.client_to_server.gap_bytes, 4);
    // Still a failing flow: it starts in cleartext.
    assert_eq!(v.outcome, Outcome::Fail);
}

#[test]
fn mixed_capture_fails_on_the_plaintext_flow() {
    let mut w = writer();
    let mut t = Conn::new(ep("10.0.0.1:40000"), ep("10.0.0.2:8080"), 1, 2);
    let mut p = Conn::new(ep("10.0.0.1:40001"), ep("10.0.0.2:8080"), 3, 4);
    t.handshake(&mut w).unwrap();
    p.handshake(&mut w).unwrap();
    t.client_send(&mut w, &istio_hello(), 1400).unwrap();
    p.client_send(&mut w, b"hello", 1400).unwrap();
    let v = run(&w.into_inner(), &spec(Some(Mesh::Istio), Some(8080)));
    assert_eq!(v.outcome, Outcome::Fail);
    let results: Vec<_> = v.evidence.flows.iter().map(|f| f.rule.clone()).collect();
    assert!(
        matches!(results[0], FlowResult::Fail(_)) && results[1] == FlowResult::Pass,
        "{results:?}"
    );
}

#[test]
fn no_packets_no_payload_and_wrong_port_are_errors() {
    let v = run(&writer().into_inner(), &spec(None, None));
    assert_eq!(v.outcome, Outcome::Error);
    assert!(v.reasons[0].contains("no packets"));

    let mut w = writer();
    Conn::new(ep("10.0.0.1:40000"), ep("10.0.0.2:8080"), 1, 2)
        .handshake(&mut w)
        .unwrap();
    let v = run(&w.into_inner(), &spec(None, None));
    assert_eq!(v.outcome, Outcome::Error);
    assert!(v.reasons[0].contains("no TCP payload"), "{:?}", v.reasons);

    let mut w = writer();
    let mut c = Conn::new(ep("10.0.0.1:40000"), ep("10.0.0.2:8080"), 1, 2);
    c.handshake(&mut w).unwrap();
    c.client_send(&mut w, &istio_hello(), 1400).unwrap();
    let v = run(&w.into_inner(), &spec(Some(Mesh::Istio), Some(9999)));
    assert_eq!(v.outcome, Outcome::Error);
    assert!(v.reasons[0].contains("port 9999"), "{:?}", v.reasons);
}

#[test]
fn midstream_flows_are_undetermined_not_passed() {
    let mut w = writer();
    let mut c = Conn::new(ep("10.0.0.1:40000"), ep("10.0.0.2:8080"), 1, 2);
    // No handshake in the capture: only application data records.
    c.client_send(&mut w, &records(23, &[9; 500], 500), 1400)
        .unwrap();
    let v = run(&w.into_inner(), &spec(Some(Mesh::Istio), Some(8080)));
    assert_eq!(v.outcome, Outcome::Error, "{:?}", v.reasons);
    assert!(v.reasons[0].contains("not captured"), "{:?}", v.reasons);
}

#[test]
fn a_synack_alone_anchors_the_client_stream() {
    let mut w = writer();
    let mut c = Conn::new(ep("10.0.0.1:40000"), ep("10.0.0.2:8080"), 100, 200);
    let mut scratch = writer();
    c.handshake(&mut scratch).unwrap();
    // Replay only the SYN-ACK (frame 2 of the scratch capture) is not possible directly, so
    // rebuild it: the server's ISN 200, acknowledging client ISN+1.
    w.packet(&super::synth::tcp_frame(
        c.server,
        c.client,
        200,
        101,
        super::synth::Flags {
            syn: true,
            ack: true,
            ..Default::default()
        },
        &[],
    ))
    .unwrap();
    c.client_send(&mut w, &istio_hello(), 1400).unwrap();
    let v = run(&w.into_inner(), &spec(Some(Mesh::Istio), None));
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
}

#[test]
fn big_endian_nanosecond_pcap_is_read() {
    let mut w = PcapWriter::new(Vec::new(), 1, true, true, 65535).unwrap();
    let mut c = Conn::new(ep("10.0.0.1:40000"), ep("10.0.0.2:8080"), 1, 2);
    c.handshake(&mut w).unwrap();
    c.client_send(&mut w, &istio_hello(), 1400).unwrap();
    let v = run(&w.into_inner(), &spec(Some(Mesh::Istio), Some(8080)));
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    let cap = v.evidence.capture.as_ref().unwrap();
    assert!(cap.big_endian && cap.nanosecond_timestamps);
}

#[test]
fn snapped_packets_leave_a_gap_not_a_false_pass() {
    // Snap length cuts the ClientHello: the flow cannot be judged.
    let mut w = PcapWriter::new(Vec::new(), 1, false, false, 96).unwrap();
    let mut c = Conn::new(ep("10.0.0.1:40000"), ep("10.0.0.2:8080"), 1, 2);
    c.handshake(&mut w).unwrap();
    c.client_send(&mut w, &istio_hello(), 1400).unwrap();
    c.client_send(&mut w, b"more data after the hello", 1400)
        .unwrap();
    let v = run(&w.into_inner(), &spec(Some(Mesh::Istio), Some(8080)));
    assert_eq!(v.outcome, Outcome::Error, "{:?}", v.reasons);
    assert!(v.evidence.packets.as_ref().unwrap().snapped > 0);
    assert!(v.evidence.flows[0].flow.client_to_server.gap_bytes > 0);
}

#[test]
fn truncated_capture_is_error_unless_a_violation_was_read() {
    let mut w = writer();
    let mut c = Conn::new(ep("10.0.0.1:40000"), ep("10.0.0.2:8080"), 1, 2);
    c.handshake(&mut w).unwrap();
    c.client_send(&mut w, &istio_hello(), 1400).unwrap();
    c.client_send(&mut w, &records(23, &[1; 800], 800), 1400)
        .unwrap();
    let mut bytes = w.into_inner();
    bytes.truncate(bytes.len() - 100);
    let v = run(&bytes, &spec(Some(Mesh::Istio), Some(8080)));
    assert_eq!(v.outcome, Outcome::Error, "{:?}", v.reasons);
    assert!(v.evidence.capture.as_ref().unwrap().truncated.is_some());
    assert!(v.reasons[0].contains("truncated"), "{:?}", v.reasons);

    let mut w = writer();
    let mut c = Conn::new(ep("10.0.0.1:40000"), ep("10.0.0.2:8080"), 1, 2);
    c.handshake(&mut w).unwrap();
    c.client_send(&mut w, SENTINEL.as_bytes(), 1400).unwrap();
    c.client_send(&mut w, &[b'x'; 800], 1400).unwrap();
    let mut bytes = w.into_inner();
    bytes.truncate(bytes.len() - 100);
    let v = run(&bytes, &spec(None, None));
    assert_eq!(v.outcome, Outcome::Fail, "{:?}", v.reasons);
    assert!(v.reasons.iter().any(|r| r.contains("truncated")));
}

#[test]
fn short_sentinels_and_garbage_are_clean_errors() {
    let v = check(
        &b"junk"[..],
        "x",
        &CheckSpec {
            sentinel: "abc".into(),
            ports: Vec::new(),
            rules: HelloRules::default(),
            port_rules: Vec::new(),
        },
    );
    assert_eq!(v.outcome, Outcome::Error);
    assert!(v.reasons[0].contains("at least"), "{:?}", v.reasons);
    for garbage in [
        &b""[..],
        b"\xd4\xc3\xb2\xa1",
        b"not a capture at all, just text",
        &[0xff; 4096],
    ] {
        let v = run(garbage, &spec(None, None));
        assert_eq!(v.outcome, Outcome::Error);
        assert!(v.evidence.input_error.is_some());
    }
    // A valid header followed by garbage records: no panic, error.
    let mut bytes = writer().into_inner();
    bytes.extend_from_slice(&[0xee; 5000]);
    let v = run(&bytes, &spec(None, None));
    assert_eq!(v.outcome, Outcome::Error, "{:?}", v.reasons);
}

#[test]
fn ipv6_flows_are_judged() {
    let client: std::net::SocketAddr = "[fd00::1]:40000".parse().unwrap();
    let server: std::net::SocketAddr = "[fd00::2]:8080".parse().unwrap();
    let mut w = writer();
    let mut t = Conn::new(client, server, 1, 2);
    t.handshake(&mut w).unwrap();
    t.client_send(&mut w, &istio_hello(), 100).unwrap();
    let v = run(&w.into_inner(), &spec(Some(Mesh::Istio), Some(8080)));
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    assert_eq!(v.evidence.flows[0].flow.server, server);

    let mut w = writer();
    let mut p = Conn::new(client, server, 1, 2);
    p.handshake(&mut w).unwrap();
    p.client_send(&mut w, format!("x{SENTINEL}").as_bytes(), 10)
        .unwrap();
    let v = run(&w.into_inner(), &spec(Some(Mesh::Istio), Some(8080)));
    assert_eq!(v.outcome, Outcome::Fail);
    assert_eq!(v.evidence.sentinel_hits[0].packet, 4);
}

#[test]
fn port_reuse_starts_a_new_flow() {
    let mut w = writer();
    let mut a = Conn::new(ep("10.0.0.1:40000"), ep("10.0.0.2:8080"), 1, 2);
    a.handshake(&mut w).unwrap();
    a.client_send(&mut w, &istio_hello(), 1400).unwrap();
    a.close(&mut w).unwrap();
    let mut b = Conn::new(ep("10.0.0.1:40000"), ep("10.0.0.2:8080"), 900_000, 5);
    b.handshake(&mut w).unwrap();
    b.client_send(&mut w, b"PLAIN", 1400).unwrap();
    let v = run(&w.into_inner(), &spec(Some(Mesh::Istio), Some(8080)));
    assert_eq!(v.evidence.flows_total, 2);
    assert_eq!(v.outcome, Outcome::Fail);
}

#[test]
fn judging_is_pure() {
    let mut w = writer();
    let mut c = Conn::new(ep("10.0.0.1:40000"), ep("10.0.0.2:8080"), 1, 2);
    c.handshake(&mut w).unwrap();
    c.client_send(&mut w, &istio_hello(), 1400).unwrap();
    let a = analyze(
        &w.into_inner()[..],
        &AnalyzerConfig {
            sentinel: SENTINEL.into(),
            ports: vec![8080],
        },
    )
    .unwrap();
    let istio = HelloRules::build(Some(Mesh::Istio), &[], None);
    let j = JudgeInput {
        input: "x",
        rules: &istio,
        ports: &[8080],
        port_rules: &[],
        sentinel_len: SENTINEL.len(),
    };
    let v1 = judge(&a, &j);
    let v2 = judge(&a, &j);
    assert_eq!(v1.to_json_string(), v2.to_json_string());
    let strict = HelloRules::build(None, &["h2".into()], None);
    let j2 = JudgeInput {
        rules: &strict,
        ..j
    };
    assert_eq!(judge(&a, &j2).outcome, Outcome::Fail);
}

/// Istio ambient: the kubelet's probes reach the app port from istio-cni's SNAT address and are
/// not judged (IS-20); the same bytes from any other client fail the capture (IS-19).
#[test]
fn ambient_app_port_payload_fails_except_from_the_kubelet_probe_address() {
    let (ports, port_rules) = preset::scope(Mesh::IstioAmbient, &[8080], &[]).unwrap();
    let spec = CheckSpec {
        sentinel: SENTINEL.into(),
        ports,
        rules: HelloRules::build(Some(Mesh::IstioAmbient), &[], None),
        port_rules,
    };
    let probe = b"GET /healthz HTTP/1.1\r\nHost: 10.244.0.7:8080\r\n\r\n";
    let mut w = writer();
    let mut c = Conn::new(ep("169.254.7.127:40000"), ep("10.244.0.7:8080"), 1000, 5000);
    c.handshake(&mut w).unwrap();
    c.client_send(&mut w, probe, 1400).unwrap();
    let only_kubelet = w.into_inner();
    let v = run(&only_kubelet, &spec);
    // Nothing judged: not a pass, and not a fail either.
    assert_eq!(v.outcome, Outcome::Error, "{:?}", v.reasons);
    match &v.evidence.flows[0].rule {
        FlowResult::NotJudged(why) => assert!(why.contains("kubelet"), "{why}"),
        other => panic!("{other:?}"),
    }

    let mut w = writer();
    let mut c = Conn::new(ep("10.244.0.9:40000"), ep("10.244.0.7:8080"), 1000, 5000);
    c.handshake(&mut w).unwrap();
    c.client_send(&mut w, probe, 1400).unwrap();
    let v = run(&w.into_inner(), &spec);
    assert_eq!(v.outcome, Outcome::Fail, "{:?}", v.reasons);
    assert!(
        v.reasons[0].contains("payload on port 8080"),
        "{:?}",
        v.reasons
    );
    // The app's own TLS on the app port is no better: it went around the tunnel.
    let mut w = writer();
    let mut c = Conn::new(ep("10.244.0.9:40001"), ep("10.244.0.7:8080"), 1000, 5000);
    c.handshake(&mut w).unwrap();
    c.client_send(
        &mut w,
        &records(22, &client_hello_message(None, &["h2"]), 16384),
        1400,
    )
    .unwrap();
    let v = run(&w.into_inner(), &spec);
    assert_eq!(v.outcome, Outcome::Fail, "{:?}", v.reasons);
}
