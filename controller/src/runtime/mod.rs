//! The controller process: watchers, IPAM state, annotation writes, the NB reconcile loop, leader election, metrics.
