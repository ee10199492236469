//! `healthCheckNodePort`s: for each LoadBalancer Service with `externalTrafficPolicy: Local` the
//! agent answers HTTP on that port as kube-proxy does, 200 with the count of the Service's ready
//! endpoints on this node, 503 without one, so an external load balancer sends the Service's
//! traffic only to nodes that keep it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::convert::HealthCheck;

/// The answer for one check (pure): kube-proxy's status codes and JSON body.
pub fn response(check: &HealthCheck) -> (StatusCode, String) {
    let body = serde_json::json!({
        "service": {"namespace": check.namespace, "name": check.name},
        "localEndpoints": check.local_endpoints,
    });
    let status = if check.local_endpoints > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body.to_string())
}

struct Server {
    check: watch::Sender<HealthCheck>,
    task: JoinHandle<()>,
}

/// The running health servers, one listener per port; counts change without re-binding.
pub struct HealthServers {
    bind: IpAddr,
    servers: BTreeMap<u16, Server>,
}

impl Drop for HealthServers {
    fn drop(&mut self) {
        for server in self.servers.values() {
            server.task.abort();
        }
    }
}

impl HealthServers {
    /// Servers listening on `bind` (the agent: all addresses, as kube-proxy).
    pub fn new(bind: IpAddr) -> HealthServers {
        HealthServers {
            bind,
            servers: BTreeMap::new(),
        }
    }

    /// The ports served now.
    pub fn ports(&self) -> Vec<u16> {
        self.servers.keys().copied().collect()
    }

    /// Serves exactly `checks`: new ports are bound, gone ones closed, the others told their new
    /// count. A port that cannot be bound is logged with its Service and tried again on the next
    /// update.
    pub async fn update(&mut self, checks: &[HealthCheck]) {
        let wanted: BTreeMap<u16, &HealthCheck> = checks.iter().map(|c| (c.port, c)).collect();
        self.servers.retain(|port, server| {
            let keep = wanted.contains_key(port);
            if !keep {
                server.task.abort();
            }
            keep
        });
        for (port, check) in wanted {
            if let Some(server) = self.servers.get(&port) {
                server.check.send_if_modified(|current| {
                    let changed = current != check;
                    if changed {
                        *current = check.clone();
                    }
                    changed
                });
                continue;
            }
            let address = SocketAddr::new(self.bind, port);
            let listener = match tokio::net::TcpListener::bind(address).await {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(
                        service = format!("Service/{}/{}", check.namespace, check.name),
                        %address,
                        error = %e,
                        "cannot serve the healthCheckNodePort; retrying on the next update"
                    );
                    continue;
                }
            };
            let (tx, rx) = watch::channel(check.clone());
            let app = axum::Router::new().fallback(move || {
                let check = rx.borrow().clone();
                async move {
                    let (status, body) = response(&check);
                    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
                }
            });
            let task = tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::warn!(%address, error = %e, "healthCheckNodePort server stopped");
                }
            });
            self.servers.insert(port, Server { check: tx, task });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_with_local_endpoints_unavailable_without() {
        let mut check = HealthCheck {
            port: 32000,
            namespace: "ns".into(),
            name: "web".into(),
            local_endpoints: 2,
        };
        let (status, body) = response(&check);
        assert_eq!(status, StatusCode::OK);
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"service": {"namespace": "ns", "name": "web"}, "localEndpoints": 2})
        );
        check.local_endpoints = 0;
        let (status, body) = response(&check);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("\"localEndpoints\":0"), "{body}");
    }
}
