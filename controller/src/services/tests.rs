use k8s_openapi::api::core::v1::{
    ClientIPConfig, Service as KubeService, ServicePort as KubePort, ServiceSpec,
    SessionAffinityConfig,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint as KubeEndpoint, EndpointConditions, EndpointPort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

fn service(spec: ServiceSpec) -> KubeService {
    KubeService {
        metadata: ObjectMeta {
            namespace: Some("shop".into()),
            name: Some("web".into()),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

fn clusterip(ports: Vec<KubePort>) -> ServiceSpec {
    ServiceSpec {
        cluster_ip: Some("10.96.0.10".into()),
        cluster_ips: Some(vec!["10.96.0.10".into(), "fd00::a".into()]),
        ports: Some(ports),
        ..Default::default()
    }
}

fn port(name: &str, protocol: Option<&str>, number: i32) -> KubePort {
    KubePort {
        name: Some(name.into()),
        protocol: protocol.map(Into::into),
        port: number,
        ..Default::default()
    }
}

fn slice(address_type: &str, addresses: &[&str], ready: Option<bool>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some("shop".into()),
            name: Some("web-abcde".into()),
            labels: Some([(SERVICE_NAME_LABEL.to_string(), "web".to_string())].into()),
            ..Default::default()
        },
        address_type: address_type.into(),
        endpoints: addresses
            .iter()
            .map(|a| KubeEndpoint {
                addresses: vec![a.to_string()],
                conditions: Some(EndpointConditions {
                    ready,
                    serving: None,
                    terminating: None,
                }),
                ..Default::default()
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some("http".into()),
            port: Some(8080),
            protocol: None,
            app_protocol: None,
        }]),
    }
}

#[test]
fn a_clusterip_service_takes_its_ipv4_address_ports_and_slices() {
    let svc = service(clusterip(vec![port("http", None, 80)]));
    let view = service_view(&svc, [&slice("IPv4", &["10.16.0.5"], None)]);
    assert!(view.ignored.is_empty(), "{:?}", view.ignored);
    let Some(service) = view.service else {
        panic!("a ClusterIP Service has load balancers")
    };
    assert_eq!(
        service.cluster_ips,
        vec![
            "10.96.0.10"
                .parse::<Ipv4Addr>()
                .unwrap_or(Ipv4Addr::UNSPECIFIED)
        ]
    );
    assert_eq!(
        service.ports,
        vec![ServicePort {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 80
        }]
    );
    assert_eq!(service.endpoints.len(), 1);
    let endpoint = &service.endpoints[0];
    assert!(
        endpoint.ready && endpoint.serving && !endpoint.terminating,
        "nil conditions read as upstream documents"
    );
    assert_eq!(
        endpoint.ports,
        vec![("http".to_string(), Protocol::Tcp, 8080)]
    );
    assert_eq!(service.affinity_timeout, None);
}

#[test]
fn headless_external_name_and_ipv6_only_services_have_no_balancer() {
    let mut headless = clusterip(vec![port("http", None, 80)]);
    headless.cluster_ip = Some("None".into());
    headless.cluster_ips = Some(vec!["None".into()]);
    assert_eq!(service_view(&service(headless), []).service, None);
    let external = ServiceSpec {
        type_: Some("ExternalName".into()),
        external_name: Some("example.com".into()),
        ..Default::default()
    };
    assert_eq!(service_view(&service(external), []).service, None);
    let mut v6 = clusterip(vec![port("http", None, 80)]);
    v6.cluster_ip = Some("fd00::a".into());
    v6.cluster_ips = Some(vec!["fd00::a".into()]);
    assert_eq!(service_view(&service(v6), []).service, None);
}

#[test]
fn client_ip_affinity_defaults_to_three_hours() {
    let mut spec = clusterip(vec![port("http", None, 80)]);
    spec.session_affinity = Some("ClientIP".into());
    let view = service_view(&service(spec.clone()), []);
    assert_eq!(view.service.and_then(|s| s.affinity_timeout), Some(10_800));
    spec.session_affinity_config = Some(SessionAffinityConfig {
        client_ip: Some(ClientIPConfig {
            timeout_seconds: Some(30),
        }),
    });
    let view = service_view(&service(spec), []);
    assert_eq!(view.service.and_then(|s| s.affinity_timeout), Some(30));
}

#[test]
fn garbage_in_user_written_slices_is_left_out_and_named() {
    let svc = service(clusterip(vec![
        port("http", None, 80),
        port("odd", Some("ICMP"), 7),
    ]));
    let mut bad = slice(
        "IPv4",
        &["10.16.0.5", "not-an-ip", "fd00::1", "0.0.0.0"],
        Some(false),
    );
    if let Some(ports) = bad.ports.as_mut() {
        ports.push(EndpointPort {
            name: Some("big".into()),
            port: Some(70_000),
            protocol: None,
            app_protocol: None,
        });
    }
    let view = service_view(&svc, [&bad, &slice("FQDN", &["example.com"], None)]);
    let service = view
        .service
        .unwrap_or_else(|| panic!("the good port still serves"));
    assert_eq!(service.ports.len(), 1);
    assert_eq!(service.endpoints.len(), 1, "{:?}", service.endpoints);
    assert!(!service.endpoints[0].ready);
    assert_eq!(view.ignored.len(), 5, "{:#?}", view.ignored);
    assert!(
        view.ignored
            .iter()
            .any(|m| m.contains("EndpointSlice shop/web-abcde") && m.contains("not-an-ip"))
    );
    assert!(
        view.ignored
            .iter()
            .any(|m| m.contains("Service shop/web") && m.contains("spec.ports[1]"))
    );
}

#[test]
fn a_slice_belongs_to_the_service_its_label_names() {
    assert_eq!(service_of_slice(&slice("IPv4", &[], None)), Some("web"));
    let mut unlabelled = slice("IPv4", &[], None);
    unlabelled.metadata.labels = None;
    assert_eq!(service_of_slice(&unlabelled), None);
}
