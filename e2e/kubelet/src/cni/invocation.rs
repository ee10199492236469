//! The environment of one plugin call (`CNI_*` variables). Pure.

use std::path::{Path, PathBuf};

/// The CNI verbs a runtime sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Attach a container to the network.
    Add,
    /// Detach; must succeed when repeated.
    Del,
    /// Verify an attachment is still as ADD left it.
    Check,
    /// Is the plugin ready for ADDs? (CNI 1.1)
    Status,
    /// Release what no valid attachment uses. (CNI 1.1)
    Gc,
}

impl Verb {
    /// The `CNI_COMMAND` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Add => "ADD",
            Verb::Del => "DEL",
            Verb::Check => "CHECK",
            Verb::Status => "STATUS",
            Verb::Gc => "GC",
        }
    }
}

/// Identifies one attachment of one container to one network, i.e. everything the
/// container-scoped verbs (ADD, DEL, CHECK) put in the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentTarget {
    /// `CNI_CONTAINERID`: the sandbox id.
    pub container_id: String,
    /// `CNI_NETNS`: path of the sandbox's network namespace.
    pub netns: PathBuf,
    /// `CNI_IFNAME`: the interface to create inside the sandbox.
    pub ifname: String,
    /// `CNI_ARGS` pairs, in order (without the leading `IgnoreUnknown=1`).
    pub args: Vec<(String, String)>,
}

/// `CNI_ARGS` as CRI runtimes write it: `IgnoreUnknown=1` first so that plugins ignore keys they
/// do not know, then `K=V` pairs joined by `;`.
pub fn cni_args(args: &[(String, String)]) -> String {
    let mut out = String::from("IgnoreUnknown=1");
    for (k, v) in args {
        out.push(';');
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// `CNI_ARGS` pairs for a Kubernetes pod, as the kubelet's runtime passes them.
pub fn kubernetes_args(
    namespace: &str,
    name: &str,
    sandbox_id: &str,
    uid: &str,
) -> Vec<(String, String)> {
    vec![
        ("K8S_POD_NAMESPACE".into(), namespace.into()),
        ("K8S_POD_NAME".into(), name.into()),
        ("K8S_POD_INFRA_CONTAINER_ID".into(), sandbox_id.into()),
        ("K8S_POD_UID".into(), uid.into()),
    ]
}

/// The `CNI_*` environment of a call. Container-scoped verbs carry the target; STATUS and GC
/// are network-scoped and only carry the command and path, as the spec says.
pub fn plugin_env(
    verb: Verb,
    target: Option<&AttachmentTarget>,
    bin_dirs: &[PathBuf],
) -> Vec<(String, String)> {
    let mut env = vec![
        ("CNI_COMMAND".to_owned(), verb.as_str().to_owned()),
        ("CNI_PATH".to_owned(), join_path(bin_dirs)),
    ];
    if let (Some(t), Verb::Add | Verb::Del | Verb::Check) = (target, verb) {
        env.push(("CNI_CONTAINERID".into(), t.container_id.clone()));
        env.push(("CNI_NETNS".into(), t.netns.display().to_string()));
        env.push(("CNI_IFNAME".into(), t.ifname.clone()));
        env.push(("CNI_ARGS".into(), cni_args(&t.args)));
    }
    env
}

fn join_path(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// Splits a `DIR[:DIR...]` flag into directories, dropping empty pieces.
pub fn split_path_list(s: &str) -> Vec<PathBuf> {
    s.split(':')
        .filter(|p| !p.is_empty())
        .map(|p| Path::new(p).to_path_buf())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> AttachmentTarget {
        AttachmentTarget {
            container_id: "abc".into(),
            netns: "/run/netns/rl-x-p1".into(),
            ifname: "eth0".into(),
            args: kubernetes_args("default", "web", "abc", "u-1"),
        }
    }

    #[test]
    fn add_env_is_complete() {
        let env = plugin_env(
            Verb::Add,
            Some(&target()),
            &split_path_list("/opt/cni/bin::/usr/lib/cni"),
        );
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CNI_COMMAND"), Some("ADD"));
        assert_eq!(get("CNI_PATH"), Some("/opt/cni/bin:/usr/lib/cni"));
        assert_eq!(get("CNI_CONTAINERID"), Some("abc"));
        assert_eq!(get("CNI_NETNS"), Some("/run/netns/rl-x-p1"));
        assert_eq!(get("CNI_IFNAME"), Some("eth0"));
        assert_eq!(
            get("CNI_ARGS"),
            Some(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;\
                 K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1"
            )
        );
    }

    #[test]
    fn network_scoped_verbs_carry_no_container() {
        for verb in [Verb::Status, Verb::Gc] {
            let env = plugin_env(verb, Some(&target()), &[PathBuf::from("/b")]);
            let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(names, ["CNI_COMMAND", "CNI_PATH"]);
        }
    }
}
