//! `discovery-filesystem`: a discovery source plugin for the hangar (WIT `hangar:plugin@0.2.0`,
//! world `discovery-source`) that reads provider files from one directory.
//!
//! Config: `{"path": "/etc/mcp-hangar/providers.d"}` (the default). The hangar grants the
//! directory as a read-only preopen under the same path and watches it, so a change is seen at
//! once. Every `*.yaml` / `*.yml` file holds one provider in the original mcp-hangar's format:
//!
//! ```yaml
//! name: echo                 # default: the file name without its extension
//! enabled: true              # false: skipped
//! mode: subprocess           # subprocess (default) | container | docker | remote | http
//! ttl: 90                    # seconds an authoritative source keeps it after the file goes
//! description: An echo server
//! group: pool                # joins group `pool` (the config's, or one made for it)
//! weight: 3                  # its weight in that group, 1-100 (default 1)
//! connection:
//!   command: [python, -m, echo_server]   # or a string
//!   args: [--verbose]
//!   env: {LOG_LEVEL: info}
//!   # remote: url: http://host:8080/mcp, or host/port (+ health_path) for http://host:port/mcp
//! metadata: {team: platform}   # labels
//! tools:                       # predefined tools, offered before it starts (optional)
//!   - {name: echo, description: Echo, inputSchema: {type: object}}
//! ```
//!
//! A file that cannot be read or parsed does not stop the others: it is reported as a
//! placeholder entry whose `hangar.error` label says `FILE:LINE:COL: what is wrong`.

use std::path::Path;

use hangar_plugin_sdk::{Config as PluginConfig, DiscoverySource, ProviderSpec};
use serde::Deserialize;

/// The directory read when the config names none.
pub const DEFAULT_PATH: &str = "/etc/mcp-hangar/providers.d";
/// The label the hangar reads a problem from.
pub const ERROR_LABEL: &str = "hangar.error";

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    path: Option<String>,
}

/// One provider file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderFile {
    name: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    mode: Option<String>,
    ttl: Option<u64>,
    description: Option<String>,
    /// The group it joins.
    group: Option<String>,
    /// Its weight in that group (label `hangar.weight`).
    weight: Option<u32>,
    #[serde(default)]
    connection: Connection,
    #[serde(default)]
    metadata: serde_json::Map<String, serde_json::Value>,
    /// Predefined tools (`[{name, description, inputSchema}]`), offered before it starts.
    tools: Option<serde_json::Value>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Connection {
    command: Option<Command>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: std::collections::BTreeMap<String, String>,
    image: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    health_path: Option<String>,
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Command {
    Line(String),
    Argv(Vec<String>),
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
#[derive(Default)]
struct Filesystem {
    path: String,
}

impl DiscoverySource for Filesystem {
    fn configure(&mut self, config: &PluginConfig) -> Result<(), String> {
        let config: Config = config
            .parse()
            .map_err(|e| format!("discovery-filesystem: {e}"))?;
        self.path = config.path.unwrap_or_else(|| DEFAULT_PATH.to_string());
        Ok(())
    }

    fn discover(&mut self) -> Result<Vec<ProviderSpec>, String> {
        scan(Path::new(&self.path))
    }
}

// Only the wasm build exports it: a native build (for `cargo test`) cannot link its export names.
#[cfg(target_arch = "wasm32")]
hangar_plugin_sdk::export_discovery_source!(Filesystem);

/// Every provider file of `dir`, in file-name order.
pub fn scan(dir: &Path) -> Result<Vec<ProviderSpec>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read directory {}: {e}", dir.display()))?;
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| x == "yaml" || x == "yml")
        })
        .collect();
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("provider")
            .to_string();
        match read(&file, &stem) {
            Ok(Some(spec)) => found.push(spec),
            Ok(None) => {}
            Err(message) => found.push(ProviderSpec {
                name: stem,
                labels: vec![(ERROR_LABEL.to_string(), message)],
                ..ProviderSpec::default()
            }),
        }
    }
    Ok(found)
}

