//! Kubernetes operations for every in-cluster step of a run, built on kube-rs.
//!
//! Named `kubeops` rather than `kube` so that `meshproof::kubeops` never shadows the `kube`
//! crate in code (tests especially) that uses both.
//!
//! - [`client`]: a client from an explicit kubeconfig path, with timeouts.
//! - [`manifest`] + [`apply`]: multi-document server-side apply through discovery, CRDs first.
//! - [`wait`]: composable wait conditions with deadlines and the current state on timeout.
//! - [`exec`], [`portforward`], [`logs`]: talking to pods.
//! - [`capture`]: an ephemeral `tcpdump` container streaming a pcap.
//! - [`cleanup`]: delete exactly what a run created (by the run-id label).
//! - [`dump`]: write events/statuses/logs of failed namespaces to an artifacts dir.
//! - [`running`]: the images the kubelets report running, with their digests (the fingerprint).
//!
//! Every operation has a deadline; every failure is a [`KubeError`].

pub mod apply;
pub mod call;
pub mod capture;
pub mod cleanup;
pub mod client;
pub mod dump;
pub mod error;
pub mod exec;
pub mod logs;
pub mod manifest;
pub mod portforward;
pub mod run_label;
pub mod running;
pub mod state;
pub mod wait;

pub use apply::{apply_yaml, dry_run_all, Applied, ApplyAction, ApplyOptions, DryRunReport};
pub use client::{client_from_kubeconfig, ClientOptions};
pub use error::KubeError;
pub use run_label::{RunId, FIELD_MANAGER, RUN_ID_LABEL};
