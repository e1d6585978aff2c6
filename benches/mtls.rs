//! `cargo bench --bench mtls`: analysis throughput of `check mtls` against tshark, side by side.
//!
//! Synthesises a valid pcap (≥ 100 MB) of many interleaved TCP flows — Istio-looking ClientHellos
//! followed by TLS application-data records of random bytes, some plaintext HTTP flows, and one
//! plaintext segment carrying the sentinel near the end — then times:
//! - meshproof: the whole `check mtls` (read, reassemble, search, parse hellos, judge);
//! - tshark: `tshark -r FILE -Y 'frame contains "SENTINEL"'` (Debian package `tshark`), the
//!   usual way to look for a token in a capture.
//!
//! Both must find the sentinel in the same frame. Prints a table with MB/s and the ratio.

use meshproof::check::mtls::synth::{client_hello_message, records, Conn, PcapWriter};
use meshproof::check::mtls::{self, CheckSpec, HelloRules, Mesh};
use rand::{RngCore, SeedableRng};
use std::io::{BufWriter, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const TARGET_BYTES: u64 = 105_000_000;
const SENTINEL: &str = "MESHPROOF-BENCH-SENTINEL-5c1e";
const MSS: usize = 1448;
const FLOWS_AT_ONCE: usize = 8;
const BYTES_PER_DIRECTION: usize = 32 * 1024;

/// Writes the capture; returns (bytes, packets, flows, frame number of the sentinel).
fn generate(path: &Path) -> std::io::Result<(u64, u64, usize, u64)> {
    let f = std::fs::File::create(path)?;
    let mut w = PcapWriter::new(
        BufWriter::with_capacity(1 << 20, f),
        1,
        false,
        false,
        262144,
    )?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let hello = records(
        22,
        &client_hello_message(
            Some("outbound_.8080_._.echo.openfaas-fn.svc.cluster.local"),
            &["istio-peer-exchange", "istio-http/1.1"],
        ),
        16384,
    );
    let mut flows = 0usize;
    let mut group = 0u32;
    let mut payload = vec![0u8; BYTES_PER_DIRECTION];
    let sentinel_frame = loop {
        let last_group = w.bytes() >= TARGET_BYTES;
        let mut conns: Vec<(Conn, bool, Vec<u8>, Vec<u8>)> = Vec::new();
        for i in 0..FLOWS_AT_ONCE {
            let n = group * FLOWS_AT_ONCE as u32 + i as u32;
            let client = SocketAddrV4::new(
                Ipv4Addr::new(10, 1, (n >> 8) as u8, n as u8),
                30000 + (n % 30000) as u16,
            );
            let server = SocketAddrV4::new(
                Ipv4Addr::new(10, 2, 0, (i + 1) as u8),
                if n % 25 == 3 { 8081 } else { 8080 },
            );
            let plaintext = n % 25 == 3;
            let mut c = Conn::new(client, server, rng.next_u32(), rng.next_u32());
            c.handshake(&mut w)?;
            rng.fill_bytes(&mut payload);
            let (up, down) = if plaintext {
                let body = "x".repeat(BYTES_PER_DIRECTION / 2);
                (
                    format!("POST /function/echo HTTP/1.1\r\nhost: echo\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes(),
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes(),
                )
            } else {
                let mut up = hello.clone();
                up.extend_from_slice(&records(23, &payload[..BYTES_PER_DIRECTION / 2], 16384));
                let mut down = records(22, &[2, 0, 0, 4, 3, 3, 0, 0], 16384);
                down.extend_from_slice(&records(23, &payload[BYTES_PER_DIRECTION / 2..], 16384));
                (up, down)
            };
            conns.push((c, plaintext, up, down));
            flows += 1;
        }
        // Interleave the group's segments round-robin, as concurrent connections appear.
        let max_chunks = conns
            .iter()
            .map(|(_, _, u, d)| u.len().max(d.len()).div_ceil(MSS))
            .max()
            .unwrap_or(0);
        for k in 0..max_chunks {
            for (c, _, up, down) in conns.iter_mut() {
                if let Some(chunk) = up.chunks(MSS).nth(k) {
                    let f = c.client_segment(chunk);
                    w.packet(&f)?;
                }
                if let Some(chunk) = down.chunks(MSS).nth(k) {
                    let f = c.server_segment(chunk);
                    w.packet(&f)?;
                }
            }
        }
        if last_group {
            // One plaintext segment with the sentinel, then more TLS so it is not the last frame.
            let (c, ..) = &mut conns[3];
            let f = c.client_segment(format!("GET /?token={SENTINEL} HTTP/1.1\r\n\r\n").as_bytes());
            w.packet(&f)?;
            let frame = w.packets();
            for (c, ..) in conns.iter_mut() {
                c.close(&mut w)?;
            }
            break frame;
        }
        for (c, ..) in conns.iter_mut() {
            c.close(&mut w)?;
        }
        group += 1;
    };
    let (packets, bytes) = (w.packets(), w.bytes());
    w.into_inner().flush()?;
    Ok((bytes, packets, flows, sentinel_frame))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.pcap");
    let t0 = Instant::now();
    let (bytes, packets, flows, sentinel_frame) = generate(&path).expect("generate capture");
    let mb = bytes as f64 / 1e6;
    println!(
        "generated {:.1} MB pcap: {packets} packets, {flows} flows, sentinel in frame {sentinel_frame} ({:.1} s)",
        mb,
        t0.elapsed().as_secs_f64()
    );
    // Warm the page cache so both tools read from memory.
    let mut sink = Vec::new();
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut sink))
        .expect("read back");
    drop(sink);

    let spec = CheckSpec {
        sentinel: SENTINEL.into(),
        ports: vec![8080],
        rules: HelloRules::build(Some(Mesh::Istio), &[], None),
        port_rules: Vec::new(),
    };
    let mut times = Vec::new();
    let mut found = None;
    for _ in 0..3 {
        let t = Instant::now();
        let f = std::fs::File::open(&path).expect("open");
        let v = mtls::check(
            std::io::BufReader::with_capacity(1 << 20, f),
            "bench.pcap",
            &spec,
        );
        times.push(t.elapsed());
        found = v.evidence.sentinel_hits.first().map(|h| h.packet);
        assert_eq!(
            v.outcome,
            meshproof::check::Outcome::Fail,
            "{:?}",
            v.reasons
        );
        assert_eq!(
            v.evidence.capture.as_ref().map(|c| c.packets),
            Some(packets)
        );
    }
    let ours = median(times);
    assert_eq!(
        found,
        Some(sentinel_frame),
        "meshproof must find the sentinel in frame {sentinel_frame}"
    );

    let tshark = which::which("tshark").ok();
    let filter = format!("frame contains \"{SENTINEL}\"");
    let run_tshark = |exe: &Path, file: &Path| {
        let t = Instant::now();
        let out = Command::new(exe)
            .args(["-n", "-r"])
            .arg(file)
            .args(["-Y", &filter, "-T", "fields", "-e", "frame.number"])
            .output()
            .expect("run tshark");
        let el = t.elapsed();
        let frames = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>();
        (el, frames, out.status.success())
    };
    let theirs = tshark.map(|exe| {
        // tshark's own start-up (dissector registration) is part of its wall time; measured
        // separately on an empty capture so that the reader can discount it.
        let empty = dir.path().join("empty.pcap");
        PcapWriter::new(
            std::fs::File::create(&empty).expect("create"),
            1,
            false,
            false,
            262144,
        )
        .expect("write empty pcap");
        let (startup, ..) = run_tshark(&exe, &empty);
        let (el, frames, ok) = run_tshark(&exe, &path);
        (el, frames, ok, startup)
    });

    println!();
    println!("| tool | command | time (s) | throughput (MB/s) | sentinel frame |");
    println!("|---|---|---:|---:|---|");
    println!(
        "| meshproof | check mtls --mesh istio --port 8080 (median of 3) | {:.2} | {:.1} | {} |",
        ours.as_secs_f64(),
        mb / ours.as_secs_f64(),
        sentinel_frame
    );
    match theirs {
        Some((el, frames, ok, startup)) => {
            println!(
                "| tshark | -r FILE -Y 'frame contains \"…\"' -T fields -e frame.number | {:.2} | {:.1} | {} |",
                el.as_secs_f64(),
                mb / el.as_secs_f64(),
                if ok { frames.join(",") } else { "tshark failed".into() }
            );
            println!(
                "| tshark | same, on an empty capture (start-up cost only) | {:.2} | – | – |",
                startup.as_secs_f64()
            );
            let net = (el.as_secs_f64() - startup.as_secs_f64()).max(1e-3);
            println!();
            println!(
                "meshproof is {:.1}x tshark's throughput ({:.1}x with tshark's start-up discounted)",
                el.as_secs_f64() / ours.as_secs_f64(),
                net / ours.as_secs_f64()
            );
            assert_eq!(
                frames,
                vec![sentinel_frame.to_string()],
                "tshark must find the same frame"
            );
        }
        None => println!("\ntshark not installed (Debian package `tshark`): baseline not measured"),
    }
}
