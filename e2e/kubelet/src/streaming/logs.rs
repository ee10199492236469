//! `/containerLogs/NS/POD/CONTAINER`: a container's output as the runtime keeps it (stdout and
//! stderr interleaved in one file), the current run's or, with `previous`, the run before it;
//! `tailLines` keeps the last lines, `limitBytes` the first bytes, `follow` keeps streaming
//! until the run ends or the client leaves. `timestamps` is accepted but adds nothing: the
//! log file has no per-line times.

use std::io::SeekFrom;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use super::channel::truthy;
use super::registry::{ContainerEntry, Containers};

/// How often a follower looks for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// Largest piece read at once.
const CHUNK: usize = 64 * 1024;

/// The query of a log request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogRequest {
    /// Keep streaming new output.
    pub follow: bool,
    /// The run before the current one.
    pub previous: bool,
    /// Only the last N lines.
    pub tail_lines: Option<usize>,
    /// At most N bytes.
    pub limit_bytes: Option<u64>,
}

impl LogRequest {
    /// Reads the query string; malformed numbers are an error naming the parameter.
    pub fn parse(query: &str) -> Result<LogRequest, String> {
        let mut request = LogRequest::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let number = |what: &str| {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{what}: invalid value {value:?}, expected a number"))
            };
            match key.as_ref() {
                "follow" => request.follow = truthy(&value),
                "previous" => request.previous = truthy(&value),
                "tailLines" => {
                    request.tail_lines =
                        Some(usize::try_from(number("tailLines")?).unwrap_or(usize::MAX))
                }
                "limitBytes" => request.limit_bytes = Some(number("limitBytes")?),
                _ => {}
            }
        }
        Ok(request)
    }
}

/// The byte range of the log file to serve (`end` `None`: to the end, and beyond when
/// following), or the real kubelet's refusal. Pure.
pub fn run_range(
    entry: &ContainerEntry,
    previous: bool,
    pod: &str,
    container: &str,
) -> Result<(u64, Option<u64>), String> {
    match (previous, entry.run_starts.as_slice()) {
        (false, []) => Err(format!(
            "container {container:?} in pod {pod:?} is waiting to start: ContainerCreating"
        )),
        (false, [.., last]) => Ok((*last, None)),
        (true, [.., before, last]) => Ok((*before, Some(*last))),
        (true, _) => Err(format!(
            "previous terminated container {container:?} in pod {pod:?} not found"
        )),
    }
}

/// The last `n` lines of `text` (a final line without newline counts). Pure.
pub fn tail(text: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &text[text.len()..];
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &text[i + 1..];
            }
        }
    }
    text
}

async fn read_range(
    path: &std::path::Path,
    start: u64,
    end: Option<u64>,
) -> std::io::Result<(Vec<u8>, u64)> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(SeekFrom::Start(start)).await?;
    let mut out = Vec::new();
    match end {
        Some(end) => {
            file.take(end.saturating_sub(start))
                .read_to_end(&mut out)
                .await?;
        }
        None => {
            file.read_to_end(&mut out).await?;
        }
    }
    let next = start + out.len() as u64;
    Ok((out, next))
}

/// `chunk` cut to what is left of `budget`, which it then uses up.
fn within(mut chunk: Vec<u8>, budget: &mut u64) -> Vec<u8> {
    chunk.truncate(usize::try_from(*budget).unwrap_or(usize::MAX));
    *budget -= chunk.len() as u64;
    chunk
}

/// The answer's body: what is there now, then (following) what the run adds until it ends or
/// the receiver is dropped.
pub async fn stream(
    containers: Arc<Containers>,
    key: (String, String, String),
    entry: ContainerEntry,
    request: LogRequest,
) -> Result<mpsc::Receiver<std::io::Result<Bytes>>, String> {
    let (namespace, pod, container) = key;
    let (start, end) = run_range(&entry, request.previous, &pod, &container)?;
    let (mut first, mut position) = read_range(&entry.log_path, start, end)
        .await
        .map_err(|e| format!("reading the log of container {container:?} in pod {pod:?}: {e}"))?;
    if let Some(n) = request.tail_lines {
        first = tail(&first, n).to_vec();
    }
    let mut budget = request.limit_bytes.unwrap_or(u64::MAX);
    let (tx, rx) = mpsc::channel(16);
    let run = entry.run;
    let follow = request.follow && !request.previous;
    tokio::spawn(async move {
        let chunk = within(first, &mut budget);
        if !chunk.is_empty() && tx.send(Ok(Bytes::from(chunk))).await.is_err() {
            return;
        }
        while follow && budget > 0 {
            let still_running = containers
                .lookup(&namespace, &pod, &container)
                .is_ok_and(|e| e.run == run && e.running.is_some());
            match read_range(&entry.log_path, position, Some(position + CHUNK as u64)).await {
                Ok((more, next)) if !more.is_empty() => {
                    position = next;
                    let chunk = within(more, &mut budget);
                    if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                        return;
                    }
                    continue;
                }
                Ok(_) if !still_running => return,
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_POLL) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_count_lines_from_the_end() {
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(tail(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(tail(b"a\nb\n", 0), b"");
        assert_eq!(tail(b"", 3), b"");
    }

    fn entry(run_starts: Vec<u64>) -> ContainerEntry {
        ContainerEntry {
            running: None,
            log_path: "/l".into(),
            run_starts,
            run: 0,
        }
    }

    #[test]
    fn runs_select_their_part_of_the_file() {
        assert_eq!(run_range(&entry(vec![0]), false, "p", "c"), Ok((0, None)));
        assert_eq!(
            run_range(&entry(vec![5, 9]), false, "p", "c"),
            Ok((9, None))
        );
        assert_eq!(
            run_range(&entry(vec![5, 9]), true, "p", "c"),
            Ok((5, Some(9)))
        );
        assert!(
            run_range(&entry(vec![5]), true, "p", "c")
                .is_err_and(|e| e.contains("previous terminated container"))
        );
        assert!(
            run_range(&entry(vec![]), false, "p", "c")
                .is_err_and(|e| e.contains("waiting to start"))
        );
    }

    #[test]
    fn queries_parse() {
        assert_eq!(
            LogRequest::parse("follow=true&tailLines=3&previous=false&timestamps=true"),
            Ok(LogRequest {
                follow: true,
                previous: false,
                tail_lines: Some(3),
                limit_bytes: None,
            })
        );
        assert!(LogRequest::parse("tailLines=x").is_err());
    }
}
