//! `check http` against real loopback servers, one per way a request can end, through the
//! library API and the CLI binary.

mod support_tls;

use std::time::{Duration, Instant};

use meshproof::check::http::{check_http, Classification, Denial, DenySource, Expect, HttpOptions};
use meshproof::check::Outcome;
use support_tls::http_servers::{http_server, response, Behaviour};
use support_tls::{closed_port, Server};

fn url(server: &Server) -> String {
    format!("http://127.0.0.1:{}/function/echo?x=1", server.port())
}

fn opts(server: &Server, expect: Expect) -> HttpOptions {
    let mut o = HttpOptions::new(url(server), expect);
    o.timeout = Duration::from_secs(5);
    o
}

#[tokio::test]
async fn ok_is_allowed() {
    let s = http_server(response("200 OK", &[("server", "test")], "hello")).await;
    let v = check_http(&opts(&s, Expect::Allowed)).await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    assert_eq!(
        v.reasons,
        vec!["allowed as expected (HTTP 200)".to_string()]
    );
    assert_eq!(v.evidence.status, Some(200));
    assert_eq!(v.evidence.body_prefix.as_deref(), Some("hello"));
    assert_eq!(
        v.evidence.classification,
        Some(Classification::Allowed { status: 200 })
    );
    let t = v.evidence.timings.as_ref().expect("timings");
    assert!(t.connect_ms.is_some() && t.first_byte_ms.is_some());

    let v = check_http(&opts(&s, Expect::Denied)).await;
    assert_eq!(v.outcome, Outcome::Fail);
    assert!(
        v.reasons[0].contains("expected denied, but the request was allowed (HTTP 200)"),
        "{:?}",
        v.reasons
    );
}

#[tokio::test]
async fn istio_rbac_403_is_denied_and_named() {
    let s = http_server(response(
        "403 Forbidden",
        &[("server", "envoy"), ("content-type", "text/plain")],
        "RBAC: access denied",
    ))
    .await;
    let v = check_http(&opts(&s, Expect::Denied)).await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    assert_eq!(
        v.evidence.classification,
        Some(Classification::Denied(Denial::Forbidden {
            source: DenySource::IstioRbac
        }))
    );
    assert_eq!(
        v.evidence.body_prefix.as_deref(),
        Some("RBAC: access denied")
    );

    let v = check_http(&opts(&s, Expect::Allowed)).await;
    assert_eq!(v.outcome, Outcome::Fail);
    assert!(
        v.reasons[0].contains("Istio's `RBAC: access denied`"),
        "{:?}",
        v.reasons
    );
}

