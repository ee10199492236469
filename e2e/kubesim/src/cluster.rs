//! The write semantics of the API server on top of the store: create (generateName,
//! uid, timestamps, defaults, allocation), update (optimistic concurrency, status
//! subresource, generation), patch and pod binding; deletion lives in `deletion`.
//! No HTTP here: callers hold the state lock and turn results into responses.

use std::sync::Arc;

use rand::Rng;
use serde_json::{Map, Value, json};

use crate::clock;
use crate::crd;
use crate::defaults::{self, ServiceAllocator};
use crate::event_versions;
use crate::field_validation::{self, Write};
use crate::patch::{self, PatchError};
use crate::resources::{Registry, ResourceDef};
use crate::status::{ApiError, Cause};
use crate::store::{Store, StoredObject, meta_str};
use crate::validation;

/// Everything the server keeps, guarded by one lock.
pub struct State {
    /// Objects, resourceVersions, watch history.
    pub store: Store,
    /// Served kinds (built-ins plus CRDs).
    pub registry: Registry,
    /// ClusterIP / NodePort allocations.
    pub services: ServiceAllocator,
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The object itself (status ignored when the kind has a status subresource).
    Main,
    /// The `status` subresource (only `.status` changes).
    Status,
}

/// The patch formats the server accepts, by Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply, simplified).
    Apply,
}

impl PatchKind {
    /// Recognises a patch Content-Type.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchKind::Apply)
            }
            _ => None,
        }
    }
}

fn mismatch(def: &ResourceDef, name: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!("{} {name:?}: {why}", def.plural))
}

fn invalid(def: &ResourceDef, name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid(&def.kind, &def.group, name, causes)
}

/// `metadata` as a map, created if missing or malformed.
pub(crate) fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

/// Drops empty and null metadata fields, as the real server's typed `ObjectMeta`
/// (all `omitempty`) never returns `annotations: {}` or `generateName: ""`.
fn prune_empty_metadata(obj: &mut Value) {
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        meta.retain(|_, v| match v {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            _ => true,
        });
    }
}

