//! `pods/exec` and `pods/log`: as the real API server does, the request goes to the kubelet of
//! the pod's node (`status.addresses` InternalIP, `status.daemonEndpoints.kubeletEndpoint.Port`)
//! as `/exec/NS/POD/CONTAINER` or `/containerLogs/NS/POD/CONTAINER`. An exec's WebSocket
//! upgrade is forwarded, and on `101 Switching Protocols` the two upgraded connections are
//! spliced both ways: the WebSocket runs between the client and the kubelet, this server never
//! reads it. Logs stream through (`follow=true` included). The connection to the kubelet is
//! made from `--proxy-netns`, like the pod proxy's.
//!
//! Only WebSocket clients are served (kubectl since 1.30 and kube-rs use it first); a SPDY
//! upgrade reaches the kubelet, which refuses it.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::server::Cluster;
use crate::status::ApiError;

/// How long connecting to a kubelet may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The discovery entries of the pod subresources served here, as the real server lists them.
pub fn pod_subresources() -> [Value; 2] {
    [
        json!({"name": "pods/exec", "singularName": "", "namespaced": true,
            "kind": "PodExecOptions", "verbs": ["create", "get"]}),
        json!({"name": "pods/log", "singularName": "", "namespaced": true,
            "kind": "Pod", "verbs": ["get"]}),
    ]
}

/// Where a request for a pod's container goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletTarget {
    /// The kubelet's address.
    pub addr: SocketAddr,
    /// The container (given, or the pod's only one).
    pub container: String,
}

fn container_names(pod: &Value) -> Vec<&str> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect()
}

/// The container a request names: the one asked for, which must exist, or the only one.
/// Errors worded as the real server's. Pure.
pub fn pick_container(pod: &Value, name: &str, asked: Option<&str>) -> Result<String, ApiError> {
    let names = container_names(pod);
    match asked.filter(|c| !c.is_empty()) {
        Some(c) if names.contains(&c) => Ok(c.to_owned()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None => match names.as_slice() {
            [only] => Ok((*only).to_owned()),
            [] => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}"
            ))),
            many => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                many.join(" ")
            ))),
        },
    }
}

/// The node a pod is bound to, or the real server's refusal. Pure.
pub fn pod_node<'a>(pod: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("pod {name} does not have a host assigned")))
}

/// The kubelet of `node`: its InternalIP and published kubelet port. Pure.
pub fn kubelet_addr(node: &Value) -> Result<SocketAddr, ApiError> {
    let name = node
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let addresses = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ip: IpAddr = addresses
        .iter()
        .filter(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))
        .find_map(|a| a.get("address").and_then(Value::as_str)?.parse().ok())
        .ok_or_else(|| {
            ApiError::service_unavailable(format!(
                "no preferred addresses found for node {name}; known addresses: {}",
                Value::Array(addresses.clone())
            ))
        })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            ApiError::service_unavailable(format!(
                "node {name} publishes no kubelet port (status.daemonEndpoints.kubeletEndpoint.Port)"
            ))
        })?;
    Ok(SocketAddr::new(ip, port))
}

/// The kubelet's query for a `pods/exec` query: the command and streams, in the kubelet's
/// parameter names as the real server rewrites them (`container` goes into the path). Pure.
pub fn exec_query(query: &str) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let key = match key.as_ref() {
            "command" => "command",
            "stdin" => "input",
            "stdout" => "output",
            "stderr" => "error",
            "tty" => "tty",
            _ => continue,
        };
        out.append_pair(key, &value);
    }
    out.finish()
}

/// The kubelet's query for a `pods/log` query: everything but `container`. Pure.
pub fn log_query(query: &str) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key != "container" {
            out.append_pair(&key, &value);
        }
    }
    out.finish()
}

fn query_value(query: &str, wanted: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == wanted)
        .map(|(_, v)| v.into_owned())
}

