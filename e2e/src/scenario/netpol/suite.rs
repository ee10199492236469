//! Running cases: each case changes the cluster (policies, labels, pods), and every check
//! compares the probes with what the model says of the cluster's state at that moment. A case
//! ends by removing its policies and proving the world is open again, so the next starts from
//! a known state. Mismatches are counted, not thrown: every case runs and reports.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use super::matrix::{Destination, Matrix, columns};
use super::objects;
use super::probing::{CONVERGE_WITHIN, converge, flush_conntrack};
use super::world::NAMESPACES;
use crate::scenario::api;
use crate::scenario::cluster::{Cluster, PodRef};
use crate::scenario::error::{Result, ScenarioError};
use crate::scenario::pods;

/// How many failed probes of a loop a report lists.
pub const SHOWN_FAILURES: usize = 20;

/// What one case found.
#[derive(Debug, Clone, Default)]
pub struct CaseReport {
    /// The case.
    pub name: String,
    /// Probes that saw what the model expects (last round of each check).
    pub passed: usize,
    /// Probes that did not.
    pub failed: usize,
    /// Tables of mismatches and other findings, by step.
    pub details: String,
    /// Why the case could not finish, if it could not.
    pub error: Option<String>,
}

impl CaseReport {
    /// Whether the case found the cluster doing what the spec says.
    pub fn ok(&self) -> bool {
        self.failed == 0 && self.error.is_none()
    }

    /// `case NAME: N passed, M failed`, then the details.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "case {}: {} passed, {} failed",
            self.name, self.passed, self.failed
        );
        if let Some(error) = &self.error {
            let _ = write!(out, " (could not finish: {error})");
        }
        if !self.details.is_empty() {
            let _ = write!(out, "\n{}", self.details.trim_end());
        }
        out
    }

    /// Records probes outside a matrix (a probe loop): good ones, and bad ones with their
    /// description under `step` (the first [`SHOWN_FAILURES`] of them).
    pub fn record(&mut self, step: &str, passed: usize, failures: &[String]) {
        self.passed += passed;
        self.failed += failures.len();
        if !failures.is_empty() {
            let _ = writeln!(self.details, " step {step}: {} wrong", failures.len());
            for failure in failures.iter().take(SHOWN_FAILURES) {
                let _ = writeln!(self.details, "  {failure}");
            }
            if failures.len() > SHOWN_FAILURES {
                let _ = writeln!(
                    self.details,
                    "  … and {} more",
                    failures.len() - SHOWN_FAILURES
                );
            }
        }
    }
}

/// The cluster and the world's pods, shared by every case.
pub struct Suite<'c, C> {
    /// The cluster.
    pub cluster: &'c C,
    /// Its API.
    pub client: kube::Client,
    /// The nine pods of the world.
    pub world: Vec<PodRef>,
    /// Why the cluster can no longer answer (a node's datapath died), once it cannot.
    broken: Mutex<Option<String>>,
    /// The cases to run (parts of their names), from [`CASES_ENV`]; all when unset.
    only: Option<Vec<String>>,
}

/// Environment variable naming the cases to run, comma-separated parts of their names
/// (`ROVN_NETPOL_CASES="named port,endPort"`), for working on one case without the rest.
pub const CASES_ENV: &str = "ROVN_NETPOL_CASES";

impl<'c, C: Cluster> Suite<'c, C> {
    /// Creates the world on the cluster.
    pub async fn new(cluster: &'c C) -> Result<Self> {
        let world = super::world::create(cluster).await?;
        Ok(Suite {
            cluster,
            client: cluster.client(),
            world,
            broken: Mutex::new(None),
            only: std::env::var(CASES_ENV).ok().map(|v| {
                v.split(',')
                    .map(|part| part.trim().to_lowercase())
                    .filter(|part| !part.is_empty())
                    .collect()
            }),
        })
    }

    /// The pods as destinations, with their current IPs.
    pub async fn destinations(&self, pods: &[PodRef]) -> Result<Vec<Destination>> {
        let mut out = Vec::new();
        for pod in pods {
            let p = api::must_get_pod(self.cluster, pod).await?;
            let ip = pods::pod_ip(&p)
                .ok_or_else(|| ScenarioError::Check(format!("pod {pod} has no IP")))?;
            out.push(Destination::pod(pod, ip));
        }
        Ok(out)
    }

