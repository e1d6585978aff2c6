//! Is a mirror there? Asked once per mirror before any cluster is created.
//!
//! containerd would not find out for us: its registry client sets a dial timeout but no
//! response timeout (CTD-5), so a mirror that accepts connections and never answers would hang
//! every pull of every node until the kubelet gave up, minutes later, with an error that names
//! neither the mirror nor the registry.

use super::{MirrorError, MirrorHost};
use std::time::Duration;

/// How long a mirror has to answer `GET /v2/`.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// `GET <mirror>/v2/` within `timeout`; any HTTP answer counts (a mirror that wants a login
/// answers 401, which is still a mirror that is there). Returns the status.
pub async fn probe(
    mirror: &MirrorHost,
    registry: &str,
    timeout: Duration,
) -> Result<u16, MirrorError> {
    let no_answer = |reason: String| MirrorError::NoAnswer {
        mirror: mirror.url.clone(),
        registry: registry.to_string(),
        timeout: humantime::format_duration(timeout).to_string(),
        reason,
    };
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| no_answer(format!("no HTTP client: {e}")))?;
    let resp = client.get(mirror.api_root()).send().await.map_err(|e| {
        no_answer(if e.is_timeout() {
            "timed out".into()
        } else {
            error_chain(&e)
        })
    })?;
    Ok(resp.status().as_u16())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn host(addr: std::net::SocketAddr) -> MirrorHost {
        MirrorHost {
            url: format!("http://{addr}"),
        }
    }

    #[tokio::test]
    async fn a_mirror_that_accepts_and_stays_silent_fails_naming_the_registry() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s); // accepted, never answered
            }
        });
        let e = probe(&host(addr), "docker.io", Duration::from_millis(300))
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("for docker.io"), "{text}");
        assert!(text.contains(&addr.to_string()), "{text}");
        assert!(text.contains("timed out"), "{text}");
        hold.abort();
    }

    #[tokio::test]
    async fn a_mirror_that_asks_for_a_login_is_there() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("GET /v2/ "));
            s.write_all(
                b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        });
        assert_eq!(
            probe(&host(addr), "ghcr.io", Duration::from_secs(5))
                .await
                .unwrap(),
            401
        );
    }

    #[tokio::test]
    async fn a_port_nobody_listens_on_fails_naming_the_registry() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let e = probe(&host(addr), "quay.io", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("for quay.io"), "{e}");
    }
}