#[tokio::test]
async fn chunked_istio_body_is_still_recognised_and_body_is_truncated() {
    let body = "RBAC: access denied";
    let raw = format!(
        "HTTP/1.1 403 Forbidden\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let s = http_server(Behaviour::Respond(raw.into_bytes())).await;
    let v = check_http(&opts(&s, Expect::Denied)).await;
    assert_eq!(
        v.evidence.classification,
        Some(Classification::Denied(Denial::Forbidden {
            source: DenySource::IstioRbac
        }))
    );

    let long = "x".repeat(1000);
    let s = http_server(response("200 OK", &[], &long)).await;
    let v = check_http(&opts(&s, Expect::Allowed)).await;
    assert_eq!(v.evidence.body_prefix.as_deref().map(str::len), Some(256));
}

#[tokio::test]
async fn reset_after_connect_is_denied() {
    for b in [Behaviour::ResetAfterRequest, Behaviour::ResetImmediately] {
        let s = http_server(b.clone()).await;
        let v = check_http(&opts(&s, Expect::Denied)).await;
        assert_eq!(v.outcome, Outcome::Pass, "{b:?}: {:?}", v.reasons);
        assert_eq!(
            v.evidence.classification,
            Some(Classification::Denied(Denial::ConnectionReset)),
            "{b:?}"
        );
        assert_eq!(v.evidence.observed.as_deref(), Some("reset-after-connect"));
    }
}

#[tokio::test]
async fn eof_after_connect_is_denied() {
    let s = http_server(Behaviour::CloseAfterRequest).await;
    let v = check_http(&opts(&s, Expect::Denied)).await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    assert_eq!(
        v.evidence.classification,
        Some(Classification::Denied(Denial::ConnectionClosed))
    );
}

#[tokio::test]
async fn service_errors_are_neither_allowed_nor_denied() {
    for (status, needle) in [
        ("503 Service Unavailable", "HTTP 503"),
        ("404 Not Found", "HTTP 404"),
        ("401 Unauthorized", "HTTP 401"),
    ] {
        let s = http_server(response(status, &[], "nope")).await;
        for expect in [Expect::Allowed, Expect::Denied] {
            let v = check_http(&opts(&s, expect)).await;
            assert_eq!(v.outcome, Outcome::Error, "{status} {expect:?}");
            assert!(v.reasons[0].contains(needle), "{:?}", v.reasons);
            assert_eq!(v.evidence.status, Some(status[..3].parse().unwrap()));
        }
    }
}

#[tokio::test]
async fn closed_port_is_an_error_not_a_denial() {
    let port = closed_port().await;
    let mut o = HttpOptions::new(format!("http://127.0.0.1:{port}/"), Expect::Denied);
    o.timeout = Duration::from_secs(5);
    let v = check_http(&o).await;
    assert_eq!(v.outcome, Outcome::Error);
    assert_eq!(v.evidence.observed.as_deref(), Some("connect-refused"));
    assert!(
        v.reasons[0].contains("nothing is listening"),
        "{:?}",
        v.reasons
    );
}

#[tokio::test]
async fn silent_server_times_out_as_an_error() {
    let s = http_server(Behaviour::Silent).await;
    let mut o = opts(&s, Expect::Denied);
    o.timeout = Duration::from_millis(400);
    let started = Instant::now();
    let v = check_http(&o).await;
    assert_eq!(v.outcome, Outcome::Error);
    assert_eq!(v.evidence.observed.as_deref(), Some("response-timeout"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn non_http_reply_is_an_error() {
    let s = http_server(Behaviour::Respond(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec())).await;
    let v = check_http(&opts(&s, Expect::Denied)).await;
    assert_eq!(v.outcome, Outcome::Error);
    assert_eq!(v.evidence.observed.as_deref(), Some("malformed-response"));
}

#[tokio::test]
async fn headers_and_method_are_sent() {
    // The server answers 200 only if it saw our header and method: a real echo check.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut tcp, _) = l.accept().await.expect("accept");
        let mut buf = vec![0u8; 4096];
        let mut n = 0;
        while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
            let m = tcp.read(&mut buf[n..]).await.expect("read");
            if m == 0 {
                break;
            }
            n += m;
        }
        let req = String::from_utf8_lossy(&buf[..n]).to_string();
        let ok = req.starts_with("DELETE /x HTTP/1.1\r\n")
            && req.contains("\r\nX-Meshproof: probe-1\r\n");
        let status = if ok { "200 OK" } else { "400 Bad Request" };
        let _ = tcp
            .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes())
            .await;
        let _ = tcp.shutdown().await;
        let _ = tcp.read(&mut buf).await;
    });
    let mut o = HttpOptions::new(format!("http://127.0.0.1:{port}/x"), Expect::Allowed);
    o.method = "DELETE".into();
    o.headers = vec!["X-Meshproof: probe-1".into()];
    let v = check_http(&o).await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    task.await.expect("server task");
}

#[tokio::test]
async fn https_and_bad_headers_are_input_errors() {
    let v = check_http(&HttpOptions::new("https://127.0.0.1:1/", Expect::Allowed)).await;
    assert_eq!(v.outcome, Outcome::Error);
    assert!(
        v.reasons[0].contains("only http:// is supported"),
        "{:?}",
        v.reasons
    );
    let mut o = HttpOptions::new("http://127.0.0.1:1/", Expect::Allowed);
    o.headers = vec!["X: 1\r\nInjected: yes".into()];
    assert_eq!(check_http(&o).await.outcome, Outcome::Error);
}

// ---------- the CLI binary ----------

