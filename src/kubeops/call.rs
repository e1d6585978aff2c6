//! One API call with a deadline, mapped into [`KubeError`].
//!
//! The client's own read timeout only exists when it was built by
//! [`super::client::client_from_kubeconfig`]; wrapping every call here keeps the "every network
//! operation has a timeout" rule true for any client (including test doubles).

use std::future::Future;
use std::time::Duration;

use super::error::KubeError;

/// Default deadline for a single, non-streaming API request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `fut` (an API request about `object`) with `REQUEST_TIMEOUT`.
pub async fn call<T>(
    object: &str,
    fut: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, KubeError> {
    call_within(object, REQUEST_TIMEOUT, fut).await
}

/// Runs `fut` (an API request about `object`) with the given deadline.
pub async fn call_within<T>(
    object: &str,
    limit: Duration,
    fut: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, KubeError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(KubeError::from_kube(object, e)),
        Err(_) => Err(KubeError::Timeout {
            what: format!("API request for {object}"),
            state: "no response from the API server".into(),
            after: limit,
        }),
    }
}