/// `generateName` suffix: five characters from the alphabet upstream uses.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Whether anything outside metadata and status differs (the generation rule).
fn spec_changed(old: &Value, new: &Value) -> bool {
    let keys = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|m| {
                m.keys()
                    .filter(|k| {
                        !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut all = keys(old);
    all.extend(keys(new));
    all.iter().any(|k| old.get(k) != new.get(k))
}

/// Equality ignoring the fields a write always changes.
fn same_content(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        v
    };
    strip(old) == strip(new)
}

impl State {
    /// A fresh cluster state with the default namespaces and the `kubernetes` Service.
    pub fn new(store: Store, services: ServiceAllocator) -> Self {
        let mut state = State {
            store,
            registry: Registry::new(),
            services,
        };
        state.bootstrap();
        state
    }

    fn bootstrap(&mut self) {
        let Some(ns_def) = self.registry.get("", "v1", "namespaces") else {
            return;
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let _ = self.create(&ns_def, None, json!({"metadata": {"name": ns}}), false);
        }
        let Some(svc_def) = self.registry.get("", "v1", "services") else {
            return;
        };
        let kubernetes = json!({
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": self.services.first_ip().to_string(),
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
        });
        let _ = self.create(&svc_def, Some("default"), kubernetes, false);
    }

    /// Publishes where the API server itself is reachable (Endpoints and EndpointSlice
    /// `default/kubernetes`, and the Service's targetPort), as the real apiserver's
    /// endpoint reconciler does, so pods can reach it through the `kubernetes` Service.
    pub fn publish_apiserver_endpoints(
        &mut self,
        addr: std::net::SocketAddr,
    ) -> Result<(), ApiError> {
        let (ip, port) = (addr.ip().to_string(), addr.port());
        let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
        let port_entry = json!({"name": "https", "port": port, "protocol": "TCP"});
        if let Some(svc_def) = self.registry.get("", "v1", "services") {
            let mut svc = self.get(&svc_def, "default", "kubernetes")?.value.clone();
            svc["spec"]["ports"] =
                json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]);
            self.update(&svc_def, "default", "kubernetes", svc, Target::Main, false)?;
        }
        if let Some(ep_def) = self.registry.get("", "v1", "endpoints") {
            let ep = json!({"metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                "subsets": [{"addresses": [{"ip": ip}], "ports": [port_entry.clone()]}]});
            self.create(&ep_def, Some("default"), ep, false)?;
        }
        if let Some(slice_def) = self
            .registry
            .get("discovery.k8s.io", "v1", "endpointslices")
        {
            let slice = json!({"metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
                "addressType": family,
                "endpoints": [{"addresses": [ip], "conditions": {"ready": true, "serving": true, "terminating": false}}],
                "ports": [port_entry]});
            self.create(&slice_def, Some("default"), slice, false)?;
        }
        Ok(())
    }

    /// The namespace check every namespaced write does.
    fn check_namespace(
        &self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        match self.store.get("/namespaces", "", namespace) {
            None => Err(ApiError::not_found("namespaces", "", namespace)),
            Some(ns) if ns.value.pointer("/metadata/deletionTimestamp").is_some() => {
                Err(ApiError {
                    details: Some(json!({"name": name, "kind": def.plural})),
                    ..ApiError::forbidden(format!(
                        "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                        def.plural
                    ))
                })
            }
            Some(_) => Ok(()),
        }
    }

    /// Brings a request body's apiVersion/kind/namespace in line with the URL.
    fn normalise_identity(
        def: &ResourceDef,
        namespace: Option<&str>,
        body: &mut Value,
    ) -> Result<(), ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(format!(
                "the body of a {} request must be a JSON object",
                def.kind
            )));
        }
        let name = body
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if let Some(kind) = body.get("kind").and_then(Value::as_str)
            && !kind.is_empty()
            && kind != def.kind
        {
            return Err(mismatch(
                def,
                &name,
                &format!(
                    "kind {kind:?} in the body does not match the URL ({})",
                    def.kind
                ),
            ));
        }
        if let Value::Object(fields) = body {
            let mut ordered = Map::with_capacity(fields.len() + 2);
            ordered.insert("apiVersion".into(), json!(def.api_version()));
            ordered.insert("kind".into(), json!(def.kind));
            for (k, v) in std::mem::take(fields) {
                if k != "apiVersion" && k != "kind" {
                    ordered.insert(k, v);
                }
            }
            *fields = ordered;
        }
        let meta = metadata_mut(body);
        match namespace {
            Some(ns) => {
                match meta.get("namespace").and_then(Value::as_str) {
                    Some(given) if !given.is_empty() && given != ns => {
                        return Err(ApiError::bad_request(
                            "the namespace of the provided object does not match the namespace sent on the request",
                        ));
                    }
                    _ => {}
                }
                meta.insert("namespace".into(), json!(ns));
            }
            None => {
                meta.remove("namespace");
            }
        }
        Ok(())
    }

    /// The core/v1 Events resource that stores what `def` (events.k8s.io) serves.
    /// The CRD defining a custom resource kind (its schema validates the objects).
    fn crd_of(&self, def: &ResourceDef) -> Option<&Value> {
        if !def.custom {
            return None;
        }
        let crds =
            crate::resources::storage_key("apiextensions.k8s.io", "customresourcedefinitions");
        let name = format!("{}.{}", def.plural, def.group);
        self.store.get(&crds, "", &name).map(|o| &o.value)
    }

    fn core_events(&self, def: &ResourceDef) -> Result<Arc<ResourceDef>, ApiError> {
        self.registry.get("", "v1", "events").ok_or_else(|| {
            ApiError::internal(format!(
                "{}: the core/v1 events storage is not served",
                def.api_version()
            ))
        })
    }

    /// Create: 201 semantics of POST on a collection (the server's own writes: no
    /// warnings, unknown fields ignored).
    pub fn create(
        &mut self,
        def: &ResourceDef,
        namespace: Option<&str>,
        body: Value,
        dry_run: bool,
    ) -> Result<Arc<StoredObject>, ApiError> {
        self.create_with(def, namespace, body, &mut Write::internal(dry_run))
    }

    /// Create as a client asked for it: dry run, field validation, warnings in `write`.
    pub fn create_with(
        &mut self,
        def: &ResourceDef,
        namespace: Option<&str>,
        mut body: Value,
        write: &mut Write,
    ) -> Result<Arc<StoredObject>, ApiError> {
        if event_versions::is_events_v1(def) {
            let core = self.core_events(def)?;
            return self.create_with(
                &core,
                namespace,
                event_versions::core_from_events_v1(body),
                write,
            );
        }
        Self::normalise_identity(def, namespace, &mut body)?;
        prune_empty_metadata(&mut body);
        let meta = metadata_mut(&mut body);
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let ns = namespace.unwrap_or("").to_string();
        if name.is_empty() {
            let Some(prefix) = meta
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty())
            else {
                return Err(invalid(
                    def,
                    "",
                    vec![Cause {
                        field: "metadata.name".into(),
                        message: "Required value: name or generateName is required".into(),
                    }],
                ));
            };
            let prefix = prefix.to_string();
            name = loop {
                let candidate = format!("{prefix}{}", random_suffix());
                if self.store.get(&def.storage, &ns, &candidate).is_none() {
                    break candidate;
                }
            };
            meta.insert("name".into(), json!(name));
        }
        if let Some(c) = validation::check_name(&def.group, &def.kind, &name) {
            return Err(invalid(def, &name, vec![c]));
        }
        if def.namespaced {
            self.check_namespace(def, &ns, &name)?;
        }
        if self.store.get(&def.storage, &ns, &name).is_some() {
            return Err(ApiError::already_exists(&def.plural, &def.group, &name));
        }
        let now = clock::now_rfc3339();
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now));
        meta.insert("generation".into(), json!(1));
        for transient in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
        ] {
            meta.remove(transient);
        }
        if def.status_subresource
            && !matches!(def.kind.as_str(), "Node" | "CustomResourceDefinition")
            && let Some(m) = body.as_object_mut()
        {
            m.remove("status");
        }
        field_validation::check(def, self.crd_of(def), &body, write)?;
        let causes = validation::check_object(&def.group, &def.kind, &body);
        if !causes.is_empty() {
            return Err(invalid(def, &name, causes));
        }
        self.apply_defaults(def, &mut body, None, write.dry_run, &name)?;
        if write.dry_run {
            let rv = self.store.resource_version();
            return Ok(Arc::new(dry_object(body, rv)));
        }
        if def.group == "apiextensions.k8s.io" && def.kind == "CustomResourceDefinition" {
            defaults::default_crd_status(&mut body, &now);
            let served = crd::served_resources(&body).map_err(|c| invalid(def, &name, c))?;
            for r in &served {
                if let Some(existing) = self.registry.get(&r.group, &r.version, &r.plural)
                    && !existing.custom
                {
                    return Err(invalid(
                        def,
                        &name,
                        vec![Cause {
                            field: "spec.group".into(),
                            message: format!(
                                "Invalid value: {} is served by the server itself",
                                r.group
                            ),
                        }],
                    ));
                }
            }
            for r in served {
                self.registry.add(r);
            }
        }
        Ok(self.store.put(&def.storage, body))
    }

    /// Per-kind defaulting and allocation shared by create and update.
    fn apply_defaults(
        &mut self,
        def: &ResourceDef,
        obj: &mut Value,
        old: Option<&Value>,
        dry_run: bool,
        name: &str,
    ) -> Result<(), ApiError> {
        if def.custom {
            return Ok(());
        }
        match (def.group.as_str(), def.kind.as_str()) {
            ("", "Pod") => defaults::default_pod(obj),
            ("", "Namespace") => defaults::default_namespace(obj),
            ("", "Service") => {
                let result = if dry_run {
                    self.services.clone().prepare(obj, old)
                } else {
                    self.services.prepare(obj, old)
                };
                result.map_err(|c| invalid(def, name, c))?;
            }
            ("networking.k8s.io", "NetworkPolicy") => defaults::default_network_policy(obj),
            ("discovery.k8s.io", "EndpointSlice") | ("", "Endpoints") => {
                defaults::default_endpoint_ports(obj)
            }
            _ => {}
        }
        Ok(())
    }

    /// One object, or 404.
    pub fn get(
        &self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<StoredObject>, ApiError> {
        self.store
            .get(&def.storage, namespace, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&def.plural, &def.group, name))
    }

    /// Update (PUT) of the object or its status (the server's own writes).
    pub fn update(
        &mut self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        body: Value,
        target: Target,
        dry_run: bool,
    ) -> Result<Arc<StoredObject>, ApiError> {
        let write = &mut Write::internal(dry_run);
        self.update_with(def, namespace, name, body, target, write)
    }

    /// Update as a client asked for it: dry run, field validation, warnings in `write`.
    pub fn update_with(
        &mut self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        mut body: Value,
        target: Target,
        write: &mut Write,
    ) -> Result<Arc<StoredObject>, ApiError> {
        if event_versions::is_events_v1(def) {
            let core = self.core_events(def)?;
            let body = event_versions::core_from_events_v1(body);
            return self.update_with(&core, namespace, name, body, target, write);
        }
        let ns_opt = def.namespaced.then_some(namespace);
        Self::normalise_identity(def, ns_opt, &mut body)?;
        let body_name = meta_str(&body, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        metadata_mut(&mut body).insert("name".into(), json!(name));
        let current = match self.store.get(&def.storage, namespace, name).cloned() {
            Some(c) => c,
            // Upstream lets a PUT create Endpoints and core Events.
            None if target == Target::Main
                && def.group.is_empty()
                && matches!(def.kind.as_str(), "Endpoints" | "Event") =>
            {
                return self.create_with(def, ns_opt, body, write);
            }
            None => return Err(ApiError::not_found(&def.plural, &def.group, name)),
        };
        self.commit_update(def, &current, body, target, write)
    }

    /// The common tail of update, patch and binding.
    fn commit_update(
        &mut self,
        def: &ResourceDef,
        current: &Arc<StoredObject>,
        mut new: Value,
        target: Target,
        write: &mut Write,
    ) -> Result<Arc<StoredObject>, ApiError> {
        prune_empty_metadata(&mut new);
        let name = current.name().to_string();
        let namespace = current.namespace().to_string();
        let given_rv = new
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !given_rv.is_empty() && given_rv != current.rv.to_string() {
            return Err(ApiError::stale(&def.plural, &def.group, &name));
        }
        if target == Target::Status {
            let mut merged = current.value.clone();
            match new.get("status") {
                Some(s) => merged["status"] = s.clone(),
                None => {
                    if let Some(m) = merged.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            new = merged;
        } else {
            let meta_old = current
                .value
                .get("metadata")
                .cloned()
                .unwrap_or_else(|| json!({}));
            let meta = metadata_mut(&mut new);
            for keep in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match meta_old.get(keep) {
                    Some(v) => meta.insert(keep.into(), v.clone()),
                    None => meta.remove(keep),
                };
            }
            meta.insert("namespace".into(), json!(namespace));
            if namespace.is_empty() {
                meta.remove("namespace");
            }
            if def.status_subresource {
                match current.value.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            if def.group.is_empty()
                && def.kind == "Pod"
                && let Some(node) = current
                    .value
                    .pointer("/spec/nodeName")
                    .filter(|n| n.as_str().is_some_and(|s| !s.is_empty()))
            {
                if new
                    .pointer("/spec/nodeName")
                    .is_none_or(|n| n.is_null() || n == "")
                    && new.get("spec").is_some_and(Value::is_object)
                {
                    new["spec"]["nodeName"] = node.clone();
                } else if new.pointer("/spec/nodeName") != Some(node) {
                    return Err(invalid(def, &name, vec![Cause { field: "spec.nodeName".into(), message: "Forbidden: pod updates may not change fields other than those allowed".into() }]));
                }
            }
            if is_crd(def) {
                let old_names = (
                    current.value.pointer("/spec/group"),
                    current.value.pointer("/spec/names/plural"),
                );
                if (
                    new.pointer("/spec/group"),
                    new.pointer("/spec/names/plural"),
                ) != old_names
                {
                    return Err(invalid(
                        def,
                        &name,
                        vec![Cause {
                            field: "spec.names.plural".into(),
                            message: "Invalid value: group and plural are immutable".into(),
                        }],
                    ));
                }
                crd::served_resources(&new).map_err(|c| invalid(def, &name, c))?;
            }
        }
        metadata_mut(&mut new).remove("resourceVersion");
        field_validation::check(def, self.crd_of(def), &new, write)?;
        let causes = validation::check_object(&def.group, &def.kind, &new);
        if !causes.is_empty() {
            return Err(invalid(def, &name, causes));
        }
        self.apply_defaults(def, &mut new, Some(&current.value), write.dry_run, &name)?;
        if target == Target::Main && def.group.is_empty() && def.kind == "Pod" {
            check_pod_spec_update(&current.value, &new)
                .map_err(|c| invalid(def, &name, vec![c]))?;
        }
        self.finish_update(def, current, new, write.dry_run)
    }

    fn finish_update(
        &mut self,
        def: &ResourceDef,
        current: &Arc<StoredObject>,
        mut new: Value,
        dry_run: bool,
    ) -> Result<Arc<StoredObject>, ApiError> {
        metadata_mut(&mut new).insert("resourceVersion".into(), json!(current.rv.to_string()));
        if same_content(&current.value, &new) {
            return Ok(current.clone());
        }
        if spec_changed(&current.value, &new) {
            let generation = current
                .value
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            metadata_mut(&mut new).insert("generation".into(), json!(generation + 1));
        }
        if dry_run {
            return Ok(Arc::new(dry_object(new, current.rv)));
        }
        let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
        let no_finalizers = new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        let grace_pending = new
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            > 0;
        if deleting && no_finalizers && !grace_pending {
            let gone = self.remove(def, current.namespace(), current.name());
            return gone
                .ok_or_else(|| ApiError::not_found(&def.plural, &def.group, current.name()));
        }
        let stored = self.store.put(&def.storage, new);
        if is_crd(def)
            && let Ok(served) = crd::served_resources(&stored.value)
            && let Some(first) = served.first()
        {
            self.registry.remove_storage(&first.storage);
            for r in served {
                self.registry.add(r);
            }
        }
        Ok(stored)
    }

    /// PATCH of the object or its status as a client asked for it: dry run, field
    /// validation (of the patched object), warnings in `write`. Apply patches create
    /// absent objects.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        kind: PatchKind,
        body: &[u8],
        target: Target,
        write: &mut Write,
    ) -> Result<(Arc<StoredObject>, bool), ApiError> {
        let parse_json = || {
            serde_json::from_slice::<Value>(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
        };
        let patch_doc = match kind {
            PatchKind::Apply => {
                let text = std::str::from_utf8(body)
                    .map_err(|_| ApiError::bad_request("apply patch is not UTF-8"))?;
                serde_saphyr::from_str::<Value>(text)
                    .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
            }
            _ => parse_json()?,
        };
        if kind == PatchKind::Strategic && def.custom {
            return Err(ApiError::unsupported_media_type(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        let current = match self.store.get(&def.storage, namespace, name).cloned() {
            Some(c) => c,
            None if kind == PatchKind::Apply && target == Target::Main => {
                let mut obj = patch_doc;
                if obj.is_object() {
                    metadata_mut(&mut obj).insert("name".into(), json!(name));
                }
                let ns = def.namespaced.then_some(namespace);
                return self.create_with(def, ns, obj, write).map(|o| (o, true));
            }
            None => return Err(ApiError::not_found(&def.plural, &def.group, name)),
        };
        let current_view = if event_versions::is_events_v1(def) {
            event_versions::served_form(def, &current.value)
        } else {
            current.value.clone()
        };
        let mut patched = current_view.clone();
        let applied = match kind {
            PatchKind::Merge => {
                if !patch_doc.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                patch::merge_patch(&mut patched, &patch_doc);
                Ok(())
            }
            PatchKind::Json => patch::json_patch(&mut patched, &patch_doc),
            PatchKind::Strategic => {
                patch::strategic_merge_patch(&mut patched, &patch_doc, &def.kind)
            }
            PatchKind::Apply => {
                if !patch_doc.is_object() {
                    return Err(ApiError::bad_request("an apply patch must be an object"));
                }
                let mut doc = patch_doc;
                if let Some(m) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("resourceVersion");
                }
                if def.custom {
                    patch::merge_patch(&mut patched, &doc);
                    Ok(())
                } else {
                    patch::strategic_merge_patch(&mut patched, &doc, &def.kind)
                }
            }
        };
        applied.map_err(|e| match e {
            PatchError::Malformed(m) => ApiError::bad_request(m),
            PatchError::Failed(m) => invalid(
                def,
                name,
                vec![Cause {
                    field: "patch".into(),
                    message: m,
                }],
            ),
        })?;
        if !patched.is_object() {
            return Err(ApiError::bad_request(
                "the patch turned the object into a non-object",
            ));
        }
        for field in ["name", "namespace", "uid"] {
            if patched.pointer(&format!("/metadata/{field}"))
                != current_view.pointer(&format!("/metadata/{field}"))
            {
                return Err(invalid(
                    def,
                    name,
                    vec![Cause {
                        field: format!("metadata.{field}"),
                        message: "Invalid value: field is immutable".into(),
                    }],
                ));
            }
        }
        if patched.get("apiVersion") != current_view.get("apiVersion")
            || patched.get("kind") != current_view.get("kind")
        {
            patched["apiVersion"] = json!(def.api_version());
            patched["kind"] = json!(def.kind);
        }
        if event_versions::is_events_v1(def) {
            let core = self.core_events(def)?;
            let patched = event_versions::core_from_events_v1(patched);
            return self
                .commit_update(&core, &current, patched, target, write)
                .map(|o| (o, false));
        }
        self.commit_update(def, &current, patched, target, write)
            .map(|o| (o, false))
    }

    /// `POST pods/NAME/binding`: sets `spec.nodeName` once, as the scheduler does.
    pub fn bind(
        &mut self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        binding: &Value,
    ) -> Result<(), ApiError> {
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if node.is_empty() {
            return Err(ApiError::invalid(
                "Binding",
                "",
                name,
                vec![Cause {
                    field: "target.name".into(),
                    message: "Required value".into(),
                }],
            ));
        }
        let current = self.get(def, namespace, name)?;
        if current
            .value
            .pointer("/metadata/deletionTimestamp")
            .is_some()
        {
            return Err(ApiError::conflict(
                &def.plural,
                "",
                name,
                &format!("pod {name} is being deleted, cannot be assigned to a host"),
            ));
        }
        if let Some(existing) = current
            .value
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            return Err(ApiError::conflict(
                &def.plural,
                "",
                name,
                &format!("pod {name} is already assigned to node {existing:?}"),
            ));
        }
        let mut v = current.value.clone();
        v["spec"]["nodeName"] = json!(node);
        let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": clock::now_rfc3339()});
        let conditions = v["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut conditions: Vec<Value> = conditions
            .into_iter()
            .filter(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"))
            .collect();
        conditions.push(cond);
        v["status"]["conditions"] = Value::Array(conditions);
        self.finish_update(def, &current, v, false).map(|_| ())
    }
}

/// Upstream forbids pod spec changes except container images, activeDeadlineSeconds,
/// tolerations, terminationGracePeriodSeconds and removing scheduling gates.
fn check_pod_spec_update(old: &Value, new: &Value) -> Result<(), Cause> {
    let masked = |pod: &Value| {
        let mut spec = pod.get("spec").cloned().unwrap_or(Value::Null);
        if let Value::Object(m) = &mut spec {
            for mutable in [
                "activeDeadlineSeconds",
                "tolerations",
                "terminationGracePeriodSeconds",
                "schedulingGates",
            ] {
                m.remove(mutable);
            }
            for list in ["containers", "initContainers"] {
                if let Some(Value::Array(cs)) = m.get_mut(list) {
                    for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                        c.remove("image");
                    }
                }
            }
        }
        spec
    };
    if masked(old) == masked(new) {
        Ok(())
    } else {
        Err(Cause {
            field: "spec".into(),
            message: "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations), `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)".into(),
        })
    }
}

fn is_crd(def: &ResourceDef) -> bool {
    def.group == "apiextensions.k8s.io" && def.kind == "CustomResourceDefinition"
}

/// An object as a dry run would store it (never stored).
fn dry_object(mut value: Value, rv: u64) -> StoredObject {
    metadata_mut(&mut value).insert("resourceVersion".into(), json!(rv.to_string()));
    let json = bytes::Bytes::from(value.to_string());
    StoredObject { value, json, rv }
}
