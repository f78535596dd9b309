//! The bundled `discovery-kubernetes` source through the host's `kubernetes` capability, against
//! an API server run in the test: axum serving Pod lists built from k8s-openapi's types at the
//! real paths (`/api/v1/pods`, `/api/v1/namespaces/{ns}/pods`) with `labelSelector`, reached
//! through a kubeconfig file, as kube reaches a real cluster. No cluster runs on these
//! machines; the client, its config loading and the wire format are the real ones.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

use super::{host, spec};
use crate::config::{KubernetesGrant, PluginGrant, PluginKind};
use crate::plugin::{DiscoveredProvider, PluginErrorKind};

/// What the API server saw: path, `labelSelector`, `Authorization`.
type Seen = Arc<Mutex<Vec<(String, Option<String>, Option<String>)>>>;

#[derive(Clone)]
struct Cluster {
    pods: Arc<Vec<Pod>>,
    seen: Seen,
}

fn pod(
    namespace: &str,
    name: &str,
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
    phase: &str,
    ip: Option<&str>,
) -> Pod {
    let map = |pairs: &[(&str, &str)]| {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        )
    };
    Pod {
        metadata: ObjectMeta {
            namespace: Some(namespace.into()),
            name: Some(name.into()),
            labels: map(labels),
            annotations: map(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "server".into(),
                ports: Some(vec![ContainerPort {
                    container_port: 8000,
                    ..ContainerPort::default()
                }]),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            pod_ip: ip.map(str::to_owned),
            ..PodStatus::default()
        }),
    }
}

/// The pods of the test cluster: two namespaces the grant covers, one it does not.
fn pods() -> Vec<Pod> {
    let app = [("app", "mcp")];
    let on = ("mcp-hangar.io/enabled", "true");
    vec![
        pod(
            "mcp",
            "search-5d8f",
            &app,
            &[
                on,
                ("mcp-hangar.io/name", "search"),
                ("mcp-hangar.io/port", "8080"),
                ("mcp-hangar.io/group", "tools"),
                ("mcp-hangar.io/health-path", "/healthz"),
                ("mcp-hangar.io/ttl", "60"),
            ],
            "Running",
            Some("10.0.0.7"),
        ),
        pod(
            "mcp",
            "legacy-1",
            &app,
            &[
                ("mcp.hangar.io/enabled", "true"),
                ("mcp.hangar.io/port", "9000"),
            ],
            "Running",
            Some("10.0.0.8"),
        ),
        pod("mcp", "starting", &app, &[on], "Pending", None),
        pod(
            "mcp",
            "other-app",
            &[("app", "web")],
            &[on],
            "Running",
            Some("10.0.0.9"),
        ),
        pod("tools", "calc", &app, &[on], "Running", Some("10.0.1.2")),
        pod("tools", "no-ip", &app, &[on], "Running", None),
        pod("tools", "done", &app, &[on], "Succeeded", Some("10.0.1.3")),
        pod(
            "kube-system",
            "intruder",
            &app,
            &[on],
            "Running",
            Some("10.0.2.1"),
        ),
    ]
}

/// `key=value` terms, comma-separated, all of which must hold: what the test's selectors use.
fn matches(pod: &Pod, selector: Option<&str>) -> bool {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    selector.is_none_or(|s| {
        s.split(',').all(|term| match term.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
            None => labels.contains_key(term),
        })
    })
}

async fn list(
    cluster: &Cluster,
    path: String,
    namespace: Option<&str>,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let selector = query.get("labelSelector").cloned();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    cluster
        .seen
        .lock()
        .expect("not poisoned")
        .push((path, selector.clone(), auth));
    if namespace == Some("forbidden") {
        // A Status as the API server sends it for an RBAC refusal.
        let status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "pods is forbidden: User \"system:serviceaccount:hangar:hangar\" cannot \
                        list resource \"pods\" in API group \"\" in the namespace \"forbidden\"",
            "reason": "Forbidden", "details": {"kind": "pods"}, "code": 403
        });
        return (StatusCode::FORBIDDEN, axum::Json(status)).into_response();
    }
    let items: Vec<Pod> = cluster
        .pods
        .iter()
        .filter(|p| namespace.is_none_or(|ns| p.metadata.namespace.as_deref() == Some(ns)))
        .filter(|p| matches(p, selector.as_deref()))
        .cloned()
        .collect();
    let list = k8s_openapi::List::<Pod> {
        items,
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta {
            resource_version: Some("4711".into()),
            ..Default::default()
        },
    };
    axum::Json(list).into_response()
}

