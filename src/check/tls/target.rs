//! What to connect to and which name to check: `--url`, `--resolve` and `--servername`.
//!
//! Kept apart from the network code so that curl's semantics (connect to the `--resolve` address,
//! but present and check the URL's host name) are pinned down by unit tests.

use std::net::IpAddr;

use serde::Serialize;

/// Why the target could not be understood. Always an *error* verdict: nothing was probed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("--url {0:?} is not a valid URL: {1}")]
    BadUrl(String, String),
    #[error("--url {0:?} must use https:// (check tls judges a TLS endpoint)")]
    NotHttps(String),
    #[error("--url {0:?} has no host")]
    NoHost(String),
    #[error("--resolve {0:?} must be HOST:IP or HOST:PORT:IP")]
    BadResolve(String),
    #[error(
        "--resolve {entry:?} is for host {resolve_host:?}, but the URL's host is {url_host:?}"
    )]
    ResolveHostMismatch {
        entry: String,
        resolve_host: String,
        url_host: String,
    },
    #[error("--resolve {entry:?} is for port {resolve_port}, but the URL's port is {url_port}")]
    ResolvePortMismatch {
        entry: String,
        resolve_port: u16,
        url_port: u16,
    },
    #[error("--servername {0:?} is neither a DNS name nor an IP address")]
    BadServerName(String),
}

/// The name the certificate must be valid for (and, for DNS names, the SNI sent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum CheckedName {
    /// Matched against DNS SANs; sent as SNI.
    Dns(String),
    /// Matched against IP SANs only; no SNI is sent (RFC 6066 forbids IP literals in SNI).
    Ip(IpAddr),
}

impl std::fmt::Display for CheckedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckedName::Dns(d) => f.write_str(d),
            CheckedName::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl CheckedName {
    /// Parses a host as it appears in a URL or `--servername` (IPv6 may be bracketed).
    pub fn parse(s: &str) -> Option<CheckedName> {
        let unbracketed = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Some(CheckedName::Ip(ip));
        }
        let name = s.trim_end_matches('.').to_ascii_lowercase();
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*')
            });
        valid.then_some(CheckedName::Dns(name))
    }
}

/// Where to open the TCP connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectTo {
    /// A fixed address (`--resolve`, or an IP literal in the URL): no DNS lookup.
    Ip(IpAddr),
    /// Look the host up in DNS.
    Lookup(String),
}

/// A fully interpreted target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsTarget {
    pub port: u16,
    /// The URL's path and query: what a request after the handshake asks for.
    pub path: String,
    pub connect: ConnectTo,
    pub name: CheckedName,
}

impl TlsTarget {
    /// Interprets `--url`, `--resolve` and `--servername` with curl's semantics:
    /// `--resolve HOST:IP` (or curl's own `HOST:PORT:IP`) changes only where the TCP connection
    /// goes; the URL's host stays the name that is sent as SNI and checked against the
    /// certificate, unless `--servername` overrides that name.
    pub fn parse(
        url: &str,
        resolve: Option<&str>,
        servername: Option<&str>,
    ) -> Result<TlsTarget, TargetError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| TargetError::BadUrl(url.to_string(), e.to_string()))?;
        if parsed.scheme() != "https" {
            return Err(TargetError::NotHttps(url.to_string()));
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| TargetError::NoHost(url.to_string()))?;
        let port = parsed.port_or_known_default().unwrap_or(443);
        let url_name =
            CheckedName::parse(host).ok_or_else(|| TargetError::NoHost(url.to_string()))?;

        let connect = match resolve {
            Some(entry) => {
                let (rhost, rport, ip) = parse_resolve(entry)?;
                let url_host = url_name.to_string();
                if !rhost.eq_ignore_ascii_case(&url_host)
                    && CheckedName::parse(&rhost).as_ref() != Some(&url_name)
                {
                    return Err(TargetError::ResolveHostMismatch {
                        entry: entry.to_string(),
                        resolve_host: rhost,
                        url_host,
                    });
                }
                if let Some(rp) = rport {
                    if rp != port {
                        return Err(TargetError::ResolvePortMismatch {
                            entry: entry.to_string(),
                            resolve_port: rp,
                            url_port: port,
                        });
                    }
                }
                ConnectTo::Ip(ip)
            }
            None => match &url_name {
                CheckedName::Ip(ip) => ConnectTo::Ip(*ip),
                CheckedName::Dns(d) => ConnectTo::Lookup(d.clone()),
            },
        };
        let name = match servername {
            Some(s) => {
                CheckedName::parse(s).ok_or_else(|| TargetError::BadServerName(s.to_string()))?
            }
            None => url_name,
        };
        Ok(TlsTarget {
            port,
            path: crate::check::http::probe::request_target(&parsed),
            connect,
            name,
        })
    }
}

