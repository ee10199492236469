//! The lab runs rovn as `deploy/` installs it: the controller's and the agents' program,
//! arguments and environment are read from what `kubectl kustomize deploy/base` renders, and
//! the lab substitutes only its own paths and addresses. A substitution the manifests give no
//! place for (an environment variable they do not set, a ConfigMap key they neither hold nor
//! reference) fails the lab, so the lab cannot quietly run something the manifests do not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::core::v1::{ConfigMap, Container};
use serde_json::Value;

use super::cmd;
use super::error::LabError;

/// The kustomization the lab renders: what every overlay builds on.
pub fn base_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base")
}

/// The documents `kubectl kustomize dir` renders, as JSON values.
pub fn render(dir: &Path) -> Result<Rendered, LabError> {
    let mut command = Command::new("kubectl");
    command.arg("kustomize").arg(dir);
    let text = cmd::run_command(&format!("render {}", dir.display()), &mut command)?;
    let docs = serde_saphyr::from_multiple::<Value>(&text).map_err(|e| LabError::Protocol {
        what: format!(
            "reading what `kubectl kustomize {}` rendered",
            dir.display()
        ),
        detail: e.to_string(),
    })?;
    Ok(Rendered {
        docs: docs.into_iter().filter(|d| !d.is_null()).collect(),
    })
}

/// Rendered manifests.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    docs: Vec<Value>,
}

impl Rendered {
    fn find(&self, kind: &str, name: &str) -> Result<&Value, LabError> {
        self.docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .ok_or_else(|| {
                manifest_error(format!("{kind} {name}"), "not in the rendered manifests")
            })
    }

    /// The container `container` of workload `kind/name` (a Deployment or DaemonSet).
    pub fn container(
        &self,
        kind: &str,
        name: &str,
        container: &str,
    ) -> Result<Container, LabError> {
        let what = format!("{kind} {name}, container {container}");
        let workload = self.find(kind, name)?;
        let found = workload["spec"]["template"]["spec"]["containers"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == container))
            .ok_or_else(|| manifest_error(what.clone(), "no such container"))?;
        serde_json::from_value(found.clone()).map_err(|e| manifest_error(what, e))
    }

    /// The data of ConfigMap `name`.
    pub fn config_map(&self, name: &str) -> Result<BTreeMap<String, String>, LabError> {
        let map: ConfigMap = serde_json::from_value(self.find("ConfigMap", name)?.clone())
            .map_err(|e| manifest_error(format!("ConfigMap {name}"), e))?;
        Ok(map.data.unwrap_or_default())
    }
}

fn manifest_error(what: String, detail: impl std::fmt::Display) -> LabError {
    LabError::Protocol {
        what: format!("deploy/ manifests: {what}"),
        detail: detail.to_string(),
    }
}

/// What the lab puts in place of the manifests' values: its own paths and addresses only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Substitutions {
    /// ConfigMap keys (of the ConfigMap the container's env references) and the lab's value.
    pub config: BTreeMap<String, String>,
    /// Environment variables the manifests set literally, and the lab's value.
    pub env: BTreeMap<String, String>,
    /// Downward API field paths (`metadata.name`, `spec.nodeName`) and the lab's value.
    pub fields: BTreeMap<String, String>,
}

/// A container as the lab starts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The program's name (`command[0]`).
    pub program: String,
    /// The rest of `command`, then `args`.
    pub args: Vec<String>,
    /// The environment, in the manifests' order.
    pub env: Vec<(String, String)>,
}

