//! HTTP routing: parses Kubernetes API paths, query parameters and content types,
//! calls the cluster semantics and renders objects, lists, Tables, watches and `Status`
//! errors. Every request goes through one fallback handler so any path, however
//! malformed, ends in a proper Status rather than a framework default.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::cluster::{PatchKind, Target};
use crate::deletion::DeleteOptions;
use crate::event_versions::served_form;
use crate::field_validation::{FieldValidation, Write};
use crate::proxy::ProxyTarget;
use crate::resources::ResourceDef;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::server::Cluster;
use crate::status::{ApiError, success_status};
use crate::store::StoredObject;
use crate::table::{self, IncludeObject};
use crate::watch::{self, WatchRequest};
use crate::{discovery, openapi, protobuf};

/// Largest request body accepted (the real server's limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// The router serving the whole API.
pub fn router(cluster: Arc<Cluster>) -> Router {
    Router::new()
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/exec",
            axum::routing::any(crate::kubelet_relay::exec),
        )
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/log",
            axum::routing::any(crate::kubelet_relay::log),
        )
        .fallback(handle)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(cluster)
}

type Query = HashMap<String, String>;

fn parse_query(uri: &Uri) -> Query {
    uri.query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn flag(q: &Query, key: &str) -> bool {
    matches!(q.get(key).map(String::as_str), Some("1" | "true" | "True"))
}

fn json_response(code: u16, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn value_response(code: u16, v: &Value) -> Response {
    json_response(code, v.to_string())
}

/// Adds one `Warning` header per text, in the RFC 7234 form kube-apiserver uses
/// (`299 - "text"`), which kubectl prints as `Warning: text`.
fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let quoted = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{quoted}\"")) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}

fn error_response(e: &ApiError) -> Response {
    value_response(e.code, &e.to_status())
}

/// A request addressed to a resource.
struct ResourcePath {
    group: String,
    version: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
    watch_prefix: bool,
}

enum Route {
    Root,
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    GroupVersion(String, String),
    Resource(ResourcePath),
    PodProxy(ProxyTarget),
    OpenApiRoot,
    OpenApiV2,
    OpenApiGroupVersion(String, String),
    NotFound,
}

fn parse_resource(group: &str, version: &str, rest: &[&str]) -> Route {
    if rest.iter().any(|s| s.is_empty()) {
        return Route::NotFound;
    }
    let (watch_prefix, rest) = match rest.first() {
        Some(&"watch") => (true, &rest[1..]),
        _ => (false, rest),
    };
    let owned = |s: &&str| s.to_string();
    let (namespace, rest) = if rest.len() >= 3
        && rest[0] == "namespaces"
        && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"))
    {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    if rest.is_empty() || rest.len() > 3 || rest.iter().any(|s| s.is_empty()) {
        return Route::NotFound;
    }
    Route::Resource(ResourcePath {
        group: group.to_string(),
        version: version.to_string(),
        plural: rest[0].to_string(),
        namespace,
        name: rest.get(1).map(owned),
        subresource: rest.get(2).map(owned),
        watch_prefix,
    })
}

fn route(path: &str) -> Route {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        [""] => Route::Root,
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["api"] => Route::CoreVersions,
        ["api", v] => Route::GroupVersion(String::new(), v.to_string()),
        [
            "api",
            "v1",
            "namespaces",
            ns,
            "pods",
            pod,
            "proxy",
            rest @ ..,
        ] => ProxyTarget::parse(ns, pod, rest).map_or(Route::NotFound, Route::PodProxy),
        ["api", v, rest @ ..] => parse_resource("", v, rest),
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::GroupVersion(g.to_string(), v.to_string()),
        ["apis", g, v, rest @ ..] => parse_resource(g, v, rest),
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiRoot,
        ["openapi", "v3", "api", v] => Route::OpenApiGroupVersion(String::new(), v.to_string()),
        ["openapi", "v3", "apis", g, v] => Route::OpenApiGroupVersion(g.to_string(), v.to_string()),
        _ => Route::NotFound,
    }
}

