//! The one error type of the scenarios: every variant says which object or step it concerns,
//! so a failed scenario reads as a sentence about the cluster.

/// Why a scenario step failed.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A Kubernetes API call failed.
    #[error("{what}: {source}")]
    Kube {
        /// The call, naming its object.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A command could not be run or its output not read.
    #[error("{what}: {detail}")]
    Exec {
        /// The command and where it ran.
        what: String,
        /// Why it failed.
        detail: String,
    },
    /// The cluster did something other than what the scenario expects.
    #[error("check failed: {0}")]
    Check(String),
    /// Something did not happen in time.
    #[error("timed out after {timeout:?} waiting for {what}{}", last.as_ref().map(|l| format!(" (last: {l})")).unwrap_or_default())]
    Timeout {
        /// What was awaited.
        what: String,
        /// The bound.
        timeout: std::time::Duration,
        /// The last reason it was not there yet.
        last: Option<String>,
    },
    /// A named scenario failed.
    #[error("scenario {scenario}: {source}")]
    InScenario {
        /// The scenario.
        scenario: String,
        /// Its first failed step.
        #[source]
        source: Box<ScenarioError>,
    },
    /// A failure with the cluster's state at that moment.
    #[error("{source}\n{dump}")]
    WithDump {
        /// The failure.
        #[source]
        source: Box<ScenarioError>,
        /// What [`super::Cluster::dump`] said.
        dump: String,
    },
    /// The lab under the cluster failed.
    #[error(transparent)]
    Lab(#[from] crate::lab::LabError),
}

impl ScenarioError {
    /// Shorthand for a [`ScenarioError::Kube`].
    pub fn kube(what: impl Into<String>, source: kube::Error) -> Self {
        ScenarioError::Kube {
            what: what.into(),
            source,
        }
    }
}

/// Fails with [`ScenarioError::Check`] unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::scenario::ScenarioError::Check(format!($($msg)+)));
        }
    };
}

/// The result of a scenario step.
pub type Result<T, E = ScenarioError> = std::result::Result<T, E>;
