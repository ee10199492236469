//! IPAM for the whole cluster: the join pool and one pool per accepted Subnet. Owned by the
//! controller task alone (no locks); pure and synchronous.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rovn_api::names;

use crate::ipam::{IpamError, SubnetPool, Usage};
use crate::subnets::{SubnetConfig, SubnetSet};

/// Every address pool.
pub struct Allocator {
    join: SubnetPool,
    pools: BTreeMap<String, (SubnetConfig, SubnetPool)>,
}

/// What [`Allocator::update_subnets`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PoolChanges {
    /// Subnets whose pool was created or rebuilt empty: their holders must be restored.
    pub rebuilt: Vec<String>,
    /// Subnets whose pool is gone.
    pub removed: Vec<String>,
    /// Accepted Subnets whose pool could not be built, with why.
    pub failed: Vec<(String, IpamError)>,
}

impl Allocator {
    /// An allocator with only the join pool (gateway: the first host of `join_cidr`).
    pub fn new(join_cidr: Ipv4Net) -> Result<Allocator, IpamError> {
        Ok(Allocator {
            join: SubnetPool::new(names::JOIN_SWITCH, join_cidr, None, &[])?,
            pools: BTreeMap::new(),
        })
    }

    /// The join network's pool, from which nodes get their `ovn0` address.
    pub fn join(&mut self) -> &mut SubnetPool {
        &mut self.join
    }

    /// The join gateway (the cluster router's address on `join`).
    pub fn join_gateway(&self) -> Ipv4Addr {
        self.join.gateway()
    }

    /// The pool of an accepted Subnet.
    pub fn pool(&mut self, subnet: &str) -> Option<&mut SubnetPool> {
        self.pools.get_mut(subnet).map(|(_, pool)| pool)
    }

    /// Usage of an accepted Subnet's pool.
    pub fn usage(&self, subnet: &str) -> Option<Usage> {
        self.pools.get(subnet).map(|(_, pool)| pool.usage())
    }

    /// Usage of every pool, the join pool included, for metrics.
    pub fn all_usage(&self) -> Vec<(String, Usage)> {
        std::iter::once((names::JOIN_SWITCH.to_string(), self.join.usage()))
            .chain(
                self.pools
                    .iter()
                    .map(|(name, (_, pool))| (name.clone(), pool.usage())),
            )
            .collect()
    }

    /// Follows a new validation outcome: a pool whose Subnet's addressing is unchanged is
    /// kept as it is; a new or changed one starts empty and the caller restores its holders.
    pub fn update_subnets(&mut self, set: &SubnetSet) -> PoolChanges {
        let mut changes = PoolChanges::default();
        let wanted: BTreeMap<&str, &SubnetConfig> =
            set.accepted().map(|c| (c.name.as_str(), c)).collect();
        let gone: Vec<String> = self
            .pools
            .keys()
            .filter(|name| !wanted.contains_key(name.as_str()))
            .cloned()
            .collect();
        for name in gone {
            self.pools.remove(&name);
            changes.removed.push(name);
        }
        for (name, config) in wanted {
            let same = self.pools.get(name).is_some_and(|(old, _)| {
                old.cidr == config.cidr
                    && old.gateway == config.gateway
                    && old.exclude_ips == config.exclude_ips
            });
            if same {
                if let Some((old, _)) = self.pools.get_mut(name) {
                    *old = config.clone();
                }
                continue;
            }
            match config.pool() {
                Ok(pool) => {
                    self.pools.insert(name.to_string(), (config.clone(), pool));
                    changes.rebuilt.push(name.to_string());
                }
                Err(e) => {
                    if self.pools.remove(name).is_some() {
                        changes.removed.push(name.to_string());
                    }
                    changes.failed.push((name.to_string(), e));
                }
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::Request;
    use crate::subnets::{Reserved, validate_subnets};
    use rovn_api::subnet::{Subnet, SubnetSpec};

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap_or_default()
    }

    fn subnet(name: &str, cidr: &str, exclude: &[&str]) -> Subnet {
        Subnet::new(
            name,
            SubnetSpec {
                cidr_block: cidr.into(),
                gateway: None,
                exclude_ips: exclude.iter().map(|s| s.to_string()).collect(),
                namespaces: Vec::new(),
                nat_outgoing: false,
                private: false,
                allow_subnets: Vec::new(),
            },
        )
    }

    fn set(objects: &[Subnet]) -> SubnetSet {
        let reserved = Reserved {
            join: net("100.64.0.0/16"),
            service: net("10.96.0.0/12"),
        };
        validate_subnets(objects, &reserved)
    }

    #[test]
    fn unchanged_pools_keep_their_allocations_and_changed_ones_are_rebuilt() -> Result<(), IpamError>
    {
        let mut alloc = Allocator::new(net("100.64.0.0/16"))?;
        let a = subnet("a", "10.20.0.0/24", &[]);
        let b = subnet("b", "10.21.0.0/24", &[]);
        let changes = alloc.update_subnets(&set(&[a.clone(), b.clone()]));
        assert_eq!(changes.rebuilt, vec!["a".to_string(), "b".to_string()]);
        let pool = alloc.pool("a").ok_or(IpamError::BadCidr {
            subnet: "a".into(),
            reason: "missing".into(),
        })?;
        pool.allocate("Pod/ns/p", Request::default())?;

        let b2 = subnet("b", "10.21.0.0/24", &["10.21.0.10"]);
        let changes = alloc.update_subnets(&set(&[a.clone(), b2]));
        assert_eq!(changes.rebuilt, vec!["b".to_string()]);
        assert_eq!(alloc.usage("a").map(|u| u.used), Some(1));

        let changes = alloc.update_subnets(&set(&[a]));
        assert_eq!(changes.removed, vec!["b".to_string()]);
        assert!(alloc.pool("b").is_none());
        assert_eq!(alloc.join_gateway(), Ipv4Addr::new(100, 64, 0, 1));
        Ok(())
    }
}
