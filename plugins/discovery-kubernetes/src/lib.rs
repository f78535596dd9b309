//! `discovery-kubernetes`: a discovery source (WIT `hangar:plugin@0.2.0`, world
//! `discovery-source`) that finds remote providers in the pods of a Kubernetes cluster,
//! through the host's `kubernetes` capability (the plugin's config must grant `kubernetes`;
//! the grant's `namespaces` bound what it may read).
//!
//! A pod is a provider when it is `Running`, has an IP, and is annotated
//! `mcp-hangar.io/enabled: "true"`. Its other annotations (the older `mcp.hangar.io/` prefix
//! is read too; the new one wins when both are set):
//!
//! | annotation                  | meaning                                                   |
//! |-----------------------------|-----------------------------------------------------------|
//! | `mcp-hangar.io/name`        | provider id (default: the pod's name)                     |
//! | `mcp-hangar.io/mode`        | `remote` (the default and the only mode a pod can be)     |
//! | `mcp-hangar.io/port`        | the port serving MCP (default: the first container port)  |
//! | `mcp-hangar.io/path`        | the URL path (default `/mcp`)                             |
//! | `mcp-hangar.io/group`       | the group the provider joins (`group` of the spec): the config's group of that id, or one made for it |
//! | `mcp-hangar.io/weight`      | its weight in that group, 1-100 (default 1; `hangar.weight`) |
//! | `mcp-hangar.io/health-path` | an HTTP path the hangar may probe (`hangar.health-path`)  |
//! | `mcp-hangar.io/ttl`         | seconds it stays registered after last seen (`hangar.ttl`) |
//!
//! The endpoint is `http://POD_IP:PORT/mcp`. The spec's labels carry `hangar.source`
//! (`kubernetes`), `hangar.pod` (`namespace/name`), `hangar.ready` (`true`/`false`),
//! `hangar.ttl`, `hangar.weight` and `hangar.health-path` when annotated.
//!
//! An invalid pod (bad name, port, mode or ttl; a name another pod already has) is reported
//! (a warning in the hangar's log naming the pod and the annotation) and left out; the others
//! are still answered.
//!
//! Config: `{"namespaces": ["mcp"], "label_selector": "app.kubernetes.io/part-of=mcp"}`; with
//! no `namespaces`, every namespace the grant allows. `type` and `mode` (the engine's own
//! keys of a source) are accepted and ignored.
//!
//! Build: `cargo build --release --target wasm32-wasip2`.

use hangar_plugin_sdk::{
    Config as PluginConfig, DiscoverySource, Level, Pod, ProviderSpec, kubernetes, log,
    provider_name_problem,
};
use serde::Deserialize;

#[cfg(test)]
mod tests;

const PREFIX: &str = "mcp-hangar.io/";
const OLD_PREFIX: &str = "mcp.hangar.io/";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default)]
    label_selector: Option<String>,
    /// The discovery engine's own keys of a source, ignored here.
    #[serde(default, rename = "type")]
    _type: Option<serde_json::Value>,
    #[serde(default, rename = "mode")]
    _mode: Option<serde_json::Value>,
}

#[derive(Default)]
struct KubernetesDiscovery {
    config: Config,
}

impl DiscoverySource for KubernetesDiscovery {
    fn configure(&mut self, config: &PluginConfig) -> Result<(), String> {
        self.config = config.parse()?;
        if let Some(empty) = self.config.namespaces.iter().find(|n| n.trim().is_empty()) {
            return Err(format!("invalid config: namespace {empty:?} is empty"));
        }
        Ok(())
    }

    fn discover(&mut self) -> Result<Vec<ProviderSpec>, String> {
        let namespaces: Vec<&str> = self.config.namespaces.iter().map(String::as_str).collect();
        let pods = kubernetes::list_pods(&namespaces, self.config.label_selector.as_deref())?;
        let (found, problems) = providers(&pods);
        for problem in problems {
            log(Level::Warn, &problem);
        }
        Ok(found)
    }
}

