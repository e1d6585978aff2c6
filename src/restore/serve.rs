//! Serving the GitOps repository to the cluster over git's smart HTTP protocol.
//!
//! Why here and this way:
//! - Flux's `GitRepository` accepts only `http(s)://` and `ssh://` URLs, and its git client
//!   (go-git) speaks the *smart* HTTP protocol only — a static file server will not do.
//! - The repository must outlive the cluster: this scenario destroys the cluster, and a git
//!   server running *in* it would be destroyed with it (then re-seeded by meshproof itself,
//!   proving nothing about recovery from git). Served from the machine running meshproof, it
//!   plays GitHub's role: outside the blast radius.
//! - A kind cluster's pods reach the host on the `kind` docker network's gateway address, so the
//!   lead binds this server to that address (see [`crate::restore::flow::RestoreSpec`]); no
//!   registry, image or GitHub token is needed.
//!
//! Each request runs `git http-backend` (git's own CGI server, read-only by default for an
//! anonymous client) through [`crate::process::Cmd`]; this module is only the HTTP/1.1 framing:
//! one request per connection, bounded header and body sizes, and timeouts on every read.

use crate::process::Cmd;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
const MAX_CONCURRENT: usize = 8;

/// A running server; stops when dropped.
pub struct GitHttpServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    log: RequestLog,
}

/// `METHOD PATH STATUS` of every request served (no query strings, no bodies): evidence of
/// what the cluster fetched, and a debugging aid.
type RequestLog = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug, Clone)]
struct Config {
    git: String,
    root: PathBuf,
    timeout: Duration,
    log: RequestLog,
}

impl GitHttpServer {
    /// Binds `bind` (port 0 picks one) and serves every repository under `root` read-only.
    pub async fn start(
        bind: SocketAddr,
        root: PathBuf,
        git: &str,
        timeout: Duration,
    ) -> std::io::Result<GitHttpServer> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let log = RequestLog::default();
        let cfg = Config {
            git: git.into(),
            root,
            timeout,
            log: log.clone(),
        };
        // At most this many `git http-backend` processes at once; Flux fetches one at a time.
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT));
        let task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(_) => {
                        // E.g. out of file descriptors: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let cfg = cfg.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(cfg.timeout, handle(stream, peer, &cfg)).await;
                    drop(permit);
                });
            }
        });
        Ok(GitHttpServer { addr, task, log })
    }

    /// The requests served so far, oldest first.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL of repository `name` as seen from `host` (the address the cluster reaches this
    /// machine at).
    pub fn url(&self, host: &str, name: &str) -> String {
        format!("http://{}:{}/{name}.git", host, self.addr.port())
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn handle(stream: TcpStream, peer: SocketAddr, cfg: &Config) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let resp = match read_request(&mut reader).await {
        Ok(req) => {
            let line = format!("{} {}", req.method, req.path);
            let resp = respond(req, peer, cfg).await;
            let status = String::from_utf8_lossy(&resp[..resp.len().min(12)])
                .chars()
                .skip(9)
                .collect::<String>();
            if let Ok(mut l) = cfg.log.lock() {
                l.push(format!("{line} {status}"));
            }
            resp
        }
        Err(status) => simple(status, "bad request"),
    };
    let stream = reader.get_mut();
    stream.write_all(&resp).await?;
    stream.shutdown().await
}

async fn read_line(r: &mut BufReader<TcpStream>, budget: &mut usize) -> Result<String, u16> {
    let mut line = Vec::new();
    let n = r.read_until(b'\n', &mut line).await.map_err(|_| 400u16)?;
    if n == 0 {
        return Err(400);
    }
    *budget = budget.checked_sub(n).ok_or(431u16)?;
    Ok(String::from_utf8_lossy(&line)
        .trim_end_matches(['\r', '\n'])
        .to_string())
}

