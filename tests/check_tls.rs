//! `check tls` against real TLS servers on loopback with certificates made here.
//!
//! Each case runs the library API and asserts the outcome *and* the specific reason, so a check
//! that passed or failed for the wrong reason is caught. A second group runs the CLI binary for
//! exit codes and the `--json` contract.

mod support_tls;

use std::time::{Duration, Instant};

use meshproof::check::tls::{check_tls, TlsOptions, TlsVersion};
use meshproof::check::Outcome;
use support_tls::*;

const HOST: &str = "gw.example.test";

/// Options for `https://HOST:port` resolved to 127.0.0.1, trusting only `ca_file`.
fn opts(server: &Server, ca_file: &std::path::Path) -> TlsOptions {
    let mut o = TlsOptions::new(server.url(HOST));
    o.resolve = Some(format!("{HOST}:127.0.0.1"));
    o.ca_file = Some(ca_file.to_path_buf());
    o.timeout = Duration::from_secs(5);
    o
}

struct Fixture {
    _dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
    ca: Ca,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("meshproof test CA");
    let ca_file = ca.write_pem(dir.path());
    Fixture {
        _dir: dir,
        ca_file,
        ca,
    }
}

fn has_reason(reasons: &[String], needle: &str) -> bool {
    reasons.iter().any(|r| r.contains(needle))
}

#[tokio::test]
async fn valid_endpoint_passes_with_full_evidence() {
    let f = fixture();
    let server = tls_server(server_config(
        f.ca.leaf(&[HOST], window(-1, 90)),
        rustls::ALL_VERSIONS,
    ))
    .await;
    let v = check_tls(&opts(&server, &f.ca_file)).await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    let ev = &v.evidence;
    assert_eq!(ev.protocol, Some(TlsVersion::Tls13));
    assert_eq!(ev.alpn.as_deref(), Some("h2"));
    assert!(
        ev.cipher_suite
            .as_deref()
            .unwrap_or("")
            .starts_with("TLS13_"),
        "{:?}",
        ev.cipher_suite
    );
    assert_eq!(
        ev.connected_to.as_deref(),
        Some(format!("127.0.0.1:{}", server.port()).as_str())
    );
    assert_eq!(ev.sni.as_deref(), Some(HOST));
    assert_eq!(ev.chain_length, 1);
    let leaf = ev.leaf.as_ref().expect("leaf evidence");
    assert_eq!(leaf.facts.subject, format!("CN={HOST}"));
    assert_eq!(leaf.facts.issuer, "CN=meshproof test CA");
    assert_eq!(
        leaf.days_left, 89,
        "90 days minus the moments since the certificate was made"
    );
}

#[tokio::test]
async fn ip_san_matches_an_ip_url() {
    let f = fixture();
    let server = tls_server(server_config(
        f.ca.leaf(&["127.0.0.1"], window(-1, 90)),
        rustls::ALL_VERSIONS,
    ))
    .await;
    let mut o = TlsOptions::new(server.url("127.0.0.1"));
    o.ca_file = Some(f.ca_file.clone());
    let v = check_tls(&o).await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    assert_eq!(v.evidence.sni, None, "no SNI for an IP name");
}

#[tokio::test]
async fn dns_name_without_resolve_is_looked_up() {
    let f = fixture();
    let server = tls_server(server_config(
        f.ca.leaf(&["localhost"], window(-1, 90)),
        rustls::ALL_VERSIONS,
    ))
    .await;
    let mut o = TlsOptions::new(server.url("localhost"));
    o.ca_file = Some(f.ca_file.clone());
    let v = check_tls(&o).await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    assert_eq!(
        v.evidence.connected_to.as_deref(),
        Some(format!("127.0.0.1:{}", server.port()).as_str())
    );
}

