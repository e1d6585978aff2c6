//! HTTP downloads with a connect and a total timeout, a size cap, and a body that must be as
//! long as the server said (a dropped connection must not leave a short binary that happens to
//! be checked later against nothing).

use super::ToolchainError;
use std::time::Duration;

/// Timeouts and limits of the downloads. Configurable so tests can bound a server that never
/// answers in a second instead of minutes.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// To establish the connection (TCP and TLS).
    pub connect: Duration,
    /// For the whole request, headers and body.
    pub total: Duration,
    /// Largest body accepted (the biggest pinned artifact, kubectl, is ~60 MB).
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect: Duration::from_secs(20),
            total: Duration::from_secs(600),
            max_bytes: 512 * 1024 * 1024,
        }
    }
}

/// A client for `limits` (rustls, no redirects beyond reqwest's default 10: GitHub release
/// downloads redirect to their storage host).
pub fn client(limits: &Limits) -> Result<reqwest::Client, ToolchainError> {
    reqwest::Client::builder()
        .connect_timeout(limits.connect)
        .timeout(limits.total)
        .user_agent(concat!("meshproof/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ToolchainError::Http {
            url: String::new(),
            message: format!("cannot build the HTTP client: {e}"),
        })
}

/// `url` as fetched through a mirror at `base`: `https://HOST/PATH` → `BASE/HOST/PATH`.
pub fn through_mirror(url: &str, base: Option<&str>) -> String {
    match base
        .map(|b| b.trim_end_matches('/'))
        .filter(|b| !b.is_empty())
    {
        None => url.to_string(),
        Some(b) => {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"))
                .unwrap_or(url);
            format!("{b}/{rest}")
        }
    }
}

fn classify(url: &str, e: reqwest::Error, limits: &Limits, what: &str) -> ToolchainError {
    if e.is_timeout() {
        return ToolchainError::Timeout {
            url: url.to_string(),
            what: format!(
                "{what}: connect limit {:?}, total limit {:?}",
                limits.connect, limits.total
            ),
        };
    }
    // reqwest's Display stops at its own layer; the cause (refused, reset, EOF) is below.
    let mut message = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        message.push_str(": ");
        message.push_str(&s.to_string());
        src = s.source();
    }
    ToolchainError::Http {
        url: url.to_string(),
        message,
    }
}

/// GETs `url` whole. Non-2xx is an error with the status; a body shorter than its
/// Content-Length, or longer than `limits.max_bytes`, is an error.
pub async fn get(
    client: &reqwest::Client,
    url: &str,
    limits: &Limits,
) -> Result<Vec<u8>, ToolchainError> {
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| classify(url, e, limits, "waiting for the response"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(ToolchainError::Status {
            url: url.to_string(),
            status: status.as_u16(),
        });
    }
    let declared = resp.content_length();
    if let Some(n) = declared.filter(|n| *n > limits.max_bytes) {
        let _ = n;
        return Err(ToolchainError::TooLarge {
            url: url.to_string(),
            limit: limits.max_bytes,
        });
    }
    let mut body: Vec<u8> = Vec::with_capacity(declared.unwrap_or(0).min(64 << 20) as usize);
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                body.extend_from_slice(&c);
                if body.len() as u64 > limits.max_bytes {
                    return Err(ToolchainError::TooLarge {
                        url: url.to_string(),
                        limit: limits.max_bytes,
                    });
                }
            }
            Ok(None) => break,
            Err(e) if e.is_timeout() => {
                return Err(classify(url, e, limits, "reading the body"));
            }
            Err(e) => {
                return Err(match declared {
                    Some(expected) if (body.len() as u64) < expected => ToolchainError::Truncated {
                        url: url.to_string(),
                        got: body.len() as u64,
                        expected,
                    },
                    _ => classify(url, e, limits, "reading the body"),
                })
            }
        }
    }
    if let Some(expected) = declared {
        if body.len() as u64 != expected {
            return Err(ToolchainError::Truncated {
                url: url.to_string(),
                got: body.len() as u64,
                expected,
            });
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirror_keeps_host_and_path() {
        let u =
            "https://github.com/kubernetes-sigs/kind/releases/download/v0.30.0/kind-linux-amd64";
        assert_eq!(through_mirror(u, None), u);
        assert_eq!(through_mirror(u, Some("")), u);
        assert_eq!(
            through_mirror(u, Some("http://127.0.0.1:9/m/")),
            "http://127.0.0.1:9/m/github.com/kubernetes-sigs/kind/releases/download/v0.30.0/kind-linux-amd64"
        );
    }
}