/// Serves the cluster on a free port; returns a kubeconfig file pointing at it.
async fn serve(cluster: Cluster, test: &str) -> PathBuf {
    let app = Router::new()
        .route(
            "/api/v1/pods",
            get(
                |State(c): State<Cluster>,
                 Query(q): Query<BTreeMap<String, String>>,
                 headers: HeaderMap| async move {
                    list(&c, "/api/v1/pods".into(), None, &q, &headers).await
                },
            ),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods",
            get(
                |State(c): State<Cluster>,
                 Path(ns): Path<String>,
                 Query(q): Query<BTreeMap<String, String>>,
                 headers: HeaderMap| async move {
                    let path = format!("/api/v1/namespaces/{ns}/pods");
                    list(&c, path, Some(&ns), &q, &headers).await
                },
            ),
        )
        .with_state(cluster);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = std::env::temp_dir().join(format!("hangar-kube-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
             clusters:\n- name: test\n  cluster:\n    server: http://{addr}\n\
             - name: elsewhere\n  cluster:\n    server: http://127.0.0.1:1\n\
             users:\n- name: hangar\n  user:\n    token: t0k-123\n\
             contexts:\n- name: test\n  context:\n    cluster: test\n    user: hangar\n\
             - name: elsewhere\n  context:\n    cluster: elsewhere\n    user: hangar\n"
        ),
    )
    .expect("kubeconfig written");
    kubeconfig
}

fn cluster() -> (Cluster, Seen) {
    let seen: Seen = Arc::default();
    (
        Cluster {
            pods: Arc::new(pods()),
            seen: Arc::clone(&seen),
        },
        seen,
    )
}

fn granted(
    config: serde_json::Value,
    kubeconfig: &std::path::Path,
    namespaces: &[&str],
) -> crate::config::PluginSpec {
    let mut spec = spec(
        "kube",
        PluginKind::Discovery,
        "discovery-kubernetes",
        config,
    );
    spec.grants = vec![PluginGrant::Kubernetes];
    spec.grant_settings.kubernetes = KubernetesGrant {
        kubeconfig: Some(kubeconfig.to_path_buf()),
        context: None,
        namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
    };
    spec
}

fn summary(found: &[DiscoveredProvider]) -> Vec<(String, String)> {
    found
        .iter()
        .map(|p| (p.name.clone(), p.endpoint.clone().unwrap_or_default()))
        .collect()
}

