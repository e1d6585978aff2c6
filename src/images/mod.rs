//! The container images a run deploys into the cluster, and their pins.
//!
//! A conformance verdict is only reproducible if every image a trial ran is known byte for byte.
//! A suite pins its images by digest (`images:`); an image it leaves on a tag is resolved to a
//! digest once, when its environment is provisioned, and every pod of the run uses that digest —
//! a tag that moves mid-run cannot split a run across two builds, and the report records what ran.
//!
//! - [`reference`]: [`ImageRef`], a parsed image reference (the grammar is `oci-spec`'s).
//! - [`set`]: [`Images`], the images a suite's scenarios use, by role, with pinned defaults.
//! - [`resolve`]: tag → digest over the OCI distribution API ([`Registry`]), with timeouts.
//! - [`rendered`]: the images a rendered manifest (a chart's `helm template`, `istioctl manifest
//!   generate`) runs.
//! - [`pin`]: rewriting a suite file's `images:` entries in place (`meshproof pin --write`).

pub mod pin;
pub mod reference;
pub mod rendered;
pub mod resolve;
pub mod set;

pub use reference::{ImageRef, ImageRefError};
pub use resolve::{DigestSource, Registry, ResolveError, Resolved};
pub use set::{ImageRole, Images};
