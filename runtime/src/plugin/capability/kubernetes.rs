//! `kubernetes.list-pods` through kube: a client made once per loaded plugin from its grant
//! (`kubeconfig` and `context`, else `KUBECONFIG`/`~/.kube/config`, else the in-cluster
//! service account), and the grant's `namespaces` enforced before any request.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod as KubePod;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::{MAX_ITEMS, Pod};
use crate::config::{KubernetesGrant, namespace_problem};

/// Pods per list request; larger lists are read page by page (`continue`).
const PAGE: u32 = 500;
/// How long the API server has to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest label selector accepted.
const MAX_SELECTOR_BYTES: usize = 4096;

/// The granted `kubernetes` capability of one plugin.
pub(super) struct Kubernetes {
    plugin: String,
    grant: KubernetesGrant,
    /// Made on first use; a failure is not kept, so a kubeconfig fixed later is picked up.
    /// Never held across an `.await`: the client is cloned out (it is a handle).
    client: Mutex<Option<Client>>,
}

impl Kubernetes {
    pub fn new(plugin: &str, grant: &KubernetesGrant) -> Self {
        Self {
            plugin: plugin.to_owned(),
            grant: grant.clone(),
            client: Mutex::new(None),
        }
    }

    /// Pods in `namespaces` (every namespace the grant allows when empty) matching
    /// `label_selector`.
    pub async fn list_pods(
        &self,
        namespaces: Vec<String>,
        label_selector: Option<String>,
    ) -> Result<Vec<Pod>, String> {
        let scope = self.scope(namespaces)?;
        let selector = label_selector.filter(|s| !s.trim().is_empty());
        if let Some(selector) = &selector
            && (selector.len() > MAX_SELECTOR_BYTES || selector.chars().any(char::is_control))
        {
            return Err(format!(
                "plugin `{}` passed a label selector of {} bytes or with control characters; \
                 at most {MAX_SELECTOR_BYTES} printable bytes are accepted",
                self.plugin,
                selector.len()
            ));
        }
        let client = self.client().await?;
        let mut pods = Vec::new();
        match scope {
            Scope::All => {
                let api: Api<KubePod> = Api::all(client);
                list_into(&api, "every namespace", selector.as_deref(), &mut pods).await?;
            }
            Scope::Namespaces(namespaces) => {
                for namespace in &namespaces {
                    let api: Api<KubePod> = Api::namespaced(client.clone(), namespace);
                    let what = format!("namespace `{namespace}`");
                    list_into(&api, &what, selector.as_deref(), &mut pods).await?;
                }
            }
        }
        Ok(pods)
    }

    /// Which namespaces a request may read: the asked ones when the grant allows each; the
    /// grant's when none are asked; every namespace when neither names any.
    fn scope(&self, asked: Vec<String>) -> Result<Scope, String> {
        for namespace in &asked {
            if let Some(problem) = namespace_problem(namespace) {
                return Err(format!(
                    "plugin `{}` asked for pods in `{namespace}`, which is not a namespace \
                     name: {problem}",
                    self.plugin
                ));
            }
        }
        let granted = &self.grant.namespaces;
        if granted.is_empty() {
            return Ok(if asked.is_empty() {
                Scope::All
            } else {
                Scope::Namespaces(dedup(asked))
            });
        }
        if asked.is_empty() {
            return Ok(Scope::Namespaces(granted.clone()));
        }
        if let Some(outside) = asked.iter().find(|n| !granted.contains(n)) {
            return Err(format!(
                "plugin `{}` asked for pods in namespace `{outside}`, which its `kubernetes` \
                 grant does not include (granted: {}); add it to the grant's `namespaces` or \
                 remove it from the plugin's config",
                self.plugin,
                granted.join(", ")
            ));
        }
        Ok(Scope::Namespaces(dedup(asked)))
    }

    async fn client(&self) -> Result<Client, String> {
        let cached = self
            .client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(client) = cached {
            return Ok(client);
        }
        let mut config = self.config().await?;
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        let client = Client::try_from(config).map_err(|err| {
            format!(
                "cannot make a Kubernetes client for plugin `{}`: {err}",
                self.plugin
            )
        })?;
        *self.client.lock().unwrap_or_else(|e| e.into_inner()) = Some(client.clone());
        Ok(client)
    }

    async fn config(&self) -> Result<Config, String> {
        let options = KubeConfigOptions {
            context: self.grant.context.clone(),
            ..KubeConfigOptions::default()
        };
        let context = self
            .grant
            .context
            .as_deref()
            .map_or_else(String::new, |c| format!(" (context `{c}`)"));
        match &self.grant.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path).map_err(|err| {
                    format!(
                        "cannot read the kubeconfig {} of plugin `{}`'s `kubernetes` grant: {err}",
                        path.display(),
                        self.plugin
                    )
                })?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|err| {
                        format!(
                            "the kubeconfig {}{context} of plugin `{}`'s `kubernetes` grant \
                             cannot be used: {err}",
                            path.display(),
                            self.plugin
                        )
                    })
            }
            None if self.grant.context.is_some() => {
                Config::from_kubeconfig(&options).await.map_err(|err| {
                    format!(
                        "the default kubeconfig (KUBECONFIG or ~/.kube/config){context} of \
                         plugin `{}`'s `kubernetes` grant cannot be used: {err}",
                        self.plugin
                    )
                })
            }
            None => Config::infer().await.map_err(|err| {
                format!(
                    "plugin `{}` was granted `kubernetes`, but no cluster is configured: {err}; \
                     give the grant a `kubeconfig:`, set KUBECONFIG, or run the hangar in a pod \
                     with a service account",
                    self.plugin
                )
            }),
        }
    }
}

