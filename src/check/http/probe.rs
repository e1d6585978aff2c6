//! The network half of `check http`: one HTTP/1.1 request over a raw TCP connection.
//!
//! Why not reqwest/hyper: their errors fold "connection refused at connect" and "connection
//! reset after connect" into similar error chains, and that difference is the whole verdict
//! (service down vs. L4 policy denial). Doing the connect with tokio's `TcpStream` and speaking
//! HTTP/1.1 by hand makes the stage at which the connection failed explicit. Only `http://` is
//! supported; `https://` is refused with a clear input error.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant as TokioInstant};

use super::classify::{Observation, BODY_PREFIX_MAX};

/// Largest response head accepted (status line + headers).
const MAX_HEAD: usize = 64 * 1024;

/// Why the request could not even be formed. Always an *error* verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("--url {0:?} is not a valid URL: {1}")]
    BadUrl(String, String),
    #[error("--url {0:?}: only http:// is supported by check http (https:// is not implemented; use `check tls` for the TLS layer)")]
    UnsupportedScheme(String),
    #[error("--url {0:?} has no host")]
    NoHost(String),
    #[error("--header {0:?} must be NAME:VALUE with a token name and no line breaks")]
    BadHeader(String),
    #[error("--method {0:?} is not an HTTP method token")]
    BadMethod(String),
}

/// A validated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub host: String,
    pub port: u16,
    /// Path and query, always starting with `/`.
    pub target: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The request target of `u`: its path and query, as sent on an HTTP/1.1 request line.
pub fn request_target(u: &reqwest::Url) -> String {
    let mut target = u.path().to_string();
    if let Some(q) = u.query() {
        target.push('?');
        target.push_str(q);
    }
    target
}