/// The response form the client asked for in `Accept` (first acceptable type wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accept {
    /// The objects themselves.
    Object,
    /// `as=Table` (kubectl get).
    Table,
    /// `as=PartialObjectMetadata[List]` (kube-rs metadata API).
    Metadata,
}

fn accept(headers: &HeaderMap) -> Accept {
    let text = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for media in text.split(',').map(str::trim) {
        if media.contains("as=Table") {
            return Accept::Table;
        }
        if media.contains("as=PartialObjectMetadata") {
            return Accept::Metadata;
        }
        if media.is_empty() || media.starts_with("application/json") || media.starts_with("*/*") {
            return Accept::Object;
        }
    }
    Accept::Object
}

async fn handle(
    State(cluster): State<Arc<Cluster>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    // Writes are logged at info (the lab's record of what changed); reads at debug.
    let write = !matches!(method, Method::GET | Method::HEAD);
    let result = dispatch(&cluster, &method, &uri, &headers, body).await;
    match result {
        Ok(r) => {
            let status = r.status().as_u16();
            if write {
                tracing::info!(%method, %uri, status, "request");
            } else {
                tracing::debug!(%method, %uri, status, "request");
            }
            r
        }
        Err(e) => {
            if write {
                tracing::info!(%method, %uri, status = e.code, error = %e.message, "request failed");
            } else {
                tracing::debug!(%method, %uri, status = e.code, error = %e.message, "request failed");
            }
            if e.code == 404 && e.details.is_none() {
                return error_response(&ApiError::path_not_found(&path));
            }
            error_response(&e)
        }
    }
}

async fn dispatch(
    cluster: &Arc<Cluster>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let route = route(uri.path());
    let read_only = |m: &Method| *m == Method::GET || *m == Method::HEAD;
    match route {
        Route::Resource(path) => return resource(cluster, method, uri, headers, body, path).await,
        Route::PodProxy(target) => return pod_proxy(cluster, method, uri, target).await,
        _ if !read_only(method) => {
            return Err(ApiError::method_not_allowed(format!(
                "{method} is not allowed on {}",
                uri.path()
            )));
        }
        _ => {}
    }
    let state = cluster.read();
    let v = match route {
        Route::Root => {
            json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]})
        }
        Route::Version => discovery::version(),
        Route::Health => {
            return Ok(
                (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "ok").into_response(),
            );
        }
        Route::CoreVersions => discovery::core_versions(),
        Route::Groups => discovery::group_list(&state.registry),
        Route::Group(g) => discovery::group(&state.registry, &g)
            .ok_or_else(|| ApiError::path_not_found(uri.path()))?,
        Route::GroupVersion(g, v) => discovery::resource_list(&state.registry, &g, &v)
            .ok_or_else(|| ApiError::path_not_found(uri.path()))?,
        Route::OpenApiV2 => {
            return Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, openapi::V2_PROTOBUF)],
                openapi::v2_document(),
            )
                .into_response());
        }
        Route::OpenApiRoot => openapi::root(&state.registry),
        Route::OpenApiGroupVersion(g, v)
            if let Some(text) = openapi::vendored(&state.registry, &g, &v) =>
        {
            return Ok(json_response(200, text));
        }
        Route::OpenApiGroupVersion(g, v) => openapi::group_version(&state.registry, &g, &v)
            .ok_or_else(|| ApiError::path_not_found(uri.path()))?,
        Route::NotFound | Route::Resource(_) | Route::PodProxy(_) => {
            return Err(ApiError::path_not_found(uri.path()));
        }
    };
    Ok(value_response(200, &v))
}

fn parse_body(body: &[u8], what: &str) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(format!(
            "{what}: the request body is empty"
        )));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("{what}: the body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request(format!(
            "{what}: the body must be a JSON object"
        )));
    }
    Ok(v)
}

fn object_json(def: &ResourceDef, obj: &StoredObject) -> Bytes {
    if obj.value.get("apiVersion").and_then(Value::as_str) == Some(def.api_version().as_str()) {
        obj.json.clone()
    } else {
        Bytes::from(served_form(def, &obj.value).to_string())
    }
}

