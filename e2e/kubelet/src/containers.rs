//! Pod containers as plain child processes: the image is ignored, `command` + `args` name a
//! program (resolved next to the kubelet's own executable first, then in `PATH`), and the
//! process runs in the pod's sandbox network namespace with its output in a log file.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use k8s_openapi::api::core::v1::{Container, Pod};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A container could not be started; names the pod and container.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// Neither `command` nor `args` is set: with no image there is nothing to run.
    #[error("container {container:?} of pod {pod}: no command or args to run")]
    NoCommand {
        /// `namespace/name` of the pod.
        pod: String,
        /// The container.
        container: String,
    },
    /// The program is not next to the kubelet nor in `PATH`.
    #[error("container {container:?} of pod {pod}: executable {program:?} not found")]
    NotFound {
        /// `namespace/name` of the pod.
        pod: String,
        /// The container.
        container: String,
        /// The program as written in the spec.
        program: String,
    },
    /// Opening the log or the namespace, or spawning, failed.
    #[error("container {container:?} of pod {pod}: {what}: {source}")]
    Io {
        /// `namespace/name` of the pod.
        pod: String,
        /// The container.
        container: String,
        /// The step that failed.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The `PATH` containers get when the kubelet has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything needed to start one container process.
#[derive(Debug, Clone)]
pub struct ContainerLaunch {
    /// `namespace/name` of the pod, for errors and logs.
    pub pod: String,
    /// The container's name.
    pub container: String,
    /// Program and arguments (`command` then `args`).
    pub argv: Vec<String>,
    /// The complete environment.
    pub env: Vec<(String, String)>,
    /// Where stdout and stderr go (appended, so restarts keep earlier output).
    pub log_path: PathBuf,
    /// The sandbox namespace; `None` runs in the kubelet's own (hostNetwork pods).
    pub netns: Option<PathBuf>,
}

/// `command` followed by `args`, as the container runtime would run them with an image that has
/// no entrypoint. Pure.
pub fn container_argv(pod: &str, c: &Container) -> Result<Vec<String>, ContainerError> {
    let argv: Vec<String> = c
        .command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .cloned()
        .collect();
    if argv.first().is_none_or(|p| p.is_empty()) {
        return Err(ContainerError::NoCommand {
            pod: pod.to_owned(),
            container: c.name.clone(),
        });
    }
    Ok(argv)
}

/// The container's environment: a `PATH`, the pod identity variables the lab's programs use
/// (`HOSTNAME`, `POD_NAME`, `POD_NAMESPACE`, `POD_IP`), then the spec's `env` (plain values and
/// the common `fieldRef`s), later entries overriding earlier ones. Pure.
pub fn container_env(
    pod: &Pod,
    c: &Container,
    pod_ip: &str,
    host_ip: &str,
    path: &str,
) -> Vec<(String, String)> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), path.into()),
        ("HOSTNAME".into(), name.clone()),
        ("POD_NAME".into(), name.clone()),
        ("POD_NAMESPACE".into(), namespace.clone()),
        ("POD_IP".into(), pod_ip.into()),
    ];
    for var in c.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(from)) => {
                from.field_ref
                    .as_ref()
                    .and_then(|f| match f.field_path.as_str() {
                        "metadata.name" => Some(name.clone()),
                        "metadata.namespace" => Some(namespace.clone()),
                        "metadata.uid" => pod.metadata.uid.clone(),
                        "spec.nodeName" => pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                        "status.podIP" => Some(pod_ip.to_owned()),
                        "status.hostIP" => Some(host_ip.to_owned()),
                        _ => None,
                    })
            }
            (None, None) => Some(String::new()),
        };
        if let Some(value) = value {
            env.retain(|(k, _)| k != &var.name);
            env.push((var.name.clone(), value));
        }
    }
    env
}

/// The lab's log file of a container: `<state-dir>/logs/<namespace>_<pod>_<container>.log`.
pub fn log_path(state_dir: &Path, namespace: &str, pod: &str, container: &str) -> PathBuf {
    state_dir
        .join("logs")
        .join(format!("{namespace}_{pod}_{container}.log"))
}

/// The `PATH` handed to containers: the kubelet's own, or a standard one.
pub fn inherited_path() -> String {
    std::env::var("PATH")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_PATH.to_owned())
}

/// Finds a program: a path with `/` is taken as is; a bare name is looked up in `own_dir`
/// (where the kubelet and `rovn-podtool` are installed together) and then in `path`.
pub fn resolve_program(program: &str, own_dir: Option<&Path>, path: &OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    own_dir
        .into_iter()
        .map(Path::to_path_buf)
        .chain(std::env::split_paths(path))
        .map(|d| d.join(program))
        .find(|p| executable(p))
}

