//! Running `nft` for the gateway: read the `rovn` table back, apply a batch, [`sync`] (rebuild
//! only when the read-back differs from the desired state) and [`apply_change`] (send only the
//! difference from the state last applied).
//!
//! The batch is built with the `nftables` crate's schema types ([`super::render`]); `nft` is run
//! here rather than through the crate's `helper`, which leaves `nft`'s stderr on the agent's
//! own and so cannot say why a batch was refused.

use std::ffi::OsString;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::observed::TableView;
use super::render::{self, TABLE};
use super::state::GatewayState;

/// Why talking to `nft` failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// `nft` could not be started or fed (not installed, no permission).
    #[error("running {program:?} to {step}: {source}")]
    Spawn {
        /// The command.
        program: OsString,
        /// What it was for.
        step: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `nft` refused.
    #[error("nft failed to {step} ({status}): {stderr}")]
    Failed {
        /// What it was for.
        step: &'static str,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it said.
        stderr: String,
    },
    /// `nft -j` printed something that is not JSON.
    #[error("nft's JSON output while {step} does not parse: {source}")]
    Json {
        /// What it was for.
        step: &'static str,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}

/// How `nft` is invoked: `nft` itself for the agent (which runs in the node's namespace), a
/// prefix such as `ip netns exec NAME nft` for tests and tools that work on another namespace.
#[derive(Debug, Clone)]
pub struct Nft {
    argv: Vec<OsString>,
}

impl Default for Nft {
    fn default() -> Self {
        Nft {
            argv: vec!["nft".into()],
        }
    }
}

/// What one [`sync`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Whether a batch was sent (false: the kernel already held the desired table).
    pub applied: bool,
    /// Elements in the desired table's sets and maps ([`render::element_count`]).
    pub elements: usize,
    /// Time spent reading back, comparing and applying.
    pub took: Duration,
}

impl Nft {
    /// `nft` run through `argv` (its first word is the program), e.g.
    /// `["ip", "netns", "exec", "ns1", "nft"]`.
    pub fn with_command<I, S>(argv: I) -> Nft
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
        if argv.is_empty() {
            return Nft::default();
        }
        Nft { argv }
    }

    async fn run(
        &self,
        args: &[&str],
        stdin: Option<&[u8]>,
        step: &'static str,
    ) -> Result<Result<String, (std::process::ExitStatus, String)>, NftError> {
        let program = self.argv[0].clone();
        let spawn_error = |source| NftError::Spawn {
            program: program.clone(),
            step,
            source,
        };
        let mut command = tokio::process::Command::new(&self.argv[0]);
        command
            .args(&self.argv[1..])
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(spawn_error)?;
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(bytes).await.map_err(spawn_error)?;
            drop(pipe);
        }
        let output = child.wait_with_output().await.map_err(spawn_error)?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            Ok(Ok(stdout))
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
            Ok(Err((output.status, stderr)))
        }
    }

    /// `nft -j list table ip rovn`, parsed; `None` when the table does not exist.
    pub async fn list_table(&self) -> Result<Option<Value>, NftError> {
        let step = "list table ip rovn";
        match self
            .run(&["-j", "list", "table", "ip", TABLE], None, step)
            .await?
        {
            Ok(stdout) => serde_json::from_str(&stdout)
                .map(Some)
                .map_err(|source| NftError::Json { step, source }),
            Err((_, stderr)) if stderr.contains("No such file or directory") => Ok(None),
            Err((status, stderr)) => Err(NftError::Failed {
                step,
                status,
                stderr,
            }),
        }
    }

    /// Runs `document` as one `nft -j -f -` transaction.
    pub async fn apply(&self, document: &Value) -> Result<(), NftError> {
        let step = "apply the rovn table";
        let payload = document.to_string();
        match self
            .run(&["-j", "-f", "-"], Some(payload.as_bytes()), step)
            .await?
        {
            Ok(_) => Ok(()),
            Err((status, stderr)) => Err(NftError::Failed {
                step,
                status,
                stderr,
            }),
        }
    }

    /// The table as the kernel holds it, as a comparable view (`None`: absent).
    pub async fn observe(&self) -> Result<Option<TableView>, NftError> {
        Ok(self
            .list_table()
            .await?
            .map(|listed| TableView::from_document(&listed, TABLE)))
    }
}

/// The view `state`'s batch would leave in the kernel.
pub fn expected_view(state: &GatewayState) -> TableView {
    TableView::from_document(&render::to_json(&render::batch(state)), TABLE)
}

/// Makes the kernel's `ip rovn` table equal to `state`: reads it back and sends the one-batch
/// rebuild only when it differs, so an agent restarting on a converged node changes nothing and
/// edits by others are repaired.
pub async fn sync(nft: &Nft, state: &GatewayState) -> Result<SyncOutcome, NftError> {
    let started = Instant::now();
    let document = render::to_json(&render::batch(state));
    let expected = TableView::from_document(&document, TABLE);
    let observed = nft.observe().await?;
    let applied = observed.as_ref() != Some(&expected);
    if applied {
        nft.apply(&document).await?;
    }
    Ok(SyncOutcome {
        applied,
        elements: render::element_count(state),
        took: started.elapsed(),
    })
}

/// Turns the table from `last` into `state` with only the difference
/// ([`render::delta`]), one transaction, no read-back: for the agent's steady state, where the
/// kernel holds `last` because the agent applied it and nothing has failed since. Sends
/// nothing when the two render alike.
pub async fn apply_change(
    nft: &Nft,
    last: &GatewayState,
    state: &GatewayState,
) -> Result<SyncOutcome, NftError> {
    let started = Instant::now();
    let delta = render::delta(last, state);
    let applied = !delta.objects.is_empty();
    if applied {
        nft.apply(&render::to_json(&delta)).await?;
    }
    Ok(SyncOutcome {
        applied,
        elements: render::element_count(state),
        took: started.elapsed(),
    })
}

/// Removes the table (the agent's uninstall path and tests' cleanup).
pub async fn remove(nft: &Nft) -> Result<(), NftError> {
    let document = serde_json::to_value(render::removal()).unwrap_or_default();
    nft.apply(&document).await
}