fn error_response(e: &ApiError) -> Response {
    let mut r = Response::new(Body::from(e.to_status().to_string()));
    *r.status_mut() = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Finds the pod's kubelet and container, or says why not.
fn target(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    query: &str,
) -> Result<Option<KubeletTarget>, ApiError> {
    let state = cluster.read();
    let pods = state
        .registry
        .get("", "v1", "pods")
        .ok_or_else(|| ApiError::internal("pods are not served"))?;
    let pod = state.get(&pods, namespace, name)?;
    let container = pick_container(&pod.value, name, query_value(query, "container").as_deref())?;
    let Ok(node_name) = pod_node(&pod.value, name) else {
        return Ok(None);
    };
    let nodes = state
        .registry
        .get("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("nodes are not served"))?;
    let node = state.get(&nodes, "", node_name)?;
    Ok(Some(KubeletTarget {
        addr: kubelet_addr(&node.value)?,
        container,
    }))
}

/// A connection to the kubelet at `addr`, from `netns`.
async fn connect(
    netns: Option<String>,
    addr: SocketAddr,
) -> Result<tokio::net::TcpStream, ApiError> {
    let unreachable = |e: String| {
        ApiError::service_unavailable(format!("error dialing backend: dial tcp {addr}: {e}"))
    };
    let stream = tokio::task::spawn_blocking(move || {
        crate::listen::in_netns(netns.as_deref(), move || {
            TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        })
    })
    .await
    .map_err(|e| unreachable(e.to_string()))?
    .map_err(|e| unreachable(e.to_string()))?
    .map_err(|e| unreachable(e.to_string()))?;
    stream
        .set_nonblocking(true)
        .map_err(|e| unreachable(e.to_string()))?;
    tokio::net::TcpStream::from_std(stream).map_err(|e| unreachable(e.to_string()))
}

/// Sends `req`'s method and headers (and no body) to the kubelet as `path_and_query`; hands
/// back its answer, with the client's upgrade spliced to the kubelet's on a 101.
async fn forward(
    cluster: &Cluster,
    addr: SocketAddr,
    mut req: Request,
    path_and_query: String,
) -> Result<Response, ApiError> {
    let stream = connect(cluster.proxy_netns.clone(), addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream))
            .await
            .map_err(|e| {
                ApiError::service_unavailable(format!("error talking to kubelet {addr}: {e}"))
            })?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(%addr, "kubelet connection: {e}");
        }
    });
    let mut builder = hyper::Request::builder()
        .method(req.method().clone())
        .uri(path_and_query);
    for (name, value) in req.headers() {
        if name != header::HOST && name != header::CONTENT_LENGTH && name != header::AUTHORIZATION {
            builder = builder.header(name, value);
        }
    }
    let outgoing = builder
        .header(header::HOST, addr.to_string())
        .body(Body::empty())
        .map_err(|e| ApiError::internal(format!("building the kubelet request: {e}")))?;
    let client_upgrade = hyper::upgrade::on(&mut req);
    let mut answer = sender.send_request(outgoing).await.map_err(|e| {
        ApiError::service_unavailable(format!("error talking to kubelet {addr}: {e}"))
    })?;
    let mut response = Response::new(Body::empty());
    *response.status_mut() = answer.status();
    *response.headers_mut() = answer.headers().clone();
    if answer.status() == StatusCode::SWITCHING_PROTOCOLS {
        let kubelet_upgrade = hyper::upgrade::on(&mut answer);
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, kubelet_upgrade) {
                Ok((client, kubelet)) => {
                    let (mut client, mut kubelet) = (TokioIo::new(client), TokioIo::new(kubelet));
                    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await {
                        tracing::debug!(%addr, "exec stream ended: {e}");
                    }
                }
                Err(e) => tracing::warn!(%addr, "exec upgrade failed: {e}"),
            }
        });
    } else {
        *response.body_mut() = Body::new(answer.into_body());
    }
    Ok(response)
}

async fn relay(
    cluster: Arc<Cluster>,
    namespace: String,
    name: String,
    req: Request,
    exec: bool,
) -> Result<Response, ApiError> {
    let allowed = if exec {
        [Method::GET, Method::POST].contains(req.method())
    } else {
        req.method() == Method::GET
    };
    if !allowed {
        return Err(ApiError::method_not_allowed(format!(
            "{} is not allowed on pods/{}",
            req.method(),
            if exec { "exec" } else { "log" }
        )));
    }
    let query = req.uri().query().unwrap_or("").to_owned();
    let Some(target) = target(&cluster, &namespace, &name, &query)? else {
        if exec {
            return Err(ApiError::bad_request(format!(
                "pod {name} does not have a host assigned"
            )));
        }
        // The real server answers an unscheduled pod's log with nothing.
        return Ok(Response::new(Body::empty()));
    };
    let path = if exec {
        format!(
            "/exec/{namespace}/{name}/{}?{}",
            target.container,
            exec_query(&query)
        )
    } else {
        format!(
            "/containerLogs/{namespace}/{name}/{}?{}",
            target.container,
            log_query(&query)
        )
    };
    forward(&cluster, target.addr, req, path).await
}

