//! Shared helpers: an in-process server on 127.0.0.1:0 and a kube-rs client for it.

#![allow(dead_code)]

pub mod kubectl;

use rovn_kubesim::{Config, RunningServer};

/// A running server and a client talking to it; the server stops when dropped.
pub struct TestServer {
    pub server: RunningServer,
    pub client: kube::Client,
}

/// Starts a server with default settings.
pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

/// Starts a server after letting the test adjust its configuration.
pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
    let mut config = Config {
        listen: vec!["127.0.0.1:0".parse().expect("literal listen spec")],
        ..Config::default()
    };
    adjust(&mut config);
    let server = rovn_kubesim::start(config)
        .await
        .expect("server starts on 127.0.0.1:0");
    let client = client_for(&server.url());
    TestServer { server, client }
}

/// A kube-rs client for a plain-HTTP server URL.
pub fn client_for(url: &str) -> kube::Client {
    let uri: http::Uri = url.parse().expect("server URL parses");
    let mut config = kube::Config::new(uri);
    // Answers as they are: kube-rs would retry a 503 for minutes.
    config.default_retry = false;
    kube::Client::try_from(config).expect("kube client builds")
}

/// A name no other test (or concurrently running lab) uses.
pub fn unique(prefix: &str) -> String {
    rovn_testkit::unique::name(&format!("{prefix}-"))
}

/// The HTTP status code of a kube API error, if it is one.
pub fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// The Status reason of a kube API error.
pub fn api_reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.reason.clone(),
        other => format!("not an API error: {other}"),
    }
}
