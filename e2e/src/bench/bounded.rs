//! Running timed operations with bounded concurrency per group (per node), each on its own
//! task so that one operation's work never delays noticing another's completion.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::error::BenchError;

/// Runs `op` for every `(group, item)`, at most `per_group` at a time in each group, and
/// returns every outcome (in completion order). Dropping the returned future aborts what runs.
pub async fn run_all<T, F, Fut>(
    items: Vec<(usize, T)>,
    per_group: usize,
    op: F,
) -> Vec<Result<Duration, BenchError>>
where
    T: Send + 'static,
    F: Fn(T) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Duration, BenchError>> + Send + 'static,
{
    let groups = items.iter().map(|(g, _)| g + 1).max().unwrap_or(0);
    let limits: Vec<Arc<Semaphore>> = (0..groups)
        .map(|_| Arc::new(Semaphore::new(per_group.max(1))))
        .collect();
    let mut tasks = JoinSet::new();
    for (group, item) in items {
        let limit = limits[group].clone();
        let op = op.clone();
        tasks.spawn(async move {
            let _permit = limit
                .acquire_owned()
                .await
                .map_err(|e| BenchError::protocol("wait for a concurrency slot", e.to_string()))?;
            op(item).await
        });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(
            joined.unwrap_or_else(|e| Err(BenchError::protocol("a benchmark task", e.to_string()))),
        );
    }
    outcomes
}

/// The durations of `outcomes`, or the first error.
pub fn all_ok(outcomes: Vec<Result<Duration, BenchError>>) -> Result<Vec<Duration>, BenchError> {
    outcomes.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrency_is_bounded_per_group() {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let items: Vec<(usize, ())> = (0..12)
            .map(|_| (0, ()))
            .chain((0..4).map(|_| (1, ())))
            .collect();
        let op = {
            let (running, peak) = (running.clone(), peak.clone());
            move |_: ()| {
                let (running, peak) = (running.clone(), peak.clone());
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(Duration::from_millis(1))
                }
            }
        };
        let outcomes = run_all(items, 3, op).await;
        assert_eq!(all_ok(outcomes).unwrap().len(), 16);
        // Two groups of at most three each.
        assert!(peak.load(Ordering::SeqCst) <= 6);
        assert!(peak.load(Ordering::SeqCst) >= 3);
    }
}
