//! Properties of the host veth name: fits IFNAMSIZ, stable, distinct.

use std::collections::HashSet;

use proptest::prelude::*;
use rovn_node::netdev::{HOST_VETH_PREFIX, MAX_IFNAME_LEN, host_veth_name, validate_ifname};

proptest! {
    #[test]
    fn fits_ifnamsiz_and_is_a_valid_name(id in ".{0,200}") {
        let name = host_veth_name(&id);
        prop_assert!(name.len() <= MAX_IFNAME_LEN);
        prop_assert!(name.starts_with(HOST_VETH_PREFIX));
        prop_assert!(validate_ifname(&name).is_ok());
        prop_assert!(name[HOST_VETH_PREFIX.len()..].chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn is_stable(id in "[0-9a-f]{64}") {
        prop_assert_eq!(host_veth_name(&id), host_veth_name(&id.clone()));
    }

    #[test]
    fn distinct_ids_give_distinct_names(a in "[0-9a-f]{64}", b in "[0-9a-f]{64}") {
        prop_assume!(a != b);
        prop_assert_ne!(host_veth_name(&a), host_veth_name(&b));
    }
}

/// Container ids that differ in one character (the common case for sequential ids) still spread.
#[test]
fn no_collision_among_many_similar_ids() {
    let base = "4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c";
    let names: HashSet<String> = (0..200_000u32)
        .map(|i| host_veth_name(&format!("{}{i:08x}", &base[..56])))
        .collect();
    assert_eq!(names.len(), 200_000);
}

/// Pinned: a change here renames every veth across an agent upgrade and orphans running pods.
#[test]
fn names_are_pinned_across_releases() {
    assert_eq!(host_veth_name("abc"), PINNED_ABC);
}

const PINNED_ABC: &str = "rovn29e32c04ec3";
