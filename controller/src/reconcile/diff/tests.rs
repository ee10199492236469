use std::collections::BTreeMap;
use std::sync::Arc;

use rovn_ovsdb::DatabaseModel;
use rovn_ovsdb_schemas::nb::AnyModel;

use super::*;
use crate::desired::{ClusterState, JoinSubnet, Subnet, desired_state};

fn empty_replica() -> Replica {
    let monitored: BTreeMap<String, Vec<String>> = crate::reconcile::monitored_tables()
        .into_iter()
        .map(|t| {
            let columns = t.columns.iter().flatten().map(|c| c.to_string()).collect();
            (t.table.clone(), columns)
        })
        .collect();
    match Replica::new(Arc::new(AnyModel::schema()), &monitored, &[]) {
        Ok(r) => r,
        Err(e) => panic!("replica: {e}"),
    }
}

fn state() -> DesiredState {
    desired_state(&ClusterState {
        join: JoinSubnet {
            cidr: "100.64.0.0/16".parse().unwrap_or_default(),
            gateway: "100.64.0.1"
                .parse()
                .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
        },
        service_cidr: "10.96.0.0/12".parse().unwrap_or_default(),
        subnets: vec![Subnet {
            name: "ovn-default".into(),
            cidr: "10.16.0.0/16".parse().unwrap_or_default(),
            gateway: "10.16.0.1"
                .parse()
                .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
            private: false,
            allow_subnets: Vec::new(),
        }],
        nodes: Vec::new(),
        pods: Vec::new(),
        services: Vec::new(),
        policies: Vec::new(),
        policy_pods: Default::default(),
    })
}

#[test]
fn an_empty_nb_gets_referenced_rows_and_parents_first_then_children_attached_to_them() {
    let plan = match diff(&state(), &empty_replica()) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    assert!(plan.conflicts.is_empty());
    let phases: Vec<Vec<&str>> = plan
        .phases
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| p.iter().map(|s| s.what.as_str()).collect())
        .collect();
    assert_eq!(
        phases,
        [
            vec!["Meter rovn-acl-log"],
            vec!["Load_Balancer_Group cluster-lbs"],
            vec![
                "Logical_Router ovn-cluster",
                "Logical_Switch join",
                "Logical_Switch ovn-default"
            ],
            vec![
                "Logical_Router_Port ovn-cluster-join",
                "Logical_Router_Port ovn-cluster-ovn-default",
                "Logical_Router_Policy Cluster/ovn-cluster#in-cluster",
                "Logical_Router_Static_Route Cluster/ovn-cluster#default-route",
                "Logical_Switch_Port join-ovn-cluster",
                "Logical_Switch_Port ovn-default-ovn-cluster"
            ],
        ]
    );
    let whole = plan.transactions(2000);
    assert_eq!(
        (whole.len(), whole[0].len()),
        (1, 1),
        "a plan that fits one transaction is one"
    );
    // Too large for one: each phase of its own.
    // A meter cannot exist without a band: the band is inserted in the meter's own step,
    // first, and the meter's insert names it (no mutation, which would come too late).
    let meter = plan
        .phases
        .iter()
        .flatten()
        .find(|s| s.what == "Meter rovn-acl-log");
    let named_band = |m: &Step| match m.ops.as_slice() {
        [
            Operation::Insert {
                table: band_table,
                uuid_name: Some(band),
                ..
            },
            Operation::Insert {
                table: meter_table,
                row,
                ..
            },
        ] => {
            band_table == "Meter_Band"
                && meter_table == "Meter"
                && row.get("bands")
                    == Some(&rovn_ovsdb::Datum::atom(rovn_ovsdb::Atom::NamedUuid(
                        band.clone(),
                    )))
        }
        _ => false,
    };
    assert!(
        meter.is_some_and(|m| m.links.is_empty() && named_band(m)),
        "{meter:?}"
    );
    let txns = plan.transactions(12);
    let ports = &txns[3];
    assert_eq!(ports.len(), 1);
    // 6 inserts (4 ports, the egress policy and the default route), then one mutation per
    // parent column (the router's ports, policies and static routes; join's and ovn-default's
    // ports), each naming the parent by the uuid-name of its insert in the first phase, and
    // the comment.
    assert_eq!(ports[0].ops.len(), 12);
    assert_eq!(ports[0].parent_mutations.len(), 5);
    assert!(ports[0].ops[6..11].iter().all(|op| matches!(op,
        Operation::Mutate { conditions, .. } if conditions[0].column == "_uuid"
            && matches!(conditions[0].value.as_atom(), Some(rovn_ovsdb::Atom::NamedUuid(_))))));
    assert!(matches!(&ports[0].ops[11], Operation::Comment(_)));
    assert_eq!(
        txns[2][0].creates.len(),
        3,
        "the parents' UUIDs are kept for phase two"
    );
}

#[test]
fn an_unmonitored_table_is_an_error_not_an_empty_table() {
    let replica = match Replica::new(Arc::new(AnyModel::schema()), &BTreeMap::new(), &[]) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let err = diff(&state(), &replica).err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("table Load_Balancer is not monitored by the NB client; cannot tell what exists")
    );
}
