//! The source through the SDK's harness, with the containers an engine would list (the host's
//! end-to-end test against a real dockerd is `tests/docker_discovery.rs`).

use hangar_plugin_sdk::testing::DiscoveryHarness;
use hangar_plugin_sdk::{Container, Level};
use serde_json::{Value, json};

use super::DockerDiscovery;

fn container(id: &str, name: &str, labels: &[(&str, &str)]) -> Container {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.push(("mcp.hangar.enabled".into(), "true".into()));
    Container {
        id: id.into(),
        names: vec![name.into()],
        image: "example/provider:1".into(),
        labels,
        state: "running".into(),
        networks: vec![
            ("bridge".into(), "172.17.0.5".into()),
            ("mcp".into(), "10.9.0.5".into()),
        ],
    }
}

fn source(config: Value, containers: Vec<Container>) -> DiscoveryHarness<DockerDiscovery> {
    let mut source = DiscoveryHarness::new();
    source.configure(config).expect("config accepted");
    source.host().grant_docker(containers);
    source
}

fn label<'s>(spec: &'s hangar_plugin_sdk::ProviderSpec, key: &str) -> Option<&'s str> {
    spec.labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn warnings(source: &DiscoveryHarness<DockerDiscovery>) -> Vec<String> {
    source
        .logs()
        .iter()
        .filter(|l| l.level == Level::Warn)
        .map(|l| l.message.clone())
        .collect()
}

#[test]
fn a_labelled_container_with_a_port_is_a_remote_provider_on_its_ip() {
    let mut source = source(
        json!({}),
        vec![container(
            "c1",
            "web",
            &[
                ("mcp.hangar.name", "search"),
                ("mcp.hangar.port", "8080"),
                ("mcp.hangar.group", "tools"),
                ("mcp.hangar.ttl", "120"),
                ("mcp.hangar.weight", "4"),
            ],
        )],
    );
    let found = source.discover().expect("discovers");
    assert_eq!(found.len(), 1, "{found:?}");
    let spec = &found[0];
    assert_eq!(spec.name, "search");
    assert_eq!(spec.mode, "remote");
    assert_eq!(spec.endpoint.as_deref(), Some("http://172.17.0.5:8080/mcp"));
    assert_eq!(spec.group.as_deref(), Some("tools"));
    assert_eq!(label(spec, "hangar.ttl"), Some("120"));
    assert_eq!(label(spec, "hangar.weight"), Some("4"));
    assert_eq!(label(spec, "hangar.source"), Some("docker"));
    assert_eq!(label(spec, "hangar.container"), Some("c1"));
}

#[test]
fn the_network_and_path_choose_the_endpoint() {
    let mut source = source(
        json!({"network": "mcp", "type": "docker", "mode": "authoritative"}),
        vec![container(
            "c1",
            "web",
            &[("mcp.hangar.port", "9000"), ("mcp.hangar.path", "/v2/mcp")],
        )],
    );
    let found = source.discover().expect("discovers");
    assert_eq!(found[0].name, "web", "the container's name by default");
    assert_eq!(
        found[0].endpoint.as_deref(),
        Some("http://10.9.0.5:9000/v2/mcp")
    );
}

