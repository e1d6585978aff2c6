//! A mesh's preset scope: which ports a capture's flows are judged on, and what each must show.
//!
//! Under Istio's ambient data plane a peer reaches a pod only through ztunnel: an HBONE tunnel to
//! port 15008 (the ClientHello rules of [`Mesh::IstioAmbient`]). The workload's own port then
//! carries nothing from a peer on the pod's `eth0`; a byte there went around the tunnel, whether
//! it was plaintext or the application's own TLS, so it fails (ledger IS-19). The kubelet's
//! probes are the one exception: istio-cni SNATs them to a link-local address and lets them
//! reach the app port directly (IS-20), so flows from that address are listed, not judged.

use super::judge::{ExemptClient, PortExpect, PortRules};
use super::rules::{Mesh, HBONE_PORT};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// istio-cni's default `HOST_PROBE_SNAT_IP`: the source of the kubelet's probes inside an
/// ambient pod (ledger IS-20).
pub const HOST_PROBE_SNAT_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 7, 127);
/// istio-cni's default `HOST_PROBE_SNAT_IPV6` (ledger IS-20).
pub const HOST_PROBE_SNAT_IPV6: Ipv6Addr = Ipv6Addr::new(
    0xfd16, 0x9254, 0x7127, 0x1337, 0xffff, 0xffff, 0xffff, 0xffff,
);

/// The ports judged and their rules for `mesh`, given the workload's own ports (`app_ports`)
/// and any other ports the user asked for (`ports`, judged with the general rules). `None`
/// when the mesh has no preset scope: the caller's ports and rules stand as given.
pub fn scope(mesh: Mesh, app_ports: &[u16], ports: &[u16]) -> Option<(Vec<u16>, Vec<PortRules>)> {
    match mesh {
        Mesh::IstioAmbient => {
            let mut judged = vec![HBONE_PORT];
            for p in ports.iter().chain(app_ports) {
                if !judged.contains(p) {
                    judged.push(*p);
                }
            }
            let rules = app_ports
                .iter()
                .map(|&port| PortRules {
                    port,
                    expect: PortExpect::NoPayload {
                        except: [IpAddr::V4(HOST_PROBE_SNAT_IP), IpAddr::V6(HOST_PROBE_SNAT_IPV6)]
                            .into_iter()
                            .map(|ip| ExemptClient {
                                ip,
                                why: "the kubelet's probes, which istio-cni SNATs to this address and lets through to the app port".into(),
                            })
                            .collect(),
                    },
                })
                .collect();
            Some((judged, rules))
        }
        Mesh::Istio | Mesh::Linkerd => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ambient_judges_hbone_and_refuses_payload_on_the_app_ports() {
        let (ports, rules) = scope(Mesh::IstioAmbient, &[8080], &[]).unwrap();
        assert_eq!(ports, vec![15008, 8080]);
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].port, 8080);
        assert!(
            matches!(&rules[0].expect, PortExpect::NoPayload { except } if except[0].ip == IpAddr::V4(HOST_PROBE_SNAT_IP))
        );
        // Without app ports only HBONE is judged; extra ports keep the general rules.
        let (ports, rules) = scope(Mesh::IstioAmbient, &[], &[9090, 15008]).unwrap();
        assert_eq!(ports, vec![15008, 9090]);
        assert!(rules.is_empty());
        assert!(scope(Mesh::Istio, &[8080], &[]).is_none());
    }
}