async fn read_request(r: &mut BufReader<TcpStream>) -> Result<Request, u16> {
    let mut budget = MAX_HEADER_BYTES;
    let line = read_line(r, &mut budget).await?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = Vec::new();
    loop {
        let h = read_line(r, &mut budget).await?;
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').ok_or(400u16)?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut req = Request {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers,
        body: Vec::new(),
    };
    if req
        .header("Transfer-Encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let size_line = read_line(r, &mut budget).await?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| 400u16)?;
            if req.body.len() + size > MAX_BODY_BYTES {
                return Err(413);
            }
            if size == 0 {
                // Trailers, then the blank line.
                while !read_line(r, &mut budget).await?.is_empty() {}
                break;
            }
            let start = req.body.len();
            req.body.resize(start + size, 0);
            r.read_exact(&mut req.body[start..])
                .await
                .map_err(|_| 400u16)?;
            read_line(r, &mut budget).await?;
        }
    } else if let Some(len) = req.header("Content-Length") {
        let len: usize = len.parse().map_err(|_| 400u16)?;
        if len > MAX_BODY_BYTES {
            return Err(413);
        }
        req.body.resize(len, 0);
        r.read_exact(&mut req.body).await.map_err(|_| 400u16)?;
    }
    Ok(req)
}

fn simple(status: u16, text: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {text}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )
    .into_bytes()
}

/// Only paths naming a repository directly under the root, with no `..`.
fn path_ok(path: &str) -> bool {
    path.starts_with('/') && !path.split('/').any(|s| s == ".." || s == ".") && !path.contains('\\')
}

async fn respond(req: Request, peer: SocketAddr, cfg: &Config) -> Vec<u8> {
    if req.method != "GET" && req.method != "POST" && req.method != "HEAD" {
        return simple(405, "method not allowed");
    }
    if !path_ok(&req.path) {
        return simple(404, "not found");
    }
    let mut cmd = Cmd::new(cfg.git.clone())
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", cfg.root.as_os_str())
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", req.method.as_str())
        .env("PATH_INFO", req.path.as_str())
        .env("QUERY_STRING", req.query.as_str())
        .env("REMOTE_ADDR", peer.ip().to_string())
        .env("CONTENT_LENGTH", req.body.len().to_string())
        .timeout(cfg.timeout);
    if let Some(ct) = req.header("Content-Type") {
        cmd = cmd.env("CONTENT_TYPE", ct);
    }
    if let Some(enc) = req.header("Content-Encoding") {
        cmd = cmd.env("HTTP_CONTENT_ENCODING", enc);
    }
    if let Some(p) = req.header("Git-Protocol") {
        cmd = cmd.env("GIT_PROTOCOL", p);
    }
    let out = match cmd.stdin(req.body).run_unchecked().await {
        Ok(o) => o,
        Err(_) => return simple(500, "git http-backend failed"),
    };
    cgi_to_http(&out.stdout).unwrap_or_else(|| simple(502, "malformed CGI output"))
}

/// Turns CGI output (headers, blank line, body) into an HTTP/1.1 response.
fn cgi_to_http(out: &[u8]) -> Option<Vec<u8>> {
    let (head_end, body_start) = find_blank_line(out)?;
    let head = String::from_utf8_lossy(&out[..head_end]);
    let body = &out[body_start..];
    let mut status = "200 OK".to_string();
    let mut headers = String::new();
    for line in head.lines() {
        let (k, v) = line.split_once(':')?;
        if k.trim().eq_ignore_ascii_case("Status") {
            status = v.trim().to_string();
        } else {
            headers.push_str(&format!("{}: {}\r\n", k.trim(), v.trim()));
        }
    }
    let mut resp = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(body);
    Some(resp)
}

fn find_blank_line(b: &[u8]) -> Option<(usize, usize)> {
    (0..b.len()).find_map(|i| {
        if b[i..].starts_with(b"\r\n\r\n") {
            Some((i, i + 4))
        } else if b[i..].starts_with(b"\n\n") {
            Some((i, i + 2))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_status_and_headers_are_translated() {
        let r =
            cgi_to_http(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope").unwrap();
        let s = String::from_utf8(r).unwrap();
        assert!(s.starts_with("HTTP/1.1 404 Not Found\r\n"), "{s}");
        assert!(s.contains("Content-Type: text/plain\r\n"));
        assert!(s.contains("Content-Length: 4\r\n"));
        assert!(s.ends_with("\r\n\r\nnope"));
        assert!(cgi_to_http(b"no blank line").is_none());
    }

    #[test]
    fn traversal_is_refused() {
        assert!(path_ok("/desired.git/info/refs"));
        assert!(!path_ok("/../etc/passwd"));
        assert!(!path_ok("/a/./b"));
        assert!(!path_ok("relative"));
    }
}