enum Scope {
    All,
    Namespaces(Vec<String>),
}

fn dedup(mut names: Vec<String>) -> Vec<String> {
    let mut seen = Vec::with_capacity(names.len());
    names.retain(|n| {
        let new = !seen.contains(n);
        if new {
            seen.push(n.clone());
        }
        new
    });
    names
}

/// Every page of `api`'s pods matching `selector`, appended to `pods`.
async fn list_into(
    api: &Api<KubePod>,
    what: &str,
    selector: Option<&str>,
    pods: &mut Vec<Pod>,
) -> Result<(), String> {
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(PAGE);
        if let Some(selector) = selector {
            params = params.labels(selector);
        }
        if let Some(token) = &token {
            params = params.continue_token(token);
        }
        let page = api
            .list(&params)
            .await
            .map_err(|err| api_error(what, &err))?;
        pods.extend(page.items.into_iter().map(pod));
        if pods.len() > MAX_ITEMS {
            return Err(format!(
                "more than {MAX_ITEMS} pods match in {what}; narrow the label selector or the \
                 namespaces"
            ));
        }
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(());
        }
    }
}

fn api_error(what: &str, err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) if status.code == 403 => format!(
            "listing pods in {what} was refused (403: {}); give the hangar's service account \
             `get`/`list` on pods there (examples/kubernetes/rbac.yaml)",
            status.message
        ),
        kube::Error::Api(status) => format!(
            "listing pods in {what} failed ({}: {})",
            status.code, status.message
        ),
        other => format!("listing pods in {what} failed: {}", deepest_cause(other)),
    }
}

fn deepest_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text = next.to_string();
        cause = next.source();
    }
    text
}

fn pod(pod: KubePod) -> Pod {
    let metadata = pod.metadata;
    let status = pod.status.unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let mut container_ports: Vec<u16> = Vec::new();
    let declared = pod
        .spec
        .iter()
        .flat_map(|spec| &spec.containers)
        .flat_map(|container| container.ports.iter().flatten())
        .filter_map(|port| u16::try_from(port.container_port).ok());
    for port in declared {
        if !container_ports.contains(&port) {
            container_ports.push(port);
        }
    }
    Pod {
        namespace: metadata.namespace.unwrap_or_default(),
        name: metadata.name.unwrap_or_default(),
        // BTreeMaps: already sorted by key.
        labels: metadata.labels.unwrap_or_default().into_iter().collect(),
        annotations: metadata
            .annotations
            .unwrap_or_default()
            .into_iter()
            .collect(),
        phase: status.phase.unwrap_or_else(|| "Unknown".to_owned()),
        pod_ip: status.pod_ip.filter(|ip| !ip.is_empty()),
        ready,
        container_ports,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(namespaces: &[&str]) -> Kubernetes {
        Kubernetes::new(
            "k",
            &KubernetesGrant {
                namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
                ..KubernetesGrant::default()
            },
        )
    }

    fn names(scope: Scope) -> Option<Vec<String>> {
        match scope {
            Scope::All => None,
            Scope::Namespaces(n) => Some(n),
        }
    }

    #[test]
    fn the_grant_bounds_the_namespaces_a_plugin_may_read() {
        let open = granted(&[]);
        assert_eq!(names(open.scope(vec![]).unwrap()), None);
        assert_eq!(
            names(open.scope(vec!["a".into(), "a".into()]).unwrap()),
            Some(vec!["a".into()])
        );
        let bounded = granted(&["mcp", "tools"]);
        assert_eq!(
            names(bounded.scope(vec![]).unwrap()),
            Some(vec!["mcp".into(), "tools".into()])
        );
        assert_eq!(
            names(bounded.scope(vec!["tools".into()]).unwrap()),
            Some(vec!["tools".into()])
        );
        let Err(err) = bounded.scope(vec!["mcp".into(), "kube-system".into()]) else {
            panic!("kube-system is outside the grant");
        };
        assert!(
            err.contains("namespace `kube-system`, which its `kubernetes` grant does not include"),
            "{err}"
        );
        let Err(err) = open.scope(vec!["Bad_Name".into()]) else {
            panic!("not a namespace name");
        };
        assert!(err.contains("is not a namespace name"), "{err}");
    }

    #[test]
    fn namespace_names_follow_rfc_1123_labels() {
        assert_eq!(namespace_problem("mcp-tools-1"), None);
        assert!(namespace_problem("").is_some());
        assert!(namespace_problem("Upper").is_some());
        assert!(namespace_problem("-x").is_some());
        assert!(namespace_problem(&"a".repeat(64)).is_some());
    }
}
