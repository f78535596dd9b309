//! The bundled `discovery-docker` source through the host's `docker` capability, against the
//! real engine (`.ci/docker` starts one when none answers): labelled containers of the example
//! provider's image (serving MCP over HTTP) are listed by the capability and answered as
//! providers; labels that would weaken the sandbox count only for a trusted source.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hangar_tests::engine::{containers_with_label, inspect, provider_image, remove};
use hangar_tests::{Hangar, TestDir, unique_token, wait_until_async};
use mcp_hangar::config::{BUNDLED_PREFIX, PluginConfig, PluginGrant, PluginKind, PluginSpec};
use mcp_hangar::plugin::{DiscoveredProvider, PluginHost};
use serde_json::{Value, json};

/// How long a discovery cycle, a start or a removal may take to show.
const WAIT: Duration = Duration::from_secs(30);

/// A hangar whose docker source is asked every second and forgets a container at once.
const AUTHORITATIVE_DOCKER: &str = "discovery:\n  refresh_interval_s: 1\n  lifecycle: {default_ttl_s: 0, check_interval_s: 1, drain_timeout_s: 2}\n  sources:\n    - {type: docker, mode: authoritative}\n";

/// Starts a container of `image` with `labels` (and the test's own label) serving MCP over
/// HTTP on port 8080; its id.
fn run(image: &str, token: &str, name: &str, labels: &[(&str, &str)]) -> Result<String> {
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--name".into(),
        format!("{token}-{name}"),
        "--label".into(),
        format!("hangar-test={token}"),
        "--label".into(),
        "mcp.hangar.enabled=true".into(),
    ];
    for (k, v) in labels {
        args.push("--label".into());
        args.push(format!("{k}={v}"));
    }
    args.extend([
        image.to_owned(),
        "--http".into(),
        "0.0.0.0:8080".into(),
        "--name".into(),
        name.to_owned(),
    ]);
    let out = Command::new("docker").args(&args).output()?;
    if !out.status.success() {
        bail!(
            "docker run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The container's IP on its first network with one (what the source answers).
fn ip_of(id: &str) -> Result<String> {
    let networks = inspect(id)?["NetworkSettings"]["Networks"].clone();
    let Value::Object(networks) = networks else {
        bail!("no networks in docker inspect of {id}");
    };
    let mut ips: Vec<(String, String)> = networks
        .into_iter()
        .filter_map(|(name, n)| Some((name, n["IPAddress"].as_str()?.to_owned())))
        .filter(|(_, ip)| !ip.is_empty())
        .collect();
    ips.sort();
    ips.into_iter()
        .next()
        .map(|(_, ip)| ip)
        .context("the container has no IP")
}

fn source(trusted: bool) -> PluginSpec {
    let mut spec = PluginSpec::new(
        "docker-source",
        PluginKind::Discovery,
        format!("{BUNDLED_PREFIX}discovery-docker").into(),
        PluginConfig::plain(json!({"trusted": trusted})),
    );
    spec.grants = vec![PluginGrant::Docker];
    spec
}

/// The providers of this test's containers (other tests may run labelled containers too).
fn ours(found: Vec<DiscoveredProvider>, token: &str) -> Vec<DiscoveredProvider> {
    let mut ours: Vec<DiscoveredProvider> = found
        .into_iter()
        .filter(|p| p.name.starts_with(token))
        .collect();
    ours.sort_by(|a, b| a.name.cmp(&b.name));
    ours
}

fn label<'p>(p: &'p DiscoveredProvider, key: &str) -> Option<&'p str> {
    p.labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread")]
async fn labelled_containers_are_found_through_the_capability_and_hardening_needs_trust()
-> Result<()> {
    let image = provider_image()?;
    let token = unique_token("dd").replace('.', "-");
    let result = async {
        let web = format!("{token}-web");
        let remote = run(
            &image,
            &token,
            "web",
            &[
                ("mcp.hangar.name", &web),
                ("mcp.hangar.port", "8080"),
                ("mcp.hangar.group", "docker-tools"),
                ("mcp.hangar.ttl", "45"),
            ],
        )?;
        let volumes = format!("{token}-vols");
        run(
            &image,
            &token,
            "vols",
            &[
                ("mcp.hangar.name", &volumes),
                ("mcp.hangar.volumes", "/etc:/host-etc:rw"),
            ],
        )?;
        let writable = format!("{token}-rw");
        run(
            &image,
            &token,
            "rw",
            &[
                ("mcp.hangar.name", &writable),
                ("mcp.hangar.read-only", "false"),
            ],
        )?;
        let ip = ip_of(&remote)?;

        let host = PluginHost::new()?;
        let plugin = host.load(&source(false)).await?;
        let found = ours(plugin.discover().await?, &token);
        let names: Vec<&str> = found.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, [web.as_str()], "untrusted: only the hardened one");
        let spec = &found[0];
        assert_eq!(spec.mode, "remote");
        let endpoint = format!("http://{ip}:8080/mcp");
        assert_eq!(spec.endpoint.as_deref(), Some(endpoint.as_str()));
        assert_eq!(spec.group.as_deref(), Some("docker-tools"));
        assert_eq!(label(spec, "hangar.ttl"), Some("45"));
        assert_eq!(label(spec, "hangar.container"), Some(remote.as_str()));
        // The endpoint is where the container listens.
        let reached = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect(format!("{ip}:8080")),
        )
        .await;
        assert!(
            matches!(reached, Ok(Ok(_))),
            "{endpoint} does not answer: {reached:?}"
        );

        let trusted = host.load(&source(true)).await?;
        let found = ours(trusted.discover().await?, &token);
        let names: Vec<&str> = found.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [writable.as_str(), volumes.as_str(), web.as_str()],
            "trusted: all three"
        );
        assert_eq!(found[0].mode, "container");
        assert_eq!(found[0].image.as_deref(), Some(image.as_str()));
        assert_eq!(label(&found[0], "hangar.read-only"), Some("false"));
        assert_eq!(
            label(&found[1], "hangar.volumes"),
            Some("/etc:/host-etc:rw")
        );

        // Stopped, the remote one is no longer answered.
        let out = Command::new("docker")
            .args(["stop", "-t", "1", &remote])
            .output()?;
        assert!(out.status.success());
        let found = ours(plugin.discover().await?, &token);
        assert!(found.is_empty(), "{found:?}");
        Ok(())
    }
    .await;
    remove(&containers_with_label(&format!("hangar-test={token}"))?);
    result
}