#[tokio::test]
async fn chain_through_an_intermediate_is_trusted_only_when_the_intermediate_is_served() {
    let f = fixture();
    let inter = f.ca.intermediate("meshproof intermediate");
    let mut leaf = inter.leaf(&[HOST], window(-1, 90));
    let leaf_only = Leaf {
        chain: leaf.chain.clone(),
        key: leaf.key.clone_key(),
    };
    leaf.chain.push(inter.cert.der().clone());

    let full = tls_server(server_config(leaf, rustls::ALL_VERSIONS)).await;
    let v = check_tls(&opts(&full, &f.ca_file)).await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    assert_eq!(v.evidence.chain_length, 2);
    assert_eq!(v.evidence.chain[1].subject, "CN=meshproof intermediate");
    assert_eq!(v.evidence.chain[1].issuer, "CN=meshproof test CA");

    let missing = tls_server(server_config(leaf_only, rustls::ALL_VERSIONS)).await;
    let v = check_tls(&opts(&missing, &f.ca_file)).await;
    assert_eq!(v.outcome, Outcome::Fail);
    assert!(has_reason(&v.reasons, "UnknownIssuer"), "{:?}", v.reasons);
}

#[tokio::test]
async fn expired_certificate_fails() {
    let f = fixture();
    let server = tls_server(server_config(
        f.ca.leaf(&[HOST], window(-100, -10)),
        rustls::ALL_VERSIONS,
    ))
    .await;
    let v = check_tls(&opts(&server, &f.ca_file)).await;
    assert_eq!(v.outcome, Outcome::Fail);
    assert_eq!(
        v.reasons.len(),
        1,
        "only the expiry is wrong: {:?}",
        v.reasons
    );
    assert!(
        has_reason(&v.reasons, "leaf certificate expired at"),
        "{:?}",
        v.reasons
    );
    assert!(v.evidence.leaf.as_ref().expect("leaf").days_left < 0);
    assert_eq!(
        v.evidence.chain_trust,
        Some(meshproof::check::tls::ChainTrust::Trusted),
        "expiry must not mask trust"
    );
}

#[tokio::test]
async fn not_yet_valid_certificate_fails() {
    let f = fixture();
    let server = tls_server(server_config(
        f.ca.leaf(&[HOST], window(10, 100)),
        rustls::ALL_VERSIONS,
    ))
    .await;
    let v = check_tls(&opts(&server, &f.ca_file)).await;
    assert_eq!(v.outcome, Outcome::Fail);
    assert!(has_reason(&v.reasons, "not valid yet"), "{:?}", v.reasons);
}

#[tokio::test]
async fn wrong_host_fails_and_servername_overrides_it() {
    let f = fixture();
    let server = tls_server(server_config(
        f.ca.leaf(&["other.example.test"], window(-1, 90)),
        rustls::ALL_VERSIONS,
    ))
    .await;
    let v = check_tls(&opts(&server, &f.ca_file)).await;
    assert_eq!(v.outcome, Outcome::Fail);
    assert_eq!(v.reasons.len(), 1, "{:?}", v.reasons);
    assert!(
        has_reason(&v.reasons, "not valid for host gw.example.test"),
        "{:?}",
        v.reasons
    );

    let mut o = opts(&server, &f.ca_file);
    o.servername = Some("other.example.test".into());
    let v = check_tls(&o).await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
}

#[tokio::test]
async fn expired_and_wrong_host_give_two_reasons() {
    let f = fixture();
    let server = tls_server(server_config(
        f.ca.leaf(&["other.example.test"], window(-100, -10)),
        rustls::ALL_VERSIONS,
    ))
    .await;
    let v = check_tls(&opts(&server, &f.ca_file)).await;
    assert_eq!(v.outcome, Outcome::Fail);
    assert_eq!(v.reasons.len(), 2, "{:?}", v.reasons);
    assert!(has_reason(&v.reasons, "expired at"));
    assert!(has_reason(&v.reasons, "not valid for host"));
}