impl HttpRequest {
    pub fn parse(url: &str, method: &str, headers: &[String]) -> Result<HttpRequest, RequestError> {
        let u = reqwest::Url::parse(url)
            .map_err(|e| RequestError::BadUrl(url.to_string(), e.to_string()))?;
        if u.scheme() != "http" {
            return Err(RequestError::UnsupportedScheme(url.to_string()));
        }
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| RequestError::NoHost(url.to_string()))?
            .to_string();
        let port = u.port_or_known_default().unwrap_or(80);
        let target = request_target(&u);
        if !is_token(method) {
            return Err(RequestError::BadMethod(method.to_string()));
        }
        let mut parsed = Vec::new();
        for h in headers {
            let (k, v) = h
                .split_once(':')
                .ok_or_else(|| RequestError::BadHeader(h.clone()))?;
            let (k, v) = (k.trim(), v.trim());
            if !is_token(k) || v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(RequestError::BadHeader(h.clone()));
            }
            parsed.push((k.to_string(), v.to_string()));
        }
        Ok(HttpRequest {
            host,
            port,
            target,
            method: method.to_ascii_uppercase(),
            headers: parsed,
        })
    }

    /// The request bytes. `Host` is added unless the user set one; `Connection: close` always.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        if !self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("host"))
        {
            let host = if self.port == 80 {
                self.host.clone()
            } else {
                format!("{}:{}", self.host, self.port)
            };
            out.push_str(&format!("Host: {host}\r\n"));
        }
        if !self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
        {
            out.push_str(concat!(
                "User-Agent: meshproof/",
                env!("CARGO_PKG_VERSION"),
                "\r\n"
            ));
        }
        out.push_str("Accept: */*\r\nConnection: close\r\n");
        for (k, v) in &self.headers {
            if !k.eq_ignore_ascii_case("connection") {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        if self.method != "GET" && self.method != "HEAD" {
            out.push_str("Content-Length: 0\r\n");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

/// Milliseconds spent in each stage (`None` if the stage was not reached).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timings {
    pub resolve_ms: Option<f64>,
    pub connect_ms: Option<f64>,
    pub first_byte_ms: Option<f64>,
    pub total_ms: f64,
}

/// The raw result of one attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub observation: Observation,
    pub connected_to: Option<SocketAddr>,
    pub timings: Timings,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

/// Sends `req` once and observes what happens, all within `timeout`.
pub async fn observe(req: &HttpRequest, timeout: Duration) -> Attempt {
    let started = Instant::now();
    let deadline = TokioInstant::now() + timeout;
    let mut timings = Timings::default();
    let done = |observation, connected_to, mut timings: Timings| {
        timings.total_ms = ms(started.elapsed());
        Attempt {
            observation,
            connected_to,
            timings,
        }
    };

    // Resolve.
    let lookup_host = req.host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> =
        match timeout_at(deadline, tokio::net::lookup_host((lookup_host, req.port))).await {
            Err(_) => {
                return done(
                    Observation::DnsFailure(format!("lookup of {} timed out", req.host)),
                    None,
                    timings,
                )
            }
            Ok(Err(e)) => {
                return done(
                    Observation::DnsFailure(format!("{}: {e}", req.host)),
                    None,
                    timings,
                )
            }
            Ok(Ok(a)) => a.collect(),
        };
    timings.resolve_ms = Some(ms(started.elapsed()));
    if addrs.is_empty() {
        return done(
            Observation::DnsFailure(format!("{} has no address", req.host)),
            None,
            timings,
        );
    }

    // Connect: the first address that accepts wins; otherwise report the last failure.
    let mut last = Observation::ConnectRefused;
    let mut stream = None;
    for addr in &addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => {
                last = Observation::ConnectTimeout;
                break;
            }
            Ok(Ok(s)) => {
                stream = Some((s, *addr));
                break;
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                last = Observation::ConnectRefused
            }
            Ok(Err(e)) => last = Observation::ConnectFailed(format!("{addr}: {e}")),
        }
    }
    let Some((mut stream, addr)) = stream else {
        return done(last, None, timings);
    };
    timings.connect_ms = Some(ms(started.elapsed()));

    // Send. A reset here is already "after connect".
    match timeout_at(deadline, stream.write_all(&req.to_bytes())).await {
        Err(_) => return done(Observation::ResponseTimeout, Some(addr), timings),
        Ok(Err(e)) if is_reset(&e) => {
            return done(Observation::ResetAfterConnect, Some(addr), timings)
        }
        Ok(Err(e)) => {
            return done(
                Observation::Malformed(format!("sending the request failed: {e}")),
                Some(addr),
                timings,
            )
        }
        Ok(Ok(())) => {}
    }

    // Read the response head.
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let (status, headers, body_start) = loop {
        if let Some(parsed) = parse_head(&buf) {
            match parsed {
                Ok(Head { status, len, .. }) if (100..200).contains(&status) && status != 101 => {
                    buf.drain(..len); // interim response (100 Continue…): the final one follows
                    continue;
                }
                Ok(Head {
                    status,
                    headers,
                    len,
                }) => break (status, headers, len),
                Err(e) => return done(Observation::Malformed(e), Some(addr), timings),
            }
        }
        if buf.len() > MAX_HEAD {
            return done(
                Observation::Malformed(format!("response head larger than {MAX_HEAD} bytes")),
                Some(addr),
                timings,
            );
        }
        match timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return done(Observation::ResponseTimeout, Some(addr), timings),
            Ok(Err(e)) if is_reset(&e) && buf.is_empty() => {
                return done(Observation::ResetAfterConnect, Some(addr), timings)
            }
            Ok(Err(e)) => {
                return done(
                    Observation::Malformed(format!(
                        "{e} after {} bytes of the response head",
                        buf.len()
                    )),
                    Some(addr),
                    timings,
                )
            }
            Ok(Ok(0)) if buf.is_empty() => {
                return done(Observation::EofAfterConnect, Some(addr), timings)
            }
            Ok(Ok(0)) => {
                let seen = String::from_utf8_lossy(&buf[..buf.len().min(64)]).into_owned();
                return done(
                    Observation::Malformed(format!(
                        "connection closed inside the response head: {seen:?}"
                    )),
                    Some(addr),
                    timings,
                );
            }
            Ok(Ok(n)) => {
                if buf.is_empty() {
                    timings.first_byte_ms = Some(ms(started.elapsed()));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    };

    // Read up to BODY_PREFIX_MAX raw body bytes; any failure here keeps what arrived, since the
    // status already decides. The wait is bounded by the deadline and by a short grace period.
    let content_length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    let want = if chunked {
        BODY_PREFIX_MAX + 16
    } else {
        content_length.unwrap_or(usize::MAX).min(BODY_PREFIX_MAX)
    };
    let body_deadline = deadline.min(TokioInstant::now() + Duration::from_secs(2));
    let no_body = req.method == "HEAD" || status == 204 || status == 304;
    let mut body = buf.split_off(body_start);
    while !no_body && body.len() < want {
        match timeout_at(body_deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => body.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    if no_body {
        body.clear();
    }
    let mut body_prefix = if chunked { dechunk(&body) } else { body };
    body_prefix.truncate(BODY_PREFIX_MAX);
    done(
        Observation::Response {
            status,
            headers,
            body_prefix,
        },
        Some(addr),
        timings,
    )
}

struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    len: usize,
}

/// Parses a response head if `buf` holds a complete one: `None` = need more bytes.
fn parse_head(buf: &[u8]) -> Option<Result<Head, String>> {
    // Reject early if the very first bytes cannot start an HTTP/1.x status line.
    let prefix = b"HTTP/1.";
    let n = buf.len().min(prefix.len());
    if buf[..n] != prefix[..n] {
        let seen = String::from_utf8_lossy(&buf[..buf.len().min(64)]).into_owned();
        return Some(Err(format!(
            "response does not start with an HTTP/1.x status line: {seen:?}"
        )));
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let _version = parts.next();
    let status = match parts.next().and_then(|s| s.parse::<u16>().ok()) {
        Some(s) if (100..=999).contains(&s) => s,
        _ => return Some(Err(format!("bad status line {status_line:?}"))),
    };
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Ok(Head {
        status,
        headers,
        len: end + 4,
    }))
}

/// Best-effort decoding of the chunks present in `raw` (stops at the first incomplete one).
fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size_field = String::from_utf8_lossy(&rest[..eol]);
        let Ok(size) = usize::from_str_radix(size_field.split(';').next().unwrap_or("").trim(), 16)
        else {
            break;
        };
        if size == 0 {
            break;
        }
        let data = &rest[eol + 2..];
        let take = size.min(data.len());
        out.extend_from_slice(&data[..take]);
        if take < size || data.len() < size + 2 {
            break;
        }
        rest = &data[size + 2..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_well_formed() {
        let r = HttpRequest::parse(
            "http://svc.ns:8080/a/b?x=1",
            "get",
            &["X-Test: yes".into(), "Host: other".into()],
        )
        .unwrap();
        let s = String::from_utf8(r.to_bytes()).unwrap();
        assert!(s.starts_with("GET /a/b?x=1 HTTP/1.1\r\n"), "{s}");
        assert!(
            s.contains("\r\nHost: other\r\n") && !s.contains("Host: svc.ns"),
            "{s}"
        );
        assert!(s.contains("\r\nX-Test: yes\r\n"));
        assert!(s.ends_with("\r\n\r\n"));
        let d = HttpRequest::parse("http://svc", "POST", &[]).unwrap();
        let s = String::from_utf8(d.to_bytes()).unwrap();
        assert!(
            s.contains("Host: svc\r\n") && s.contains("Content-Length: 0\r\n"),
            "{s}"
        );
    }

    #[test]
    fn ipv6_hosts_keep_brackets_in_the_host_header() {
        let r = HttpRequest::parse("http://[::1]:8080/", "GET", &[]).unwrap();
        assert_eq!(r.host, "[::1]");
        assert!(String::from_utf8(r.to_bytes())
            .unwrap()
            .contains("\r\nHost: [::1]:8080\r\n"));
    }

    #[test]
    fn bad_requests_are_rejected() {
        assert!(matches!(
            HttpRequest::parse("https://a", "GET", &[]),
            Err(RequestError::UnsupportedScheme(_))
        ));
        assert!(matches!(
            HttpRequest::parse("nope", "GET", &[]),
            Err(RequestError::BadUrl(..))
        ));
        assert!(matches!(
            HttpRequest::parse("http://a", "GE T", &[]),
            Err(RequestError::BadMethod(_))
        ));
        assert!(matches!(
            HttpRequest::parse("http://a", "GET", &["novalue".into()]),
            Err(RequestError::BadHeader(_))
        ));
        assert!(matches!(
            HttpRequest::parse("http://a", "GET", &["X: a\r\nEvil: 1".into()]),
            Err(RequestError::BadHeader(_))
        ));
        assert!(matches!(
            HttpRequest::parse("http://a", "GET", &["Bad Name: 1".into()]),
            Err(RequestError::BadHeader(_))
        ));
    }

    #[test]
    fn heads_parse_incrementally() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nA: b\r\n").is_none());
        let h = parse_head(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 19\r\n\r\nRBAC")
            .unwrap()
            .unwrap();
        assert_eq!(h.status, 403);
        assert_eq!(
            h.headers,
            vec![("content-length".to_string(), "19".to_string())]
        );
        assert_eq!(h.len, 46);
        assert!(parse_head(b"SSH-2.0-x").unwrap().is_err());
        assert!(parse_head(b"HTTP/1.1 abc\r\n\r\n").unwrap().is_err());
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        assert_eq!(
            dechunk(b"13\r\nRBAC: access denied\r\n0\r\n\r\n"),
            b"RBAC: access denied"
        );
        assert_eq!(dechunk(b"5\r\nab"), b"ab");
        assert_eq!(dechunk(b"zz\r\n"), b"");
    }
}
