//! What the agent reads from and writes to the Kubernetes API: its Node (chassis annotation,
//! join address), the pods it plugs (allocation annotations), Subnets (routes) and Events.

pub mod events;
pub mod node;
pub mod pods;
pub mod subnets;

/// Builds the API client from `--kubeconfig`, or infers one (in-cluster, then `~/.kube`).
pub async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    use anyhow::Context;
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("inferring the Kubernetes client configuration")?,
    };
    kube::Client::try_from(config).context("building the Kubernetes client")
}