fn object_response(
    code: u16,
    def: &ResourceDef,
    obj: &StoredObject,
    acc: &Accept,
    q: &Query,
) -> Response {
    match acc {
        Accept::Table => {
            let include = IncludeObject::parse(q.get("includeObject").map(String::as_str));
            let t = table::table(
                def,
                std::iter::once(&served_form(def, &obj.value)),
                obj.rv,
                None,
                include,
                true,
            );
            value_response(code, &t)
        }
        Accept::Metadata => value_response(code, &table::partial_object_metadata(&obj.value)),
        Accept::Object => json_response(code, object_json(def, obj)),
    }
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Decodes a create/update body in any encoding clients use: JSON, YAML, or (for the
/// kinds kubectl's generators send that way) protobuf.
fn decode_body(headers: &HeaderMap, body: &[u8], what: &str) -> Result<Value, ApiError> {
    let ct = content_type(headers);
    let base = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match base.as_str() {
        "" | "application/json" | "*/*" => parse_body(body, what),
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let text = std::str::from_utf8(body).map_err(|_| {
                ApiError::bad_request(format!("{what}: the YAML body is not UTF-8"))
            })?;
            let v: Value = serde_saphyr::from_str(text).map_err(|e| {
                ApiError::bad_request(format!("{what}: the body is not valid YAML: {e}"))
            })?;
            if !v.is_object() {
                return Err(ApiError::bad_request(format!(
                    "{what}: the body must be an object"
                )));
            }
            Ok(v)
        }
        "application/vnd.kubernetes.protobuf" => protobuf::decode(body).map_err(|e| match e {
            protobuf::ProtoError::Malformed(_) => ApiError::bad_request(format!("{what}: {e}")),
            protobuf::ProtoError::UnsupportedKind(_) => {
                ApiError::unsupported_media_type(format!("{what}: {e}"))
            }
        }),
        other => Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {other})"
        ))),
    }
}

