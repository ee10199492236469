//! One subnet's address pool.
//!
//! Addresses are handed out next-fit: the search starts after the last address given, so an
//! address freed by a deleted pod is not given to the very next pod, whose peers may still hold
//! the old pod's ARP entries and conntrack state. It comes back into use once the cursor wraps.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rovn_api::MacAddr;

use super::IpamError;
use super::exclude::{AddrRange, parse_exclude_ips};

/// What a pod (or node) holds in a subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its port's MAC.
    pub mac: MacAddr,
}

/// A static address and/or MAC asked for by the owner (the pod's `ip_address`/`mac_address`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Request {
    /// The address asked for, if any.
    pub ip: Option<Ipv4Addr>,
    /// The MAC asked for, if any; derived from the address otherwise.
    pub mac: Option<MacAddr>,
}

/// Address counts, as the Subnet status reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Addresses held by pods and nodes.
    pub used: u64,
    /// Addresses still free to hand out (excluded and reserved ones are neither).
    pub available: u64,
}

/// The pool of one subnet: which address belongs to whom.
#[derive(Debug, Clone)]
pub struct SubnetPool {
    name: String,
    cidr: Ipv4Net,
    gateway: Ipv4Addr,
    excluded: Vec<AddrRange>,
    /// One bit per address of the subnet: reserved, excluded or allocated.
    taken: Vec<u64>,
    /// Addresses never handed out by the search (network, broadcast, gateway, excluded).
    unavailable: u64,
    holders: HashMap<Ipv4Addr, String>,
    macs: HashMap<MacAddr, String>,
    by_owner: HashMap<String, Allocation>,
    cursor: u32,
}

impl SubnetPool {
    /// A pool for subnet `name` with `cidr`; the gateway defaults to the first host address.
    pub fn new(
        name: &str,
        cidr: Ipv4Net,
        gateway: Option<Ipv4Addr>,
        exclude_ips: &[String],
    ) -> Result<SubnetPool, IpamError> {
        let cidr = cidr.trunc();
        if cidr.prefix_len() > 30 {
            return Err(IpamError::BadCidr {
                subnet: name.to_string(),
                reason: format!(
                    "{cidr} leaves no room for pods (the prefix must be /30 or shorter)"
                ),
            });
        }
        let network = u32::from(cidr.network());
        let broadcast = u32::from(cidr.broadcast());
        let gateway = gateway.unwrap_or_else(|| Ipv4Addr::from(network + 1));
        let gw = u32::from(gateway);
        if !cidr.contains(&gateway) || gw == network || gw == broadcast {
            return Err(IpamError::BadGateway {
                subnet: name.to_string(),
                gateway,
                cidr,
            });
        }
        let excluded = parse_exclude_ips(exclude_ips, cidr)?;
        let size = broadcast - network + 1;
        let mut pool = SubnetPool {
            name: name.to_string(),
            cidr,
            gateway,
            excluded,
            taken: vec![0; (size as usize).div_ceil(64)],
            unavailable: 0,
            holders: HashMap::new(),
            macs: HashMap::new(),
            by_owner: HashMap::new(),
            cursor: 0,
        };
        let reserve = |pool: &mut SubnetPool, addr: u32| {
            if !pool.is_taken(addr) {
                pool.set_taken(addr, true);
                pool.unavailable += 1;
            }
        };
        for addr in [network, broadcast, gw] {
            reserve(&mut pool, addr);
        }
        for range in pool.excluded.clone() {
            for addr in range.first..=range.last {
                reserve(&mut pool, addr);
            }
        }
        Ok(pool)
    }

    /// The subnet's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The subnet's CIDR.
    pub fn cidr(&self) -> Ipv4Net {
        self.cidr
    }

    /// The subnet's gateway (the router port's address).
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// What `owner` holds here, if anything.
    pub fn get(&self, owner: &str) -> Option<Allocation> {
        self.by_owner.get(owner).copied()
    }

    /// Who holds `ip`, if anyone.
    pub fn holder_of(&self, ip: Ipv4Addr) -> Option<&str> {
        self.holders.get(&ip).map(String::as_str)
    }

    /// Used and available address counts.
    pub fn usage(&self) -> Usage {
        let used = self.holders.len() as u64;
        let total = u64::from(self.size());
        // Restored pods may hold excluded addresses, which `unavailable` already counts.
        let held_excluded = self
            .holders
            .keys()
            .filter(|ip| self.is_excluded(u32::from(**ip)))
            .count() as u64;
        Usage {
            used,
            available: total - self.unavailable - (used - held_excluded),
        }
    }