fn label<'p>(p: &'p DiscoveredProvider, key: &str) -> Option<&'p str> {
    p.labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_annotated_pods_of_the_granted_namespaces_become_remote_providers() {
    let (cluster, seen) = cluster();
    let kubeconfig = serve(cluster, "granted").await;
    let plugin = host()
        .load(&granted(
            json!({"label_selector": "app=mcp"}),
            &kubeconfig,
            &["mcp", "tools"],
        ))
        .await
        .expect("discovery-kubernetes loads");
    let found = plugin.discover().await.expect("discovers");
    assert_eq!(
        summary(&found),
        [
            ("legacy-1".into(), "http://10.0.0.8:9000/mcp".into()),
            ("search".into(), "http://10.0.0.7:8080/mcp".into()),
            ("calc".into(), "http://10.0.1.2:8000/mcp".into()),
        ],
        "both annotation prefixes; Pending, Succeeded, IP-less and unselected pods skipped"
    );
    let search = &found[1];
    assert_eq!(search.mode, "remote");
    assert_eq!(search.group.as_deref(), Some("tools"));
    assert_eq!(label(search, "hangar.health-path"), Some("/healthz"));
    assert_eq!(label(search, "hangar.ttl"), Some("60"));
    assert_eq!(label(search, "hangar.pod"), Some("mcp/search-5d8f"));
    assert_eq!(label(search, "hangar.source"), Some("kubernetes"));

    // Only the granted namespaces were asked, with the selector and the kubeconfig's token.
    let seen = seen.lock().expect("not poisoned").clone();
    let paths: Vec<&str> = seen.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/namespaces/mcp/pods",
            "/api/v1/namespaces/tools/pods"
        ]
    );
    for (_, selector, auth) in &seen {
        assert_eq!(selector.as_deref(), Some("app=mcp"));
        assert_eq!(auth.as_deref(), Some("Bearer t0k-123"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_outside_the_grant_is_refused_before_any_request() {
    let (cluster, seen) = cluster();
    let kubeconfig = serve(cluster, "outside").await;
    let plugin = host()
        .load(&granted(
            json!({"namespaces": ["mcp", "kube-system"]}),
            &kubeconfig,
            &["mcp", "tools"],
        ))
        .await
        .expect("loads");
    let err = plugin
        .discover()
        .await
        .expect_err("kube-system is not granted");
    assert_eq!(err.kind, PluginErrorKind::Reported);
    assert!(
        err.message.contains(
            "plugin `kube` asked for pods in namespace `kube-system`, which its `kubernetes` \
             grant does not include (granted: mcp, tools)"
        ),
        "{err}"
    );
    assert!(seen.lock().expect("not poisoned").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_without_namespaces_lists_every_namespace_in_one_request() {
    let (cluster, seen) = cluster();
    let kubeconfig = serve(cluster, "all").await;
    let plugin = host()
        .load(&granted(json!({}), &kubeconfig, &[]))
        .await
        .expect("loads");
    let found = plugin.discover().await.expect("discovers");
    let names: Vec<&str> = found.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["intruder", "legacy-1", "other-app", "search", "calc"]
    );
    let seen = seen.lock().expect("not poisoned").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "/api/v1/pods");
    assert_eq!(seen[0].1, None, "no selector configured");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_refusals_unreachable_clusters_and_missing_grants_are_clear_errors() {
    let (cluster, _seen) = cluster();
    let kubeconfig = serve(cluster, "errors").await;

    let forbidden = granted(json!({"namespaces": ["forbidden"]}), &kubeconfig, &[]);
    let err = host()
        .load(&forbidden)
        .await
        .expect("loads")
        .discover()
        .await
        .expect_err("403");
    assert!(
        err.message
            .contains("listing pods in namespace `forbidden` was refused (403: pods is forbidden")
            && err.message.contains("examples/kubernetes/rbac.yaml"),
        "{err}"
    );

    let mut elsewhere = granted(json!({}), &kubeconfig, &[]);
    elsewhere.grant_settings.kubernetes.context = Some("elsewhere".into());
    let err = host()
        .load(&elsewhere)
        .await
        .expect("loads")
        .discover()
        .await
        .expect_err("nobody listens there");
    assert!(
        err.message
            .contains("listing pods in every namespace failed"),
        "{err}"
    );

    let mut missing = granted(json!({}), &kubeconfig, &[]);
    missing.grant_settings.kubernetes.kubeconfig = Some(kubeconfig.with_file_name("absent"));
    let err = host()
        .load(&missing)
        .await
        .expect("loads")
        .discover()
        .await
        .expect_err("no kubeconfig");
    assert!(err.message.contains("cannot read the kubeconfig"), "{err}");

    let mut ungranted = granted(json!({}), &kubeconfig, &[]);
    ungranted.grants.clear();
    let err = host()
        .load(&ungranted)
        .await
        .expect("loads")
        .discover()
        .await
        .expect_err("not granted");
    assert!(
        err.message
            .contains("plugin `kube` was not granted `kubernetes`"),
        "{err}"
    );
}
