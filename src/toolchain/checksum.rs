//! Reading the checksum a project publishes for an artifact, in the three shapes the pinned
//! projects use (see `table::ChecksumFormat` and CONTRACTS.md TOOL-1…TOOL-7).

use super::lock::normalize_hex;
use super::table::ChecksumFormat;
use super::ToolchainError;
use sha2::Digest as _;

/// The lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The SHA-256 that `body` (fetched from `url`) gives for the artifact named `artifact`.
/// A file that does not list the artifact is an error: it is never taken as "nothing to check".
pub fn expected(
    format: ChecksumFormat,
    body: &[u8],
    artifact: &str,
    url: &str,
) -> Result<String, ToolchainError> {
    let bad = |message: String| ToolchainError::BadChecksumFile {
        url: url.to_string(),
        format: format!("{format:?}"),
        message,
    };
    let not_listed = || ToolchainError::NotListed {
        url: url.to_string(),
        artifact: artifact.to_string(),
    };
    match format {
        ChecksumFormat::Hex => {
            let text = std::str::from_utf8(body).map_err(|_| bad("not UTF-8".into()))?;
            // The digest alone; tolerate a trailing file name some mirrors add.
            let first = text.split_whitespace().next().unwrap_or("");
            normalize_hex(first).ok_or_else(|| bad(format!("{:?} is not a hex SHA-256", first)))
        }
        ChecksumFormat::Sha256sum => {
            let text = std::str::from_utf8(body).map_err(|_| bad("not UTF-8".into()))?;
            let mut lines = 0;
            for l in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                lines += 1;
                let mut f = l.split_whitespace();
                let (Some(sum), Some(name)) = (f.next(), f.next()) else {
                    return Err(bad(format!("line {l:?} is not `HEX  NAME`")));
                };
                // `*NAME` is sha256sum's binary-mode marker.
                let name = name.trim_start_matches('*');
                if name == artifact || name.rsplit('/').next() == Some(artifact) {
                    return normalize_hex(sum)
                        .ok_or_else(|| bad(format!("{sum:?} is not a hex SHA-256")));
                }
            }
            if lines == 0 {
                return Err(bad("empty".into()));
            }
            Err(not_listed())
        }
        ChecksumFormat::GithubRelease => {
            #[derive(serde::Deserialize)]
            struct Release {
                assets: Vec<Asset>,
            }
            #[derive(serde::Deserialize)]
            struct Asset {
                name: String,
                digest: Option<String>,
            }
            let r: Release =
                serde_json::from_slice(body).map_err(|e| bad(format!("not a release: {e}")))?;
            let a = r
                .assets
                .iter()
                .find(|a| a.name == artifact)
                .ok_or_else(not_listed)?;
            let d = a
                .digest
                .as_deref()
                .ok_or_else(|| bad(format!("asset {artifact} has no digest")))?;
            d.strip_prefix("sha256:")
                .and_then(normalize_hex)
                .ok_or_else(|| bad(format!("digest {d:?} is not sha256:HEX")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn sha256sum_files_give_the_artifacts_line() {
        // goreleaser's checksums.txt (two spaces), istio's .sha256 (one space), shasum's `*`.
        let txt =
            format!("{A}  flux_2.9.4_darwin_amd64.tar.gz\n{B}  flux_2.9.4_linux_amd64.tar.gz\n");
        let got = expected(
            ChecksumFormat::Sha256sum,
            txt.as_bytes(),
            "flux_2.9.4_linux_amd64.tar.gz",
            "u",
        )
        .unwrap();
        assert_eq!(got, B);
        let one = format!("{A} istioctl-1.30.3-linux-amd64.tar.gz\n");
        assert_eq!(
            expected(
                ChecksumFormat::Sha256sum,
                one.as_bytes(),
                "istioctl-1.30.3-linux-amd64.tar.gz",
                "u"
            )
            .unwrap(),
            A
        );
        let star = format!("{A} *kind-linux-amd64\n");
        assert_eq!(
            expected(
                ChecksumFormat::Sha256sum,
                star.as_bytes(),
                "kind-linux-amd64",
                "u"
            )
            .unwrap(),
            A
        );
    }

    #[test]
    fn a_checksum_file_without_the_artifact_is_an_error() {
        let txt = format!("{A}  flux_2.9.4_darwin_amd64.tar.gz\n");
        let e = expected(
            ChecksumFormat::Sha256sum,
            txt.as_bytes(),
            "flux_2.9.4_linux_amd64.tar.gz",
            "http://x/c.txt",
        )
        .unwrap_err();
        assert!(matches!(e, ToolchainError::NotListed { .. }), "{e}");
        assert!(e.to_string().contains("flux_2.9.4_linux_amd64.tar.gz"));
        assert!(expected(ChecksumFormat::Sha256sum, b"", "a", "u").is_err());
        assert!(expected(
            ChecksumFormat::Sha256sum,
            b"<html>not found</html>\n",
            "a",
            "u"
        )
        .is_err());
    }

    #[test]
    fn hex_files_are_the_digest_alone() {
        assert_eq!(
            expected(
                ChecksumFormat::Hex,
                format!("{}\n", A.to_uppercase()).as_bytes(),
                "kubectl",
                "u"
            )
            .unwrap(),
            A
        );
        assert!(expected(ChecksumFormat::Hex, b"<html>", "kubectl", "u").is_err());
    }

    #[test]
    fn github_release_digests_are_read_per_asset() {
        let j = format!(
            r#"{{"tag_name":"edge-26.8.3","assets":[{{"name":"linkerd2-cli-edge-26.8.3-darwin","digest":"sha256:{A}"}},{{"name":"linkerd2-cli-edge-26.8.3-linux-amd64","digest":"sha256:{B}"}},{{"name":"old","digest":null}}]}}"#
        );
        assert_eq!(
            expected(
                ChecksumFormat::GithubRelease,
                j.as_bytes(),
                "linkerd2-cli-edge-26.8.3-linux-amd64",
                "u"
            )
            .unwrap(),
            B
        );
        assert!(matches!(
            expected(
                ChecksumFormat::GithubRelease,
                j.as_bytes(),
                "linkerd2-cli-edge-26.8.3-linux-arm64",
                "u"
            ),
            Err(ToolchainError::NotListed { .. })
        ));
        assert!(expected(ChecksumFormat::GithubRelease, j.as_bytes(), "old", "u").is_err());
    }
}