#[test]
fn without_a_port_the_container_is_run_from_its_image_with_its_command() {
    let mut source = source(
        json!({}),
        vec![container(
            "c1",
            "stdio-box",
            &[("mcp.hangar.command", r#"["serve", "--name", "a b"]"#)],
        )],
    );
    let found = source.discover().expect("discovers");
    let spec = &found[0];
    assert_eq!(spec.mode, "container");
    assert_eq!(spec.image.as_deref(), Some("example/provider:1"));
    assert!(spec.command.is_empty());
    assert_eq!(
        label(spec, "hangar.args"),
        Some(r#"["serve","--name","a b"]"#)
    );
    assert_eq!(label(spec, "hangar.read-only"), None);
}

#[test]
fn labels_cannot_weaken_the_sandbox_unless_the_source_is_trusted() {
    let risky = || {
        vec![
            container("c1", "vols", &[("mcp.hangar.volumes", "/etc:/host-etc:rw")]),
            container("c2", "writable", &[("mcp.hangar.read-only", "false")]),
            container(
                "c3",
                "hostcmd",
                &[
                    ("mcp.hangar.mode", "subprocess"),
                    ("mcp.hangar.command", "sh -c id"),
                ],
            ),
            container("c4", "plain", &[]),
        ]
    };
    let mut untrusted = source(json!({}), risky());
    let found = untrusted.discover().expect("the others are still answered");
    let names: Vec<&str> = found.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["plain"]);
    let warnings = warnings(&untrusted);
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    for (name, what) in [
        ("vols", "mcp.hangar.volumes"),
        ("writable", "read-only=false"),
        ("hostcmd", "subprocess"),
    ] {
        assert!(
            warnings.iter().any(|w| w.contains(&format!("`{name}`"))
                && w.contains(what)
                && w.contains("trusted: true")),
            "{name}: {warnings:?}"
        );
    }

    let mut trusted = source(json!({"trusted": true}), risky());
    let found = trusted.discover().expect("discovers");
    assert_eq!(found.len(), 4, "{found:?}");
    let by_name = |n: &str| found.iter().find(|s| s.name == n).expect(n);
    assert_eq!(
        label(by_name("vols"), "hangar.volumes"),
        Some("/etc:/host-etc:rw")
    );
    assert_eq!(
        label(by_name("writable"), "hangar.read-only"),
        Some("false")
    );
    assert_eq!(by_name("hostcmd").mode, "subprocess");
    assert_eq!(by_name("hostcmd").command, ["sh", "-c", "id"]);
}

#[test]
fn invalid_labels_are_reported_per_container_and_the_rest_still_load() {
    let mut stopped = container("c9", "stopped", &[("mcp.hangar.port", "80")]);
    stopped.state = "exited".into();
    let mut source = source(
        json!({}),
        vec![
            container("c1", "bad.name", &[]),
            container("c2", "good", &[("mcp.hangar.port", "80")]),
            container("c3", "port", &[("mcp.hangar.port", "http")]),
            container("c4", "mode", &[("mcp.hangar.mode", "ftp")]),
            container(
                "c5",
                "good2",
                &[("mcp.hangar.name", "good"), ("mcp.hangar.port", "81")],
            ),
            container("c6", "ttl", &[("mcp.hangar.ttl", "-1")]),
            stopped,
        ],
    );
    let found = source.discover().expect("discovers");
    let names: Vec<&str> = found.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["good"]);
    let warnings = warnings(&source);
    assert_eq!(warnings.len(), 5, "{warnings:?}");
    for expected in [
        "`bad.name` is not a provider id",
        "`mcp.hangar.port` is `http`",
        "`mcp.hangar.mode` is `ftp`",
        "provider `good` is already found",
        "`mcp.hangar.ttl` is `-1`",
    ] {
        assert!(
            warnings.iter().any(|w| w.contains(expected)),
            "{expected}: {warnings:?}"
        );
    }
}

#[test]
fn only_labelled_containers_are_asked_for_and_an_ungranted_source_fails() {
    let mut unlabelled = container("c1", "x", &[("mcp.hangar.port", "80")]);
    unlabelled.labels.retain(|(k, _)| k != "mcp.hangar.enabled");
    let mut source = source(json!({}), vec![unlabelled]);
    assert!(source.discover().expect("discovers").is_empty());

    let mut ungranted = DiscoveryHarness::<DockerDiscovery>::new();
    let err = ungranted.discover().expect_err("docker is not granted");
    assert!(err.contains("was not granted `docker`"), "{err}");
}

#[test]
fn unknown_config_keys_are_refused() {
    let mut source = DiscoveryHarness::<DockerDiscovery>::new();
    let err = source.configure(json!({"trustd": true})).expect_err("typo");
    assert!(err.contains("unknown field `trustd`"), "{err}");
}
