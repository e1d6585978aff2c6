//! Building a `kube::Client` from an explicit kubeconfig file.
//!
//! meshproof must never talk to a cluster by accident: the kubeconfig path is always given by
//! the caller (never inferred from `~/.kube/config` or `$KUBECONFIG`), and every request has
//! connect and read timeouts so a dead API server fails a step instead of hanging a run.

use std::path::Path;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::error::KubeError;

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Context to use; `None` means the kubeconfig's `current-context`.
    pub context: Option<String>,
    /// TCP+TLS connect timeout.
    pub connect_timeout: Duration,
    /// Read timeout of the connection. Watches used by waits ask the server for a shorter
    /// `timeoutSeconds` ([`super::wait::WATCH_TIMEOUT_SECS`]), so this also bounds a watch that
    /// silently stalls. It also applies to exec/attach/port-forward streams, which may idle
    /// longer (a packet capture of a quiet pod): build their client with
    /// [`ClientOptions::streaming`] (no read timeout; those operations have their own deadlines
    /// and stop). Every request of this module also has its own deadline regardless.
    pub read_timeout: Option<Duration>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            context: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Some(Duration::from_secs(60)),
        }
    }
}

impl ClientOptions {
    /// Options for a client used for long-lived, possibly idle streams (capture,
    /// port-forward): the default connect timeout and no read timeout.
    pub fn streaming() -> Self {
        ClientOptions {
            read_timeout: None,
            ..ClientOptions::default()
        }
    }
}

/// Reads `kubeconfig` (only that file) and builds a client with the given timeouts.
pub async fn client_from_kubeconfig(
    kubeconfig: &Path,
    opts: &ClientOptions,
) -> Result<Client, KubeError> {
    let err = |msg: String| KubeError::Kubeconfig {
        path: kubeconfig.display().to_string(),
        msg,
    };
    let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| err(e.to_string()))?;
    let options = KubeConfigOptions {
        context: opts.context.clone(),
        cluster: None,
        user: None,
    };
    let mut config = Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| err(e.to_string()))?;
    config.connect_timeout = Some(opts.connect_timeout);
    config.read_timeout = opts.read_timeout;
    // A pooled connection's idle time must not count against the next response.
    config.reset_reader_on_write = true;
    Client::try_from(config).map_err(|e| err(format!("building client: {e}")))
}
