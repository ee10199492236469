//! The truth table: sources × destinations × port/protocol, what the model expects and what
//! the probes saw, and upstream-style tables of where they differ. Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};

use super::model::{Model, ModelError, Protocol};
use super::world::PORTS;
use crate::podtool::probe::{ProbeProto, ProbeTarget, Verdict};
use crate::scenario::cluster::PodRef;

/// Something probed: a pod, or a Service whose connections land on its backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The column header: `x/a`, or `svc:z/web`.
    pub name: String,
    /// The address probed.
    pub ip: Ipv4Addr,
    /// The pods whose policies decide (the pod itself, or the Service's endpoints).
    pub backends: Vec<PodRef>,
}

impl Destination {
    /// A pod as a destination.
    pub fn pod(pod: &PodRef, ip: Ipv4Addr) -> Self {
        Destination {
            name: pod.to_string(),
            ip,
            backends: vec![pod.clone()],
        }
    }
}

/// A port and protocol every destination is probed on; one table each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Column {
    /// The port.
    pub port: u16,
    /// The protocol.
    pub protocol: Protocol,
}

impl std::fmt::Display for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol)
    }
}

/// The columns of the world: 80 and 81 on TCP and UDP.
pub fn columns() -> Vec<Column> {
    [Protocol::Tcp, Protocol::Udp]
        .into_iter()
        .flat_map(|protocol| PORTS.map(|port| Column { port, protocol }))
        .collect()
}

/// One cell: source index, destination index, column.
pub type Cell = (usize, usize, Column);

/// Who probes what.
#[derive(Debug, Clone)]
pub struct Matrix {
    /// The rows.
    pub sources: Vec<PodRef>,
    /// The columns of each table.
    pub destinations: Vec<Destination>,
    /// The tables.
    pub columns: Vec<Column>,
}

impl Matrix {
    /// What every source probes: each destination on each column, as `rovn-podtool probe`
    /// targets, with the cell each answers.
    pub fn targets(&self) -> Vec<(usize, Column, ProbeTarget)> {
        let mut out = Vec::new();
        for (d, dest) in self.destinations.iter().enumerate() {
            for &column in &self.columns {
                let proto = match column.protocol {
                    Protocol::Udp => ProbeProto::Udp,
                    Protocol::Tcp | Protocol::Sctp => ProbeProto::Tcp,
                };
                out.push((
                    d,
                    column,
                    ProbeTarget {
                        proto,
                        addr: SocketAddr::from((dest.ip, column.port)),
                    },
                ));
            }
        }
        out
    }

    /// Every cell with what the model says of it.
    pub fn expect(&self, model: &Model) -> Result<BTreeMap<Cell, bool>, ModelError> {
        let mut expected = BTreeMap::new();
        for (s, source) in self.sources.iter().enumerate() {
            for (d, dest) in self.destinations.iter().enumerate() {
                for &column in &self.columns {
                    let allowed = model.allows_through(
                        source,
                        &dest.backends,
                        column.port,
                        column.protocol,
                    )?;
                    expected.insert((s, d, column), allowed);
                }
            }
        }
        Ok(expected)
    }
}

/// Whether what was seen is what was expected: reached when allowed, dropped when denied.
/// A refusal or any other failure is never right: every pod serves every probed port.
pub fn agrees(expected: bool, seen: &Verdict) -> bool {
    matches!(
        (expected, seen),
        (true, Verdict::Reached) | (false, Verdict::Dropped)
    )
}

/// Expected against observed for one probe round.
#[derive(Debug, Clone)]
pub struct Comparison {
    cells: BTreeMap<Cell, (bool, Verdict)>,
}

impl Comparison {
    /// Pairs every expected cell with its observation (a cell without one failed).
    pub fn new(expected: &BTreeMap<Cell, bool>, observed: &BTreeMap<Cell, Verdict>) -> Self {
        let cells = expected
            .iter()
            .map(|(cell, &want)| {
                let seen = observed
                    .get(cell)
                    .cloned()
                    .unwrap_or_else(|| Verdict::Failed("never probed".into()));
                (*cell, (want, seen))
            })
            .collect();
        Comparison { cells }
    }

    /// Cells that agree.
    pub fn passed(&self) -> usize {
        self.cells.len() - self.failed()
    }

    /// Cells that do not.
    pub fn failed(&self) -> usize {
        self.cells
            .values()
            .filter(|(want, seen)| !agrees(*want, seen))
            .count()
    }

    /// The cells that disagree.
    pub fn wrong_cells(&self) -> BTreeSet<Cell> {
        self.cells
            .iter()
            .filter(|(_, (want, seen))| !agrees(*want, seen))
            .map(|(cell, _)| *cell)
            .collect()
    }

