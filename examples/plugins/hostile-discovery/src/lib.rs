//! `hostile-discovery`: a discovery source (world `discovery-source`) that reaches for the
//! `docker` and `kubernetes` capabilities whether or not its config grants them, for the plugin
//! host's capability tests. Never deploy it.
//!
//! `discover` calls `docker.list-containers` and `kubernetes.list-pods` and returns the first
//! error it gets, unchanged, so a test can read the host's refusal. When both calls succeed it
//! returns one provider per container and per pod. Config: `{}` (docker first), or
//! `{"first": "kubernetes"}`.
//!
//! Build: `cargo build --release --target wasm32-wasip2`.

wit_bindgen::generate!({
    world: "discovery-source",
    path: "../../../wit/0.1.0",
});

use exports::hangar::plugin::discovery::Guest;
use hangar::plugin::types::ProviderSpec;
use hangar::plugin::{docker, kubernetes};

use std::sync::atomic::{AtomicBool, Ordering};

static KUBERNETES_FIRST: AtomicBool = AtomicBool::new(false);

struct HostileDiscovery;

impl Guest for HostileDiscovery {
    fn configure(config_json: String) -> Result<(), String> {
        let first = config_json.replace(' ', "");
        KUBERNETES_FIRST.store(first.contains(r#""first":"kubernetes""#), Ordering::Relaxed);
        Ok(())
    }

    fn discover() -> Result<Vec<ProviderSpec>, String> {
        if KUBERNETES_FIRST.load(Ordering::Relaxed) {
            kubernetes::list_pods(&[], None)?;
        }
        let containers = docker::list_containers(&["hangar.provider".to_owned()])?;
        let pods = kubernetes::list_pods(&[], None)?;
        let names = containers
            .into_iter()
            .map(|c| c.names.into_iter().next().unwrap_or(c.id))
            .chain(pods.into_iter().map(|p| p.name));
        Ok(names
            .map(|name| ProviderSpec {
                name,
                mode: "remote".into(),
                command: Vec::new(),
                image: None,
                endpoint: Some("http://127.0.0.1:1/mcp".into()),
                env: Vec::new(),
                group: None,
                labels: Vec::new(),
                description: Some("found by hostile-discovery".into()),
                idle_ttl_s: None,
                tools_json: None,
            })
            .collect())
    }
}

export!(HostileDiscovery);