/// One file as a provider; `None` when it says `enabled: false`.
fn read(file: &Path, stem: &str) -> Result<Option<ProviderSpec>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    let parsed: ProviderFile = yaml_serde::from_str(&text).map_err(|e| match e.location() {
        Some(at) => format!(
            "{}:{}:{}: {}",
            file.display(),
            at.line(),
            at.column(),
            strip_location(&e.to_string())
        ),
        None => format!("{}: {e}", file.display()),
    })?;
    if !parsed.enabled {
        return Ok(None);
    }
    let name = parsed.name.unwrap_or_else(|| stem.to_string());
    let c = parsed.connection;
    let mode = match parsed.mode.as_deref() {
        None => {
            if c.url.is_some() || c.host.is_some() {
                "remote"
            } else if c.image.is_some() {
                "container"
            } else {
                "subprocess"
            }
        }
        Some("docker" | "podman" | "container") => "container",
        Some("http" | "remote") => "remote",
        Some(other) => other,
    }
    .to_string();
    let mut command = match c.command {
        None => Vec::new(),
        Some(Command::Line(line)) => vec![line],
        Some(Command::Argv(argv)) => argv,
    };
    command.extend(c.args);
    let endpoint = c.url.or_else(|| {
        c.host.as_ref().map(|host| {
            let port = c.port.map(|p| format!(":{p}")).unwrap_or_default();
            format!("http://{host}{port}/mcp")
        })
    });
    let mut labels: Vec<(String, String)> = parsed
        .metadata
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect();
    if let Some(ttl) = parsed.ttl {
        labels.push(("hangar.ttl".into(), ttl.to_string()));
    }
    if let Some(weight) = parsed.weight {
        labels.push(("hangar.weight".into(), weight.to_string()));
    }
    if let Some(path) = c.health_path {
        labels.push(("hangar.health_path".into(), path));
    }
    labels.push(("hangar.file".into(), file.display().to_string()));
    Ok(Some(ProviderSpec {
        name,
        mode,
        command,
        image: c.image,
        endpoint,
        env: c.env.into_iter().collect(),
        labels,
        description: parsed.description,
        group: parsed.group.filter(|g| !g.is_empty()),
        tools_json: parsed.tools.map(|t| t.to_string()),
        ..ProviderSpec::default()
    }))
}

/// yaml_serde ends its messages with ` at line L column C`; the location is already in front.
fn strip_location(message: &str) -> &str {
    message
        .rfind(" at line ")
        .map_or(message, |at| &message[..at])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(files: &[(&str, &str)]) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "fs-discovery-{}-{}",
            std::process::id(),
            files.len()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for (name, text) in files {
            std::fs::write(d.join(name), text).unwrap();
        }
        d
    }

    #[test]
    fn files_become_specs_and_a_malformed_one_is_reported_with_its_line() {
        let d = dir(&[
            ("a.yaml", "name: echo\nttl: 5\ngroup: pool\nweight: 3\nconnection:\n  command: [prov, --name, x]\n  env: {A: b}\nmetadata: {team: core}\n"),
            ("b.yml", "name: bad\nconnection:\n  comand: [x]\n"),
            ("c.yaml", "enabled: false\n"),
            ("d.yaml", "connection: {host: svc, port: 8080}\n"),
            ("notes.txt", "ignored"),
        ]);
        let found = scan(&d).unwrap();
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].name, "echo");
        assert_eq!(found[0].command, ["prov", "--name", "x"]);
        assert!(found[0].labels.contains(&("hangar.ttl".into(), "5".into())));
        assert_eq!(found[0].group.as_deref(), Some("pool"));
        assert!(found[0].labels.contains(&("hangar.weight".into(), "3".into())));
        assert!(found[0].labels.contains(&("team".into(), "core".into())));
        let err = &found[1].labels[0];
        assert_eq!(err.0, ERROR_LABEL);
        assert!(err.1.contains("b.yml:3:"), "{}", err.1);
        assert!(err.1.contains("comand"), "{}", err.1);
        assert_eq!(found[2].name, "d");
        assert_eq!(found[2].mode, "remote");
        assert_eq!(found[2].endpoint.as_deref(), Some("http://svc:8080/mcp"));
    }
}
