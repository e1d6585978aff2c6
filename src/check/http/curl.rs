//! The in-pod probe: curl in a probe pod, run through exec, with enough of the answer kept to
//! tell *who* denied a request. A bare `%{http_code}` makes every 403 anonymous; with the
//! response headers and the first bytes of the body, [`super::classify::deny_source`] can tell
//! Istio's RBAC filter (`RBAC: access denied`) from an application's own 403. The Linkerd
//! proxy adds `l5d-proxy-error` only for a peer with an mTLS identity, whose own outbound proxy
//! strips it (ledger LD-11): an in-cluster curl, meshed or not, sees a bare 403. So Linkerd
//! denials are attributed from the target proxies' `inbound_http_authz_deny_total` instead
//! (`scenario_run::checks::deny`); the header still counts where it does arrive.
//!
//! The script prints, on stdout: the status code on the first line, the response head as curl
//! wrote it (`-D`), a marker line, then at most [`BODY_PREFIX_MAX`] bytes of the body; it exits
//! with curl's own exit code, which [`observation`] maps like [`super::observation_from_curl`].

use super::classify::{observation_from_curl, Observation, BODY_PREFIX_MAX};

/// Separates the response head from the body prefix in the script's output.
pub const BODY_MARKER: &str = "--meshproof-body--";

/// `sh -c` script; `$1` is the URL, `$2` the whole-request timeout in seconds.
pub const PROBE_SCRIPT: &str = r#"h=$(mktemp) b=$(mktemp)
curl -sS --max-time "$2" -D "$h" -o "$b" -w '%{http_code}' "$1"; rc=$?
printf '\n'; cat "$h"; printf '\n--meshproof-body--\n'; head -c 256 "$b"
rm -f "$h" "$b"; exit $rc"#;

/// The exec argv for probing `url` with a `timeout_secs` limit.
pub fn command(url: &str, timeout_secs: u32) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        PROBE_SCRIPT.into(),
        "meshproof-probe".into(),
        url.into(),
        timeout_secs.to_string(),
    ]
}

/// The status code curl reported (0 when none).
pub fn status(stdout: &[u8]) -> u16 {
    let first = stdout.split(|b| *b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(first).trim().parse().unwrap_or(0)
}

/// The observation from curl's exit code and the script's stdout.
pub fn observation(exit_code: i32, stdout: &[u8]) -> Observation {
    match observation_from_curl(exit_code, status(stdout)) {
        Observation::Response { status, .. } => {
            let (headers, body_prefix) = head_and_body(stdout);
            Observation::Response {
                status,
                headers,
                body_prefix,
            }
        }
        other => other,
    }
}

/// Header names (lowercased) and values of the response head, and the body prefix.
fn head_and_body(stdout: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
    let marker = format!("\n{BODY_MARKER}\n");
    let at = stdout
        .windows(marker.len())
        .position(|w| w == marker.as_bytes());
    let (head, body) = match at {
        Some(i) => (&stdout[..i], &stdout[i + marker.len()..]),
        None => (stdout, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let headers = head
        .lines()
        .skip(1) // the status code line
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            (!k.is_empty() && !k.contains(' '))
                .then(|| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    (headers, body[..body.len().min(BODY_PREFIX_MAX)].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::http::{classify, Classification, Denial, DenySource};

    fn out(code: &str, head: &str, body: &str) -> Vec<u8> {
        format!("{code}\n{head}\n{BODY_MARKER}\n{body}").into_bytes()
    }

    #[test]
    fn the_sender_of_a_403_is_told_apart() {
        let source = |o: Vec<u8>| match classify(&observation(22, &o)) {
            Classification::Denied(Denial::Forbidden { source }) => source,
            c => panic!("{c:?}"),
        };
        let istio = out(
            "403",
            "HTTP/1.1 403 Forbidden\r\nserver: envoy\r\ncontent-length: 19\r\n\r\n",
            "RBAC: access denied",
        );
        assert_eq!(source(istio), DenySource::IstioRbac);
        let linkerd = out(
            "403",
            "HTTP/1.1 403 Forbidden\r\nl5d-proxy-error: unauthorized request on route\r\n\r\n",
            "",
        );
        assert_eq!(source(linkerd), DenySource::LinkerdProxy);
        let app = out(
            "403",
            "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\n\r\n",
            "no",
        );
        assert_eq!(source(app), DenySource::Unknown);
    }

    #[test]
    fn exit_codes_keep_their_meaning() {
        assert!(matches!(
            classify(&observation(0, &out("200", "HTTP/1.1 200 OK\r\n\r\n", "x"))),
            Classification::Allowed { status: 200 }
        ));
        assert!(matches!(
            observation(7, b"000\n\n--meshproof-body--\n"),
            Observation::ConnectFailed(_)
        ));
        assert!(matches!(
            observation(56, b"000\n"),
            Observation::ResetAfterConnect
        ));
        assert_eq!(status(b"garbage"), 0);
    }
}
