//! Interpreting what a plugin printed: a result, nothing, or a CNI error object. Pure.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The error object of the CNI spec (`code`, `msg`, `details`), which a plugin prints on stdout
/// when it exits non-zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginErrorObject {
    /// Well-known codes 1-11 (e.g. 7 = invalid network config), 100+ plugin-specific.
    pub code: u32,
    /// Short message.
    #[serde(default)]
    pub msg: String,
    /// Longer explanation, possibly empty.
    #[serde(default)]
    pub details: String,
}

impl std::fmt::Display for PluginErrorObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "code {}: {}", self.code, self.msg)?;
        if !self.details.is_empty() {
            write!(f, " ({})", self.details)?;
        }
        Ok(())
    }
}

/// How a plugin call ended, once its exit status and stdout are read.
#[derive(Debug, Clone, PartialEq)]
pub enum PluginOutcome {
    /// Success with a result object (ADD always, CHECK/DEL never carry one).
    Result(Value),
    /// Success without output.
    Empty,
    /// The plugin reported an error object.
    Error(PluginErrorObject),
    /// The plugin failed without a parsable error object; the text is what it printed.
    Failed(String),
}

/// Classifies a finished plugin call. A non-zero exit prefers the error object on stdout and
/// falls back to stderr, as libcni does; a zero exit with garbage on stdout is a failure.
pub fn interpret(success: bool, stdout: &[u8], stderr: &[u8]) -> PluginOutcome {
    let text = String::from_utf8_lossy(stdout);
    let trimmed = text.trim();
    if !success {
        if let Ok(err) = serde_json::from_str::<PluginErrorObject>(trimmed) {
            return PluginOutcome::Error(err);
        }
        let fallback = if trimmed.is_empty() {
            String::from_utf8_lossy(stderr).trim().to_owned()
        } else {
            trimmed.to_owned()
        };
        return PluginOutcome::Failed(fallback);
    }
    if trimmed.is_empty() {
        return PluginOutcome::Empty;
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(v @ Value::Object(_)) => {
            // Some plugins exit 0 but still print an error object; treat it as the error it is.
            if v.get("code").is_some_and(Value::is_u64)
                && v.get("msg").is_some()
                && let Ok(err) = serde_json::from_value::<PluginErrorObject>(v.clone())
            {
                return PluginOutcome::Error(err);
            }
            PluginOutcome::Result(v)
        }
        _ => PluginOutcome::Failed(format!("unparsable plugin output: {trimmed}")),
    }
}

/// The addresses (without prefix length) of a CNI >= 0.3 result's `ips`, in order: what the
/// kubelet reports as `podIPs`.
pub fn result_ips(result: &Value) -> Vec<String> {
    result
        .get("ips")
        .and_then(Value::as_array)
        .map(|ips| {
            ips.iter()
                .filter_map(|ip| ip.get("address").and_then(Value::as_str))
                .map(|cidr| cidr.split('/').next().unwrap_or(cidr).to_owned())
                .filter(|a| a.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_object_on_failure() {
        let out = interpret(
            false,
            br#"{"cniVersion":"1.0.0","code":7,"msg":"bad config","details":"no bridge"}"#,
            b"",
        );
        assert_eq!(
            out,
            PluginOutcome::Error(PluginErrorObject {
                code: 7,
                msg: "bad config".into(),
                details: "no bridge".into()
            })
        );
    }

    #[test]
    fn stderr_when_no_error_object() {
        assert_eq!(
            interpret(false, b"", b"boom\n"),
            PluginOutcome::Failed("boom".into())
        );
    }

    #[test]
    fn results_and_empties() {
        assert_eq!(interpret(true, b"  \n", b""), PluginOutcome::Empty);
        assert!(matches!(
            interpret(true, br#"{"cniVersion":"1.0.0","ips":[]}"#, b""),
            PluginOutcome::Result(_)
        ));
        assert!(matches!(
            interpret(true, b"hello", b""),
            PluginOutcome::Failed(_)
        ));
        assert!(matches!(
            interpret(true, br#"{"code":11,"msg":"try again"}"#, b""),
            PluginOutcome::Error(_)
        ));
    }

    #[test]
    fn ips_from_result() {
        let r = json!({"ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1"},
                              {"address":"fd00::5/64"},{"address":"junk"},{"gateway":"x"}]});
        assert_eq!(result_ips(&r), ["10.1.0.5", "fd00::5"]);
        assert!(result_ips(&json!({})).is_empty());
    }
}
