//! Real HTTP/TCP servers on loopback for `check http`, each behaving like one thing a mesh (or a
//! broken service) does to a request. Nothing here is a double: each is a real socket peer.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Server;

/// What the server does with each connection.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Read the request, write these exact bytes, close cleanly.
    Respond(Vec<u8>),
    /// Read the request, then reset the connection (SO_LINGER 0 + close → RST).
    ResetAfterRequest,
    /// Reset right after accept, before reading anything.
    ResetImmediately,
    /// Read the request, then close cleanly (FIN) without answering.
    CloseAfterRequest,
    /// Accept and say nothing for a minute.
    Silent,
}

/// A response with a content-length body.
pub fn response(status_line: &str, headers: &[(&str, &str)], body: &str) -> Behaviour {
    let mut s = format!(
        "HTTP/1.1 {status_line}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.push_str(body);
    Behaviour::Respond(s.into_bytes())
}

/// Reads until the end of the request head (requests here have no body), bounded in time.
async fn read_request(tcp: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
}

async fn handle(mut tcp: TcpStream, behaviour: Behaviour) {
    match behaviour {
        Behaviour::Respond(bytes) => {
            read_request(&mut tcp).await;
            let _ = tcp.write_all(&bytes).await;
            let _ = tcp.shutdown().await;
            // Wait for the client to close so that our close is a FIN, never an RST.
            let mut sink = [0u8; 256];
            let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut sink)).await;
        }
        Behaviour::ResetAfterRequest => {
            read_request(&mut tcp).await;
            let _ = tcp.set_zero_linger();
            drop(tcp);
        }
        Behaviour::ResetImmediately => {
            let _ = tcp.set_zero_linger();
            drop(tcp);
        }
        Behaviour::CloseAfterRequest => {
            read_request(&mut tcp).await;
            let _ = tcp.shutdown().await;
            let mut sink = [0u8; 256];
            let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut sink)).await;
        }
        Behaviour::Silent => {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    }
}

/// Starts a server on 127.0.0.1 with one behaviour for every connection.
pub async fn http_server(behaviour: Behaviour) -> Server {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = l.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            tokio::spawn(handle(tcp, behaviour.clone()));
        }
    });
    Server::from_parts(addr, task)
}
