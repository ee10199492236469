use std::collections::BTreeMap;
use std::sync::Arc;

use rovn_ovsdb::DatabaseModel;
use rovn_ovsdb_schemas::nb::AnyModel;

use super::*;
use crate::desired::{ClusterState, JoinSubnet, Subnet, desired_state};

fn empty_replica() -> Replica {
    let monitored: BTreeMap<String, Vec<String>> = [
        (LogicalRouter::TABLE, LogicalRouter::COLUMNS),
        (LogicalRouterPort::TABLE, LogicalRouterPort::COLUMNS),
        (LogicalSwitch::TABLE, LogicalSwitch::COLUMNS),
        (LogicalSwitchPort::TABLE, LogicalSwitchPort::COLUMNS),
    ]
    .into_iter()
    .map(|(t, cols)| (t.to_string(), cols.iter().map(|c| c.to_string()).collect()))
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
        subnets: vec![Subnet {
            name: "ovn-default".into(),
            cidr: "10.16.0.0/16".parse().unwrap_or_default(),
            gateway: "10.16.0.1"
                .parse()
                .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
        }],
        nodes: Vec::new(),
        pods: Vec::new(),
    })
}

#[test]
fn an_empty_nb_gets_roots_first_then_ports_attached_by_parent_name() {
    let plan = match diff(&state(), &empty_replica()) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    assert!(plan.conflicts.is_empty());
    assert_eq!(plan.phases[ROOTS].len(), 3, "router + join + ovn-default");
    assert_eq!(plan.phases[PORTS].len(), 4, "2 router ports + 2 peers");
    assert!(plan.phases[ROOT_GARBAGE].is_empty());
    let txns = plan.transactions(2000);
    let ports = &txns[PORTS];
    assert_eq!(ports.len(), 1);
    // 4 inserts, then one mutation per parent (router, join, ovn-default), by name, and the
    // comment.
    assert_eq!(ports[0].ops.len(), 8);
    assert_eq!(ports[0].parent_mutations.len(), 3);
    assert!(ports[0].ops[4..7].iter().all(|op| matches!(op,
        Operation::Mutate { conditions, .. } if conditions[0].column == "name")));
    assert!(matches!(&ports[0].ops[7], Operation::Comment(_)));
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
        Some("table Logical_Router is not monitored by the NB client; cannot tell what exists")
    );
}
