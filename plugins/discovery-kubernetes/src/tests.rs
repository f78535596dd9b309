//! The source through the SDK's harness, with pods as the capability reports them (the host's
//! test against an API server speaking the real Pod list JSON is in
//! `runtime/src/plugin/tests/kubernetes.rs`).

use hangar_plugin_sdk::testing::DiscoveryHarness;
use hangar_plugin_sdk::{Level, Pod};
use serde_json::json;

use super::KubernetesDiscovery;

fn pod(name: &str, annotations: &[(&str, &str)]) -> Pod {
    Pod {
        namespace: "mcp".into(),
        name: name.into(),
        labels: vec![("app".into(), "mcp".into())],
        annotations: annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        phase: "Running".into(),
        pod_ip: Some("10.1.2.3".into()),
        ready: true,
        container_ports: vec![8000, 9090],
    }
}

fn discover(pods: Vec<Pod>) -> (Vec<hangar_plugin_sdk::ProviderSpec>, Vec<String>) {
    let mut source = DiscoveryHarness::<KubernetesDiscovery>::new();
    source
        .configure(json!({"namespaces": ["mcp"]}))
        .expect("config");
    source.host().grant_kubernetes(pods);
    let found = source.discover().expect("discovers");
    let warnings = source
        .logs()
        .iter()
        .filter(|l| l.level == Level::Warn)
        .map(|l| l.message.clone())
        .collect();
    (found, warnings)
}

#[test]
fn an_annotated_running_pod_is_a_remote_provider_on_its_ip() {
    let (found, warnings) = discover(vec![pod(
        "search-7d9f",
        &[
            ("mcp-hangar.io/enabled", "true"),
            ("mcp-hangar.io/name", "search"),
            ("mcp-hangar.io/port", "8080"),
            ("mcp-hangar.io/group", "tools"),
            ("mcp-hangar.io/health-path", "/healthz"),
            ("mcp-hangar.io/ttl", "60"),
            ("mcp-hangar.io/weight", "5"),
        ],
    )]);
    assert!(warnings.is_empty(), "{warnings:?}");
    let spec = &found[0];
    assert_eq!(spec.name, "search");
    assert_eq!(spec.endpoint.as_deref(), Some("http://10.1.2.3:8080/mcp"));
    assert_eq!(spec.group.as_deref(), Some("tools"));
    let labels: Vec<(&str, &str)> = spec
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("hangar.source", "kubernetes"),
            ("hangar.pod", "mcp/search-7d9f"),
            ("hangar.ready", "true"),
            ("hangar.health-path", "/healthz"),
            ("hangar.ttl", "60"),
            ("hangar.weight", "5"),
        ]
    );
}

#[test]
fn the_older_prefix_is_read_and_the_new_one_wins() {
    let (found, _) = discover(vec![
        pod(
            "old",
            &[
                ("mcp.hangar.io/enabled", "true"),
                ("mcp.hangar.io/port", "7000"),
            ],
        ),
        pod(
            "both",
            &[
                ("mcp.hangar.io/enabled", "true"),
                ("mcp-hangar.io/port", "7001"),
                ("mcp.hangar.io/port", "1"),
            ],
        ),
    ]);
    let endpoints: Vec<(&str, &str)> = found
        .iter()
        .map(|s| (s.name.as_str(), s.endpoint.as_deref().unwrap_or_default()))
        .collect();
    assert_eq!(
        endpoints,
        [
            ("both", "http://10.1.2.3:7001/mcp"),
            ("old", "http://10.1.2.3:7000/mcp")
        ]
    );
}

#[test]
fn pods_not_running_without_an_ip_or_not_enabled_are_skipped_silently() {
    let enabled = [("mcp-hangar.io/enabled", "true")];
    let mut pending = pod("pending", &enabled);
    pending.phase = "Pending".into();
    let mut no_ip = pod("noip", &enabled);
    no_ip.pod_ip = None;
    let (found, warnings) = discover(vec![
        pending,
        no_ip,
        pod("off", &[("mcp-hangar.io/enabled", "false")]),
        pod("on", &enabled),
    ]);
    let names: Vec<&str> = found.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["on"]);
    assert_eq!(
        found[0].endpoint.as_deref(),
        Some("http://10.1.2.3:8000/mcp"),
        "first port"
    );
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn invalid_annotations_are_reported_per_pod_and_the_rest_still_load() {
    let enabled = ("mcp-hangar.io/enabled", "true");
    let mut no_ports = pod("noports", &[enabled]);
    no_ports.container_ports.clear();
    let (found, warnings) = discover(vec![
        pod("a-good", &[enabled]),
        pod("badname", &[enabled, ("mcp-hangar.io/name", "9lives")]),
        pod("badport", &[enabled, ("mcp-hangar.io/port", "99999")]),
        pod("badmode", &[enabled, ("mcp-hangar.io/mode", "subprocess")]),
        pod("dup", &[enabled, ("mcp-hangar.io/name", "a-good")]),
        no_ports,
    ]);
    let names: Vec<&str> = found.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a-good"]);
    assert_eq!(warnings.len(), 5, "{warnings:?}");
    for expected in [
        "pod mcp/badname is left out: `9lives` is not a provider id",
        "`mcp-hangar.io/port` is `99999`",
        "`mcp-hangar.io/mode` is `subprocess`",
        "provider `a-good` is already found",
        "no container port declared",
    ] {
        assert!(
            warnings.iter().any(|w| w.contains(expected)),
            "{expected}: {warnings:?}"
        );
    }
}

#[test]
fn the_configured_namespaces_and_selector_are_what_the_capability_is_asked() {
    let mut source = DiscoveryHarness::<KubernetesDiscovery>::new();
    source
        .configure(
            json!({"namespaces": ["a", "b"], "label_selector": "app=mcp", "type": "kubernetes"}),
        )
        .expect("config");
    source.host().on_kubernetes(|namespaces, selector| {
        assert_eq!(namespaces, ["a", "b"]);
        assert_eq!(selector, Some("app=mcp"));
        Ok(Vec::new())
    });
    assert!(source.discover().expect("discovers").is_empty());
    let err = source
        .configure(json!({"namespace": "a"}))
        .expect_err("typo");
    assert!(err.contains("unknown field `namespace`"), "{err}");
}
