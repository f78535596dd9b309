//! The host capabilities a discovery source may be granted: a read-only view of a Docker (or
//! Podman) engine through bollard (`docker`), and of a Kubernetes cluster through kube
//! (`kubernetes`). `sandbox` links them for every discovery source and asks `Capabilities`
//! whether the plugin holds the grant before anything is reached.
//!
//! Answers are plain records (`Container`, `Pod`) here; `sandbox` copies them into the WIT
//! types of the plugin's version.
//!
//! Deliberately absent:
//! - No write, exec, log or secret access: only listing containers and pods, the two calls
//!   the WIT interfaces have.
//! - No call without a deadline: each one ends at the plugin's call deadline or after
//!   `CALL_TIMEOUT`, whichever comes first, with an error the plugin can report (the epoch
//!   deadline does not reach a host call, and the async backstop would drop the whole call).
//! - No unbounded answer: at most `MAX_ITEMS` containers or pods per call.

mod docker;
mod kubernetes;

use std::time::{Duration, Instant};

use crate::config::{PluginGrant, PluginSpec};

/// Longest a single host call may wait on an engine or an API server, even when the plugin's
/// own deadline is later.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Most containers or pods one call answers; past it the call fails rather than cut the list
/// (a cut list would make an authoritative source drop providers that still exist).
const MAX_ITEMS: usize = 10_000;

/// A container as the `docker` capability reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Container {
    pub id: String,
    /// Without the leading `/`.
    pub names: Vec<String>,
    pub image: String,
    /// Sorted by key.
    pub labels: Vec<(String, String)>,
    /// `running`, `exited`, …
    pub state: String,
    /// Network name and the container's IP on it, sorted by network name; networks without
    /// an IP (`none`, `host`) are left out.
    pub networks: Vec<(String, String)>,
}

/// A pod as the `kubernetes` capability reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Pod {
    pub namespace: String,
    pub name: String,
    /// Sorted by key.
    pub labels: Vec<(String, String)>,
    /// Sorted by key.
    pub annotations: Vec<(String, String)>,
    pub phase: String,
    pub pod_ip: Option<String>,
    pub ready: bool,
    /// Ports declared by the pod's containers, in declaration order, without repeats.
    pub container_ports: Vec<u16>,
}

/// What one loaded plugin may reach, built from its spec's `grants:`.
pub(super) struct Capabilities {
    plugin: String,
    docker: Option<docker::Docker>,
    kubernetes: Option<kubernetes::Kubernetes>,
}

impl Capabilities {
    pub fn new(spec: &PluginSpec) -> Self {
        let granted = |grant| spec.grants.contains(&grant);
        Self {
            plugin: spec.name.clone(),
            docker: granted(PluginGrant::Docker)
                .then(|| docker::Docker::new(&spec.grant_settings.docker)),
            kubernetes: granted(PluginGrant::Kubernetes)
                .then(|| kubernetes::Kubernetes::new(&spec.name, &spec.grant_settings.kubernetes)),
        }
    }

    /// `docker.list-containers`, refused unless granted.
    pub async fn list_containers(
        &self,
        label_filters: Vec<String>,
        deadline: Instant,
    ) -> Result<Vec<Container>, String> {
        let docker = self
            .docker
            .as_ref()
            .ok_or_else(|| self.not_granted(PluginGrant::Docker))?;
        bounded(
            "docker",
            deadline,
            docker.list_containers(&self.plugin, label_filters),
        )
        .await
    }

    /// `kubernetes.list-pods`, refused unless granted.
    pub async fn list_pods(
        &self,
        namespaces: Vec<String>,
        label_selector: Option<String>,
        deadline: Instant,
    ) -> Result<Vec<Pod>, String> {
        let kubernetes = self
            .kubernetes
            .as_ref()
            .ok_or_else(|| self.not_granted(PluginGrant::Kubernetes))?;
        bounded(
            "kubernetes",
            deadline,
            kubernetes.list_pods(namespaces, label_selector),
        )
        .await
    }

    fn not_granted(&self, grant: PluginGrant) -> String {
        let name = grant.as_str();
        format!(
            "plugin `{}` was not granted `{name}`; add `grants: [{name}]` to its config",
            self.plugin
        )
    }
}

impl std::fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capabilities")
            .field("docker", &self.docker.is_some())
            .field("kubernetes", &self.kubernetes.is_some())
            .finish()
    }
}

/// Runs `call` until `deadline` or `CALL_TIMEOUT`, whichever is first.
async fn bounded<T>(
    what: &str,
    deadline: Instant,
    call: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    let now = Instant::now();
    let budget = deadline.saturating_duration_since(now).min(CALL_TIMEOUT);
    match tokio::time::timeout(budget, call).await {
        Ok(answer) => answer,
        Err(_) => Err(format!(
            "the {what} capability did not answer within {} ms (what was left of the plugin's \
             `timeout_ms`, at most {} s); raise `timeout_ms` or check that the {what} API is \
             healthy",
            budget.as_millis(),
            CALL_TIMEOUT.as_secs()
        )),
    }
}

/// `map`'s entries as pairs sorted by key (an API's maps have no order of their own).
fn sorted_pairs<'a>(
    map: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = map
        .into_iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    pairs.sort();
    pairs
}
