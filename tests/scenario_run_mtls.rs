//! The mTLS check's control rule over pcaps recorded by tcpdump on loopback: the unmeshed
//! control's capture must show the sentinel in plaintext, otherwise the capture is blind.
//!
//! The control rule is tested with the production judge (the mtls engine, Istio preset rules)
//! on real recordings. The order tests — control first, then the function, identity, strict —
//! use `SentinelSearchDouble` (a test double: plaintext byte search over the capture), because
//! their recorded flows are on ports of their own.
//!
//! Needs `tcpdump` and the right to capture on `lo` (root or CAP_NET_RAW); without them each
//! test prints why it skips, except under `CI=true` where it fails.

mod support_harness;
mod support_tls;

use meshproof::check::http::{Classification, Denial, DenySource};
use meshproof::check::Outcome;
use meshproof::scenario::{DataPlane, Mesh, MtlsCheck, Name};
use meshproof::scenario_run::checks::deny::Observed;
use meshproof::scenario_run::checks::mtls::{
    control_judgement, new_sentinel, run_mtls, EngineVerdict, MtlsDriver, MtlsJudge, Traffic,
    WirePorts,
};
use meshproof::scenario_run::checks::mtls_engine::Engine;
use meshproof::scenario_run::linkerd::AuthzCounters;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use support_tls::{server_config, tls_server, window, Ca};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// TEST DOUBLE of the mtls engine: counts plaintext occurrences of the sentinel anywhere in
/// the capture bytes; any hit is a fail, none a pass.
struct SentinelSearchDouble;

impl MtlsJudge for SentinelSearchDouble {
    fn judge(
        &self,
        pcap: &[u8],
        input_name: &str,
        sentinel: &str,
        _plane: DataPlane,
        _ports: WirePorts,
    ) -> EngineVerdict {
        let hits = pcap
            .windows(sentinel.len())
            .filter(|w| *w == sentinel.as_bytes())
            .count() as u64;
        EngineVerdict {
            outcome: if hits > 0 {
                Outcome::Fail
            } else {
                Outcome::Pass
            },
            reasons: if hits > 0 {
                vec![format!(
                    "sentinel seen {hits}x in plaintext in {input_name}"
                )]
            } else {
                vec![]
            },
            sentinel_hits: hits,
            evidence: serde_json::Value::Null,
        }
    }
}

fn skip(why: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true: {why}");
    }
    eprintln!("SKIP: {why}");
    true
}

/// Records loopback traffic on `port` while `traffic` runs; returns the pcap bytes.
async fn record<F: std::future::Future<Output = ()>>(port: u16, traffic: F) -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.pcap");
    let mut child = match Command::new("tcpdump")
        .args(["-i", "lo", "-U", "-n", "-w"])
        .arg(&file)
        .args(["tcp", "port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            skip(&format!("tcpdump cannot run: {e} (install tcpdump)"));
            return None;
        }
    };
    // tcpdump says "listening on lo" once the capture is live.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stderr).read_line(&mut line);
        let _ = tx.send(line);
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
    if !first.contains("listening on") {
        let _ = child.kill();
        let _ = child.wait();
        skip(&format!(
            "tcpdump could not capture on lo: {first:?} (needs root or CAP_NET_RAW)"
        ));
        return None;
    }
    // The filter is attached a moment after the banner.
    tokio::time::sleep(Duration::from_millis(700)).await;
    traffic.await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // SIGTERM: tcpdump flushes and closes the file.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    Some(std::fs::read(&file).unwrap())
}

/// A plaintext echo server; the request carries the sentinel in a header and the body.
async fn plaintext_capture(sentinel: &str) -> Option<(Vec<u8>, u16)> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
        }
    });
    let s = sentinel.to_string();
    let got = record(port, async move {
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let req = format!("POST /function/env HTTP/1.1\r\nHost: x\r\nX-Meshproof-Sentinel: {s}\r\ncontent-length: {}\r\n\r\n{s}", s.len());
        c.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out)).await;
    })
    .await;
    got.map(|p| (p, port))
}