/// The hangar end to end: an authoritative `type: docker` source in its config finds a
/// labelled container, a call reaches the provider inside it, and once the container stops
/// the provider is taken out of the registry.
#[tokio::test(flavor = "multi_thread")]
async fn the_hangar_registers_calls_and_removes_a_labelled_container() -> Result<()> {
    let image = provider_image()?;
    let token = unique_token("dh").replace('.', "-");
    let name = format!("{token}-calc");
    let dir = TestDir::new("docker-disc");
    let cfg = dir.write("h.yaml", AUTHORITATIVE_DOCKER);
    let result = async {
        let id = run(
            &image,
            &token,
            "calc",
            &[("mcp.hangar.name", &name), ("mcp.hangar.port", "8080")],
        )?;
        let h = Hangar::stdio(&cfg).await?;
        let registered = |v: &Value| v["registered"].to_string().contains(&format!("\"{name}\""));
        let found = wait_until_async(WAIT, || async {
            let v = h.call_ok("registry_discovered", json!({})).await.ok()?;
            registered(&v).then_some(v)
        })
        .await;
        let Some(found) = found else {
            bail!("`{name}` was not registered in {WAIT:?}; log:\n{}", h.log());
        };
        assert!(found.to_string().contains("docker"), "{found}");

        // Called through the hangar: it starts the remote provider and the container answers.
        let sum = h
            .call_ok(
                "registry_invoke",
                json!({"provider": name, "tool": "add", "arguments": {"a": 20, "b": 22}}),
            )
            .await
            .with_context(|| format!("log:\n{}", h.log()))?;
        assert!(sum.to_string().contains("42"), "{sum}");
        let sources = h.call_ok("registry_sources", json!({})).await?;
        assert_eq!(sources["sources"][0]["healthy"], true, "{sources}");

        // Stopped: no longer reported, so (authoritative, TTL 0) deregistered.
        let out = Command::new("docker")
            .args(["stop", "-t", "1", &id])
            .output()?;
        assert!(out.status.success());
        let gone = wait_until_async(WAIT, || async {
            let v = h.call_ok("registry_discovered", json!({})).await.ok()?;
            (!registered(&v)).then_some(())
        })
        .await;
        assert!(
            gone.is_some(),
            "`{name}` still registered after its container stopped; log:\n{}",
            h.log()
        );
        let list = h.call_ok("registry_list", json!({})).await?;
        assert!(!list.to_string().contains(&name), "{list}");
        Ok(())
    }
    .await;
    remove(&containers_with_label(&format!("hangar-test={token}"))?);
    result
}

