//! `rovn-cni`: the CNI 1.1 plugin binary the container runtime execs for every pod sandbox.
//! It validates the invocation, forwards it to the node agent `rovn-node` over its unix
//! socket, and prints the agent's answer. It takes no command-line arguments: CNI passes
//! everything through `CNI_*` env vars and stdin. Stdout carries only the result or the
//! CNI error object; diagnostics go to stderr and the config's optional `"logFile"`.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use rovn_node::cni::client::call_agent;
use rovn_node::cni::diagnostics::Diagnostics;
use rovn_node::cni::output::{Rendered, render_error, render_response, render_version};
use rovn_node::cni::protocol::{CniCommand, CniError, MAX_FRAME_BYTES, codes};
use rovn_node::cni::request::{CniEnv, build_request, parse_command};
use rovn_node::cni::version::CURRENT_VERSION;

fn main() -> ExitCode {
    let mut diagnostics = Diagnostics::stderr_only();
    let rendered = run(&CniEnv::from_process(), &mut diagnostics);
    if let Err(e) = print(&rendered) {
        diagnostics.line(&format!("{e:#}"));
        return ExitCode::FAILURE;
    }
    if rendered.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run(env: &CniEnv, diagnostics: &mut Diagnostics) -> Rendered {
    let command = match parse_command(env) {
        Ok(command) => command,
        Err(refused) => {
            diagnostics.line(&format!("refused: {}", refused.error));
            return render_error(&refused.cni_version, &refused.error);
        }
    };
    if command == CniCommand::Version {
        return render_version();
    }

    let stdin = match read_stdin() {
        Ok(stdin) => stdin,
        Err(error) => {
            diagnostics.line(&format!("{command} refused: {error}"));
            return render_error(CURRENT_VERSION, &error);
        }
    };
    let prepared = match build_request(command, env, &stdin) {
        Ok(prepared) => prepared,
        Err(refused) => {
            diagnostics.line(&format!("{command} refused: {}", refused.error));
            return render_error(&refused.cni_version, &refused.error);
        }
    };
    if let Some(path) = prepared.log_file.as_deref() {
        diagnostics.with_log_file(path);
    }

    let request = &prepared.request;
    let subject = format!(
        "{command} container={} ifname={} pod={}/{}",
        request.container_id.as_deref().unwrap_or("-"),
        request.ifname.as_deref().unwrap_or("-"),
        request
            .args
            .get("K8S_POD_NAMESPACE")
            .map_or("-", String::as_str),
        request.args.get("K8S_POD_NAME").map_or("-", String::as_str),
    );
    diagnostics.line(&format!(
        "{subject}: sending to {}",
        prepared.endpoint.socket_path.display()
    ));
    let rendered = match call_agent(&prepared.endpoint, request) {
        Ok(response) => render_response(command, &request.cni_version, &response),
        Err(e) => render_error(&request.cni_version, &e.to_cni_error(command)),
    };
    if rendered.success {
        diagnostics.line(&format!("{subject}: ok"));
    } else {
        diagnostics.line(&format!("{subject}: failed: {}", rendered.stdout));
    }
    rendered
}

fn read_stdin() -> Result<Vec<u8>, CniError> {
    let mut stdin = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_FRAME_BYTES as u64 + 1)
        .read_to_end(&mut stdin)
        .map_err(|e| {
            CniError::new(
                codes::IO_FAILURE,
                format!("cannot read network configuration from stdin: {e}"),
            )
        })?;
    if stdin.len() > MAX_FRAME_BYTES {
        return Err(CniError::new(
            codes::DECODE_FAILURE,
            format!("network configuration on stdin exceeds {MAX_FRAME_BYTES} bytes"),
        ));
    }
    Ok(stdin)
}

fn print(rendered: &Rendered) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(rendered.stdout.as_bytes())
        .context("cannot write result to stdout")?;
    stdout.flush().context("cannot flush stdout")
}