/// The same request inside TLS (a real rustls handshake with a test CA), the client offering
/// the ALPN protocols `alpn`.
async fn tls_capture(sentinel: &str, alpn: &[&str]) -> Option<(Vec<u8>, u16)> {
    tls_capture_to(sentinel, alpn, "localhost").await
}

/// [`tls_capture`] with the SNI (and server certificate name) `server_name`.
async fn tls_capture_to(
    sentinel: &str,
    alpn: &[&str],
    server_name: &str,
) -> Option<(Vec<u8>, u16)> {
    let ca = Ca::new("meshproof test CA");
    let mut sc = server_config(
        ca.leaf(&[server_name], window(-1, 30)),
        rustls::ALL_VERSIONS,
    );
    // The server speaks whatever the client offers, as a mesh peer would.
    sc.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    let server = tls_server(sc).await;
    let port = server.port();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let s = sentinel.to_string();
    let got = record(port, async move {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).unwrap();
        let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
        let req = format!("POST /function/env HTTP/1.1\r\nHost: x\r\nX-Meshproof-Sentinel: {s}\r\ncontent-length: {}\r\n\r\n{s}", s.len());
        tls.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    })
    .await;
    drop(server);
    got.map(|p| (p, port))
}

fn judge<J: MtlsJudge>(j: &J, (pcap, port): &(Vec<u8>, u16), sentinel: &str) -> Vec<EngineVerdict> {
    let ports = WirePorts {
        app: *port,
        proxy_inbound: None,
    };
    vec![j.judge(pcap, "recorded", sentinel, DataPlane::IstioSidecar, ports)]
}

/// Linkerd's default `transport-header` mode (ledger LD-7): the gateway's proxy connects to the
/// function proxy's inbound port (here the recorded TLS server's port), never to the app port,
/// with SNI = the function's identity and ALPN `transport.l5d.io/v1`. Judged on the app port
/// alone — what meshproof did before — the capture holds nothing to judge; with the inbound
/// port it passes, and the same TLS without the transport ALPN fails there.
async fn linkerd_traffic_is_judged_on_the_proxy_inbound_port_with_its_alpn() {
    let s = new_sentinel();
    let sni = "default.openfaas-fn.serviceaccount.identity.linkerd.cluster.local";
    let Some((pcap, inbound)) = tls_capture_to(&s, &["transport.l5d.io/v1"], sni).await else {
        return;
    };
    let app = if inbound == 8080 { 8081 } else { 8080 };
    let judge = |pcap: &[u8], proxy_inbound| {
        Engine.judge(
            pcap,
            "recorded",
            &s,
            DataPlane::Linkerd,
            WirePorts { app, proxy_inbound },
        )
    };
    let app_only = judge(&pcap, None);
    assert_eq!(app_only.outcome, Outcome::Error, "{:?}", app_only.reasons);
    assert!(
        app_only.reasons[0].contains(&format!("no flow to port {app}")),
        "{:?}",
        app_only.reasons
    );
    let v = judge(&pcap, Some(inbound));
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    let Some((no_alpn, inbound)) = tls_capture_to(&s, &[], sni).await else {
        return;
    };
    let v = Engine.judge(
        &no_alpn,
        "recorded",
        &s,
        DataPlane::Linkerd,
        WirePorts {
            app,
            proxy_inbound: Some(inbound),
        },
    );
    assert_eq!(v.outcome, Outcome::Fail, "{:?}", v.reasons);
    assert!(
        v.reasons.iter().any(|r| r.contains("transport.l5d.io/v1")),
        "{:?}",
        v.reasons
    );
}

