//! The "outside world" of a lab: a namespace on the underlay with 172.30.0.254, the target of
//! egress tests, so nothing ever leaves the machine.

use super::error::LabError;
use super::names::{LabNames, Place, UNDERLAY_BRIDGE, UNDERLAY_PREFIX_LEN};
use super::netns;

/// The outside namespace's interface name.
pub const OUTSIDE_IF: &str = "eth0";

/// Creates the outside namespace and plugs it into `br-lab`.
pub fn create(names: &LabNames) -> Result<(), LabError> {
    let place = Place::Outside;
    let ns = names.netns(place);
    let central = names.netns(Place::Central);
    let port = place.underlay_port();
    netns::add(&ns)?;
    netns::add_veth(&central, &port, &ns, OUTSIDE_IF)?;
    netns::batch(
        &central,
        &[
            format!("link set {port} master {UNDERLAY_BRIDGE}"),
            format!("link set {port} up"),
        ],
    )?;
    netns::batch(
        &ns,
        &[
            format!(
                "addr add {}/{UNDERLAY_PREFIX_LEN} dev {OUTSIDE_IF}",
                place.underlay_ip()
            ),
            format!("link set {OUTSIDE_IF} up"),
        ],
    )?;
    // Replies from here reach nodes through the OVS userspace datapath, which needs full checksums.
    netns::tx_checksum_off(&ns, OUTSIDE_IF)
}
