//! Pushing content into a real registry (Debian's `docker-registry`) over the OCI distribution
//! API, for the tests that run one: image pinning (`tests/images_registry.rs`) and the mirror
//! (`tests/mirror_containerd.rs`).

use sha2::{Digest, Sha256};

/// `sha256:<hex>` of `b`, as the distribution API names content.
pub fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Pushes a blob into `repo` of the registry at `base` (`http://HOST:PORT`) with a monolithic
/// upload (POST, then PUT with the digest); returns its digest.
pub async fn push_blob(c: &reqwest::Client, base: &str, repo: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let start = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 202, "start upload");
    let loc = start.headers()["location"].to_str().unwrap().to_string();
    let loc = if loc.starts_with("http") {
        loc
    } else {
        format!("{base}{loc}")
    };
    let sep = if loc.contains('?') { '&' } else { '?' };
    let put = c
        .put(format!("{loc}{sep}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201, "finish upload: {:?}", put.text().await);
    digest
}
