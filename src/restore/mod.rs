//! Disaster recovery: destroy the cluster, rebuild it from git, restore the sealing key, and
//! prove that everything came back — measuring how long it took (the RTO).
//!
//! The pieces, each small and testable on its own:
//! - [`desired`] renders the desired state (functions, secrets, `kustomization.yaml`);
//! - [`seal`] seals Secrets *offline* with the controller's certificate (`kubeseal --cert`);
//! - [`repo`] commits it all to a real git repository and names its HEAD the way Flux does
//!   (`main@sha1:<hex>`);
//! - [`serve`] serves that repository over git's smart HTTP protocol (`git http-backend`) from
//!   the machine running meshproof — *outside* the cluster, so that the source of truth survives
//!   the cluster's destruction exactly as GitHub would;
//! - [`flux`] builds the Flux command lines and the `GitRepository`/`Kustomization` objects;
//! - [`crate::check::restore::inventory`] records what is running (functions, secret *digests*)
//!   and diffs two records (with the check, whose evidence the diff is);
//! - [`keys`] backs the sealing keys up to a 0600 file that disappears after the run;
//! - [`ops`] declares what the flow needs from a cluster and from its lifecycle (traits wired by
//!   the kube layer and the cluster providers);
//! - [`flow`] runs the phases with timeouts and timing, and hands the observations to the pure
//!   decision rules in [`crate::check::restore`].
//!
//! Nothing here logs or reports a secret value: plaintext only ever lives in memory, in 0600
//! files inside a private temp dir, and on a child process's stdin.
//!
//! # Wiring (what the rest of meshproof provides)
//!
//! - **[`ClusterOps`]** — the kube layer, bound to one cluster: `list`/`get` by
//!   [`ResourceKind`] (dynamic API: `api_version()`, `plural()`; `get` is `Ok(None)` on 404),
//!   `apply` = server-side apply of every document of a multi-document YAML string (field
//!   manager `meshproof`, force), `restart_deployment` = patch the pod template annotation
//!   `kubectl.kubernetes.io/restartedAt` and wait for the rollout (updated = available =
//!   desired replicas, observedGeneration current), `kubeconfig()` = the cluster's 0600
//!   kubeconfig file. Errors must never include object bodies (Secrets pass through `apply`).
//! - **[`Lifecycle`]** — the cluster provider and installers: `destroy` (`kind delete cluster`),
//!   `create` (same kind config; returns a `ClusterOps` for the *new* kubeconfig), `install`
//!   (mesh, OpenFaaS with the `openfaas-fn` namespace, sealed-secrets as
//!   `sealed-secrets-controller` in `kube-system`). Installing Flux there too is harmless:
//!   `flux install` is idempotent and the flow runs it itself.
//! - **The scenario runner**, for `Check::Restore`: build
//!   [`RestoreSpec::for_suite`]`(suite, check, <rendered var "image">, bind, host)` where `bind`
//!   is `<kind network IPv4 gateway>:0` (`docker network inspect kind`) and `host` that address,
//!   then `restore::execute(&spec, cluster, &mut lifecycle, &SystemClock::default())` → the
//!   verdict. `execute` consumes the old cluster's client; afterwards the session must tear
//!   down the cluster the lifecycle created last.

pub mod desired;
pub mod flow;
pub mod flux;
pub mod keys;
pub mod ops;
pub mod reach;
pub mod repo;
pub mod seal;
pub mod serve;
pub mod wait;

pub use crate::check::restore::inventory::{Inventory, InventoryDiff};
pub use flow::{execute, prepare, run, Prepared, RestoreSpec, Timeouts, Tools};
pub use ops::{Clock, ClusterOps, Lifecycle, OpsError, ResourceKind, SystemClock};
