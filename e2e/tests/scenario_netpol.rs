//! The NetworkPolicy truth-table suite on one 2-node Geneve lab running rovn: every case of
//! `scenario::netpol::cases` prints `case NAME: N passed, M failed` (with tables of the
//! mismatches), and the test fails naming every case that found the cluster off the spec.
//! `ROVN_NETPOL_CASES="named port,endPort"` runs only the cases whose names contain one of the
//! parts.

mod common;

use rovn_e2e::lab::LabSpec;
use rovn_e2e::scenario::ScenarioError;
use rovn_e2e::scenario::harness::run_on_lab;
use rovn_e2e::scenario::netpol::{self, world::NAMESPACES};

#[test]
fn network_policy_truth_tables_on_geneve() {
    let name = common::unique_name("np");
    let spec = LabSpec::with_rovn(name.clone(), 2);
    let result = run_on_lab(&spec, &NAMESPACES, async |cluster| {
        let reports = netpol::run_all(cluster).await?;
        if reports.is_empty() {
            return Err(ScenarioError::Check(format!(
                "no case matches {}",
                netpol::suite::CASES_ENV
            )));
        }
        let failed: Vec<String> = reports
            .iter()
            .filter(|r| !r.ok())
            .map(|r| {
                format!(
                    "{} ({} wrong{})",
                    r.name,
                    r.failed,
                    if r.error.is_some() {
                        ", unfinished"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        if failed.is_empty() {
            return Ok(());
        }
        Err(ScenarioError::Check(format!(
            "{} of {} NetworkPolicy cases failed: {}",
            failed.len(),
            reports.len(),
            failed.join("; ")
        )))
    });
    if let Err(e) = result {
        panic!("lab {name}: {e}");
    }
    common::assert_gone(&name);
}