/// The text of a tool result's content.
fn text(r: &rmcp::model::CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

/// Which containers answered `calls` calls of the group's `env` tool (each answers its
/// `HOSTNAME`: its own short id).
async fn hostnames(
    h: &Hangar,
    tool: &str,
    calls: usize,
) -> Result<std::collections::BTreeSet<String>> {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..calls {
        let r = h.call(tool, json!({"name": "HOSTNAME"})).await?;
        if r.is_error == Some(true) {
            bail!("{tool} failed: {}; log:\n{}", text(&r), h.log());
        }
        seen.insert(text(&r));
    }
    Ok(seen)
}

/// `group` as `registry_list` shows it, once it has `members` members.
async fn group_of(h: &Hangar, group: &str, members: u64) -> Option<Value> {
    let list = h.call_ok("registry_list", json!({})).await.ok()?;
    let found = list["groups"]
        .as_array()?
        .iter()
        .find(|g| g["group_id"] == group)?
        .clone();
    (found["total_members"] == members).then_some(found)
}

#[tokio::test(flavor = "multi_thread")]
async fn labelled_containers_naming_a_group_join_it_and_leave_it_when_stopped() -> Result<()> {
    let image = provider_image()?;
    let token = unique_token("dg").replace('.', "-");
    let group = format!("{token}-pool");
    let tool = format!("{group}__env");
    let dir = TestDir::new("docker-group");
    let cfg = dir.write("h.yaml", AUTHORITATIVE_DOCKER);
    let result = async {
        let mut ids = Vec::new();
        for member in ["a", "b"] {
            ids.push(run(
                &image,
                &token,
                member,
                &[
                    ("mcp.hangar.name", &format!("{token}-{member}")),
                    ("mcp.hangar.port", "8080"),
                    ("mcp.hangar.group", &group),
                ],
            )?);
        }
        let h = Hangar::stdio(&cfg).await?;
        let joined = wait_until_async(WAIT, || async { group_of(&h, &group, 2).await }).await;
        let Some(pool) = joined else {
            bail!(
                "group `{group}` never had both containers; log:\n{}",
                h.log()
            );
        };
        assert_eq!(pool["source"], "discovery", "{pool}");
        // A container's tools are known once it is started.
        h.call_ok("registry_start", json!({"provider": group}))
            .await?;
        let listed = wait_until_async(WAIT, || async {
            h.tool_names().await.ok()?.contains(&tool).then_some(())
        })
        .await;
        assert!(
            listed.is_some(),
            "{tool} never listed; log:
{}",
            h.log()
        );

        // Calls through the group's tool reach both containers (round robin).
        let both = hostnames(&h, &tool, 6).await?;
        let short: Vec<String> = ids.iter().map(|id| id[..12].to_owned()).collect();
        assert_eq!(
            both,
            short.iter().cloned().collect(),
            "both containers answer through the group"
        );

        // One stopped: it leaves the group, the other serves every call.
        let out = Command::new("docker")
            .args(["stop", "-t", "1", &ids[0]])
            .output()?;
        assert!(out.status.success());
        let left = wait_until_async(WAIT, || async { group_of(&h, &group, 1).await }).await;
        assert!(
            left.is_some(),
            "the stopped container stayed; log:\n{}",
            h.log()
        );
        let one = hostnames(&h, &tool, 4).await?;
        assert_eq!(one, [short[1].clone()].into_iter().collect());

        // The last one stopped: the group discovery made is gone with its tool.
        let out = Command::new("docker")
            .args(["stop", "-t", "1", &ids[1]])
            .output()?;
        assert!(out.status.success());
        let gone = wait_until_async(WAIT, || async {
            let tools = h.tool_names().await.ok()?;
            (!tools.contains(&tool)).then_some(())
        })
        .await;
        assert!(gone.is_some(), "{tool} still listed; log:\n{}", h.log());
        let list = h.call_ok("registry_list", json!({})).await?;
        assert!(!list.to_string().contains(&group), "{list}");
        Ok(())
    }
    .await;
    remove(&containers_with_label(&format!("hangar-test={token}"))?);
    result
}
