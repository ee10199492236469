//! Deletion semantics: preconditions, finalizers, graceful pod deletion (bound pods
//! wait for the kubelet's grace-0 delete), namespace termination cascading to its
//! contents, and what removal frees (Service allocations, a CRD's resources).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::clock;
use crate::cluster::{State, metadata_mut};
use crate::crd;
use crate::resources::ResourceDef;
use crate::status::ApiError;
use crate::store::{StoredObject, meta_str};

/// `DeleteOptions` from the body and query.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// Requested grace period (pods honour it).
    pub grace_period_seconds: Option<i64>,
    /// Delete only if the uid still matches.
    pub precondition_uid: Option<String>,
    /// Delete only if the resourceVersion still matches.
    pub precondition_rv: Option<String>,
    /// Accepted for compatibility; dependents are not garbage-collected (no owner GC).
    pub propagation_policy: Option<String>,
    /// `dryRun: ["All"]`: report what would happen, change nothing.
    pub dry_run: bool,
}

/// Result of a delete: the object's state afterwards and whether it is gone.
pub struct Deleted {
    /// The removed object, or the object now carrying `deletionTimestamp`.
    pub object: Arc<StoredObject>,
    /// Whether the object was removed (false: finalizers or grace period pending).
    pub removed: bool,
}

impl State {
    /// Removes an object for good and handles what hangs off it.
    pub(crate) fn remove(
        &mut self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<StoredObject>> {
        let gone = self.store.delete(&def.storage, namespace, name)?;
        match (def.group.as_str(), def.kind.as_str()) {
            ("", "Service") => self.services.release(&gone.value),
            ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                if let Ok(served) = crd::served_resources(&gone.value)
                    && let Some(first) = served.first()
                {
                    let storage = first.storage.clone();
                    self.store.drop_collection(&storage);
                    self.registry.remove_storage(&storage);
                }
            }
            _ => {}
        }
        if def.namespaced {
            self.finalize_namespace_if_empty(namespace);
        }
        Some(gone)
    }

    fn namespace_is_empty(&self, namespace: &str) -> bool {
        self.registry
            .namespaced_storage()
            .iter()
            .all(|d| !self.store.any_in_namespace(&d.storage, namespace))
    }

    fn finalize_namespace_if_empty(&mut self, namespace: &str) {
        let Some(ns) = self.store.get("/namespaces", "", namespace).cloned() else {
            return;
        };
        if ns.value.pointer("/metadata/deletionTimestamp").is_none()
            || !self.namespace_is_empty(namespace)
        {
            return;
        }
        let user_finalizers = ns
            .value
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if user_finalizers {
            let mut v = ns.value.clone();
            v["spec"]["finalizers"] = json!([]);
            if v != ns.value {
                self.store.put(&Arc::from("/namespaces"), v);
            }
            return;
        }
        self.store.delete(&Arc::from("/namespaces"), "", namespace);
    }

    /// DELETE of one object.
    pub fn delete(
        &mut self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
        dry_run: bool,
    ) -> Result<Deleted, ApiError> {
        let current = self.get(def, namespace, name)?;
        let meta = current
            .value
            .get("metadata")
            .cloned()
            .unwrap_or_else(|| json!({}));
        if let Some(uid) = &opts.precondition_uid
            && meta.get("uid").and_then(Value::as_str) != Some(uid)
        {
            return Err(ApiError::conflict(
                &def.plural,
                &def.group,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&current.value, "uid")
                ),
            ));
        }
        if let Some(rv) = &opts.precondition_rv
            && *rv != current.rv.to_string()
        {
            return Err(ApiError::conflict(
                &def.plural,
                &def.group,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    current.rv
                ),
            ));
        }
        if dry_run {
            return Ok(Deleted {
                object: current,
                removed: true,
            });
        }
        let is_pod = def.group.is_empty() && def.kind == "Pod";
        let is_namespace = def.group.is_empty() && def.kind == "Namespace";
        let finalizers = meta
            .get("finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        let already = meta.get("deletionTimestamp").is_some();
        let mut grace = 0i64;
        if is_pod {
            let bound = current
                .value
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            let terminal = matches!(
                current
                    .value
                    .pointer("/status/phase")
                    .and_then(Value::as_str),
                Some("Succeeded" | "Failed")
            );
            if bound && !terminal {
                grace = opts
                    .grace_period_seconds
                    .or_else(|| {
                        current
                            .value
                            .pointer("/spec/terminationGracePeriodSeconds")
                            .and_then(Value::as_i64)
                    })
                    .unwrap_or(30)
                    .max(0);
            }
            if already {
                let pending = meta
                    .get("deletionGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                grace = grace.min(pending);
            }
        }
        if is_namespace {
            return Ok(self.terminate_namespace(&current));
        }
        if grace > 0 || finalizers {
            let mut v = current.value.clone();
            let m = metadata_mut(&mut v);
            let pending = m.get("deletionGracePeriodSeconds").and_then(Value::as_i64);
            if !already || pending != Some(grace) {
                m.insert(
                    "deletionTimestamp".into(),
                    json!(clock::format_rfc3339(clock::unix_now() + grace)),
                );
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
            if grace > 0 || v != current.value {
                if v == current.value {
                    return Ok(Deleted {
                        object: current,
                        removed: false,
                    });
                }
                let updated = self.store.put(&def.storage, v);
                return Ok(Deleted {
                    object: updated,
                    removed: false,
                });
            }
            if finalizers {
                return Ok(Deleted {
                    object: current,
                    removed: false,
                });
            }
        }
        let gone = self
            .remove(def, namespace, name)
            .ok_or_else(|| ApiError::not_found(&def.plural, &def.group, name))?;
        Ok(Deleted {
            object: gone,
            removed: true,
        })
    }

    fn terminate_namespace(&mut self, ns: &Arc<StoredObject>) -> Deleted {
        let name = ns.name().to_string();
        let object = if ns.value.pointer("/metadata/deletionTimestamp").is_none() {
            let mut v = ns.value.clone();
            let m = metadata_mut(&mut v);
            m.insert("deletionTimestamp".into(), json!(clock::now_rfc3339()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            v["status"] = json!({"phase": "Terminating"});
            self.store.put(&Arc::from("/namespaces"), v)
        } else {
            ns.clone()
        };
        for def in self.registry.namespaced_storage() {
            let names: Vec<String> = self
                .store
                .list(&def.storage, Some(&name))
                .map(|o| o.name().to_string())
                .collect();
            for obj in names {
                let _ = self.delete(&def, &name, &obj, &DeleteOptions::default(), false);
            }
        }
        self.finalize_namespace_if_empty(&name);
        let removed = self.store.get("/namespaces", "", &name).is_none();
        Deleted { object, removed }
    }
}