/// Relays a GET or HEAD to the pod `target` names ([`crate::proxy`]).
async fn pod_proxy(
    cluster: &Arc<Cluster>,
    method: &Method,
    uri: &Uri,
    target: ProxyTarget,
) -> Result<Response, ApiError> {
    if *method != Method::GET && *method != Method::HEAD {
        return Err(ApiError::method_not_allowed(format!(
            "{method} is not relayed to pods by this server (GET and HEAD are)"
        )));
    }
    let pod = {
        let state = cluster.read();
        let def = state
            .registry
            .get("", "v1", "pods")
            .ok_or_else(|| ApiError::path_not_found(uri.path()))?;
        state.get(&def, &target.namespace, &target.pod)?
    };
    let addr = target.address(&pod.value)?;
    let path_and_query = match uri.query() {
        Some(query) => format!("{}?{query}", target.path),
        None => target.path.clone(),
    };
    let netns = cluster.proxy_netns.clone();
    let method_name = method.to_string();
    let answer = tokio::task::spawn_blocking(move || {
        crate::proxy::relay(netns.as_deref(), addr, &method_name, &path_and_query)
    })
    .await
    .map_err(|e| ApiError::internal(format!("proxy task failed: {e}")))??;
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    if let Some(value) = answer
        .content_type
        .and_then(|t| HeaderValue::from_str(&t).ok())
    {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    Ok(response)
}

async fn resource(
    cluster: &Arc<Cluster>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    path: ResourcePath,
) -> Result<Response, ApiError> {
    let def = cluster
        .read()
        .registry
        .get(&path.group, &path.version, &path.plural)
        .ok_or_else(|| ApiError::path_not_found(uri.path()))?;
    if path.namespace.is_some() && !def.namespaced {
        return Err(ApiError::path_not_found(uri.path()));
    }
    if def.namespaced && path.namespace.is_none() && *method != Method::GET {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource: {} are namespaced; use /namespaces/NAMESPACE/{}",
            def.plural, def.plural
        )));
    }
    let q = parse_query(uri);
    let acc = accept(headers);
    let dry_run = q.get("dryRun").is_some_and(|v| v == "All");
    let write_options = || -> Result<Write, ApiError> {
        Ok(Write {
            dry_run,
            field_validation: FieldValidation::from_query(
                q.get("fieldValidation").map(String::as_str),
            )?,
            warnings: Vec::new(),
        })
    };
    let ns = path.namespace.clone().unwrap_or_default();
    let watch = path.watch_prefix || flag(&q, "watch");
    let target = match path.subresource.as_deref() {
        None => Target::Main,
        Some("status") if def.status_subresource => Target::Status,
        Some("binding") if def.binding_subresource && *method == Method::POST => Target::Main,
        Some(_) => return Err(ApiError::path_not_found(uri.path())),
    };
    match (method.clone(), path.name.as_deref()) {
        (Method::GET, None) if watch => {
            watch_response(cluster, &def, path.namespace, None, &q, &acc)
        }
        (Method::GET, Some(name)) if watch => {
            watch_response(cluster, &def, path.namespace, Some(name), &q, &acc)
        }
        (Method::GET, None) => list_response(cluster, &def, path.namespace.as_deref(), &q, &acc),
        (Method::GET, Some(name)) => {
            let obj = cluster.read().get(&def, &ns, name)?;
            Ok(object_response(200, &def, &obj, &acc, &q))
        }
        (Method::POST, None) => {
            let v = decode_body(headers, &body, &format!("creating {}", def.plural))?;
            let mut write = write_options()?;
            let obj =
                cluster
                    .write()
                    .create_with(&def, path.namespace.as_deref(), v, &mut write)?;
            let r = object_response(201, &def, &obj, &acc, &q);
            Ok(with_warnings(r, &write.warnings))
        }
        (Method::POST, Some(name)) if path.subresource.as_deref() == Some("binding") => {
            let v = decode_body(headers, &body, &format!("binding pod {ns}/{name}"))?;
            cluster.write().bind(&def, &ns, name, &v)?;
            Ok(value_response(201, &success_status(201, None)))
        }
        (Method::PUT, Some(name)) => {
            let v = decode_body(headers, &body, &format!("updating {} {name}", def.plural))?;
            let mut write = write_options()?;
            let obj = cluster
                .write()
                .update_with(&def, &ns, name, v, target, &mut write)?;
            let r = object_response(200, &def, &obj, &acc, &q);
            Ok(with_warnings(r, &write.warnings))
        }
        (Method::PATCH, Some(name)) => {
            let ct = content_type(headers);
            let kind = PatchKind::from_content_type(&ct).ok_or_else(|| {
                ApiError::unsupported_media_type(format!(
                    "the body of the request was in an unknown format ({ct}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
                ))
            })?;
            if kind == PatchKind::Apply && q.get("fieldManager").is_none_or(String::is_empty) {
                return Err(ApiError::bad_request(
                    "PATCH: fieldManager is required for apply requests",
                ));
            }
            let mut write = write_options()?;
            let (obj, created) = cluster
                .write()
                .patch(&def, &ns, name, kind, &body, target, &mut write)?;
            let code = if created { 201 } else { 200 };
            let r = object_response(code, &def, &obj, &acc, &q);
            Ok(with_warnings(r, &write.warnings))
        }
        (Method::DELETE, Some(name)) if target == Target::Main => {
            let opts = delete_options(&body, &q)?;
            let deleted =
                cluster
                    .write()
                    .delete(&def, &ns, name, &opts, dry_run || opts.dry_run)?;
            Ok(object_response(200, &def, &deleted.object, &acc, &q))
        }
        (Method::DELETE, None) => {
            delete_collection(cluster, &def, path.namespace.as_deref(), &body, &q, dry_run)
        }
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "{m} is not supported on {}",
            uri.path()
        ))),
    }
}