async fn cli(args: &[&str]) -> (i32, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_meshproof"))
            .args(["check", "http"])
            .args(args)
            .output(),
    )
    .await
    .expect("CLI finished in time")
    .expect("CLI ran");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_exit_codes_and_json() {
    let ok = http_server(response("200 OK", &[], "hi")).await;
    let rbac = http_server(response(
        "403 Forbidden",
        &[("server", "envoy")],
        "RBAC: access denied",
    ))
    .await;
    let closed = closed_port().await;

    let (code, out) = cli(&["--url", &url(&ok), "--expect", "allowed"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("http check: PASS"), "{out}");

    let (code, out) = cli(&[
        "--url",
        &url(&rbac),
        "--expect",
        "denied",
        "--json",
        "--header",
        "X-A: b",
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(j["check"], "http");
    assert_eq!(j["evidence"]["status"], 403);
    assert_eq!(j["evidence"]["body_prefix"], "RBAC: access denied");
    assert_eq!(j["evidence"]["classification"]["class"], "denied");
    assert_eq!(j["evidence"]["classification"]["source"], "istio-rbac");
    assert!(j["evidence"]["timings"]["total_ms"].as_f64().is_some());

    let (code, out) = cli(&["--url", &url(&ok), "--expect", "denied"]).await;
    assert_eq!(code, 1, "{out}");

    let (code, out) = cli(&[
        "--url",
        &format!("http://127.0.0.1:{closed}/"),
        "--expect",
        "denied",
        "--timeout",
        "2s",
    ])
    .await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("nothing is listening"), "{out}");

    let (code, _) = cli(&["--url", &url(&ok), "--expect", "maybe"]).await;
    assert_eq!(code, 2, "usage error");
}

// ------------------------------------------------------------ the in-pod curl probe, for real

/// The probe pods' script (`check::http::curl`) run with this machine's `sh` and `curl` against
/// real loopback servers: the status, the head and the body prefix survive the trip, so a 403
/// is attributed to who sent it.
async fn run_probe_script(url: &str) -> Option<(i32, Vec<u8>)> {
    if which::which("curl").is_err() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("curl is required in CI (apt-get install curl)");
        }
        eprintln!("SKIPPED: curl is not installed");
        return None;
    }
    let argv = meshproof::check::http::curl::command(url, 5);
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .output(),
    )
    .await
    .expect("the probe script ends")
    .expect("sh runs");
    Some((out.status.code().unwrap_or(-1), out.stdout))
}

#[tokio::test]
async fn the_probe_script_keeps_what_tells_a_mesh_denial_from_an_application_one() {
    use meshproof::check::http::{classify, curl};
    let istio = http_server(response(
        "403 Forbidden",
        &[("server", "envoy")],
        "RBAC: access denied",
    ))
    .await;
    let Some((exit, stdout)) = run_probe_script(&url(&istio)).await else {
        return;
    };
    assert_eq!(exit, 0, "{}", String::from_utf8_lossy(&stdout));
    assert_eq!(curl::status(&stdout), 403);
    assert_eq!(
        classify(&curl::observation(exit, &stdout)),
        Classification::Denied(Denial::Forbidden {
            source: DenySource::IstioRbac
        })
    );

    let linkerd = http_server(response(
        "403 Forbidden",
        &[("l5d-proxy-error", "unauthorized request on route")],
        "",
    ))
    .await;
    let (exit, stdout) = run_probe_script(&url(&linkerd)).await.unwrap();
    assert_eq!(
        classify(&curl::observation(exit, &stdout)),
        Classification::Denied(Denial::Forbidden {
            source: DenySource::LinkerdProxy
        })
    );

    let ok = http_server(response("200 OK", &[], "hello")).await;
    let (exit, stdout) = run_probe_script(&url(&ok)).await.unwrap();
    assert_eq!(
        classify(&curl::observation(exit, &stdout)),
        Classification::Allowed { status: 200 }
    );

    // Nothing listening: curl's exit 7 comes back through the script, and it is no denial.
    let (exit, stdout) = run_probe_script(&format!("http://127.0.0.1:{}/", closed_port().await))
        .await
        .unwrap();
    assert_eq!(exit, 7);
    assert!(matches!(
        classify(&curl::observation(exit, &stdout)),
        Classification::Undecided { .. }
    ));
}