async fn a_plaintext_control_capture_proves_the_capture_can_see() {
    let s = new_sentinel();
    let Some(rec) = plaintext_capture(&s).await else {
        return;
    };
    assert!(rec.0.len() > 24, "a pcap with packets");
    let v = judge(&Engine, &rec, &s);
    assert_eq!(control_judgement(&v), Ok(()), "{:?}", v[0].reasons);
    assert!(
        v[0].sentinel_hits >= 2,
        "header and body: {}",
        v[0].sentinel_hits
    );
    // The same capture judged for a sentinel that was never sent: blind for that sentinel.
    let other = new_sentinel();
    let e = control_judgement(&judge(&Engine, &rec, &other)).unwrap_err();
    assert!(e.starts_with("capture is blind"), "{e}");
}

async fn a_tls_only_control_capture_is_blind() {
    let s = new_sentinel();
    let Some(rec) = tls_capture(&s, &["istio-http/1.1"]).await else {
        return;
    };
    assert!(rec.0.len() > 24);
    let e = control_judgement(&judge(&Engine, &rec, &s)).unwrap_err();
    assert!(e.starts_with("capture is blind"), "{e}");
}

async fn the_engine_passes_istio_mtls_on_the_wire_and_fails_tls_without_the_mesh_alpn() {
    let s = new_sentinel();
    let Some(rec) = tls_capture(&s, &["istio-http/1.1"]).await else {
        return;
    };
    let v = judge(&Engine, &rec, &s);
    assert_eq!(v[0].outcome, Outcome::Pass, "{:?}", v[0].reasons);
    let Some(rec) = tls_capture(&s, &["http/1.1"]).await else {
        return;
    };
    let v = judge(&Engine, &rec, &s);
    assert_eq!(v[0].outcome, Outcome::Fail, "{:?}", v[0].reasons);
    assert_eq!(v[0].sentinel_hits, 0);
}

/// TEST DOUBLE of the cluster side: serves recorded captures per function and scripted echoes.
struct RecordedTraffic {
    plaintext: Vec<u8>,
    plaintext_sentinel: String,
    tls: Vec<u8>,
    tls_sentinel: String,
    control_is_tls: bool,
    /// The meshed function serves the plaintext recording (a mesh that let plaintext through).
    function_is_plaintext: bool,
    /// The Host the control echoes (how the gateway addressed it).
    control_host: String,
    echo: String,
    /// Requests to the meshed function that got no 2xx answer.
    function_failures: Vec<String>,
    /// tcpdump's report for the meshed function's capture.
    function_log: String,
    strict: Classification,
    /// Istio AuthorizationPolicies that apply to the namespace.
    policies: Vec<String>,
    /// Whether a 403 to the plaintext client is counted by the (simulated) Linkerd proxy.
    proxy_denies: bool,
    denied: u64,
    calls: Vec<String>,
}

impl MtlsDriver for RecordedTraffic {
    async fn capture_traffic(
        &mut self,
        function: &str,
        _requests: u32,
        _deadline: Duration,
    ) -> Result<Traffic, String> {
        self.calls.push(format!("capture {function}"));
        let control = function != "env";
        let tls = if control {
            self.control_is_tls
        } else {
            !self.function_is_plaintext
        };
        let (pcap, sentinel) = if tls {
            (self.tls.clone(), self.tls_sentinel.clone())
        } else {
            (self.plaintext.clone(), self.plaintext_sentinel.clone())
        };
        let (responses, failures) = if control {
            (
                vec![format!("Http_Host={}\n{}", self.control_host, self.echo)],
                Vec::new(),
            )
        } else if self.function_failures.is_empty() {
            (vec![self.echo.clone()], Vec::new())
        } else {
            (Vec::new(), self.function_failures.clone())
        };
        Ok(Traffic {
            pcap,
            sentinels: vec![sentinel],
            responses,
            capture_log: if control {
                String::new()
            } else {
                self.function_log.clone()
            },
            retries: 0,
            proxy_inbound: None,
            failures,
        })
    }
    async fn plaintext_probe(&mut self, function: &str, _port: u16) -> Result<Observed, String> {
        self.calls.push(format!("plaintext {function}"));
        if self.proxy_denies
            && matches!(
                self.strict,
                Classification::Denied(Denial::Forbidden { .. })
            )
        {
            self.denied += 1;
        }
        Ok(Observed::new(self.strict.clone(), "scripted"))
    }
    async fn authorization_policies(&mut self) -> Result<Vec<String>, String> {
        self.calls.push("policies".into());
        Ok(self.policies.clone())
    }
    async fn proxy_counters(&mut self, _f: &str, _port: u16) -> Result<AuthzCounters, String> {
        Ok(AuthzCounters {
            denied: self.denied,
            probe_allowed: 0,
        })
    }
}