#[tokio::test]
async fn leaf_from_another_ca_is_untrusted_but_its_chain_is_shown() {
    let f = fixture();
    let other = Ca::new("some other CA");
    let server = tls_server(server_config(
        other.leaf(&[HOST], window(-1, 90)),
        rustls::ALL_VERSIONS,
    ))
    .await;
    let v = check_tls(&opts(&server, &f.ca_file)).await;
    assert_eq!(v.outcome, Outcome::Fail);
    assert_eq!(v.reasons.len(), 1, "{:?}", v.reasons);
    assert!(
        has_reason(&v.reasons, "does not lead to a trusted CA"),
        "{:?}",
        v.reasons
    );
    assert_eq!(
        v.evidence.chain[0].issuer, "CN=some other CA",
        "the served chain is evidence even when untrusted"
    );
}

#[tokio::test]
async fn self_signed_leaf_fails() {
    let f = fixture();
    let server = tls_server(server_config(
        self_signed_leaf(&[HOST]),
        rustls::ALL_VERSIONS,
    ))
    .await;
    let v = check_tls(&opts(&server, &f.ca_file)).await;
    assert_eq!(v.outcome, Outcome::Fail);
    assert!(has_reason(&v.reasons, "self-signed"), "{:?}", v.reasons);
}

#[tokio::test]
async fn rsa_1024_leaf_fails_on_key_strength() {
    let f = fixture();
    let (chain, key) = f.ca.rsa1024_leaf(&[HOST], window(-1, 90));
    let server = tls_server(server_config_with_key(chain, key)).await;
    let v = check_tls(&opts(&server, &f.ca_file)).await;
    assert_eq!(v.outcome, Outcome::Fail, "{:?}", v.reasons);
    assert!(
        has_reason(&v.reasons, "weak key: RSA 1024 bits < 2048"),
        "{:?}",
        v.reasons
    );
    assert_eq!(
        v.evidence
            .leaf
            .as_ref()
            .map(|l| l.facts.key.to_string())
            .as_deref(),
        Some("RSA 1024 bits")
    );
}

#[tokio::test]
async fn tls12_only_server_fails_min_protocol_13_but_passes_12() {
    let f = fixture();
    let server = tls_server(server_config(
        f.ca.leaf(&[HOST], window(-1, 90)),
        &[&rustls::version::TLS12],
    ))
    .await;
    let mut o = opts(&server, &f.ca_file);
    let v = check_tls(&o).await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    assert_eq!(v.evidence.protocol, Some(TlsVersion::Tls12));
    assert!(
        v.evidence
            .cipher_suite
            .as_deref()
            .unwrap_or("")
            .starts_with("TLS_ECDHE_"),
        "{:?}",
        v.evidence.cipher_suite
    );

    o.min_protocol = TlsVersion::Tls13;
    let v = check_tls(&o).await;
    assert_eq!(v.outcome, Outcome::Fail);
    assert_eq!(v.reasons.len(), 1, "{:?}", v.reasons);
    assert!(
        has_reason(&v.reasons, "negotiated TLSv1.2"),
        "{:?}",
        v.reasons
    );
}

#[tokio::test]
async fn days_left_below_min_days_fails() {
    let f = fixture();
    let server = tls_server(server_config(
        f.ca.leaf(&[HOST], window(-1, 20)),
        rustls::ALL_VERSIONS,
    ))
    .await;
    let mut o = opts(&server, &f.ca_file);
    o.min_days = Some(10);
    assert_eq!(check_tls(&o).await.outcome, Outcome::Pass);
    o.min_days = Some(30);
    let v = check_tls(&o).await;
    assert_eq!(v.outcome, Outcome::Fail);
    assert!(
        has_reason(&v.reasons, "fewer than the required 30"),
        "{:?}",
        v.reasons
    );
}

#[tokio::test]
async fn silent_server_is_an_error_within_the_timeout() {
    let f = fixture();
    let server = silent_server().await;
    let mut o = opts(&server, &f.ca_file);
    o.timeout = Duration::from_millis(500);
    let started = Instant::now();
    let v = check_tls(&o).await;
    let took = started.elapsed();
    assert_eq!(v.outcome, Outcome::Error);
    assert!(has_reason(&v.reasons, "timed out"), "{:?}", v.reasons);
    assert!(
        took < Duration::from_secs(3),
        "took {took:?} with a 500ms timeout"
    );
}