fn delete_options(body: &[u8], q: &Query) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions::default();
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
        opts.grace_period_seconds = v.get("gracePeriodSeconds").and_then(Value::as_i64);
        opts.precondition_uid = v
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        opts.precondition_rv = v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        opts.propagation_policy = v
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string);
        opts.dry_run = v
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|x| x == "All"));
    }
    if q.get("dryRun").is_some_and(|v| v == "All") {
        opts.dry_run = true;
    }
    if let Some(g) = q.get("gracePeriodSeconds") {
        opts.grace_period_seconds = Some(
            g.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?,
        );
    }
    if let Some(p) = q.get("propagationPolicy") {
        opts.propagation_policy = Some(p.clone());
    }
    if let Some(p) = &opts.propagation_policy
        && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::bad_request(format!(
            "invalid propagationPolicy {p:?}"
        )));
    }
    Ok(opts)
}

struct Filters {
    labels: LabelSelector,
    fields: FieldSelector,
}

fn filters(def: &ResourceDef, q: &Query, name: Option<&str>) -> Result<Filters, ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("unable to parse labelSelector: {e}")))?;
    let mut fields = FieldSelector::parse(
        q.get("fieldSelector").map(String::as_str).unwrap_or(""),
        &def.group,
        &def.kind,
    )
    .map_err(|e| ApiError::bad_request(format!("unable to parse fieldSelector: {e}")))?;
    if let Some(n) = name {
        fields.0.push(crate::selectors::FieldRequirement {
            field: "metadata.name".into(),
            value: n.to_string(),
            negated: false,
        });
    }
    Ok(Filters { labels, fields })
}

fn list_response(
    cluster: &Arc<Cluster>,
    def: &Arc<ResourceDef>,
    namespace: Option<&str>,
    q: &Query,
    acc: &Accept,
) -> Result<Response, ApiError> {
    let f = filters(def, q, None)?;
    let limit: usize = match q.get("limit") {
        Some(l) => l
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        None => 0,
    };
    let (rv, items, offset, snapshot_id) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (id, offset) = token
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<usize>().ok()?)))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("invalid continue token {token:?}"))
                })?;
            let (rv, items) = cluster
                .snapshot(id)
                .ok_or_else(|| ApiError::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."))?;
            (rv, items, offset, Some(id))
        }
        None => {
            let state = cluster.read();
            let items: Vec<Arc<StoredObject>> = state
                .store
                .list(&def.storage, namespace)
                .filter(|o| f.labels.matches(&o.value) && f.fields.matches(&o.value))
                .cloned()
                .collect();
            (state.store.resource_version(), Arc::new(items), 0, None)
        }
    };
    let offset = offset.min(items.len());
    let end = if limit > 0 {
        offset.saturating_add(limit).min(items.len())
    } else {
        items.len()
    };
    let page = &items[offset..end];
    let continue_token = (end < items.len()).then(|| {
        let id = snapshot_id.unwrap_or_else(|| cluster.save_snapshot(rv, items.clone()));
        format!("{id}-{end}")
    });
    let remaining = items.len() - end;
    if *acc == Accept::Table {
        let include = IncludeObject::parse(q.get("includeObject").map(String::as_str));
        let values: Vec<Value> = page.iter().map(|o| served_form(def, &o.value)).collect();
        let t = table::table(
            def,
            values.iter(),
            rv,
            continue_token.as_deref(),
            include,
            true,
        );
        return Ok(value_response(200, &t));
    }
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = &continue_token {
        meta["continue"] = json!(c);
        meta["remainingItemCount"] = json!(remaining);
    }
    if *acc == Accept::Metadata {
        let items: Vec<Value> = page
            .iter()
            .map(|o| table::partial_object_metadata(&o.value))
            .collect();
        let list = json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items});
        return Ok(value_response(200, &list));
    }
    Ok(json_response(200, list_body(def, &meta, page)))
}