fn check() -> MtlsCheck {
    MtlsCheck {
        function: Name::parse("env").unwrap(),
        control: Name::parse("env-nomesh").unwrap(),
        requests: 1,
        port: 8080,
        strict: true,
        timeout: Duration::from_secs(60),
    }
}

const XFCC: &str = "Http_X_Forwarded_Client_Cert=By=spiffe://cluster.local/ns/openfaas-fn/sa/default;Hash=ab;Subject=\"\";URI=spiffe://cluster.local/ns/openfaas/sa/openfaas-controller\nHttp_Host=env.openfaas-fn:8080\n";

async fn recorded() -> Option<RecordedTraffic> {
    let ps = new_sentinel();
    let (plaintext, _) = plaintext_capture(&ps).await?;
    let ts = new_sentinel();
    let (tls, _) = tls_capture(&ts, &["istio-http/1.1"]).await?;
    Some(RecordedTraffic {
        plaintext,
        plaintext_sentinel: ps,
        tls,
        tls_sentinel: ts,
        control_is_tls: false,
        function_is_plaintext: false,
        control_host: "env-nomesh.openfaas-fn.svc.cluster.local:8080".into(),
        echo: XFCC.into(),
        function_failures: Vec::new(),
        function_log:
            "3 packets captured\n3 packets received by filter\n0 packets dropped by kernel\n".into(),
        strict: Classification::Denied(Denial::ConnectionReset),
        policies: Vec::new(),
        proxy_denies: true,
        denied: 0,
        calls: vec![],
    })
}

async fn the_check_runs_control_first_then_function_identity_and_strict() {
    let Some(mut d) = recorded().await else {
        return;
    };
    let v = run_mtls(
        &mut d,
        &SentinelSearchDouble,
        &check(),
        DataPlane::IstioSidecar,
        "openfaas",
        "openfaas-controller",
    )
    .await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    assert_eq!(
        d.calls,
        [
            "capture env-nomesh",
            "capture env",
            "policies",
            "plaintext env"
        ]
    );

    // A blind control stops the check before the function is captured.
    let Some(mut d) = recorded().await else {
        return;
    };
    d.control_is_tls = true;
    let v = run_mtls(
        &mut d,
        &SentinelSearchDouble,
        &check(),
        DataPlane::IstioSidecar,
        "openfaas",
        "openfaas-controller",
    )
    .await;
    assert_eq!(v.outcome, Outcome::Error);
    assert!(
        v.reasons[0].starts_with("capture is blind"),
        "{:?}",
        v.reasons
    );
    assert_eq!(d.calls, ["capture env-nomesh"]);
}

