//! `discovery-docker`: a discovery source (WIT `hangar:plugin@0.2.0`, world `discovery-source`)
//! that finds providers in the containers of a Docker or Podman engine, through the host's
//! `docker` capability (the plugin's config must grant `docker`).
//!
//! A container is a provider when it carries `mcp.hangar.enabled=true`. Its other labels:
//!
//! | label                  | meaning                                                        |
//! |------------------------|----------------------------------------------------------------|
//! | `mcp.hangar.name`      | provider id (default: the container's name)                    |
//! | `mcp.hangar.mode`      | `remote` (default when a port is set), `container` (default otherwise), `subprocess` (trusted only) |
//! | `mcp.hangar.port`      | remote: the port the container serves MCP on                   |
//! | `mcp.hangar.path`      | remote: the URL path (default `/mcp`)                           |
//! | `mcp.hangar.group`     | the group the provider joins (`group` of the spec): the config's group of that id, or one made for it |
//! | `mcp.hangar.weight`    | its weight in that group, 1-100 (default 1; label `hangar.weight`) |
//! | `mcp.hangar.command`   | container: the arguments given to the image; subprocess: argv  |
//! | `mcp.hangar.volumes`   | container: `host:container[:ro\|rw]`, comma-separated (trusted only) |
//! | `mcp.hangar.read-only` | container: `false` to run with a writable root (trusted only)  |
//! | `mcp.hangar.ttl`       | seconds a provider stays registered after it was last seen     |
//!
//! A remote provider's endpoint is `http://IP:PORT/mcp` with the container's IP on the network
//! named by the config's `network`, or on its first network with an IP. A container-mode
//! provider is a new container of the labelled container's image, run by the hangar with its
//! hardening (read-only root, no network, no capabilities).
//!
//! What the spec carries where (the hangar's discovery engine reads these):
//! - `group` → the spec's `group`; `command` → the spec's `command` for `subprocess`, and the
//!   `hangar.args` label (a JSON array of strings) for `container`.
//! - `hangar.ttl` (seconds), `hangar.weight` (as written), `hangar.volumes` (as written), `hangar.read-only` (`false`, only
//!   when trusted) and `hangar.source` (`docker`), `hangar.container` (the container's id)
//!   are labels.
//!
//! Labels cannot weaken the sandbox: `mcp.hangar.volumes`, `mcp.hangar.read-only=false` and
//! `mode: subprocess` (a command on the hangar's own host) are refused unless the source's
//! config says `trusted: true`, because anyone who can start a container could otherwise
//! choose them. A refused or invalid container is reported (a warning in the hangar's log,
//! naming the container and the label) and left out; the others are still answered.
//!
//! Config: `{"trusted": false, "network": null}`; `type` and `mode` (the engine's own keys of
//! a source) are accepted and ignored.
//!
//! Build: `cargo build --release --target wasm32-wasip2`.

use hangar_plugin_sdk::{
    Config as PluginConfig, Container, DiscoverySource, Level, ProviderSpec, docker, log,
    provider_name_problem,
};
use serde::Deserialize;

#[cfg(test)]
mod tests;

/// The label every discovered container carries; the capability filters on it.
const ENABLED: &str = "mcp.hangar.enabled";
const PREFIX: &str = "mcp.hangar.";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Labels may choose volumes, a writable root and subprocess mode.
    #[serde(default)]
    trusted: bool,
    /// The network whose IP a remote provider is reached on.
    #[serde(default)]
    network: Option<String>,
    /// The discovery engine's own keys of a source, ignored here.
    #[serde(default, rename = "type")]
    _type: Option<serde_json::Value>,
    #[serde(default, rename = "mode")]
    _mode: Option<serde_json::Value>,
}

#[derive(Default)]
struct DockerDiscovery {
    config: Config,
}

impl DiscoverySource for DockerDiscovery {
    fn configure(&mut self, config: &PluginConfig) -> Result<(), String> {
        self.config = config.parse()?;
        if self.config.network.as_deref().is_some_and(str::is_empty) {
            return Err(
                "invalid config: `network` is empty; name a network or leave it out".into(),
            );
        }
        Ok(())
    }

