//! Verdict engines: each turns observations into a [`Verdict`] with evidence.
//!
//! The decision rules are pure where they can be (`canary`'s sequential test, `mtls`' capture
//! analysis, `http`'s outcome classification); the I/O that feeds them (TLS handshakes, HTTP
//! sampling, reading a pcap) is kept in clearly separated functions so that each rule can be
//! tested on recorded or synthetic input as well as live.

pub mod canary;
pub mod http;
pub mod mtls;
pub mod restore;
pub mod tls;
pub mod verdict;

pub use verdict::{CheckName, Outcome, Verdict};