#[tokio::test]
async fn plain_http_on_the_port_is_an_error_saying_not_tls() {
    let f = fixture();
    let server = plain_http_server().await;
    let v = check_tls(&opts(&server, &f.ca_file)).await;
    assert_eq!(v.outcome, Outcome::Error);
    assert!(
        has_reason(&v.reasons, "not speaking TLS (it looks like plain HTTP)"),
        "{:?}",
        v.reasons
    );
    assert!(
        has_reason(&v.reasons, "HTTP/1.1 400"),
        "the peer's answer is shown: {:?}",
        v.reasons
    );
}

#[tokio::test]
async fn closed_port_is_an_error() {
    let f = fixture();
    let port = closed_port().await;
    let mut o = TlsOptions::new(format!("https://{HOST}:{port}"));
    o.resolve = Some(format!("{HOST}:127.0.0.1"));
    o.ca_file = Some(f.ca_file.clone());
    let v = check_tls(&o).await;
    assert_eq!(v.outcome, Outcome::Error);
    assert_eq!(v.evidence.failed_stage.as_deref(), Some("connect"));
}

#[tokio::test]
async fn bad_ca_file_is_an_error() {
    let f = fixture();
    let server = tls_server(server_config(
        f.ca.leaf(&[HOST], window(-1, 90)),
        rustls::ALL_VERSIONS,
    ))
    .await;
    let junk = f._dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").expect("write");
    for path in [junk, f._dir.path().join("missing.pem")] {
        let v = check_tls(&opts(&server, &path)).await;
        assert_eq!(v.outcome, Outcome::Error, "{path:?}");
        assert_eq!(v.evidence.failed_stage.as_deref(), Some("trust"));
    }
}

// ---------- the CLI binary ----------