/// `{"kind":"XList",...,"items":[...]}` built from the stored bytes of each object.
fn list_body(def: &ResourceDef, meta: &Value, items: &[Arc<StoredObject>]) -> Bytes {
    let head = format!(
        "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{},\"items\":[",
        json!(def.list_kind()),
        json!(def.api_version()),
        meta
    );
    let mut out =
        Vec::with_capacity(head.len() + items.iter().map(|o| o.json.len() + 1).sum::<usize>() + 2);
    out.extend_from_slice(head.as_bytes());
    for (i, o) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&object_json(def, o));
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}

fn delete_collection(
    cluster: &Arc<Cluster>,
    def: &Arc<ResourceDef>,
    namespace: Option<&str>,
    body: &[u8],
    q: &Query,
    dry_run: bool,
) -> Result<Response, ApiError> {
    let f = filters(def, q, None)?;
    let opts = delete_options(body, q)?;
    let dry_run = dry_run || opts.dry_run;
    let mut state = cluster.write();
    let targets: Vec<(String, String)> = state
        .store
        .list(&def.storage, namespace)
        .filter(|o| f.labels.matches(&o.value) && f.fields.matches(&o.value))
        .map(|o| (o.namespace().to_string(), o.name().to_string()))
        .collect();
    let mut deleted = Vec::new();
    for (ns, name) in targets {
        match state.delete(def, &ns, &name, &opts, dry_run) {
            Ok(d) => deleted.push(d.object),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let meta = json!({"resourceVersion": state.store.resource_version().to_string()});
    Ok(json_response(200, list_body(def, &meta, &deleted)))
}

fn watch_response(
    cluster: &Arc<Cluster>,
    def: &Arc<ResourceDef>,
    namespace: Option<String>,
    name: Option<&str>,
    q: &Query,
    acc: &Accept,
) -> Result<Response, ApiError> {
    let f = filters(def, q, name)?;
    let seconds: u64 = match q.get("timeoutSeconds") {
        Some(t) => t
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        None => 0,
    };
    // Like upstream, no (or zero) timeout means the server's default watch lifetime.
    let timeout = Duration::from_secs(if seconds == 0 { 1800 } else { seconds });
    let req = WatchRequest {
        def: def.clone(),
        namespace,
        labels: f.labels,
        fields: f.fields,
        resource_version: q.get("resourceVersion").cloned(),
        bookmarks: flag(q, "allowWatchBookmarks"),
        send_initial_events: flag(q, "sendInitialEvents"),
        timeout,
        table: (*acc == Accept::Table)
            .then(|| IncludeObject::parse(q.get("includeObject").map(String::as_str))),
        metadata_only: *acc == Accept::Metadata,
    };
    let stream = watch::start(cluster.clone(), req)?;
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// group|plural|namespace|name|subresource, `-` for absent parts.
    fn res(path: &str) -> Option<String> {
        match route(path) {
            Route::Resource(p) => {
                let opt = |o: Option<String>| o.unwrap_or_else(|| "-".into());
                Some(format!(
                    "{}|{}|{}|{}|{}",
                    p.group,
                    p.plural,
                    opt(p.namespace),
                    opt(p.name),
                    opt(p.subresource)
                ))
            }
            _ => None,
        }
    }

    #[test]
    fn routes() {
        let cases = [
            ("/api/v1/namespaces/ns1/pods", "|pods|ns1|-|-"),
            ("/api/v1/namespaces/ns1", "|namespaces|-|ns1|-"),
            ("/api/v1/namespaces/ns1/status", "|namespaces|-|ns1|status"),
            ("/api/v1/namespaces/a/pods/p/binding", "|pods|a|p|binding"),
            ("/api/v1/watch/namespaces/a/pods", "|pods|a|-|-"),
            (
                "/apis/rovn.io/v1/subnets/s1/status",
                "rovn.io|subnets|-|s1|status",
            ),
        ];
        for (path, want) in cases {
            assert_eq!(res(path).as_deref(), Some(want), "{path}");
        }
        assert!(res("/api/v1/a/b/c/d").is_none());
        assert!(matches!(route("/apis/rovn.io/v1"), Route::GroupVersion(..)));
        assert!(matches!(route("/healthz"), Route::Health));
    }
}
