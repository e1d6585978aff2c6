//! Whether a suite's versions are still supported on the day it runs.
//!
//! A vendor cannot certify on a Kubernetes minor past its end of life, and a suite's pins age
//! silently. This is a dated table, not a lookup: it says when it was last checked, and a minor
//! it does not list is reported as unknown rather than guessed. `validate` and `doctor` print
//! the warnings; nothing fails on them (issue #16 moves the pins).

use crate::scenario::{Catalog, ClusterSpec, Mesh};
use time::macros::date;
use time::Date;

/// When [`KUBERNETES_EOL`] was last checked against its sources.
pub const CHECKED: Date = date!(2026 - 12 - 05);

/// Kubernetes minor (`1.x`) → end-of-life date, from `https://kubernetes.io/releases/1.x`.
pub const KUBERNETES_EOL: &[(u32, Date)] = &[
    (32, date!(2026 - 02 - 28)),
    (33, date!(2026 - 06 - 28)),
    (34, date!(2026 - 10 - 27)),
    (35, date!(2027 - 02 - 28)),
    (36, date!(2027 - 06 - 28)),
];

/// The Kubernetes minors a pinned mesh release supports, and where that was read (CONTRACTS.md
/// IS-1, LD-1: the code's minimum, the project's stated or tested maximum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeshRange {
    pub mesh: Mesh,
    /// The releases it covers: a version prefix (`1.30.` is every 1.30 patch).
    pub releases: &'static str,
    pub min: u32,
    pub max: u32,
    pub source: &'static str,
}

/// Checked on [`CHECKED`].
pub const MESH_KUBERNETES: &[MeshRange] = &[
    MeshRange {
        mesh: Mesh::Istio,
        releases: "1.30.",
        min: 32,
        max: 36,
        source: "istio 1.30.3 istioctl/pkg/install/k8sversion/version.go:31 (minimum); istio.io/latest/docs/releases/supported-releases (1.32-1.36)",
    },
    MeshRange {
        mesh: Mesh::Linkerd,
        releases: "edge-26.8.3",
        min: 31,
        max: 36,
        source: "linkerd2 edge-26.8.3 pkg/k8s/api.go:30 (minimum), bin/_test-helpers.sh:8 (tested up to 1.36)",
    },
];

/// What the table says of a mesh release on a Kubernetes minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeshSupport {
    Supported,
    Outside(&'static MeshRange),
    /// The release is not in the table.
    Unknown,
}

pub fn mesh_on(mesh: Mesh, version: &str, minor: u32) -> MeshSupport {
    let range = MESH_KUBERNETES
        .iter()
        .find(|r| r.mesh == mesh && covers(r.releases, version));
    match range {
        None => MeshSupport::Unknown,
        Some(r) if (r.min..=r.max).contains(&minor) => MeshSupport::Supported,
        Some(r) => MeshSupport::Outside(r),
    }
}

/// `releases` ending in `.` covers every version it prefixes; otherwise exactly one.
fn covers(releases: &str, version: &str) -> bool {
    if releases.ends_with('.') {
        version.starts_with(releases)
    } else {
        version == releases
    }
}

/// What the table says of a Kubernetes minor on `today`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Supported {
        eol: Date,
    },
    EndOfLife {
        eol: Date,
    },
    /// Not in the table (newer than its last check, or older than it goes).
    Unknown,
}

pub fn kubernetes(minor: u32, today: Date) -> Support {
    match KUBERNETES_EOL.iter().find(|(m, _)| *m == minor) {
        Some((_, eol)) if *eol < today => Support::EndOfLife { eol: *eol },
        Some((_, eol)) => Support::Supported { eol: *eol },
        None => Support::Unknown,
    }
}

/// `v1.34.0` → 34.
fn minor_of(tag: &str) -> Option<u32> {
    let mut parts = tag.trim_start_matches('v').split('.');
    (parts.next()? == "1").then_some(())?;
    parts.next()?.parse().ok()
}

