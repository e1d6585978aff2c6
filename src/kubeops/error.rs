//! The one error type of the kube layer.
//!
//! Every variant carries enough context (object, manager, current state) that a failed
//! conformance run can be diagnosed from the message alone, without re-running it.

use std::time::Duration;

/// Errors of every operation in [`crate::kubeops`].
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig could not be read or does not describe a usable cluster.
    #[error("kubeconfig {path}: {msg}")]
    Kubeconfig { path: String, msg: String },

    /// A wait did not complete in time. `state` is the object's state when the wait gave up.
    #[error("timed out after {after:?} waiting for {what}; current state: {state}")]
    Timeout {
        what: String,
        state: String,
        after: Duration,
    },

    /// Server-side apply found a field owned by another field manager with a different value.
    #[error("apply conflict on {object}: field(s) owned by manager {manager:?}: {details}")]
    Conflict {
        object: String,
        manager: String,
        details: String,
    },

    /// The API server rejected a request (validation, authorization, not found...).
    #[error("API error on {object}: {code} {reason}: {message}")]
    Api {
        object: String,
        code: u16,
        reason: String,
        message: String,
    },

    /// Transport-level failure talking to the API server (connect, TLS, timeouts of a request).
    #[error("request for {object} failed: {source}")]
    Request {
        object: String,
        #[source]
        source: kube::Error,
    },

    /// A manifest's kind is not served by the cluster, or discovery itself failed.
    #[error("discovery: {0}")]
    Discovery(String),

    /// A YAML document of a multi-document manifest could not be parsed or is not an object.
    #[error("YAML document #{doc_index}: {msg}")]
    Yaml { doc_index: usize, msg: String },

    /// Exec/attach/port-forward streaming failure.
    #[error("{op} on {object}: {msg}")]
    Stream {
        op: &'static str,
        object: String,
        msg: String,
    },

    /// Writing artifacts (failure dump, port-forward listener) failed locally.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    /// Cleanup could not remove everything the run created; `failures` says what is left.
    #[error("cleanup incomplete: {}", failures.join("; "))]
    Cleanup { failures: Vec<String> },

    /// Input to this module was unusable (e.g. an invalid run id).
    #[error("invalid input: {0}")]
    Invalid(String),
}

impl KubeError {
    /// Maps a `kube::Error` for an operation on `object`: API statuses become [`KubeError::Api`]
    /// (or [`KubeError::Conflict`] for SSA conflicts); everything else is a transport failure.
    pub fn from_kube(object: impl Into<String>, err: kube::Error) -> Self {
        let object = object.into();
        match err {
            kube::Error::Api(status) => {
                if status.code == 409 && status.reason == "Conflict" {
                    if let Some(manager) = conflicting_manager(&status.message) {
                        return KubeError::Conflict {
                            object,
                            manager,
                            details: status.message.clone(),
                        };
                    }
                }
                KubeError::Api {
                    object,
                    code: status.code,
                    reason: status.reason.clone(),
                    message: status.message.clone(),
                }
            }
            other => KubeError::Request {
                object,
                source: other,
            },
        }
    }

    /// True for a 404 from the API server.
    pub fn is_not_found(&self) -> bool {
        matches!(self, KubeError::Api { code: 404, .. })
    }
}

/// Extracts the first conflicting manager from an SSA conflict message.
///
/// The API server words it as `Apply failed with 1 conflict: conflict with "kubectl-edit"
/// using v1: .spec.replicas` (or `conflicts with "x"` when there are several); the manager is
/// the first double-quoted string after `conflict with`/`conflicts with`.
pub fn conflicting_manager(message: &str) -> Option<String> {
    let idx = message
        .find("conflict with \"")
        .map(|i| i + "conflict with \"".len())
        .or_else(|| {
            message
                .find("conflicts with \"")
                .map(|i| i + "conflicts with \"".len())
        })?;
    let rest = &message[idx..];
    let end = rest.find('"')?;
    Some(rest[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manager_is_extracted_from_single_and_multi_conflict_messages() {
        let one = "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using v1: .data.k";
        assert_eq!(conflicting_manager(one).as_deref(), Some("kubectl-edit"));
        let many = "Apply failed with 2 conflicts: conflicts with \"other\":\n- .data.a\n- .data.b";
        assert_eq!(conflicting_manager(many).as_deref(), Some("other"));
        assert_eq!(conflicting_manager("Operation cannot be fulfilled"), None);
    }
}
