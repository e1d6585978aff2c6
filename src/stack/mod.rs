//! The environment a suite describes: cluster providers and component installers.
//!
//! Only the planning half exists so far; provisioning real clusters is being built (issue #4).

pub mod plan;
