//! The benchmarks at a tiny size, run as a user runs them (the `rovn-bench` binary): they
//! must finish, clean up, and print every figure with a sane value. No timing thresholds: the
//! figures are for people, not for CI. Needs the workspace's binaries built next to
//! `rovn-bench` (`cargo build --workspace --bins`, as `make test` does) and root.

use std::collections::BTreeMap;
use std::process::Command;

use rovn_e2e::bench::figures::parse_lines;

fn run_bench(args: &[&str]) -> BTreeMap<String, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_rovn-bench"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run rovn-bench {args:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "rovn-bench {args:?} failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    parse_lines(&stdout)
}

fn number(figures: &BTreeMap<String, String>, key: &str) -> f64 {
    let text = figures
        .get(key)
        .unwrap_or_else(|| panic!("no {key}= line in {figures:?}"));
    let value: f64 = text
        .parse()
        .unwrap_or_else(|e| panic!("{key}={text} is not a number: {e}"));
    assert!(value.is_finite() && value >= 0.0, "{key}={text}");
    value
}

#[test]
fn controller_bench_prints_sane_figures() {
    let figures = run_bench(&[
        "controller",
        "--nodes",
        "2",
        "--pods",
        "20",
        "--latency-pods",
        "5",
        "--latency-gap-ms",
        "20",
        "--timeout",
        "120",
    ]);
    assert_eq!(number(&figures, "nodes"), 2.0);
    assert_eq!(number(&figures, "latency_pods"), 5.0);
    let routed_p50 = number(&figures, "pod_routed_p50_ms");
    let routed_p99 = number(&figures, "pod_routed_p99_ms");
    assert!(0.0 < routed_p50 && routed_p50 <= routed_p99, "{figures:?}");
    // A pod is routed only once its port is in NB.
    assert!(
        number(&figures, "pod_nb_p99_ms") <= routed_p99,
        "{figures:?}"
    );
    assert_eq!(number(&figures, "pods"), 20.0);
    let converge = number(&figures, "converge_s");
    assert!(converge > 0.0);
    let rate = number(&figures, "pods_per_sec");
    assert!(
        (rate * converge - 20.0).abs() < 0.5,
        "rate {rate} × {converge} s ≠ 20 pods"
    );
    assert!(number(&figures, "first_start_ready_s") > 0.0);
    assert!(number(&figures, "restart_ready_s") > 0.0);
    // A restart on the converged cluster is a diff that comes out empty.
    assert_eq!(number(&figures, "restart_nb_writes"), 0.0, "{figures:?}");
    let peak = number(&figures, "peak_rss_mb");
    assert!(peak > 1.0 && peak < 100_000.0, "peak_rss_mb={peak}");
    assert_eq!(
        peak,
        number(&figures, "first_run_peak_rss_mb").max(number(&figures, "restart_peak_rss_mb"))
    );
    assert!(
        !figures.contains_key("dir"),
        "the scratch dir is kept only with --keep"
    );
}

#[test]
fn pod_ready_bench_prints_sane_figures() {
    let figures = run_bench(&[
        "pod-ready",
        "--nodes",
        "2",
        "--pods",
        "6",
        "--timeout",
        "120",
    ]);
    assert_eq!(number(&figures, "pods"), 6.0);
    assert_eq!(number(&figures, "floor_ports"), 6.0);
    for prefix in ["cni_add", "floor"] {
        let p50 = number(&figures, &format!("{prefix}_p50_ms"));
        let p90 = number(&figures, &format!("{prefix}_p90_ms"));
        let p99 = number(&figures, &format!("{prefix}_p99_ms"));
        assert!(
            0.0 < p50 && p50 <= p90 && p90 <= p99,
            "{prefix}: {p50} {p90} {p99}"
        );
    }
    for key in ["p50", "p90", "p99"] {
        let ratio = number(&figures, &format!("ratio_{key}"));
        let expected = number(&figures, &format!("cni_add_{key}_ms"))
            / number(&figures, &format!("floor_{key}_ms"));
        assert!(
            (ratio - expected).abs() < 0.01,
            "ratio_{key}={ratio}, expected {expected}"
        );
    }
    // The agents' metrics say where an ADD's time goes.
    assert!(number(&figures, "add_handler_mean_ms") > 0.0, "{figures:?}");
}

#[test]
fn services_bench_prints_sane_figures() {
    let figures = run_bench(&[
        "services",
        "--services",
        "10",
        "--endpoints",
        "3",
        "--nodes",
        "2",
        "--pods",
        "20",
        "--updates",
        "10",
        "--update-gap-ms",
        "10",
        "--timeout",
        "120",
    ]);
    assert_eq!(number(&figures, "services"), 10.0);
    assert_eq!(number(&figures, "updates"), 10.0);
    let p50 = number(&figures, "endpoint_update_p50_ms");
    assert!(
        0.0 < p50 && p50 <= number(&figures, "endpoint_update_p99_ms"),
        "{figures:?}"
    );
    assert!(number(&figures, "converge_s") > 0.0, "{figures:?}");
    // Ten balancers, the group, the topology, the pods' ports: at least one row each.
    assert!(number(&figures, "nb_rows") >= 10.0 + 20.0, "{figures:?}");
    assert!(number(&figures, "sb_logical_flows") > 0.0, "{figures:?}");
    assert_eq!(number(&figures, "restart_nb_writes"), 0.0, "{figures:?}");
}

#[test]
fn netpol_bench_prints_sane_figures() {
    let figures = run_bench(&[
        "netpol",
        "--nodes",
        "2",
        "--pods",
        "40",
        "--namespaces",
        "4",
        "--policies",
        "16",
        "--policy-edits",
        "6",
        "--label-changes",
        "6",
        "--change-gap-ms",
        "10",
        "--timeout",
        "120",
    ]);
    assert_eq!(number(&figures, "policies"), 16.0);
    assert!(number(&figures, "converge_s") > 0.0, "{figures:?}");
    // Every policy set holds what the spec says, by the benchmark's own model.
    assert!(
        number(&figures, "address_sets_checked") > 0.0,
        "{figures:?}"
    );
    assert_eq!(number(&figures, "address_sets_wrong"), 0.0, "{figures:?}");
    let policy_acls = number(&figures, "policy_acls");
    assert!(policy_acls > 0.0 && policy_acls <= number(&figures, "acls"));
    assert!(number(&figures, "port_groups") >= 16.0, "{figures:?}");
    assert!(number(&figures, "sb_logical_flows") > 0.0, "{figures:?}");
    // The naive layout has at least one ACL per rule rovn has one for.
    assert!(
        number(&figures, "naive_policy_acls") >= policy_acls,
        "{figures:?}"
    );
    assert!(
        number(&figures, "naive_sb_logical_flows") > 0.0,
        "{figures:?}"
    );
    for change in ["policy", "label"] {
        let p50 = number(&figures, &format!("{change}_change_p50_ms"));
        let p99 = number(&figures, &format!("{change}_change_p99_ms"));
        assert!(0.0 < p50 && p50 <= p99, "{change}: {figures:?}");
    }
    assert_eq!(number(&figures, "policy_edits"), 6.0);
    assert_eq!(number(&figures, "label_changes"), 6.0);
    assert_eq!(number(&figures, "restart_nb_writes"), 0.0, "{figures:?}");
}