/// The providers among `pods`, and one report per annotated pod left out.
fn providers(pods: &[Pod]) -> (Vec<ProviderSpec>, Vec<String>) {
    let mut sorted: Vec<&Pod> = pods.iter().collect();
    sorted.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let mut found: Vec<ProviderSpec> = Vec::new();
    let mut problems = Vec::new();
    for pod in sorted {
        if annotation(pod, "enabled") != Some("true")
            || pod.phase != "Running"
            || pod.pod_ip.as_deref().is_none_or(str::is_empty)
        {
            continue;
        }
        match provider(pod) {
            Ok(spec) if found.iter().any(|f| f.name == spec.name) => problems.push(format!(
                "pod {}/{} is left out: provider `{}` is already found in another pod; give \
                 one of them another `{PREFIX}name`",
                pod.namespace, pod.name, spec.name
            )),
            Ok(spec) => found.push(spec),
            Err(why) => problems.push(format!(
                "pod {}/{} is left out: {why}",
                pod.namespace, pod.name
            )),
        }
    }
    (found, problems)
}

fn provider(pod: &Pod) -> Result<ProviderSpec, String> {
    let name = annotation(pod, "name").unwrap_or(&pod.name);
    if let Some(problem) = provider_name_problem(name) {
        return Err(format!(
            "`{name}` is not a provider id ({problem}); set `{PREFIX}name` to one matching \
             `^[a-zA-Z][a-zA-Z0-9_-]{{0,63}}$`"
        ));
    }
    match annotation(pod, "mode").unwrap_or("remote") {
        "remote" | "http" => {}
        other => {
            return Err(format!(
                "`{PREFIX}mode` is `{other}`; a pod is reached over HTTP, so only `remote`"
            ));
        }
    }
    let port = match annotation(pod, "port") {
        Some(text) => text
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("`{PREFIX}port` is `{text}`; give a port number 1-65535"))?,
        None => *pod.container_ports.first().ok_or_else(|| {
            format!("no `{PREFIX}port` and no container port declared; annotate the port")
        })?,
    };
    let path = annotation(pod, "path").unwrap_or("/mcp");
    check_path("path", path)?;
    let ip = pod.pod_ip.as_deref().unwrap_or_default();
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_owned()
    };
    let mut spec = ProviderSpec::remote(name, format!("http://{host}:{port}{path}"));
    spec.labels = vec![
        ("hangar.source".to_owned(), "kubernetes".to_owned()),
        (
            "hangar.pod".to_owned(),
            format!("{}/{}", pod.namespace, pod.name),
        ),
        ("hangar.ready".to_owned(), pod.ready.to_string()),
    ];
    if let Some(health) = annotation(pod, "health-path") {
        check_path("health-path", health)?;
        spec.labels
            .push(("hangar.health-path".to_owned(), health.to_owned()));
    }
    if let Some(ttl) = annotation(pod, "ttl") {
        let seconds = ttl
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| format!("`{PREFIX}ttl` is `{ttl}`; give a whole number of seconds"))?;
        spec.labels
            .push(("hangar.ttl".to_owned(), seconds.to_string()));
    }
    // Passed on as written: the hangar checks it (1-100) and quarantines a bad one.
    if let Some(weight) = annotation(pod, "weight") {
        spec.labels
            .push(("hangar.weight".to_owned(), weight.trim().to_owned()));
    }
    if let Some(group) = annotation(pod, "group").filter(|g| !g.is_empty()) {
        if let Some(problem) = provider_name_problem(group) {
            return Err(format!(
                "`{PREFIX}group` is `{group}`, not a group id: {problem}"
            ));
        }
        spec.group = Some(group.to_owned());
    }
    spec.description = Some(format!("pod {}/{}", pod.namespace, pod.name));
    Ok(spec)
}

/// The annotation `key` under the current prefix, else under the older one.
fn annotation<'p>(pod: &'p Pod, key: &str) -> Option<&'p str> {
    let find = |prefix: &str| {
        pod.annotations
            .iter()
            .find(|(k, _)| k.strip_prefix(prefix) == Some(key))
            .map(|(_, v)| v.as_str())
    };
    find(PREFIX).or_else(|| find(OLD_PREFIX))
}

fn check_path(key: &str, path: &str) -> Result<(), String> {
    if path.starts_with('/') && !path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(())
    } else {
        Err(format!(
            "`{PREFIX}{key}` is `{path}`; it must start with `/` and hold no spaces"
        ))
    }
}

// Only the wasm build exports it: a native build (for `cargo test`) cannot link its export names.
#[cfg(target_arch = "wasm32")]
hangar_plugin_sdk::export_discovery_source!(KubernetesDiscovery);
