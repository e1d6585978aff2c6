//! Components already on a cluster the run did not create: found before anything is installed,
//! then refused or used as found.
//!
//! Installing over a component a user runs would damage their cluster: `helm upgrade --install`
//! over a same-named release, `flux install` over their Flux, a force-applied `basic-auth` over
//! their password, injection labels on their namespaces. And uninstalling it afterwards would
//! be worse. So on `provider: existing` every component the suite installs is looked for first
//! (its namespace, its CRDs, its controller: the component's *footprint*). A component found
//! there stops the run before it changes anything, naming what was found, unless the suite lists
//! it in `cluster.reuse`: then the run uses it exactly as found, and neither changes nor removes
//! it. Everything else the run installs, it records and uninstalls on teardown
//! ([`super::cluster::uninstall`]).

use super::actions::ComponentPlan;
use super::cluster::api::{ClusterApi, KubeTarget, ObjectRef};
use super::StackError;
use crate::scenario::StackComponent;
use std::collections::BTreeSet;

/// A component of the suite with the objects of its footprint that exist on the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub id: StackComponent,
    pub component: &'static str,
    pub objects: Vec<ObjectRef>,
}

/// Looks for every planned component's footprint. Components with nothing found are left out.
pub async fn survey(
    api: &dyn ClusterApi,
    target: &KubeTarget,
    plans: &[ComponentPlan],
) -> Result<Vec<Found>, StackError> {
    let mut out = Vec::new();
    for p in plans {
        let mut objects = Vec::new();
        for o in &p.footprint {
            let there = api.exists(target, o).await.map_err(|e| StackError::Api {
                what: format!("looking for {o} ({} already installed?)", p.component),
                source: e,
            })?;
            if there {
                objects.push(o.clone());
            }
        }
        if !objects.is_empty() {
            out.push(Found {
                id: p.id,
                component: p.component,
                objects,
            });
        }
    }
    Ok(out)
}

/// The components to use as found; an error naming every component found that the suite does
/// not let the run reuse.
pub fn decide(
    found: &[Found],
    reuse: &BTreeSet<StackComponent>,
    target: &KubeTarget,
) -> Result<BTreeSet<StackComponent>, StackError> {
    let refused: Vec<&Found> = found.iter().filter(|f| !reuse.contains(&f.id)).collect();
    if refused.is_empty() {
        return Ok(found.iter().map(|f| f.id).collect());
    }
    let list: Vec<String> = refused
        .iter()
        .map(|f| {
            let objects: Vec<String> = f.objects.iter().map(ToString::to_string).collect();
            format!("{} (found {})", f.component, objects.join(", "))
        })
        .collect();
    let keys: Vec<&str> = refused.iter().map(|f| f.id.key()).collect();
    Err(StackError::Invalid(format!(
        "the existing cluster (kubeconfig {}{}) already has what this run would install: {}. \
         meshproof never installs over, changes or removes what it did not install: remove \
         them, or let the run use them exactly as they are with `cluster.reuse: [{}]` in the suite",
        target.kubeconfig.display(),
        target
            .context
            .as_ref()
            .map(|c| format!(", context {c}"))
            .unwrap_or_default(),
        list.join("; "),
        keys.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> KubeTarget {
        KubeTarget {
            kubeconfig: "/home/u/.kube/config".into(),
            context: Some("prod".into()),
        }
    }

    fn found(id: StackComponent, component: &'static str, objects: Vec<ObjectRef>) -> Found {
        Found {
            id,
            component,
            objects,
        }
    }

    #[test]
    fn nothing_found_installs_everything() {
        assert_eq!(
            decide(&[], &BTreeSet::new(), &target()).unwrap(),
            BTreeSet::new()
        );
    }

    #[test]
    fn a_component_found_and_not_reused_is_refused_with_what_was_found() {
        let f = vec![
            found(
                StackComponent::Istio,
                "Istio",
                vec![ObjectRef::namespace("istio-system")],
            ),
            found(
                StackComponent::OpenFaas,
                "OpenFaaS",
                vec![ObjectRef::namespace("openfaas")],
            ),
        ];
        let reuse = BTreeSet::from([StackComponent::Istio]);
        let e = decide(&f, &reuse, &target()).unwrap_err().to_string();
        assert!(e.contains("OpenFaaS (found Namespace openfaas)"), "{e}");
        assert!(
            !e.contains("Istio (found"),
            "reused Istio is not refused: {e}"
        );
        assert!(e.contains("cluster.reuse: [openfaas]"), "{e}");
        assert!(e.contains("context prod"), "{e}");
    }

    #[test]
    fn reused_components_are_returned() {
        let f = vec![found(
            StackComponent::CertManager,
            "cert-manager",
            vec![ObjectRef::crd("certificates.cert-manager.io")],
        )];
        let reuse = BTreeSet::from([StackComponent::CertManager, StackComponent::Flux]);
        assert_eq!(
            decide(&f, &reuse, &target()).unwrap(),
            BTreeSet::from([StackComponent::CertManager])
        );
    }
}
