//! `healthCheckNodePort` servers over real HTTP, inside a namespace of the test's own: 200 with
//! the local endpoint count, 503 without one, the count changing without a re-bind, and the port
//! closed once the Service no longer asks for it. Needs root and `ip`.

mod netdev_support;

use std::net::{IpAddr, Ipv4Addr};

use netdev_support::Netns;
use rovn_node::agent::gateway::convert::HealthCheck;
use rovn_node::agent::gateway::health::HealthServers;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PORT: u16 = 32100;

/// `GET /` on 127.0.0.1:PORT: the status code and the body, or the connection error.
async fn get() -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, PORT)).await?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn check(local_endpoints: usize) -> HealthCheck {
    HealthCheck {
        port: PORT,
        namespace: "shop".into(),
        name: "front".into(),
        local_endpoints,
    }
}

#[test]
fn health_check_node_ports_answer_like_kube_proxy() {
    let ns = Netns::new("gwhealth");
    ns.run(|| async {
        let mut servers = HealthServers::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
        servers.update(&[check(2)]).await;
        assert_eq!(servers.ports(), [PORT]);
        let (status, body) = get().await.expect("GET");
        assert_eq!(status, 200);
        let parsed: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
        assert_eq!(
            parsed,
            serde_json::json!({"service": {"namespace": "shop", "name": "front"}, "localEndpoints": 2})
        );

        servers.update(&[check(0)]).await;
        let (status, body) = get().await.expect("GET");
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("\"localEndpoints\":0"), "{body}");

        servers.update(&[]).await;
        assert!(servers.ports().is_empty());
        // The listener task is aborted; give the runtime a turn to drop it.
        let mut closed = false;
        for _ in 0..50 {
            if get().await.is_err() {
                closed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(closed, "the port must close once no Service asks for it");
    });
}