    fn discover(&mut self) -> Result<Vec<ProviderSpec>, String> {
        let containers = docker::list_containers(&[&format!("{ENABLED}=true")])?;
        let (found, problems) = providers(&containers, &self.config);
        for problem in problems {
            log(Level::Warn, &problem);
        }
        Ok(found)
    }
}

/// The providers among `containers`, and one report per container left out.
fn providers(containers: &[Container], config: &Config) -> (Vec<ProviderSpec>, Vec<String>) {
    let mut found: Vec<ProviderSpec> = Vec::new();
    let mut problems = Vec::new();
    let mut sorted: Vec<&Container> = containers.iter().collect();
    // Oldest name first is not known here; the id order keeps the answer stable.
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    for container in sorted {
        if label(container, ENABLED) != Some("true") || container.state != "running" {
            continue;
        }
        match provider(container, config) {
            Ok(spec) => {
                if found.iter().any(|f| f.name == spec.name) {
                    problems.push(format!(
                        "container {} is left out: provider `{}` is already found in another \
                         container; give one of them another `{PREFIX}name`",
                        shown(container),
                        spec.name
                    ));
                } else {
                    found.push(spec);
                }
            }
            Err(why) => problems.push(format!("container {} is left out: {why}", shown(container))),
        }
    }
    (found, problems)
}

fn provider(container: &Container, config: &Config) -> Result<ProviderSpec, String> {
    let name = match label(container, "mcp.hangar.name") {
        Some(name) => name.to_owned(),
        None => container
            .names
            .first()
            .cloned()
            .ok_or("it has no name; set `mcp.hangar.name`")?,
    };
    if let Some(problem) = provider_name_problem(&name) {
        return Err(format!(
            "`{name}` is not a provider id ({problem}); set `{PREFIX}name` to one matching \
             `^[a-zA-Z][a-zA-Z0-9_-]{{0,63}}$`"
        ));
    }
    let port = label(container, "mcp.hangar.port")
        .map(parse_port)
        .transpose()?;
    let mode = label(container, "mcp.hangar.mode").unwrap_or(if port.is_some() {
        "remote"
    } else {
        "container"
    });
    let command = label(container, "mcp.hangar.command")
        .map(split_command)
        .transpose()?;
    let volumes = label(container, "mcp.hangar.volumes").filter(|v| !v.trim().is_empty());
    let read_only = label(container, "mcp.hangar.read-only")
        .map(parse_bool)
        .transpose()?;
    let ttl = label(container, "mcp.hangar.ttl")
        .map(parse_ttl)
        .transpose()?;
    let untrusted = |what: &str| {
        format!(
            "{what}, which only a source with `trusted: true` may choose (labels cannot weaken \
             the sandbox of a source that anyone starting a container can label)"
        )
    };

    let mut labels = vec![
        ("hangar.source".to_owned(), "docker".to_owned()),
        ("hangar.container".to_owned(), container.id.clone()),
    ];
    let mut spec = match mode {
        "remote" | "http" => {
            let port = port.ok_or("mode `remote` needs `mcp.hangar.port`")?;
            let ip = address(container, config.network.as_deref())?;
            let path = label(container, "mcp.hangar.path").unwrap_or("/mcp");
            if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!(
                    "`{PREFIX}path` is `{path}`; it must start with `/` and hold no spaces"
                ));
            }
            let host = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip.to_owned()
            };
            ProviderSpec::remote(&name, format!("http://{host}:{port}{path}"))
        }
        "container" | "docker" => {
            if container.image.is_empty() {
                return Err("mode `container` needs an image, and the engine reports none".into());
            }
            if volumes.is_some() && !config.trusted {
                return Err(untrusted("it sets `mcp.hangar.volumes`"));
            }
            if read_only == Some(false) && !config.trusted {
                return Err(untrusted("it sets `mcp.hangar.read-only=false`"));
            }
            if let Some(args) = &command {
                let json = serde_json::to_string(args).map_err(|e| e.to_string())?;
                labels.push(("hangar.args".to_owned(), json));
            }
            if let Some(volumes) = volumes {
                labels.push(("hangar.volumes".to_owned(), volumes.to_owned()));
            }
            if read_only == Some(false) {
                labels.push(("hangar.read-only".to_owned(), "false".to_owned()));
            }
            ProviderSpec::container(&name, &container.image)
        }
        "subprocess" => {
            if !config.trusted {
                return Err(untrusted(
                    "it asks for mode `subprocess` (a command on the hangar's own host)",
                ));
            }
            let command = command.ok_or("mode `subprocess` needs `mcp.hangar.command`")?;
            ProviderSpec::subprocess(&name, command)
        }
        other => {
            return Err(format!(
                "`{PREFIX}mode` is `{other}`; use `remote`, `container` or `subprocess`"
            ));
        }
    };
    if let Some(ttl) = ttl {
        labels.push(("hangar.ttl".to_owned(), ttl.to_string()));
    }
    // Passed on as written: the hangar checks it (1-100) and quarantines a bad one.
    if let Some(weight) = label(container, "mcp.hangar.weight") {
        labels.push(("hangar.weight".to_owned(), weight.trim().to_owned()));
    }
    spec.group = label(container, "mcp.hangar.group")
        .filter(|g| !g.is_empty())
        .map(str::to_owned);
    if let Some(group) = &spec.group
        && let Some(problem) = provider_name_problem(group)
    {
        return Err(format!(
            "`{PREFIX}group` is `{group}`, not a group id: {problem}"
        ));
    }
    spec.labels = labels;
    spec.description = Some(format!(
        "container {} ({})",
        shown(container),
        container.image
    ));
    Ok(spec)
}

