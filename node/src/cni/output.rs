//! What `rovn-cni` prints and how it exits, decided without doing any I/O.

use serde::Serialize;

use super::protocol::{CniCommand, CniError, CniResponse, codes};
use super::version::VersionInfo;

/// The whole visible outcome of one invocation: stdout and whether to exit zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Exactly what goes to stdout (possibly nothing).
    pub stdout: String,
    /// Exit status 0 when true, 1 otherwise.
    pub success: bool,
}

/// The error object as the spec lays it out; `cniVersion` comes first for readability.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorObject<'a> {
    cni_version: &'a str,
    code: u32,
    msg: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a str>,
}

/// The VERSION answer.
pub fn render_version() -> Rendered {
    Rendered {
        stdout: to_json(&VersionInfo::current()),
        success: true,
    }
}

/// A CNI error object and a failing exit.
pub fn render_error(cni_version: &str, error: &CniError) -> Rendered {
    let object = ErrorObject {
        cni_version,
        code: error.code,
        msg: &error.msg,
        details: error.details.as_deref(),
    };
    Rendered {
        stdout: to_json(&object),
        success: false,
    }
}

/// The agent's answer as the runtime must see it: ADD prints the agent's result object
/// unchanged (chained plugins take it as `prevResult`); DEL, CHECK, STATUS and GC print
/// nothing on success; errors become the error object with the request's `cniVersion`.
pub fn render_response(command: CniCommand, cni_version: &str, response: &CniResponse) -> Rendered {
    match response {
        CniResponse::Error(error) => render_error(cni_version, error),
        CniResponse::Ok(result) if command == CniCommand::Add => {
            if result.is_object() {
                Rendered {
                    stdout: to_json(result),
                    success: true,
                }
            } else {
                let error = CniError::new(
                    codes::AGENT_PROTOCOL_VIOLATION,
                    "rovn-node agent answered ADD without a result object",
                )
                .with_details(format!("agent sent: {result}"));
                render_error(cni_version, &error)
            }
        }
        CniResponse::Ok(_) => Rendered {
            stdout: String::new(),
            success: true,
        },
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    // These types hold only strings, numbers and JSON values, which always serialize.
    serde_json::to_string(value).unwrap_or_else(|e| {
        format!(
            r#"{{"cniVersion":"1.1.0","code":{},"msg":"cannot encode output: {}"}}"#,
            codes::AGENT_PROTOCOL_VIOLATION,
            e.to_string().replace(['"', '\\'], "'")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn add_result_is_printed_verbatim() {
        let result = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}], "ips": [], "zeta": 1, "alpha": 2});
        let out = render_response(CniCommand::Add, "1.0.0", &CniResponse::Ok(result.clone()));
        assert!(out.success);
        assert_eq!(out.stdout, serde_json::to_string(&result).unwrap());
        assert!(
            out.stdout.find("zeta") < out.stdout.find("alpha"),
            "key order preserved"
        );
    }

    #[test]
    fn non_add_success_prints_nothing() {
        for command in [
            CniCommand::Del,
            CniCommand::Check,
            CniCommand::Status,
            CniCommand::Gc,
        ] {
            let out = render_response(command, "1.1.0", &CniResponse::Ok(json!({"ignored": true})));
            assert_eq!(
                out,
                Rendered {
                    stdout: String::new(),
                    success: true
                }
            );
        }
    }

    #[test]
    fn agent_error_keeps_code_msg_details_and_gets_request_version() {
        let error = CniError::new(3, "no such container").with_details("abc");
        let out = render_response(CniCommand::Del, "0.4.0", &CniResponse::Error(error));
        assert!(!out.success);
        let printed: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(
            printed,
            json!({"cniVersion": "0.4.0", "code": 3, "msg": "no such container", "details": "abc"})
        );
    }

    #[test]
    fn add_without_object_result_is_a_protocol_violation() {
        let out = render_response(CniCommand::Add, "1.1.0", &CniResponse::Ok(json!(null)));
        assert!(!out.success);
        let printed: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(printed["code"], json!(codes::AGENT_PROTOCOL_VIOLATION));
    }
}
