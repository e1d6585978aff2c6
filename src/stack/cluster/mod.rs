//! Cluster providers (`kind`, `existing`), the seam to the Kubernetes API, and the teardown
//! guard that makes cleanup happen whatever way a run ends.

pub mod api;
pub mod existing;
pub mod guard;
pub mod kind;
pub mod kube_api;
pub mod uninstall;
