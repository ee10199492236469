//! The node agent: OVS and OVN settings of the node, `ovn0`, the CNI server and its handlers.