async fn a_missing_identity_or_an_accepted_plaintext_client_fails() {
    let Some(mut d) = recorded().await else {
        return;
    };
    d.echo = "Http_Host=env.openfaas-fn:8080\n".into();
    let v = run_mtls(
        &mut d,
        &SentinelSearchDouble,
        &check(),
        DataPlane::IstioSidecar,
        "openfaas",
        "openfaas-controller",
    )
    .await;
    assert_eq!(v.outcome, Outcome::Fail);
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("lack the gateway identity")),
        "{:?}",
        v.reasons
    );

    let Some(mut d) = recorded().await else {
        return;
    };
    d.strict = Classification::Allowed { status: 200 };
    let v = run_mtls(
        &mut d,
        &SentinelSearchDouble,
        &check(),
        DataPlane::IstioSidecar,
        "openfaas",
        "openfaas-controller",
    )
    .await;
    assert_eq!(v.outcome, Outcome::Fail);
    assert!(
        v.reasons.iter().any(|r| r.starts_with("strict:")),
        "{:?}",
        v.reasons
    );

    // Linkerd's client id must equal the identity exactly.
    let Some(mut d) = recorded().await else {
        return;
    };
    d.echo = "Http_L5d_Client_Id=openfaas-controller.openfaas.serviceaccount.identity.linkerd.cluster.local\n".into();
    let v = run_mtls(
        &mut d,
        &SentinelSearchDouble,
        &check(),
        DataPlane::Linkerd,
        "openfaas",
        "openfaas-controller",
    )
    .await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    let Some(mut d) = recorded().await else {
        return;
    };
    d.echo =
        "Http_L5d_Client_Id=default.openfaas-fn.serviceaccount.identity.linkerd.cluster.local\n"
            .into();
    let v = run_mtls(
        &mut d,
        &SentinelSearchDouble,
        &check(),
        DataPlane::Linkerd,
        "openfaas",
        "openfaas-controller",
    )
    .await;
    assert_eq!(v.outcome, Outcome::Fail);
}

async fn run(
    d: &mut RecordedTraffic,
    mesh: Mesh,
) -> meshproof::check::Verdict<meshproof::scenario_run::checks::mtls::MtlsTrialEvidence> {
    run_mtls(
        d,
        &SentinelSearchDouble,
        &check(),
        DataPlane::default_for(mesh),
        "openfaas",
        "openfaas-controller",
    )
    .await
}

/// OpenFaaS CE's gateway calls functions by pod IP (ledger OF-3/OF-4), which Istio sidecars
/// send around their mTLS (IS-8): the control's echoed Host shows it, and the check stops with
/// an error naming that cause before judging the mesh. Linkerd meshes pod-IP traffic (LD-7):
/// there the addressing is only recorded.
async fn a_gateway_that_calls_pod_ips_is_an_error_under_istio_and_recorded_under_linkerd() {
    let Some(mut d) = recorded().await else {
        return;
    };
    d.control_host = "10.244.0.12:8080".into();
    let v = run(&mut d, Mesh::Istio).await;
    assert_eq!(v.outcome, Outcome::Error, "{:?}", v.reasons);
    assert!(
        v.reasons[0].contains("addresses functions by pod IP (Host: 10.244.0.12:8080")
            && v.reasons[0].contains("PassthroughCluster"),
        "{:?}",
        v.reasons
    );
    assert_eq!(d.calls, ["capture env-nomesh"], "the mesh is never judged");
    let Some(mut d) = recorded().await else {
        return;
    };
    d.control_host = "10.244.0.12:8080".into();
    d.echo = "Http_L5d_Client_Id=openfaas-controller.openfaas.serviceaccount.identity.linkerd.cluster.local\n".into();
    let v = run(&mut d, Mesh::Linkerd).await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    assert!(matches!(
        v.evidence.gateway_addressing,
        Some(meshproof::scenario_run::checks::addressing::Addressing::PodIp { .. })
    ));
}

/// The capture is judged even when the requests failed: a sentinel in plaintext fails the
/// check whatever the answers were (before, a failed request threw the capture away as an
/// error); failures with a clean capture are an error that carries the answer's body.
async fn plaintext_fails_whatever_the_answers_and_failures_alone_are_an_error_with_the_body() {
    let Some(mut d) = recorded().await else {
        return;
    };
    let reset = "HTTP 503 Service Unavailable: \"upstream connect error or disconnect/reset before headers. reset reason: connection termination\"";
    d.function_is_plaintext = true;
    d.function_failures = vec![reset.into()];
    let v = run(&mut d, Mesh::Istio).await;
    assert_eq!(v.outcome, Outcome::Fail, "{:?}", v.reasons);
    assert!(
        v.reasons.iter().any(|r| r.contains("sentinel")),
        "{:?}",
        v.reasons
    );
    let Some(mut d) = recorded().await else {
        return;
    };
    d.function_failures = vec![reset.into()];
    let v = run(&mut d, Mesh::Istio).await;
    assert_eq!(v.outcome, Outcome::Error, "{:?}", v.reasons);
    assert!(
        v.reasons[0].contains("upstream connect error") && v.reasons[0].contains("failed"),
        "{:?}",
        v.reasons
    );
}

