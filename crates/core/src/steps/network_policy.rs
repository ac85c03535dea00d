//! Step `network_policy`: the tenant's NetworkPolicy (`tenant-isolation`):
//! default deny in both directions, then ingress from the tenant's own pods
//! and the routing gateway, egress to the tenant's own pods and cluster DNS.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{IsolationObject, TenantObjects};

/// Name of the tenant's NetworkPolicy.
pub const NETWORK_POLICY_NAME: &str = "tenant-isolation";

fn namespace_peer(namespace: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_owned(),
                namespace.to_owned(),
            )])),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    }
}

fn same_namespace_peer() -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
    }
}

/// Default deny in both directions, then: ingress from the tenant's own pods and
/// from the gateway namespace; egress to the tenant's own pods and to cluster DNS.
pub(super) fn build(t: &TenantObjects<'_>) -> IsolationObject {
    let dns_port = |protocol: &str| NetworkPolicyPort {
        port: Some(IntOrString::Int(53)),
        protocol: Some(protocol.to_owned()),
        ..NetworkPolicyPort::default()
    };
    IsolationObject::NetworkPolicy(NetworkPolicy {
        metadata: t.meta(NETWORK_POLICY_NAME),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![
                    same_namespace_peer(),
                    namespace_peer(t.gateway_namespace),
                ]),
                ..NetworkPolicyIngressRule::default()
            }]),
            egress: Some(vec![
                NetworkPolicyEgressRule {
                    to: Some(vec![same_namespace_peer()]),
                    ..NetworkPolicyEgressRule::default()
                },
                NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(LabelSelector::default()),
                        pod_selector: Some(LabelSelector {
                            match_labels: Some(BTreeMap::from([(
                                "k8s-app".to_owned(),
                                "kube-dns".to_owned(),
                            )])),
                            ..LabelSelector::default()
                        }),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![dns_port("UDP"), dns_port("TCP")]),
                },
            ]),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::tests::with_tenant;

    #[test]
    fn the_policy_denies_by_default_and_admits_the_gateway() {
        let IsolationObject::NetworkPolicy(np) = with_tenant(build) else {
            panic!("a network policy");
        };
        let spec = np.spec.unwrap();
        assert_eq!(
            spec.policy_types.as_deref(),
            Some(&["Ingress".to_owned(), "Egress".to_owned()][..])
        );
        let from = spec.ingress.unwrap()[0].from.clone().unwrap();
        assert!(from.iter().any(|p| {
            p.namespace_selector
                .as_ref()
                .and_then(|s| s.match_labels.as_ref())
                .is_some_and(|l| l["kubernetes.io/metadata.name"] == "gateway")
        }));
        let egress = spec.egress.unwrap();
        let ports = egress[1].ports.clone().unwrap();
        assert!(
            ports.iter().all(|p| p.protocol.is_some()),
            "protocol set explicitly"
        );
    }
}
