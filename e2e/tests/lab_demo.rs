//! The README's main command, through the same `rovn-lab` calls `scripts/lab.sh` makes: a
//! 2-node lab with rovn, the demo's reachability table (every client reached every server
//! with its own address, over TCP and UDP), each client reaching the outside as its node, the
//! outside reaching the NodePort on every node (seen as that node's join IP), the
//! `ovn-nbctl show` summary, a trace that ends in
//! the server's port, the usage lines; then `down` leaves nothing.

mod common;

use std::process::Command;

use common::{assert_gone, output, run_ok, unique_name};

#[test]
fn rovn_lab_demo_shows_every_pod_reaching_every_server() {
    let lab_bin = env!("CARGO_BIN_EXE_rovn-lab");
    let name = unique_name("dm");
    let _cleanup = rovn_e2e::lab::DownOnDrop::new(name.clone());
    let up = run_ok(Command::new(lab_bin).args([
        "up",
        "--name",
        name.as_str(),
        "--nodes",
        "2",
        "--rovn",
    ]));
    assert!(up.contains("kubeconfig="), "{up}");

    let demo = output(Command::new(lab_bin).args(["demo", "--name", name.as_str()]));
    let stdout = String::from_utf8_lossy(&demo.stdout);
    let stderr = String::from_utf8_lossy(&demo.stderr);
    assert!(
        demo.status.success(),
        "rovn-lab demo failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        demo.status
    );
    // Two clients × two servers × TCP and UDP, each row naming the client's own address as
    // the source the server saw.
    let section = |title: &str| -> Vec<&str> {
        stdout
            .lines()
            .skip_while(|l| !l.starts_with(title))
            .skip(1)
            .take_while(|l| !l.starts_with("=="))
            .filter(|l| l.starts_with("client-node"))
            .collect()
    };
    let rows = section("== reachability in namespace demo");
    assert_eq!(rows.len(), 8, "reachability rows:\n{stdout}");
    let mut protos = Vec::new();
    for row in &rows {
        // CLIENT  NODE/IP  SERVER  NODE/IP:PORT  PROTO  RESULT  SOURCE-IP-SEEN  TIME ms
        let cells: Vec<&str> = row.split_whitespace().collect();
        let client_ip = cells.get(1).and_then(|c| c.split('/').nth(1));
        assert!(
            cells.get(5) == Some(&"ok")
                && client_ip.is_some()
                && cells.get(6).copied() == client_ip,
            "row {row:?} is not a success seen from the client's own address\n{stdout}"
        );
        protos.extend(cells.get(4).copied());
    }
    protos.sort();
    assert_eq!(
        protos,
        ["tcp", "tcp", "tcp", "tcp", "udp", "udp", "udp", "udp"],
        "{stdout}"
    );
    // Every client through the echo Service's ClusterIP, and refused by the empty one.
    let service_rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("svc/demo/"))
        .collect();
    assert_eq!(service_rows.len(), 4, "Service rows:\n{stdout}");
    for row in &service_rows {
        let ok = if row.starts_with("svc/demo/echo ") {
            row.contains("answered by server-node")
        } else {
            row.contains("refused in")
        };
        assert!(ok, "row {row:?}\n{stdout}");
    }
    // The outside reaches the NodePort on every node; the server sees a join IP (Cluster
    // policy: the node SNATs so replies return through it).
    let node_port_rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("outside/"))
        .collect();
    assert_eq!(node_port_rows.len(), 2, "NodePort rows:\n{stdout}");
    for row in &node_port_rows {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert!(
            row.contains("answered by server-node")
                && cells.last().is_some_and(|seen| seen.starts_with("100.64.")),
            "row {row:?} is not an answer seen from a join IP\n{stdout}"
        );
    }
    // Under the policy the first client gets through, the other is blocked.
    let policy_rows = section("== NetworkPolicy demo/servers-from-first-client");
    assert!(
        policy_rows
            .iter()
            .any(|r| r.starts_with("client-node1 ") && r.contains("allowed (server saw"))
            && policy_rows
                .iter()
                .any(|r| r.starts_with("client-node2 ") && r.ends_with("blocked")),
        "policy rows:\n{stdout}"
    );
    // Every client reaches the outside, seen as its own node (SNAT), not as itself.
    let egress_rows = section("== egress to the outside");
    assert_eq!(egress_rows.len(), 2, "egress rows:\n{stdout}");
    for row in &egress_rows {
        // CLIENT  NODE/IP  OUTSIDE  RESULT...  SOURCE-IP-SEEN
        let cells: Vec<&str> = row.split_whitespace().collect();
        let node = cells
            .get(1)
            .and_then(|c| c.split('/').next())
            .unwrap_or("?");
        let client_ip = cells.get(1).and_then(|c| c.split('/').nth(1));
        assert!(
            row.contains(&format!("ok (SNAT to {node})")) && cells.last().copied() != client_ip,
            "row {row:?} is not the client seen as its node\n{stdout}"
        );
    }
    for section in [
        "== NetworkPolicy demo/servers-from-first-client",
        "== reachability in namespace demo",
        "== Services in namespace demo",
        "== NodePort svc/demo/echo-nodeport from outside the cluster",
        "== ovn-nbctl show",
        "switch",
        "router",
        "== ovn-trace",
        "== use the lab",
        "kubectl --kubeconfig",
        "kubectl rovn trace demo/client-node1",
    ] {
        assert!(stdout.contains(section), "no {section:?} in:\n{stdout}");
    }

    run_ok(Command::new(lab_bin).args(["down", "--name", name.as_str()]));
    assert_gone(&name);
}