    /// Every pod of `pods` probing every pod of `pods`.
    pub async fn matrix(&self, pods: &[PodRef]) -> Result<Matrix> {
        Ok(Matrix {
            sources: pods.to_vec(),
            destinations: self.destinations(pods).await?,
            columns: columns(),
        })
    }

    /// The world's nine pods probing each other.
    pub async fn world_matrix(&self) -> Result<Matrix> {
        self.matrix(&self.world).await
    }

    /// Creates the policies.
    pub async fn apply(
        &self,
        policies: &[k8s_openapi::api::networking::v1::NetworkPolicy],
    ) -> Result<()> {
        for np in policies {
            objects::create_policy(&self.client, np).await?;
        }
        Ok(())
    }

    /// Probes `matrix` until it matches the model of the cluster's current state (or
    /// [`CONVERGE_WITHIN`] passes) and records the result under `step`.
    pub async fn check(&self, report: &mut CaseReport, step: &str, matrix: &Matrix) -> Result<()> {
        let model = objects::model(&self.client).await?;
        let expected = matrix.expect(&model).map_err(|e| {
            ScenarioError::Check(format!("step {step}: the model cannot answer: {e}"))
        })?;
        let started = Instant::now();
        let comparison = converge(self.cluster, matrix, &expected, CONVERGE_WITHIN).await;
        tracing::info!(
            case = %report.name,
            step,
            failed = comparison.failed(),
            took = ?started.elapsed(),
            "checked"
        );
        report.passed += comparison.passed();
        report.failed += comparison.failed();
        if comparison.failed() > 0 {
            let _ = writeln!(
                report.details,
                " step {step}: {} of {} probes wrong after {:.1}s",
                comparison.failed(),
                comparison.failed() + comparison.passed(),
                started.elapsed().as_secs_f64()
            );
            report.details.push_str(&comparison.render(matrix));
        }
        Ok(())
    }

    /// Runs one case, then removes every policy of the world's namespaces, checks the world
    /// is open again and that every node's datapath still runs; prints the case's summary.
    /// Once a datapath is gone, the remaining cases are not run: their tables would blame
    /// policies for a dead switch. `None` for a case [`CASES_ENV`] leaves out.
    pub async fn run(
        &self,
        name: &str,
        body: impl AsyncFnOnce(&mut CaseReport) -> Result<()>,
    ) -> Option<CaseReport> {
        let lowercase = name.to_lowercase();
        if let Some(only) = &self.only
            && !only.iter().any(|part| lowercase.contains(part.as_str()))
        {
            return None;
        }
        let started = Instant::now();
        let mut report = CaseReport {
            name: name.to_string(),
            ..CaseReport::default()
        };
        let broken = self.broken.lock().ok().and_then(|b| b.clone());
        if let Some(reason) = broken {
            report.error = Some(format!("not run: {reason}"));
            eprintln!("{}", report.summary());
            return Some(report);
        }
        let result = body(&mut report).await;
        let cleaned = self.clean_up(&mut report).await;
        report.error = match (result, cleaned) {
            (Ok(()), Ok(())) => None,
            (Err(e), Ok(())) | (Ok(()), Err(e)) => Some(e.to_string()),
            (Err(e), Err(c)) => Some(format!("{e}; then cleaning up: {c}")),
        };
        if let Some(reason) = self.flush_datapaths().await {
            report.error = Some(match report.error.take() {
                Some(e) => format!("{reason}; {e}"),
                None => reason.clone(),
            });
            if let Ok(mut broken) = self.broken.lock() {
                *broken = Some(reason);
            }
        }
        eprintln!(
            "{} ({:.1}s)",
            report.summary(),
            started.elapsed().as_secs_f64()
        );
        Some(report)
    }

    /// Why some node's `ovs-vswitchd` does not answer, if one does not (emptying the trackers
    /// is the question asked).
    async fn flush_datapaths(&self) -> Option<String> {
        flush_conntrack(self.cluster).await
    }

    async fn clean_up(&self, report: &mut CaseReport) -> Result<()> {
        objects::delete_policies(&self.client, &NAMESPACES).await?;
        let matrix = self.world_matrix().await?;
        self.check(report, "no policy left", &matrix).await
    }
}
