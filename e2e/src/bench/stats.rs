//! Latency percentiles. Pure.

use std::time::Duration;

/// p50, p90 and p99 of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

impl Percentiles {
    /// The percentiles of `samples` (nearest-rank, so every figure is a latency that really
    /// occurred); `None` for no samples.
    pub fn of(samples: &[Duration]) -> Option<Percentiles> {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        Some(Percentiles {
            p50_ms: nearest_rank_ms(&sorted, 50.0)?,
            p90_ms: nearest_rank_ms(&sorted, 90.0)?,
            p99_ms: nearest_rank_ms(&sorted, 99.0)?,
        })
    }
}

/// The nearest-rank `p`th percentile of ascending `sorted`, in milliseconds.
pub fn nearest_rank_ms(sorted: &[Duration], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    Some(sorted[index].as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn nearest_rank_picks_real_samples() {
        let samples: Vec<Duration> = (1..=100).rev().map(ms).collect();
        let p = Percentiles::of(&samples).unwrap();
        assert_eq!((p.p50_ms, p.p90_ms, p.p99_ms), (50.0, 90.0, 99.0));
        let few = Percentiles::of(&[ms(7), ms(3), ms(5)]).unwrap();
        assert_eq!((few.p50_ms, few.p90_ms, few.p99_ms), (5.0, 7.0, 7.0));
        assert_eq!(Percentiles::of(&[]), None);
    }
}