/// One warning per kind environment whose Kubernetes minor is past its end of life on `today`
/// or unknown to the table, and one per environment whose mesh release does not support that
/// minor (or is not in the table).
pub fn warnings(catalog: &Catalog, today: Date) -> Vec<String> {
    let mut out = Vec::new();
    for suite in &catalog.suites {
        for env in &suite.environments {
            let ClusterSpec::Kind { node_image, .. } = &env.cluster else {
                continue;
            };
            let Some(tag) = node_image.kube_version_tag() else {
                continue;
            };
            let Some(minor) = minor_of(tag) else {
                continue;
            };
            let at = format!(
                "{} ({}): Kubernetes 1.{minor}",
                env.name,
                suite.source.display()
            );
            match kubernetes(minor, today) {
                Support::Supported { .. } => {}
                Support::EndOfLife { eol } => out.push(format!(
                    "{at} reached its end of life on {eol} (https://kubernetes.io/releases/1.{minor}): a certification on it certifies an unsupported release; move the suite to a supported minor"
                )),
                Support::Unknown => out.push(format!(
                    "{at} is not in meshproof's end-of-life table (checked {CHECKED}); check https://kubernetes.io/releases/1.{minor}"
                )),
            }
            let (mesh, version) = (env.mesh.mesh(), env.mesh.version().as_str());
            match mesh_on(mesh, version, minor) {
                MeshSupport::Supported => {}
                MeshSupport::Outside(r) => out.push(format!(
                    "{at} is outside what {mesh} {version} supports (1.{}-1.{}: {}): a failure there may be the mesh's, not a finding",
                    r.min, r.max, r.source
                )),
                MeshSupport::Unknown => out.push(format!(
                    "{at}: {mesh} {version} is not in meshproof's table of supported Kubernetes ranges (checked {CHECKED}); check the mesh's own support matrix"
                )),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_of_life_is_the_day_after_the_date() {
        assert_eq!(
            kubernetes(34, date!(2026 - 10 - 27)),
            Support::Supported {
                eol: date!(2026 - 10 - 27)
            }
        );
        assert_eq!(
            kubernetes(34, date!(2026 - 10 - 28)),
            Support::EndOfLife {
                eol: date!(2026 - 10 - 27)
            }
        );
        assert_eq!(kubernetes(99, date!(2026 - 10 - 28)), Support::Unknown);
    }

    #[test]
    fn a_mesh_release_is_held_to_its_kubernetes_range() {
        assert_eq!(mesh_on(Mesh::Istio, "1.30.3", 35), MeshSupport::Supported);
        assert_eq!(mesh_on(Mesh::Istio, "1.30.3", 36), MeshSupport::Supported);
        assert!(matches!(
            mesh_on(Mesh::Istio, "1.30.3", 37),
            MeshSupport::Outside(r) if r.max == 36
        ));
        assert!(matches!(
            mesh_on(Mesh::Istio, "1.30.3", 31),
            MeshSupport::Outside(r) if r.min == 32
        ));
        assert_eq!(mesh_on(Mesh::Istio, "1.29.0", 35), MeshSupport::Unknown);
        // A prefix that only looks alike is another release.
        assert_eq!(mesh_on(Mesh::Istio, "1.300.1", 35), MeshSupport::Unknown);
        assert_eq!(
            mesh_on(Mesh::Linkerd, "edge-26.8.3", 31),
            MeshSupport::Supported
        );
        assert_eq!(
            mesh_on(Mesh::Linkerd, "edge-26.8.30", 33),
            MeshSupport::Unknown
        );
        assert!(matches!(
            mesh_on(Mesh::Linkerd, "edge-26.8.3", 37),
            MeshSupport::Outside(_)
        ));
    }

    #[test]
    fn minors_come_from_the_node_image_tag() {
        assert_eq!(minor_of("v1.34.0"), Some(34));
        assert_eq!(minor_of("1.33.4"), Some(33));
        assert_eq!(minor_of("v2.0.0"), None);
        assert_eq!(minor_of("latest"), None);
    }

    /// The shipped suites on the day the table was checked: every Kubernetes minor is supported
    /// and inside its mesh's range (issue #16 moved them off 1.32-1.34, past their end of life
    /// since 2026-10-27). The same suites a year on are all past it, each environment named.
    #[test]
    fn the_shipped_suites_are_supported_on_the_day_checked() {
        let c = crate::scenario::catalog::load_project(std::path::Path::new(env!(
            "CARGO_MANIFEST_DIR"
        )))
        .expect("project loads");
        let w = warnings(&c, CHECKED);
        assert!(w.is_empty(), "{w:#?}");
        let later = warnings(&c, date!(2027 - 12 - 05));
        let envs: usize = c.suites.iter().map(|s| s.environments.len()).sum();
        assert_eq!(later.len(), envs, "{later:#?}");
        assert!(
            later
                .iter()
                .any(|l| l.starts_with("istio[k8s=1.36]") && l.contains("reached its end of life")),
            "{later:#?}"
        );
    }
}