    /// Gives `owner` an address: the requested one if it asks for one, else the next free.
    /// Asking again for what it already holds is a no-op; asking for something else is an error.
    pub fn allocate(&mut self, owner: &str, request: Request) -> Result<Allocation, IpamError> {
        if let Some(held) = self.by_owner.get(owner) {
            let same_ip = request.ip.is_none_or(|ip| ip == held.ip);
            let same_mac = request.mac.is_none_or(|mac| mac == held.mac);
            if same_ip && same_mac {
                return Ok(*held);
            }
            return Err(IpamError::AlreadyAllocated {
                owner: owner.to_string(),
                ip: held.ip,
                mac: held.mac,
            });
        }
        let ip = match request.ip {
            Some(ip) => {
                self.check_static(ip, false)?;
                ip
            }
            // A pod's static MAC may be the derived MAC of a free address: that address is
            // passed over, or every later pod would fail on it.
            None => self.next_free(|ip| {
                request.mac.is_some() || !self.macs.contains_key(&MacAddr::derived_from(ip))
            })?,
        };
        self.take(owner, ip, request.mac)
    }

    /// Re-records an allocation found in an annotation when the controller starts. Unlike a new
    /// static request it accepts an address that has since been excluded: a running pod keeps
    /// its address.
    pub fn restore(
        &mut self,
        owner: &str,
        ip: Ipv4Addr,
        mac: MacAddr,
    ) -> Result<Allocation, IpamError> {
        if let Some(held) = self.by_owner.get(owner) {
            if held.ip == ip && held.mac == mac {
                return Ok(*held);
            }
            return Err(IpamError::AlreadyAllocated {
                owner: owner.to_string(),
                ip: held.ip,
                mac: held.mac,
            });
        }
        self.check_static(ip, true)?;
        self.take(owner, ip, Some(mac))
    }

    /// Frees what `owner` holds, returning it.
    pub fn release(&mut self, owner: &str) -> Option<Allocation> {
        let held = self.by_owner.remove(owner)?;
        self.holders.remove(&held.ip);
        self.macs.remove(&held.mac);
        let addr = u32::from(held.ip);
        if !self.is_excluded(addr) {
            self.set_taken(addr, false);
        }
        Some(held)
    }

    fn take(
        &mut self,
        owner: &str,
        ip: Ipv4Addr,
        mac: Option<MacAddr>,
    ) -> Result<Allocation, IpamError> {
        let mac = mac.unwrap_or_else(|| MacAddr::derived_from(ip));
        if let Some(other) = self.macs.get(&mac) {
            return Err(IpamError::MacInUse {
                mac,
                owner: other.clone(),
            });
        }
        let addr = u32::from(ip);
        self.set_taken(addr, true);
        self.cursor = addr - u32::from(self.cidr.network()) + 1;
        self.holders.insert(ip, owner.to_string());
        self.macs.insert(mac, owner.to_string());
        let allocation = Allocation { ip, mac };
        self.by_owner.insert(owner.to_string(), allocation);
        Ok(allocation)
    }

    fn check_static(&self, ip: Ipv4Addr, allow_excluded: bool) -> Result<(), IpamError> {
        if !self.cidr.contains(&ip) {
            return Err(IpamError::OutsideSubnet {
                ip,
                subnet: self.name.clone(),
                cidr: self.cidr,
            });
        }
        let addr = u32::from(ip);
        let reserved = if addr == u32::from(self.cidr.network()) {
            Some("the network address")
        } else if addr == u32::from(self.cidr.broadcast()) {
            Some("the broadcast address")
        } else if ip == self.gateway {
            Some("the gateway")
        } else if !allow_excluded && self.is_excluded(addr) {
            Some("in excludeIps")
        } else {
            None
        };
        if let Some(what) = reserved {
            return Err(IpamError::Reserved {
                ip,
                subnet: self.name.clone(),
                what,
            });
        }
        if let Some(owner) = self.holders.get(&ip) {
            return Err(IpamError::InUse {
                ip,
                owner: owner.clone(),
            });
        }
        Ok(())
    }

    /// The next free address from the cursor on, wrapping once, that `usable` accepts.
    fn next_free(&self, usable: impl Fn(Ipv4Addr) -> bool) -> Result<Ipv4Addr, IpamError> {
        let size = self.size();
        let start = if self.cursor >= size { 0 } else { self.cursor };
        let (mut from, mut to) = (start, size);
        loop {
            match self.first_free_in(from, to) {
                Some(offset) => {
                    let ip = Ipv4Addr::from(u32::from(self.cidr.network()) + offset);
                    if usable(ip) {
                        return Ok(ip);
                    }
                    from = offset + 1;
                }
                None if to == size && start > 0 => (from, to) = (0, start),
                None => {
                    return Err(IpamError::Exhausted {
                        subnet: self.name.clone(),
                        cidr: self.cidr,
                    });
                }
            }
        }
    }

