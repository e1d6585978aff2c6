//! meshproof: an end-to-end conformance harness for service meshes (Istio, Linkerd) that run
//! OpenFaaS. See `ARCHITECTURE.md` for the map of modules and the life of a run.

pub mod check;
pub mod cli;
pub mod freshness;
pub mod gc;
pub mod images;
pub mod kubeops;
pub mod mirror;
pub mod plan;
pub mod preflight;
pub mod private_fs;
pub mod process;
pub mod reaper;
pub mod report;
pub mod restore;
pub mod run;
pub mod scenario;
pub mod scenario_run;
pub mod schema;
pub mod stack;
pub mod toolchain;
pub mod vocab;
