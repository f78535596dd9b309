//! `hostile-discovery`: a discovery source (world `discovery-source`, WIT
//! `hangar:plugin@0.2.0`) that reaches for the `docker` and `kubernetes` capabilities whether
//! or not its config grants them, for the plugin host's capability tests. Never deploy it.
//!
//! `discover` calls `docker.list-containers` and `kubernetes.list-pods` and returns the first
//! error it gets, unchanged, so a test can read the host's refusal. When both calls succeed it
//! returns one provider per container and per pod. Config: `{}` (docker first), or
//! `{"first": "kubernetes"}`.
//!
//! Build: `cargo build --release --target wasm32-wasip2`.

use hangar_plugin_sdk::{Config, DiscoverySource, ProviderSpec, docker, kubernetes};

#[derive(Default)]
struct HostileDiscovery {
    kubernetes_first: bool,
}

impl DiscoverySource for HostileDiscovery {
    fn configure(&mut self, config: &Config) -> Result<(), String> {
        let first = config.json().replace(' ', "");
        self.kubernetes_first = first.contains(r#""first":"kubernetes""#);
        Ok(())
    }

    fn discover(&mut self) -> Result<Vec<ProviderSpec>, String> {
        if self.kubernetes_first {
            kubernetes::list_pods(&[], None)?;
        }
        let containers = docker::list_containers(&["hangar.provider"])?;
        let pods = kubernetes::list_pods(&[], None)?;
        let names = containers
            .into_iter()
            .map(|c| c.names.into_iter().next().unwrap_or(c.id))
            .chain(pods.into_iter().map(|p| p.name));
        Ok(names
            .map(|name| ProviderSpec {
                description: Some("found by hostile-discovery".into()),
                ..ProviderSpec::remote(name, "http://127.0.0.1:1/mcp")
            })
            .collect())
    }
}

hangar_plugin_sdk::export_discovery_source!(HostileDiscovery);