fn label<'c>(container: &'c Container, key: &str) -> Option<&'c str> {
    container
        .labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The container's IP on `network`, or on its first network with one.
fn address<'c>(container: &'c Container, network: Option<&str>) -> Result<&'c str, String> {
    match network {
        Some(wanted) => container
            .networks
            .iter()
            .find(|(name, _)| name == wanted)
            .map(|(_, ip)| ip.as_str())
            .ok_or_else(|| format!("it has no IP on the network `{wanted}` the source names")),
        None => container
            .networks
            .first()
            .map(|(_, ip)| ip.as_str())
            .ok_or_else(|| {
                "mode `remote` needs an IP, and the container is on no network with one".into()
            }),
    }
}

fn shown(container: &Container) -> String {
    let id: String = container.id.chars().take(12).collect();
    match container.names.first() {
        Some(name) => format!("`{name}` ({id})"),
        None => id,
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    text.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("`{PREFIX}port` is `{text}`; give a port number 1-65535"))
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        other => Err(format!(
            "`{PREFIX}read-only` is `{other}`; use `true` or `false`"
        )),
    }
}

/// Seconds, as a positive whole number.
fn parse_ttl(text: &str) -> Result<u32, String> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("`{PREFIX}ttl` is `{text}`; give a whole number of seconds"))
}

/// `mcp.hangar.command`: a JSON array of strings, or words split on whitespace (no shell
/// quoting: a word with spaces needs the JSON form).
fn split_command(text: &str) -> Result<Vec<String>, String> {
    let argv: Vec<String> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text)
            .map_err(|err| format!("`{PREFIX}command` is not a JSON array of strings: {err}"))?
    } else {
        text.split_whitespace().map(str::to_owned).collect()
    };
    if argv.is_empty() || argv[0].is_empty() {
        return Err(format!("`{PREFIX}command` is empty"));
    }
    Ok(argv)
}

// Only the wasm build exports it: a native build (for `cargo test`) cannot link its export names.
#[cfg(target_arch = "wasm32")]
hangar_plugin_sdk::export_discovery_source!(DockerDiscovery);