/// `HOST:IP` or `HOST:PORT:IP`; the IP may be an IPv6 literal, bracketed or not.
fn parse_resolve(entry: &str) -> Result<(String, Option<u16>, IpAddr), TargetError> {
    let bad = || TargetError::BadResolve(entry.to_string());
    let (host, rest) = entry.split_once(':').ok_or_else(bad)?;
    if host.is_empty() {
        return Err(bad());
    }
    let ip_of = |s: &str| {
        let s = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        s.parse::<IpAddr>().ok()
    };
    if let Some(ip) = ip_of(rest) {
        return Ok((host.to_string(), None, ip));
    }
    let (port, addr) = rest.split_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let ip = ip_of(addr).ok_or_else(bad)?;
    Ok((host.to_string(), Some(port), ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_changes_only_the_address_not_the_name() {
        let t = TlsTarget::parse(
            "https://gw.example.test:8443/x",
            Some("gw.example.test:127.0.0.1"),
            None,
        )
        .unwrap();
        assert_eq!(t.port, 8443);
        assert_eq!(t.connect, ConnectTo::Ip("127.0.0.1".parse().unwrap()));
        assert_eq!(t.name, CheckedName::Dns("gw.example.test".into()));
    }

    #[test]
    fn curl_style_resolve_with_port_must_match_the_url_port() {
        let ok = TlsTarget::parse("https://a.test:8443", Some("a.test:8443:::1"), None).unwrap();
        assert_eq!(ok.connect, ConnectTo::Ip("::1".parse().unwrap()));
        let err = TlsTarget::parse("https://a.test:8443", Some("a.test:443:127.0.0.1"), None)
            .unwrap_err();
        assert!(matches!(err, TargetError::ResolvePortMismatch { .. }));
    }

    #[test]
    fn resolve_for_another_host_is_rejected_not_ignored() {
        let err = TlsTarget::parse("https://a.test", Some("b.test:127.0.0.1"), None).unwrap_err();
        assert!(matches!(err, TargetError::ResolveHostMismatch { .. }));
    }

    #[test]
    fn servername_overrides_the_checked_name_and_default_port_is_443() {
        let t = TlsTarget::parse("https://127.0.0.1", None, Some("Svc.NS.svc.")).unwrap();
        assert_eq!(t.port, 443);
        assert_eq!(t.connect, ConnectTo::Ip("127.0.0.1".parse().unwrap()));
        assert_eq!(t.name, CheckedName::Dns("svc.ns.svc".into()));
    }

    #[test]
    fn ip_urls_check_ip_sans() {
        let t = TlsTarget::parse("https://[::1]:9443", None, None).unwrap();
        assert_eq!(t.name, CheckedName::Ip("::1".parse().unwrap()));
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(
            TlsTarget::parse("http://a.test", None, None),
            Err(TargetError::NotHttps(_))
        ));
        assert!(matches!(
            TlsTarget::parse("not a url", None, None),
            Err(TargetError::BadUrl(..))
        ));
        assert!(matches!(
            TlsTarget::parse("https://a.test", Some("a.test"), None),
            Err(TargetError::BadResolve(_))
        ));
        assert!(matches!(
            TlsTarget::parse("https://a.test", Some("a.test:nope"), None),
            Err(TargetError::BadResolve(_))
        ));
        assert!(matches!(
            TlsTarget::parse("https://a.test", None, Some("bad name!")),
            Err(TargetError::BadServerName(_))
        ));
    }
}