/// A capture tcpdump reports holes in cannot pass: the packets it lost may be exactly the
/// plaintext (seen on a loaded machine: a plaintext request and its answer missing while the
/// FINs after them were kept). A sentinel seen in the clear still fails: that is conclusive.
async fn a_capture_that_lost_packets_cannot_pass_but_plaintext_in_it_still_fails() {
    let Some(mut d) = recorded().await else {
        return;
    };
    d.function_log =
        "12 packets captured\n16 packets received by filter\n4 packets dropped by kernel\n".into();
    let v = run(&mut d, Mesh::Istio).await;
    assert_eq!(v.outcome, Outcome::Error, "{:?}", v.reasons);
    assert!(v.reasons[0].contains("lost 4 packets"), "{:?}", v.reasons);
    let Some(mut d) = recorded().await else {
        return;
    };
    d.function_log = "1 packet dropped by interface\n".into();
    d.function_is_plaintext = true;
    let v = run(&mut d, Mesh::Istio).await;
    assert_eq!(v.outcome, Outcome::Fail, "{:?}", v.reasons);
}

/// Istio's XFCC is APPEND_FORWARD (ledger IS-12): the function's sidecar appends the last
/// element, whose URI is the client it saw. Only that element counts, and its URI must be the
/// gateway's exactly (a substring match accepted `…/sa/openfaas-controller-x`).
async fn the_last_xfcc_element_must_name_the_gateway_exactly() {
    use meshproof::scenario_run::checks::mtls::{identity_ok, xfcc_last_uri};
    let want = "URI=spiffe://cluster.local/ns/openfaas/sa/openfaas-controller";
    let var = "Http_X_Forwarded_Client_Cert";
    let body = |xfcc: &str| format!("{var}={xfcc}\n");
    let own = "By=spiffe://cluster.local/ns/openfaas-fn/sa/default;Hash=ab;Subject=\"\";URI=spiffe://cluster.local/ns/openfaas/sa/openfaas-controller";
    assert_eq!(identity_ok(Mesh::Istio, &body(own), var, want), Ok(()));
    let lookalike = own.replace("openfaas-controller", "openfaas-controller-x");
    assert!(identity_ok(Mesh::Istio, &body(&lookalike), var, want).is_err());
    // A forwarded element first, the function sidecar's own last: the last one decides.
    let forwarded = format!(
        "By=spiffe://x;URI=spiffe://cluster.local/ns/openfaas/sa/openfaas-controller,{}",
        own.replace("ns/openfaas/sa", "ns/other/sa")
    );
    assert!(identity_ok(Mesh::Istio, &body(&forwarded), var, want).is_err());
    let reversed = format!("By=spiffe://x;URI=spiffe://evil,{own}");
    assert_eq!(
        identity_ok(Mesh::Istio, &body(&reversed), var, want),
        Ok(())
    );
    assert_eq!(
        xfcc_last_uri("By=a;Subject=\"CN=a,O=b\";URI=spiffe://c"),
        Some("spiffe://c".into()),
        "a comma inside a quoted value does not split elements"
    );
}

