//! Names meshproof gives to what it creates: run ids and kind cluster names.

use sha2::{Digest, Sha256};

/// kind turns the cluster name into container and network names; keep it a DNS label with room
/// to spare (`<name>-control-plane` must stay a valid hostname).
pub const MAX_CLUSTER_NAME: usize = 50;

/// A run's short random id: 6 lowercase letters and digits, starting with a letter, so it is
/// valid in cluster names and label values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunId(String);

impl RunId {
    pub fn random() -> RunId {
        use rand::Rng;
        let mut rng = rand::rng();
        const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
        const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut s = String::with_capacity(6);
        s.push(char::from(LETTERS[rng.random_range(0..LETTERS.len())]));
        for _ in 0..5 {
            s.push(char::from(ALNUM[rng.random_range(0..ALNUM.len())]));
        }
        RunId(s)
    }

    /// A fixed id for plans and tests; must satisfy the same rules as a random one.
    pub fn fixed(s: &str) -> Option<RunId> {
        let ok = s.len() == 6
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        ok.then(|| RunId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `istio[k8s=1.33]::restore` → `istio-k8s-1-33-restore`: lowercase letters, digits and single
/// dashes, no leading or trailing dash.
pub fn sanitize(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// `meshproof-<environment>-<run id>`, at most [`MAX_CLUSTER_NAME`] characters. When the
/// environment part has to be shortened, a hash of the full key keeps names of different
/// environments of one run distinct.
pub fn cluster_name(env_key: &str, run: &RunId) -> String {
    let env = sanitize(env_key);
    let env = if env.is_empty() {
        "env".to_string()
    } else {
        env
    };
    let fixed = "meshproof-".len() + 1 + run.as_str().len();
    let room = MAX_CLUSTER_NAME - fixed;
    let env = if env.len() <= room {
        env
    } else {
        let hash = hex::encode(&Sha256::digest(env_key.as_bytes())[..2]);
        let mut head: String = env.chars().take(room - hash.len() - 1).collect();
        while head.ends_with('-') {
            head.pop();
        }
        format!("{head}-{hash}")
    };
    format!("meshproof-{env}-{run}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_label(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 63
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && !s.ends_with('-')
            && !s.contains("--")
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }

    #[test]
    fn matrix_keys_become_valid_cluster_names() {
        let run = RunId::fixed("a1b2c3").unwrap();
        assert_eq!(
            cluster_name("istio[k8s=1.33]", &run),
            "meshproof-istio-k8s-1-33-a1b2c3"
        );
        assert_eq!(cluster_name("linkerd", &run), "meshproof-linkerd-a1b2c3");
        let n = cluster_name("istio[k8s=1.33]::restore", &run);
        assert_eq!(n, "meshproof-istio-k8s-1-33-restore-a1b2c3");
        assert!(is_dns_label(&n), "{n}");
    }

    #[test]
    fn long_keys_are_shortened_but_stay_distinct_and_valid() {
        let run = RunId::random();
        let a = cluster_name(
            "a-very-long-suite-name-with-many-words[k8s=1.33,mesh=1.30.3]::restore",
            &run,
        );
        let b = cluster_name(
            "a-very-long-suite-name-with-many-words[k8s=1.32,mesh=1.30.3]::restore",
            &run,
        );
        assert!(
            a.len() <= MAX_CLUSTER_NAME && b.len() <= MAX_CLUSTER_NAME,
            "{a} {b}"
        );
        assert_ne!(a, b);
        assert!(is_dns_label(&a) && is_dns_label(&b), "{a} {b}");
    }

    #[test]
    fn run_ids_are_label_safe() {
        for _ in 0..50 {
            let r = RunId::random();
            assert!(RunId::fixed(r.as_str()).is_some(), "{r}");
        }
        assert!(RunId::fixed("1abcde").is_none());
        assert!(RunId::fixed("ABCDEF").is_none());
    }
}
