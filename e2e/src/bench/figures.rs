//! The benchmarks' output: `key=value` lines, one figure per line, in a stable order so that
//! scripts and the smoke test can grep them. Pure.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::time::Duration;

use super::stats::Percentiles;

/// Figures in the order they were recorded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    entries: Vec<(String, String)>,
}

impl Figures {
    /// No figures yet.
    pub fn new() -> Self {
        Figures::default()
    }

    /// Records a count or any value printed as is.
    pub fn put(&mut self, key: &str, value: impl Display) {
        self.entries.push((key.to_string(), value.to_string()));
    }

    /// Records a real number with three decimals (milliseconds of a second, microseconds of a
    /// millisecond: finer digits would only be noise).
    pub fn real(&mut self, key: &str, value: f64) {
        self.put(key, format!("{value:.3}"));
    }

    /// Records a duration in seconds.
    pub fn seconds(&mut self, key: &str, value: Duration) {
        self.real(key, value.as_secs_f64());
    }

    /// Records `<prefix>_p50_ms` and `<prefix>_p99_ms` of `samples` (nothing without samples).
    pub fn p50_p99(&mut self, prefix: &str, samples: &[Duration]) {
        if let Some(p) = Percentiles::of(samples) {
            self.real(&format!("{prefix}_p50_ms"), p.p50_ms);
            self.real(&format!("{prefix}_p99_ms"), p.p99_ms);
        }
    }

    /// The value recorded under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The `key=value` lines.
    pub fn lines(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }
}

/// The `key=value` pairs of a benchmark's output; other lines are ignored. For scripts and
/// tests reading the figures back.
pub fn parse_lines(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(k, _)| !k.is_empty() && !k.contains(char::is_whitespace))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_print_in_recording_order_and_parse_back() {
        let mut f = Figures::new();
        f.put("pods", 20);
        f.seconds("converge_s", Duration::from_millis(1500));
        f.real("pods_per_sec", 13.3333333);
        assert_eq!(
            f.lines(),
            ["pods=20", "converge_s=1.500", "pods_per_sec=13.333"]
        );
        assert_eq!(f.get("converge_s"), Some("1.500"));
        let parsed = parse_lines(&(f.lines().join("\n") + "\nnot a figure\nx y=1\n"));
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed["pods"], "20");
        let mut p = Figures::new();
        p.p50_p99(
            "edit",
            &[Duration::from_millis(2), Duration::from_millis(4)],
        );
        p.p50_p99("none", &[]);
        assert_eq!(p.lines(), ["edit_p50_ms=2.000", "edit_p99_ms=4.000"]);
    }
}