    /// Upstream-style tables of the columns with mismatches, rows sources and columns
    /// destinations; then the reasons of failed probes. Empty when everything agrees.
    pub fn render(&self, matrix: &Matrix) -> String {
        let mut out = String::new();
        let width = matrix
            .sources
            .iter()
            .map(|s| s.to_string().len())
            .chain(matrix.destinations.iter().map(|d| d.name.len()))
            .max()
            .unwrap_or(3)
            + 1;
        for &column in &matrix.columns {
            let wrong = self
                .cells
                .iter()
                .any(|((_, _, c), (want, seen))| *c == column && !agrees(*want, seen));
            if !wrong {
                continue;
            }
            let _ = writeln!(
                out,
                "  {column}: . as expected, X reached but should be denied, - dropped but should be allowed, R refused, F failed"
            );
            let _ = write!(out, "  {:width$}", "from\\to");
            for dest in &matrix.destinations {
                let _ = write!(out, "{:width$}", dest.name);
            }
            out.push('\n');
            for (s, source) in matrix.sources.iter().enumerate() {
                let _ = write!(out, "  {:width$}", source.to_string());
                for d in 0..matrix.destinations.len() {
                    let mark = match self.cells.get(&(s, d, column)) {
                        None => " ",
                        Some((want, seen)) => mark(*want, seen),
                    };
                    let _ = write!(out, "{mark:width$}");
                }
                out.push('\n');
            }
        }
        for ((s, d, column), (_, seen)) in &self.cells {
            if let Verdict::Failed(reason) = seen {
                let _ = writeln!(
                    out,
                    "  {} → {} {column}: {reason}",
                    matrix.sources[*s], matrix.destinations[*d].name
                );
            }
        }
        out
    }
}

fn mark(want: bool, seen: &Verdict) -> &'static str {
    match (want, seen) {
        _ if agrees(want, seen) => ".",
        (_, Verdict::Refused) => "R",
        (_, Verdict::Failed(_)) => "F",
        (false, _) => "X",
        (true, _) => "-",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix() -> Matrix {
        Matrix {
            sources: vec![PodRef::new("x", "a"), PodRef::new("y", "b")],
            destinations: vec![
                Destination::pod(&PodRef::new("x", "a"), Ipv4Addr::new(10, 16, 0, 2)),
                Destination::pod(&PodRef::new("y", "b"), Ipv4Addr::new(10, 16, 0, 3)),
            ],
            columns: columns(),
        }
    }

    #[test]
    fn every_destination_is_probed_on_every_column() {
        let m = matrix();
        let targets = m.targets();
        assert_eq!(targets.len(), 2 * 4);
        assert!(
            targets
                .iter()
                .any(|(d, c, t)| *d == 1 && c.port == 81 && t.to_string() == "udp:10.16.0.3:81")
        );
    }

    /// Reached is right only when allowed, dropped only when denied; refusals and failures
    /// are always wrong.
    #[test]
    fn only_reached_allowed_and_dropped_denied_agree() {
        assert!(agrees(true, &Verdict::Reached));
        assert!(agrees(false, &Verdict::Dropped));
        assert!(!agrees(true, &Verdict::Dropped));
        assert!(!agrees(false, &Verdict::Reached));
        assert!(!agrees(true, &Verdict::Refused));
        assert!(!agrees(false, &Verdict::Refused));
        assert!(!agrees(false, &Verdict::Failed("x".into())));
    }

    #[test]
    fn mismatches_are_counted_and_tabled() {
        let m = matrix();
        let mut expected = BTreeMap::new();
        let mut observed = BTreeMap::new();
        for s in 0..2 {
            for d in 0..2 {
                for c in columns() {
                    expected.insert((s, d, c), true);
                    observed.insert((s, d, c), Verdict::Reached);
                }
            }
        }
        let all_good = Comparison::new(&expected, &observed);
        assert_eq!((all_good.passed(), all_good.failed()), (16, 0));
        assert_eq!(all_good.render(&m), "");
        let udp81 = Column {
            port: 81,
            protocol: Protocol::Udp,
        };
        expected.insert((1, 0, udp81), false);
        observed.insert((0, 1, udp81), Verdict::Refused);
        observed.remove(&(1, 1, udp81));
        let cmp = Comparison::new(&expected, &observed);
        assert_eq!((cmp.passed(), cmp.failed()), (13, 3));
        assert_eq!(
            cmp.wrong_cells(),
            BTreeSet::from([(1, 0, udp81), (0, 1, udp81), (1, 1, udp81)])
        );
        let table = cmp.render(&m);
        assert!(table.contains("81/UDP"), "{table}");
        assert!(!table.contains("80/TCP"), "{table}");
        assert!(table.contains("y/b → y/b 81/UDP: never probed"), "{table}");
        let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("  x/a")).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].split_whitespace().collect::<Vec<_>>(),
            ["x/a", ".", "R"]
        );
        let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("  y/b")).collect();
        assert_eq!(
            rows[0].split_whitespace().collect::<Vec<_>>(),
            ["y/b", "X", "F"]
        );
    }
}