/// How the lab starts `container`, whose env reads ConfigMap data `config`, with `subs`
/// substituted. Pure. Fails where the manifests and the lab diverge.
pub fn launch(
    container: &Container,
    config: &BTreeMap<String, String>,
    subs: &Substitutions,
) -> Result<Launch, LabError> {
    let name = &container.name;
    let err = |detail: String| manifest_error(format!("container {name}"), detail);
    let mut command = container.command.clone().unwrap_or_default().into_iter();
    let program = command
        .next()
        .ok_or_else(|| err("has no command: the lab needs the program's name".into()))?;
    let mut args: Vec<String> = command.collect();
    args.extend(container.args.clone().unwrap_or_default());
    let mut config = config.clone();
    for (key, value) in &subs.config {
        config.insert(key.clone(), value.clone());
    }
    let mut env = Vec::new();
    let mut referenced = Vec::new();
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(literal), None) => Some(subs.env.get(&var.name).unwrap_or(literal).clone()),
            (None, Some(from)) => {
                if let Some(key_ref) = &from.config_map_key_ref {
                    referenced.push(key_ref.key.clone());
                    match config.get(&key_ref.key) {
                        Some(v) => Some(v.clone()),
                        None if key_ref.optional == Some(true) => None,
                        None => {
                            return Err(err(format!(
                                "{} reads ConfigMap key {:?}, which is missing",
                                var.name, key_ref.key
                            )));
                        }
                    }
                } else if let Some(field) = &from.field_ref {
                    Some(subs.fields.get(&field.field_path).cloned().ok_or_else(|| {
                        err(format!(
                            "{} reads field {:?}, which the lab does not provide",
                            var.name, field.field_path
                        ))
                    })?)
                } else {
                    return Err(err(format!(
                        "{}: only literal values, configMapKeyRef and fieldRef are supported",
                        var.name
                    )));
                }
            }
            (None, None) => Some(String::new()),
            (Some(_), Some(_)) => {
                return Err(err(format!("{} has both value and valueFrom", var.name)));
            }
        };
        if let Some(value) = value {
            env.push((var.name.clone(), value));
        }
    }
    for key in subs.env.keys() {
        let literal = container
            .env
            .iter()
            .flatten()
            .any(|v| &v.name == key && v.value.is_some());
        if !literal {
            return Err(err(format!(
                "the lab substitutes {key}, which the manifest does not set literally"
            )));
        }
    }
    for key in subs.config.keys() {
        if !referenced.contains(key) {
            return Err(err(format!(
                "the lab substitutes ConfigMap key {key:?}, which no variable reads"
            )));
        }
    }
    Ok(Launch { program, args, env })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn container(env: Value) -> Container {
        serde_json::from_value(
            json!({"name": "c", "command": ["prog", "--a"], "args": ["b"], "env": env}),
        )
        .unwrap()
    }

    fn subs(
        config: &[(&str, &str)],
        env: &[(&str, &str)],
        fields: &[(&str, &str)],
    ) -> Substitutions {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Substitutions {
            config: map(config),
            env: map(env),
            fields: map(fields),
        }
    }

    #[test]
    fn values_come_from_the_manifest_with_the_labs_substituted() {
        let c = container(json!([
            {"name": "REMOTE", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "nb"}}},
            {"name": "CIDR", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "cidr"}}},
            {"name": "POOL", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "pool", "optional": true}}},
            {"name": "GONE", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "gone", "optional": true}}},
            {"name": "LISTEN", "value": "0.0.0.0:1"},
            {"name": "LEVEL", "value": "info"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ]));
        let config = [("nb", "tcp:192.0.2.1:6641"), ("cidr", "10.16.0.0/16")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let got = launch(
            &c,
            &config,
            &subs(
                &[("nb", "unix:/lab/nb.sock"), ("pool", "172.30.0.240/29")],
                &[("LISTEN", "172.30.0.1:1")],
                &[("metadata.name", "pod-0")],
            ),
        )
        .unwrap();
        assert_eq!(got.program, "prog");
        assert_eq!(got.args, ["--a", "b"]);
        let env: Vec<(&str, &str)> = got
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("REMOTE", "unix:/lab/nb.sock"),
                ("CIDR", "10.16.0.0/16"),
                ("POOL", "172.30.0.240/29"),
                ("LISTEN", "172.30.0.1:1"),
                ("LEVEL", "info"),
                ("POD", "pod-0"),
            ]
        );
    }

    #[test]
    fn a_substitution_the_manifest_has_no_place_for_fails() {
        let c = container(json!([{"name": "LISTEN", "value": "0.0.0.0:1"}]));
        let none = BTreeMap::new();
        let e = launch(&c, &none, &subs(&[], &[("OTHER", "x")], &[])).unwrap_err();
        assert!(e.to_string().contains("OTHER"), "{e}");
        let e = launch(&c, &none, &subs(&[("nb", "x")], &[], &[])).unwrap_err();
        assert!(e.to_string().contains("\"nb\""), "{e}");
    }

    #[test]
    fn a_missing_required_key_or_field_fails() {
        let c = container(json!([
            {"name": "REMOTE", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "nb"}}},
        ]));
        let e = launch(&c, &BTreeMap::new(), &Substitutions::default()).unwrap_err();
        assert!(e.to_string().contains("REMOTE"), "{e}");
        let c = container(json!([
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        ]));
        let e = launch(&c, &BTreeMap::new(), &Substitutions::default()).unwrap_err();
        assert!(e.to_string().contains("spec.nodeName"), "{e}");
    }
}