    /// The first clear bit in `[from, to)`, a word at a time.
    fn first_free_in(&self, from: u32, to: u32) -> Option<u32> {
        let mut offset = from;
        while offset < to {
            let word = self.taken[(offset / 64) as usize] | ((1u64 << (offset % 64)) - 1);
            if word != u64::MAX {
                let bit = word.trailing_ones();
                let candidate = offset - offset % 64 + bit;
                return (candidate < to).then_some(candidate);
            }
            offset = offset - offset % 64 + 64;
        }
        None
    }

    fn size(&self) -> u32 {
        u32::from(self.cidr.broadcast()) - u32::from(self.cidr.network()) + 1
    }

    fn is_excluded(&self, addr: u32) -> bool {
        self.excluded.iter().any(|r| r.contains(addr))
    }

    fn is_taken(&self, addr: u32) -> bool {
        let offset = addr - u32::from(self.cidr.network());
        self.taken[(offset / 64) as usize] & (1 << (offset % 64)) != 0
    }

    fn set_taken(&mut self, addr: u32, taken: bool) {
        let offset = addr - u32::from(self.cidr.network());
        let word = &mut self.taken[(offset / 64) as usize];
        if taken {
            *word |= 1 << (offset % 64);
        } else {
            *word &= !(1 << (offset % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    fn pool(cidr: &str, exclude: &[&str]) -> SubnetPool {
        let exclude: Vec<String> = exclude.iter().map(|s| s.to_string()).collect();
        match SubnetPool::new("test", cidr.parse().unwrap_or_default(), None, &exclude) {
            Ok(p) => p,
            Err(e) => panic!("pool {cidr}: {e}"),
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    #[test]
    fn skips_network_gateway_and_excluded() {
        let mut p = pool("10.16.0.0/24", &["10.16.0.2..10.16.0.3"]);
        let a = p.allocate("ns/a", Request::default());
        assert_eq!(a.map(|a| a.ip).ok(), Some(ip("10.16.0.4")));
        assert_eq!(
            p.usage(),
            Usage {
                used: 1,
                available: 256 - 5 - 1
            }
        );
    }

    #[test]
    fn exhaustion_is_an_error_and_release_refills() {
        let mut p = pool("10.0.0.0/29", &[]);
        let got: Vec<_> = (0..5)
            .filter_map(|i| p.allocate(&format!("p{i}"), Request::default()).ok())
            .collect();
        assert_eq!(got.len(), 5);
        assert!(matches!(
            p.allocate("p5", Request::default()),
            Err(IpamError::Exhausted { .. })
        ));
        assert_eq!(p.release("p2").map(|a| a.ip), Some(ip("10.0.0.4")));
        assert_eq!(
            p.allocate("p5", Request::default()).map(|a| a.ip).ok(),
            Some(ip("10.0.0.4"))
        );
        assert_eq!(p.usage().available, 0);
    }

    #[test]
    fn a_static_mac_equal_to_a_free_addresses_derived_mac_does_not_block_the_pool() {
        let mut p = pool("10.0.0.0/28", &[]);
        // ns/s takes the last address (the cursor wraps to the start) with the MAC that
        // 10.0.0.2, the next free address, would derive.
        let squatter = Request {
            ip: Some(ip("10.0.0.14")),
            mac: Some(MacAddr::derived_from(ip("10.0.0.2"))),
        };
        assert!(p.allocate("ns/s", squatter).is_ok());
        let got: Vec<_> = (0..3)
            .map(|i| {
                p.allocate(&format!("ns/p{i}"), Request::default())
                    .map(|a| a.ip)
            })
            .collect();
        assert_eq!(
            got,
            vec![Ok(ip("10.0.0.3")), Ok(ip("10.0.0.4")), Ok(ip("10.0.0.5"))]
        );
        // The passed-over address is still free for a request that brings its own MAC.
        let own_mac = Request {
            ip: Some(ip("10.0.0.2")),
            mac: Some(MacAddr::derived_from(ip("10.0.0.14"))),
        };
        assert_eq!(
            p.allocate("ns/m", own_mac).map(|a| a.ip),
            Ok(ip("10.0.0.2"))
        );
    }

    #[test]
    fn freed_address_is_not_reused_at_once() {
        let mut p = pool("10.0.0.0/24", &[]);
        let a = p.allocate("a", Request::default()).map(|a| a.ip).ok();
        p.release("a");
        let b = p.allocate("b", Request::default()).map(|a| a.ip).ok();
        assert_ne!(a, b);
    }

    #[test]
    fn static_requests() {
        let mut p = pool("10.16.0.0/16", &["10.16.0.100"]);
        let want = Request {
            ip: Some(ip("10.16.3.4")),
            mac: None,
        };
        let a = p.allocate("ns/a", want);
        assert_eq!(
            a.map(|a| a.mac.to_string()).ok().as_deref(),
            Some("0a:58:0a:10:03:04")
        );
        assert!(
            p.allocate("ns/a", want).is_ok(),
            "asking again is idempotent"
        );
        assert!(matches!(
            p.allocate("ns/b", want),
            Err(IpamError::InUse { .. })
        ));
        let outside = Request {
            ip: Some(ip("10.17.0.1")),
            mac: None,
        };
        assert!(matches!(
            p.allocate("ns/c", outside),
            Err(IpamError::OutsideSubnet { .. })
        ));
        for reserved in ["10.16.0.0", "10.16.0.1", "10.16.255.255", "10.16.0.100"] {
            let r = Request {
                ip: Some(ip(reserved)),
                mac: None,
            };
            assert!(
                matches!(p.allocate("ns/d", r), Err(IpamError::Reserved { .. })),
                "{reserved}"
            );
        }
        let mac: MacAddr = match "0a:00:00:00:00:01".parse() {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        };
        assert!(
            p.allocate(
                "ns/e",
                Request {
                    ip: None,
                    mac: Some(mac)
                }
            )
            .is_ok()
        );
        assert!(matches!(
            p.allocate(
                "ns/f",
                Request {
                    ip: None,
                    mac: Some(mac)
                }
            ),
            Err(IpamError::MacInUse { .. })
        ));
        assert!(matches!(
            p.allocate(
                "ns/a",
                Request {
                    ip: Some(ip("10.16.9.9")),
                    mac: None
                }
            ),
            Err(IpamError::AlreadyAllocated { .. })
        ));
    }

    #[test]
    fn restore_keeps_addresses_that_were_excluded_later() {
        let mut p = pool("10.16.0.0/24", &["10.16.0.5..10.16.0.9"]);
        let mac = MacAddr::derived_from(ip("10.16.0.7"));
        assert!(p.restore("ns/old", ip("10.16.0.7"), mac).is_ok());
        assert!(p.restore("ns/other", ip("10.16.0.7"), mac).is_err());
        assert_eq!(
            p.usage(),
            Usage {
                used: 1,
                available: 256 - 3 - 5
            }
        );
        p.release("ns/old");
        let r = Request {
            ip: Some(ip("10.16.0.7")),
            mac: None,
        };
        assert!(
            p.allocate("ns/new", r).is_err(),
            "still excluded after release"
        );
    }

    #[test]
    fn bad_pools() {
        let net: Ipv4Net = "10.0.0.0/24".parse().unwrap_or_default();
        assert!(
            SubnetPool::new("s", "10.0.0.0/31".parse().unwrap_or_default(), None, &[]).is_err()
        );
        assert!(SubnetPool::new("s", net, Some(ip("10.0.1.1")), &[]).is_err());
        assert!(SubnetPool::new("s", net, Some(ip("10.0.0.255")), &[]).is_err());
        assert!(SubnetPool::new("s", net, None, &["10.0.1.1".to_string()]).is_err());
    }

    proptest! {
        /// Whatever the order of allocations and releases, no address is held twice and the
        /// counts add up.
        #[test]
        fn never_two_owners_for_one_address(ops in proptest::collection::vec((0u8..40, any::<bool>()), 1..400)) {
            let mut p = pool("10.1.0.0/26", &["10.1.0.10..10.1.0.12"]);
            for (owner, allocate) in ops {
                let owner = format!("p{owner}");
                if allocate {
                    let _ = p.allocate(&owner, Request::default());
                } else {
                    p.release(&owner);
                }
                let held: Vec<Ipv4Addr> = p.by_owner.values().map(|a| a.ip).collect();
                let unique: HashSet<_> = held.iter().collect();
                prop_assert_eq!(held.len(), unique.len());
                prop_assert!(held.iter().all(|a| !p.is_excluded(u32::from(*a)) && *a != p.gateway()));
                prop_assert_eq!(p.usage().used + p.usage().available, 64 - 3 - 3);
            }
        }
    }
}
