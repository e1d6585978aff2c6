//! meshproof: an end-to-end conformance harness for service meshes (Istio, Linkerd) that run
//! OpenFaaS. See `ARCHITECTURE.md` for the map of modules and the life of a run.

pub mod check;
pub mod cli;
pub mod kubeops;