/// The command for a program that runs "in the pod": a cleared environment, `/` as working
/// directory, its own process group (so a signal to the group reaches whatever it forks), and
/// the sandbox namespace entered between fork and exec, with a `/sys` of that network. Shared
/// by containers, exec probes and `exec` sessions so that all see exactly what the container
/// sees. Standard streams are left to the caller.
pub fn pod_command(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    netns: Option<&Path>,
) -> std::io::Result<tokio::process::Command> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir("/")
        .stdin(Stdio::null())
        .process_group(0);
    let ns = netns.map(std::fs::File::open).transpose()?;
    // SAFETY: the closure runs between fork and exec and only makes system calls (setns,
    // unshare, mount, umount2; the short paths are converted on the stack); `ns` is an open
    // descriptor owned by the closure.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(ns) = &ns {
                setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            }
            sysfs_of_own_network().map_err(std::io::Error::from)
        });
    }
    Ok(cmd)
}

/// Gives the process a `/sys` of the network namespace it has entered, as a container runtime
/// does (and `ip netns exec`): in a mount namespace of its own, so `/sys/class/net` lists the
/// sandbox's (or, for hostNetwork, the node's) devices rather than the host's.
fn sysfs_of_own_network() -> nix::Result<()> {
    unshare(CloneFlags::CLONE_NEWNS)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )?;
    umount2("/sys", MntFlags::MNT_DETACH)?;
    mount(
        Some("sysfs"),
        "/sys",
        Some("sysfs"),
        MsFlags::empty(),
        None::<&str>,
    )
}

/// Starts the process in its own process group (so stop signals reach its children too), in
/// the sandbox namespace, with a cleared environment and output appended to the log file.
pub fn spawn(
    launch: &ContainerLaunch,
    program: &Path,
) -> Result<tokio::process::Child, ContainerError> {
    let err = |what: &str| {
        let (pod, container, what) = (
            launch.pod.clone(),
            launch.container.clone(),
            what.to_owned(),
        );
        move |source| ContainerError::Io {
            pod,
            container,
            what,
            source,
        }
    };
    if let Some(dir) = launch.log_path.parent() {
        std::fs::create_dir_all(dir).map_err(err("creating the log directory"))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log_path)
        .map_err(err("opening the log file"))?;
    let log_err = log.try_clone().map_err(err("duplicating the log file"))?;
    let mut cmd = pod_command(
        program,
        launch.argv.get(1..).unwrap_or_default(),
        &launch.env,
        launch.netns.as_deref(),
    )
    .map_err(err("opening the sandbox namespace"))?;
    cmd.stdout(Stdio::from(log)).stderr(Stdio::from(log_err));
    cmd.spawn().map_err(err("starting"))
}

/// Sends `signal` to the container's process group; a group that is already gone is fine.
pub fn signal_group(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

/// SIGKILLs a process group when dropped armed (`Some(pid)`): an exec probe on timeout or when
/// abandoned, an exec session whose connection dropped. Disarm by setting it to `None`.
pub struct GroupKiller(pub Option<u32>);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            signal_group(pid, Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns1".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn argv_joins_command_and_args() {
        let c = Container {
            name: "c".into(),
            command: Some(vec!["sh".into(), "-c".into()]),
            args: Some(vec!["exec sleep 1".into()]),
            ..Default::default()
        };
        assert_eq!(
            container_argv("ns/p", &c).ok(),
            Some(vec!["sh".into(), "-c".into(), "exec sleep 1".into()])
        );
        let empty = Container {
            name: "c".into(),
            ..Default::default()
        };
        assert!(matches!(
            container_argv("ns/p", &empty),
            Err(ContainerError::NoCommand { .. })
        ));
    }

    #[test]
    fn env_has_identity_and_spec_values() {
        let c = Container {
            name: "c".into(),
            env: Some(vec![
                EnvVar {
                    name: "A".into(),
                    value: Some("1".into()),
                    ..Default::default()
                },
                EnvVar {
                    name: "POD_IP".into(),
                    value: Some("override".into()),
                    ..Default::default()
                },
                EnvVar {
                    name: "MY_IP".into(),
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "status.podIP".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let env = container_env(&pod(), &c, "10.0.0.5", "172.30.0.11", "/bin");
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("HOSTNAME"), Some("web"));
        assert_eq!(get("POD_NAMESPACE"), Some("ns1"));
        assert_eq!(get("A"), Some("1"));
        assert_eq!(get("POD_IP"), Some("override"));
        assert_eq!(get("MY_IP"), Some("10.0.0.5"));
        assert_eq!(get("PATH"), Some("/bin"));
        assert_eq!(env.iter().filter(|(k, _)| k == "POD_IP").count(), 1);
    }

    #[test]
    fn resolves_own_dir_first() -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::PermissionsExt;
        let own = tempfile::tempdir()?;
        let tool = own.path().join("sleep");
        std::fs::write(&tool, "#!/bin/sh\n")?;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755))?;
        let path = OsStr::new("/usr/bin:/bin");
        assert_eq!(resolve_program("sleep", Some(own.path()), path), Some(tool));
        assert!(resolve_program("sleep", None, path).is_some());
        assert_eq!(
            resolve_program("no-such-tool-x", Some(own.path()), path),
            None
        );
        assert_eq!(resolve_program("/no/such", None, path), None);
        Ok(())
    }

    #[test]
    fn log_path_convention() {
        assert_eq!(
            log_path(Path::new("/s"), "default", "web", "app"),
            PathBuf::from("/s/logs/default_web_app.log")
        );
    }
}