async fn cli(args: &[&str]) -> (i32, String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_meshproof"))
            .args(["check", "tls"])
            .args(args)
            .output(),
    )
    .await
    .expect("CLI finished in time")
    .expect("CLI ran");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_pass_prints_one_json_object_with_evidence() {
    let f = fixture();
    let server = tls_server(server_config(
        f.ca.leaf(&[HOST], window(-1, 90)),
        rustls::ALL_VERSIONS,
    ))
    .await;
    let resolve = format!("{HOST}:127.0.0.1");
    let ca = f.ca_file.to_string_lossy().into_owned();
    let (code, stdout, stderr) = cli(&[
        "--url",
        &server.url(HOST),
        "--resolve",
        &resolve,
        "--ca",
        &ca,
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let j: serde_json::Value =
        serde_json::from_str(&stdout).expect("stdout is exactly one JSON value");
    assert_eq!(j["check"], "tls");
    assert_eq!(j["outcome"], "pass");
    let ev = &j["evidence"];
    assert_eq!(ev["protocol"], "TLSv1.3");
    assert_eq!(ev["leaf"]["subject"], format!("CN={HOST}"));
    assert_eq!(ev["leaf"]["sans"][0], format!("DNS:{HOST}"));
    assert!(ev["leaf"]["serial"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(
        ev["leaf"]["not_after"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z')),
        "RFC 3339: {}",
        ev["leaf"]["not_after"]
    );
    assert!(ev["leaf"]["days_left"].as_i64().is_some());
    assert_eq!(ev["chain_length"], 1);
    assert_eq!(ev["chain"][0]["issuer"], "CN=meshproof test CA");
    assert_eq!(ev["alpn"], "h2");
    assert!(ev["cipher_suite"].as_str().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_fail_exits_1_and_error_exits_2() {
    let f = fixture();
    let expired = tls_server(server_config(
        f.ca.leaf(&[HOST], window(-100, -10)),
        rustls::ALL_VERSIONS,
    ))
    .await;
    let plain = plain_http_server().await;
    let resolve = format!("{HOST}:127.0.0.1");
    let ca = f.ca_file.to_string_lossy().into_owned();

    let (code, stdout, _) = cli(&[
        "--url",
        &expired.url(HOST),
        "--resolve",
        &resolve,
        "--ca",
        &ca,
    ])
    .await;
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.starts_with("tls check: FAIL"), "{stdout}");
    assert!(stdout.contains("expired at"), "{stdout}");

    let (code, stdout, _) = cli(&[
        "--url",
        &plain.url(HOST),
        "--resolve",
        &resolve,
        "--ca",
        &ca,
        "--json",
        "--timeout",
        "3s",
    ])
    .await;
    assert_eq!(code, 2, "{stdout}");
    let j: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(j["outcome"], "error");
    assert_eq!(j["evidence"]["failed_stage"], "handshake");

    let (code, _, _) = cli(&["--url", &expired.url(HOST), "--min-protocol", "1.1"]).await;
    assert_eq!(code, 2, "a bad flag value is a usage error");
}

// ------------------------------------------------------------ the endpoint behind the certificate

#[tokio::test]
async fn expect_status_sends_a_get_over_the_checked_session_and_requires_the_status() {
    let f = fixture();
    let ok = tls_server(server_config(
        f.ca.leaf(&[HOST], window(-1, 90)),
        rustls::ALL_VERSIONS,
    ))
    .await;
    let mut o = opts(&ok, &f.ca_file);
    o.url = format!("{}/healthz", ok.url(HOST));
    o.expect_status = Some(200);
    let v = check_tls(&o).await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    assert_eq!(v.evidence.http_status, Some(200));
    assert_eq!(
        v.evidence.alpn.as_deref(),
        Some("http/1.1"),
        "only http/1.1 offered, so no h2"
    );

    // A perfect certificate in front of a route that points nowhere.
    let not_found = tls_server_answering(
        server_config(f.ca.leaf(&[HOST], window(-1, 90)), rustls::ALL_VERSIONS),
        Some(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
    )
    .await;
    let mut o = opts(&not_found, &f.ca_file);
    o.url = format!("{}/healthz", not_found.url(HOST));
    o.expect_status = Some(200);
    let v = check_tls(&o).await;
    assert_eq!(v.outcome, Outcome::Fail, "{:?}", v.reasons);
    assert!(
        has_reason(
            &v.reasons,
            &format!("GET /healthz (Host {HOST}) answered 404, expected 200")
        ),
        "{:?}",
        v.reasons
    );

    // Without expect_status the same endpoint passes: the handshake alone is judged.
    let mut o = opts(&not_found, &f.ca_file);
    o.url = format!("{}/healthz", not_found.url(HOST));
    assert_eq!(check_tls(&o).await.outcome, Outcome::Pass);
}

#[tokio::test]
async fn an_endpoint_that_never_answers_the_get_is_an_error_within_the_timeout() {
    let f = fixture();
    let mute = tls_server_answering(
        server_config(f.ca.leaf(&[HOST], window(-1, 90)), rustls::ALL_VERSIONS),
        None,
    )
    .await;
    let mut o = opts(&mute, &f.ca_file);
    o.expect_status = Some(200);
    o.timeout = Duration::from_secs(2);
    let started = Instant::now();
    let v = check_tls(&o).await;
    assert_eq!(v.outcome, Outcome::Error, "{:?}", v.reasons);
    assert!(
        has_reason(&v.reasons, "got no answer: no HTTP status line"),
        "{:?}",
        v.reasons
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn status_lines_parse_strictly() {
    use meshproof::check::tls::probe::parse_status_line;
    assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\nx: y\r\n"), Some(200));
    assert_eq!(parse_status_line(b"HTTP/1.0 404 Not Found\r\n"), Some(404));
    assert_eq!(parse_status_line(b"HTTP/2 200\r\n"), None);
    assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH\r\n"), None);
    assert_eq!(parse_status_line(b"HTTP/1.1 20 OK\r\n"), None);
}