/// `GET|POST /api/v1/namespaces/NS/pods/NAME/exec`.
pub async fn exec(
    State(cluster): State<Arc<Cluster>>,
    Path((namespace, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    let uri = req.uri().clone();
    let result = relay(cluster, namespace, name, req, true).await;
    respond(result, "exec", &uri)
}

/// `GET /api/v1/namespaces/NS/pods/NAME/log`.
pub async fn log(
    State(cluster): State<Arc<Cluster>>,
    Path((namespace, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    let uri = req.uri().clone();
    let result = relay(cluster, namespace, name, req, false).await;
    respond(result, "log", &uri)
}

fn respond(result: Result<Response, ApiError>, what: &str, uri: &axum::http::Uri) -> Response {
    match result {
        Ok(r) => {
            tracing::info!(%uri, status = r.status().as_u16(), "pods/{what} relayed");
            r
        }
        Err(e) => {
            tracing::info!(%uri, status = e.code, error = %e.message, "pods/{what} failed");
            error_response(&e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: &[&str], node: Option<&str>) -> Value {
        let cs: Vec<Value> = containers.iter().map(|c| json!({"name": c})).collect();
        json!({"spec": {"containers": cs, "nodeName": node}})
    }

    #[test]
    fn containers_default_to_the_only_one() {
        let one = pod(&["app"], Some("n1"));
        assert_eq!(pick_container(&one, "p", None).ok().as_deref(), Some("app"));
        assert_eq!(
            pick_container(&one, "p", Some("app")).ok().as_deref(),
            Some("app")
        );
        let bad = pick_container(&one, "p", Some("nope"));
        assert!(
            bad.is_err_and(
                |e| e.code == 400 && e.message == "container nope is not valid for pod p"
            )
        );
        let two = pod(&["a", "b"], Some("n1"));
        assert!(pick_container(&two, "p", None).is_err_and(|e| {
            e.code == 400
                && e.message
                    .starts_with("a container name must be specified for pod p")
        }));
        assert_eq!(
            pick_container(&two, "p", Some("b")).ok().as_deref(),
            Some("b")
        );
    }

    #[test]
    fn nodes_publish_the_kubelet_address() {
        let node = json!({
            "metadata": {"name": "n1"},
            "status": {
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "172.30.0.11"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            },
        });
        assert_eq!(
            kubelet_addr(&node).map(|a| a.to_string()).ok().as_deref(),
            Some("172.30.0.11:10250")
        );
        let no_port =
            json!({"status": {"addresses": [{"type": "InternalIP", "address": "172.30.0.11"}]}});
        assert!(kubelet_addr(&no_port).is_err_and(|e| e.code == 503));
        let no_ip = json!({"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}});
        assert!(kubelet_addr(&no_ip).is_err_and(|e| e.message.contains("no preferred addresses")));
        assert!(pod_node(&pod(&["a"], None), "p").is_err_and(|e| e.code == 400));
        assert_eq!(pod_node(&pod(&["a"], Some("n1")), "p").ok(), Some("n1"));
    }

    #[test]
    fn queries_become_the_kubelets() {
        assert_eq!(
            exec_query(
                "command=sh&command=-c&command=echo%20hi&container=app&stdin=true&stdout=true&stderr=true&tty=false"
            ),
            "command=sh&command=-c&command=echo+hi&input=true&output=true&error=true&tty=false"
        );
        assert_eq!(
            log_query("container=app&follow=true&tailLines=3"),
            "follow=true&tailLines=3"
        );
    }

    #[test]
    fn discovery_lists_exec_and_log() {
        let names: Vec<Value> = pod_subresources()
            .iter()
            .map(|r| r["name"].clone())
            .collect();
        assert_eq!(names, vec![json!("pods/exec"), json!("pods/log")]);
    }
}