/// Under Istio STRICT a plaintext client is refused by a closed connection (ledger IS-9): a
/// 403 means the port took plaintext and a policy answered — a fail; and a leftover
/// AuthorizationPolicy, which could close the connection itself, makes the probe an error. On
/// Linkerd the proxy answers a bare 403, counted by its deny counter.
async fn the_strict_probe_counts_only_a_refusal_the_mesh_made_for_strict() {
    let forbidden = Classification::Denied(Denial::Forbidden {
        source: DenySource::Unknown,
    });
    let Some(mut d) = recorded().await else {
        return;
    };
    d.strict = forbidden.clone();
    let v = run(&mut d, Mesh::Istio).await;
    assert_eq!(v.outcome, Outcome::Fail, "{:?}", v.reasons);
    assert!(
        v.reasons.iter().any(|r| r.contains("accepted plaintext")),
        "{:?}",
        v.reasons
    );
    let Some(mut d) = recorded().await else {
        return;
    };
    d.policies = vec!["openfaas-fn/functions-from-gateway-only".into()];
    let v = run(&mut d, Mesh::Istio).await;
    assert_eq!(v.outcome, Outcome::Error, "{:?}", v.reasons);
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("functions-from-gateway-only")),
        "{:?}",
        v.reasons
    );
    assert!(!d.calls.contains(&"plaintext env".to_string()));
    let linkerd_echo = "Http_L5d_Client_Id=openfaas-controller.openfaas.serviceaccount.identity.linkerd.cluster.local\n";
    let Some(mut d) = recorded().await else {
        return;
    };
    d.echo = linkerd_echo.into();
    d.strict = forbidden.clone();
    let v = run(&mut d, Mesh::Linkerd).await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    let Some(mut d) = recorded().await else {
        return;
    };
    d.echo = linkerd_echo.into();
    d.strict = forbidden;
    d.proxy_denies = false;
    let v = run(&mut d, Mesh::Linkerd).await;
    assert_eq!(v.outcome, Outcome::Error, "{:?}", v.reasons);
}

fn main() -> std::process::ExitCode {
    use support_harness::{Case, Need};
    support_harness::run(vec![
        Case::tokio(
            "linkerd_traffic_is_judged_on_the_proxy_inbound_port_with_its_alpn",
            &[Need::Tcpdump],
            linkerd_traffic_is_judged_on_the_proxy_inbound_port_with_its_alpn,
        ),
        Case::tokio(
            "a_plaintext_control_capture_proves_the_capture_can_see",
            &[Need::Tcpdump],
            a_plaintext_control_capture_proves_the_capture_can_see,
        ),
        Case::tokio(
            "a_tls_only_control_capture_is_blind",
            &[Need::Tcpdump],
            a_tls_only_control_capture_is_blind,
        ),
        Case::tokio(
            "the_engine_passes_istio_mtls_on_the_wire_and_fails_tls_without_the_mesh_alpn",
            &[Need::Tcpdump],
            the_engine_passes_istio_mtls_on_the_wire_and_fails_tls_without_the_mesh_alpn,
        ),
        Case::tokio(
            "the_check_runs_control_first_then_function_identity_and_strict",
            &[Need::Tcpdump],
            the_check_runs_control_first_then_function_identity_and_strict,
        ),
        Case::tokio(
            "a_missing_identity_or_an_accepted_plaintext_client_fails",
            &[Need::Tcpdump],
            a_missing_identity_or_an_accepted_plaintext_client_fails,
        ),
        Case::tokio(
            "a_gateway_that_calls_pod_ips_is_an_error_under_istio_and_recorded_under_linkerd",
            &[Need::Tcpdump],
            a_gateway_that_calls_pod_ips_is_an_error_under_istio_and_recorded_under_linkerd,
        ),
        Case::tokio(
            "plaintext_fails_whatever_the_answers_and_failures_alone_are_an_error_with_the_body",
            &[Need::Tcpdump],
            plaintext_fails_whatever_the_answers_and_failures_alone_are_an_error_with_the_body,
        ),
        Case::tokio(
            "a_capture_that_lost_packets_cannot_pass_but_plaintext_in_it_still_fails",
            &[Need::Tcpdump],
            a_capture_that_lost_packets_cannot_pass_but_plaintext_in_it_still_fails,
        ),
        Case::tokio(
            "the_last_xfcc_element_must_name_the_gateway_exactly",
            &[],
            the_last_xfcc_element_must_name_the_gateway_exactly,
        ),
        Case::tokio(
            "the_strict_probe_counts_only_a_refusal_the_mesh_made_for_strict",
            &[Need::Tcpdump],
            the_strict_probe_counts_only_a_refusal_the_mesh_made_for_strict,
        ),
    ])
}
