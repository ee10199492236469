//! HTTP health checks of daemons that listen only inside a lab namespace (rovn-controller on
//! the central address, rovn-node on a node's address): the request is made from a dedicated
//! thread that first enters the namespace, so the root namespace needs no route to the lab.

use std::net::SocketAddr;
use std::path::Path;

use nix::sched::{CloneFlags, setns};

use super::error::LabError;
use super::kube::http_get;
use super::names::NETNS_DIR;

/// `GET http://ADDR/PATH` from inside namespace `ns`; the body when the answer is a 200.
pub fn http_get_in_netns(ns: &str, addr: SocketAddr, path: &str) -> Result<String, LabError> {
    let ns_path = Path::new(NETNS_DIR).join(ns);
    let path = path.to_string();
    let thread = std::thread::Builder::new()
        .name(format!("probe-{ns}"))
        .spawn(move || {
            let file = std::fs::File::open(&ns_path)
                .map_err(|e| LabError::io("open namespace", &ns_path, e))?;
            setns(&file, CloneFlags::CLONE_NEWNET)
                .map_err(|e| LabError::io("enter namespace", &ns_path, std::io::Error::from(e)))?;
            http_get(addr, &path)
        })
        .map_err(|e| LabError::io("start probe thread for", ns, e))?;
    thread.join().unwrap_or_else(|_| {
        Err(LabError::Protocol {
            what: format!("probe of {addr} in {ns}"),
            detail: "probe thread panicked".into(),
        })
    })
}
