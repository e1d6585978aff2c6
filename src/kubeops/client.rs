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
    /// Read timeout for ordinary requests. Watches used by waits ask the server for a shorter
    /// `timeoutSeconds`, so this also bounds a watch that silently stalls.
    pub read_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            context: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
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
    config.read_timeout = Some(opts.read_timeout);
    // A pooled connection's idle time must not count against the next response.
    config.reset_reader_on_write = true;
    Client::try_from(config).map_err(|e| err(format!("building client: {e}")))
}
