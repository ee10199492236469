//! Running timed operations with bounded concurrency per group (per node), each on its own
//! task so that one operation's work never delays noticing another's completion.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::error::BenchError;

/// Runs `op` for every `(group, item)`, at most `per_group` at a time in each group, and
/// returns every outcome (group by group). Items of a group start in the order given, so
/// interleaved kinds of work share a group's slots and its load alike. Dropping the returned
/// future aborts what runs.
pub async fn run_all<T, R, F, Fut>(
    items: Vec<(usize, T)>,
    per_group: usize,
    op: F,
) -> Vec<Result<R, BenchError>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<R, BenchError>> + Send + 'static,
{
    let mut groups: Vec<Vec<T>> = Vec::new();
    for (group, item) in items {
        if groups.len() <= group {
            groups.resize_with(group + 1, Vec::new);
        }
        groups[group].push(item);
    }
    let mut feeders = JoinSet::new();
    for items in groups {
        let op = op.clone();
        // One feeder per group starts its items in order, each once a slot is free, on a task
        // of its own so that one operation's work never delays noticing another's completion.
        feeders.spawn(async move {
            let limit = Arc::new(Semaphore::new(per_group.max(1)));
            let mut running = JoinSet::new();
            let mut outcomes = Vec::new();
            for item in items {
                match limit.clone().acquire_owned().await {
                    Ok(permit) => {
                        let op = op.clone();
                        running.spawn(async move {
                            let outcome = op(item).await;
                            drop(permit);
                            outcome
                        });
                    }
                    Err(e) => outcomes.push(Err(BenchError::protocol(
                        "wait for a concurrency slot",
                        e.to_string(),
                    ))),
                }
            }
            while let Some(joined) = running.join_next().await {
                outcomes.push(joined.unwrap_or_else(|e| {
                    Err(BenchError::protocol("a benchmark task", e.to_string()))
                }));
            }
            outcomes
        });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = feeders.join_next().await {
        match joined {
            Ok(group) => outcomes.extend(group),
            Err(e) => outcomes.push(Err(BenchError::protocol(
                "a benchmark group",
                e.to_string(),
            ))),
        }
    }
    outcomes
}

/// The values of `outcomes`, or the first error.
pub fn all_ok<R>(outcomes: Vec<Result<R, BenchError>>) -> Result<Vec<R>, BenchError> {
    outcomes.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn items_of_a_group_start_in_order() {
        let started = Arc::new(std::sync::Mutex::new(Vec::new()));
        let items: Vec<(usize, usize)> = (0..8).map(|i| (0, i)).collect();
        let op = {
            let started = started.clone();
            move |i: usize| {
                let started = started.clone();
                async move {
                    started.lock().unwrap().push(i);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    Ok(i)
                }
            }
        };
        let mut done = all_ok(run_all(items, 1, op).await).unwrap();
        done.sort_unstable();
        assert_eq!(done, (0..8).collect::<Vec<_>>());
        assert_eq!(*started.lock().unwrap(), (0..8).collect::<Vec<_>>());
    }
}
