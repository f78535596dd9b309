//! `mcp-hangar plugin new`: a plugin project that builds as it is, with a working example of
//! its kind, a unit test through the SDK's harness, and a README that says how to build, test,
//! inspect and configure it.
//!
//! The templates are plain text with `@@KEY@@` placeholders (no `format!`: they are mostly
//! Rust, full of braces). Every template is compiled and tested by `tests/plugin_cli.rs`.

use std::path::{Path, PathBuf};

use super::Kind;

/// The SDK of the source tree this binary was built from: the default `--sdk`.
pub const BUILT_FROM_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk");

/// The SDK's package name, checked in the `--sdk` directory's Cargo.toml.
const SDK_PACKAGE: &str = "hangar-plugin-sdk";

/// Names a crate cannot take (Rust keywords and the standard library's crates).
const RESERVED: &[&str] = &[
    "alloc",
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "core",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "proc_macro",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "std",
    "struct",
    "super",
    "test",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
];

/// Writes the project `name` of `kind` into `dir/name`; returns its directory.
pub fn write(kind: Kind, name: &str, dir: &Path, sdk: &Path) -> Result<PathBuf, String> {
    check_name(name)?;
    let (sdk, sdk_version) = sdk_dir(sdk)?;
    // The project is a component of the WIT package the SDK is generated from (the SDK's
    // version is its WIT version), which need not be the newest this hangar loads.
    let wit_package = format!("hangar:plugin@{sdk_version}");
    let project = dir.join(name);
    if std::fs::read_dir(&project).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(format!(
            "`{}` already exists and is not empty; choose another NAME or --dir",
            project.display()
        ));
    }
    let crate_name = name.replace('-', "_");
    let type_name = type_name(name);
    let fill = |template: &str| {
        template
            .replace("@@NAME@@", name)
            .replace("@@CRATE@@", &crate_name)
            .replace("@@TYPE@@", &type_name)
            .replace("@@KIND@@", kind.as_config())
            .replace("@@SDK@@", &toml_string(&sdk.display().to_string()))
            .replace("@@WIT@@", &wit_package)
    };
    let (lib, readme_kind) = match kind {
        Kind::Validator => (VALIDATOR_LIB, VALIDATOR_README),
        Kind::LbPolicy => (LB_POLICY_LIB, LB_POLICY_README),
        Kind::Discovery => (DISCOVERY_LIB, DISCOVERY_README),
    };
    let files = [
        ("Cargo.toml", fill(CARGO_TOML)),
        (".gitignore", "/target\n".to_owned()),
        ("src/lib.rs", fill(lib)),
        ("README.md", fill(&format!("{README}{readme_kind}"))),
    ];
    let create = |path: &Path| {
        std::fs::create_dir_all(path)
            .map_err(|err| format!("cannot create `{}`: {err}", path.display()))
    };
    create(&project.join("src"))?;
    for (file, contents) in files {
        let path = project.join(file);
        std::fs::write(&path, contents)
            .map_err(|err| format!("cannot write `{}`: {err}", path.display()))?;
    }
    Ok(project)
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= 64;
    if !well_formed {
        return Err(format!(
            "`{name}` cannot name a plugin crate: use up to 64 letters, digits, `-` and `_`, \
             starting with a letter (e.g. `my-guard`)"
        ));
    }
    if RESERVED.contains(&name.replace('-', "_").as_str()) {
        return Err(format!(
            "`{name}` is a Rust keyword or a standard crate's name; choose another"
        ));
    }
    Ok(())
}

/// The SDK directory, absolute (the project may be moved; the SDK stays where it is), and the
/// SDK's version.
fn sdk_dir(sdk: &Path) -> Result<(PathBuf, String), String> {
    let not_the_sdk = |why: String| {
        format!(
            "`{}` is not the {SDK_PACKAGE} crate ({why}); pass --sdk with the `sdk/` directory \
             of an MCP Hangar source tree",
            sdk.display()
        )
    };
    let dir = sdk
        .canonicalize()
        .map_err(|err| not_the_sdk(err.to_string()))?;
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))
        .map_err(|err| not_the_sdk(format!("no readable Cargo.toml: {err}")))?;
    let named = manifest
        .lines()
        .any(|line| line.replace(' ', "") == format!("name=\"{SDK_PACKAGE}\""));
    if !named {
        return Err(not_the_sdk(format!(
            "its Cargo.toml does not name `{SDK_PACKAGE}`"
        )));
    }
    // The package's own `version = "…"`, the first one in the file (before any dependency).
    let version = manifest
        .lines()
        .find_map(|line| {
            let value = line
                .trim()
                .strip_prefix("version")?
                .trim()
                .strip_prefix('=')?;
            Some(value.trim().trim_matches('"').to_owned())
        })
        .filter(|v| !v.is_empty())
        .ok_or_else(|| not_the_sdk("its Cargo.toml has no `version`".to_owned()))?;
    Ok((dir, version))
}

/// `my-guard` → `MyGuard`; a name that would shadow what the template imports gets `Plugin`
/// appended.
fn type_name(name: &str) -> String {
    let mut out: String = name
        .split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    const TAKEN: &[&str] = &[
        "Config",
        "Container",
        "DiscoverySource",
        "Invocation",
        "LbPolicy",
        "Level",
        "Member",
        "ProviderSpec",
        "Settings",
        "Validator",
        "Verdict",
    ];
    if TAKEN.contains(&out.as_str()) {
        out.push_str("Plugin");
    }
    out
}

/// `text` as the inside of a TOML basic string.
fn toml_string(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

const CARGO_TOML: &str = r#"[package]
name = "@@NAME@@"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# A WebAssembly component: `cargo build --release --target wasm32-wasip2`.
crate-type = ["cdylib"]

[dependencies]
hangar-plugin-sdk = { path = "@@SDK@@" }
serde = { version = "1", features = ["derive"] }
serde_json = "1"

# A workspace of its own, so the project builds wherever it lies (even inside another
# workspace's directory).
[workspace]

[profile.release]
# Speed over size: a validator runs on every call, a policy on every pick of its group; the
# component is loaded once.
opt-level = 3
lto = true
codegen-units = 1
strip = true
"#;

const README: &str = r#"# @@NAME@@

A plugin for MCP Hangar (kind `@@KIND@@`), written in Rust with `hangar-plugin-sdk` and built as a
WebAssembly component of @@WIT@@.

## Build

```sh
rustup target add wasm32-wasip2        # once
cargo build --release --target wasm32-wasip2
```

The component is `target/wasm32-wasip2/release/@@CRATE@@.wasm`. Check that the hangar loads it, and
see what it imports and exports:

```sh
mcp-hangar plugin inspect target/wasm32-wasip2/release/@@CRATE@@.wasm
```

## Test

```sh
cargo test
```

The tests in `src/lib.rs` run the plugin natively through `hangar_plugin_sdk::testing`, with the
same conversions as the hangar's calls; `log` and `now_ms` go to the harness (`logs()`,
`host().set_now_ms(…)`).

"#;

const VALIDATOR_README: &str = r#"## Configure

In the hangar's config file (a relative `path` is relative to that file):

```yaml
plugins:
  @@NAME@@:
    kind: validator
    path: path/to/@@CRATE@@.wasm
    config:
      blocked_words: ["password", "DROP TABLE"]
    timeout_ms: 50          # per call
    memory_mb: 64
    on_error: fail_closed   # a validator that fails denies the call

providers:
  files:
    command: [my-files-server]
    validators: [@@NAME@@]  # every call to `files` passes it first
```

A denied call reaches the client as an error naming the plugin and its reason; the provider
never sees it. The hangar reloads the plugin when the file changes.
"#;

const LB_POLICY_README: &str = r#"## Configure

In the hangar's config file (a relative `path` is relative to that file):

```yaml
plugins:
  @@NAME@@:
    kind: lb_policy
    path: path/to/@@CRATE@@.wasm
    config:
      max_in_flight: 8

providers:
  pool:
    mode: group
    strategy: plugin:@@NAME@@   # a failing policy falls back to round_robin
    members: [...]
```

`pick` runs on every call to the group: keep it small. Answering `None` leaves the choice to
the group's native strategy.
"#;

const DISCOVERY_README: &str = r#"## Configure

In the hangar's config file (a relative `path` is relative to that file):

```yaml
plugins:
  @@NAME@@:
    kind: discovery
    path: path/to/@@CRATE@@.wasm
    grants: [docker]          # without it, every docker call is refused
    timeout_ms: 2000          # docker can be slow
    config:
      label: mcp.endpoint
```

`mcp-hangar check --config FILE` loads and configures the plugin. Start a container with a label
`mcp.endpoint=http://HOST:PORT/mcp` and the plugin reports it as a remote provider named
after the container.
"#;

const VALIDATOR_LIB: &str = r#"//! `@@NAME@@`: a validator plugin for MCP Hangar (@@WIT@@, world `validator-plugin`).
//!
//! It denies a call whose arguments contain one of the configured words (compared without
//! regard to case), and allows every other call.
//!
//! Config: `{"blocked_words": ["password", "DROP TABLE"]}`.

use hangar_plugin_sdk::{Config, Invocation, Level, Validator, Verdict, export_validator, log};
use serde::Deserialize;

/// The plugin's `config:` in the hangar's file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Words no argument may contain.
    #[serde(default)]
    blocked_words: Vec<String>,
}

#[derive(Default)]
struct @@TYPE@@ {
    /// Lower-cased once, at `configure`.
    blocked_words: Vec<String>,
}

impl Validator for @@TYPE@@ {
    fn configure(&mut self, config: &Config) -> Result<(), String> {
        let settings: Settings = config.parse()?;
        if settings.blocked_words.iter().any(String::is_empty) {
            return Err("`blocked_words` holds an empty word, which would block every call".into());
        }
        self.blocked_words = settings
            .blocked_words
            .iter()
            .map(|word| word.to_lowercase())
            .collect();
        Ok(())
    }

    fn validate(&mut self, call: &Invocation) -> Verdict {
        // Each part of the call is copied from the hangar when first read: the arguments on
        // every call, the provider and the tool only for a denial's log line.
        let arguments = call.arguments_json().to_lowercase();
        match self.blocked_words.iter().find(|word| arguments.contains(*word)) {
            Some(word) => {
                log(
                    Level::Info,
                    &format!("denied {}/{}: `{word}`", call.provider(), call.tool()),
                );
                Verdict::deny(format!("the arguments contain the blocked word `{word}`"))
            }
            None => Verdict::Allow,
        }
    }
}

export_validator!(@@TYPE@@);

#[cfg(test)]
mod tests {
    use super::*;
    use hangar_plugin_sdk::testing::ValidatorHarness;
    use serde_json::json;

    fn write(text: &str) -> Invocation<'static> {
        Invocation::new("files", "write").with_arguments(json!({"path": "/tmp/a", "text": text}))
    }

    #[test]
    fn a_call_with_a_blocked_word_is_denied_and_others_are_allowed() {
        let mut plugin = ValidatorHarness::<@@TYPE@@>::new();
        plugin
            .configure(json!({"blocked_words": ["Password"]}))
            .unwrap();
        assert_eq!(
            plugin.validate(&write("my PASSWORD is hunter2")),
            Verdict::deny("the arguments contain the blocked word `password`")
        );
        assert_eq!(plugin.validate(&write("hello")), Verdict::Allow);
        assert_eq!(plugin.logs().len(), 1, "{:?}", plugin.logs());
    }

    #[test]
    fn a_config_it_cannot_use_is_refused() {
        let mut plugin = ValidatorHarness::<@@TYPE@@>::new();
        let typo = plugin.configure(json!({"blocked_word": ["x"]})).unwrap_err();
        assert!(typo.contains("unknown field `blocked_word`"), "{typo}");
        assert!(plugin.configure(json!({"blocked_words": [""]})).is_err());
    }
}
"#;

const LB_POLICY_LIB: &str = r#"//! `@@NAME@@`: a load-balancing policy plugin for MCP Hangar (@@WIT@@, world
//! `lb-policy-plugin`).
//!
//! It sends a call to the healthy member with the fewest calls in flight for its weight, and
//! skips members that already run `max_in_flight` calls. When no member is left it answers
//! `None`, and the group's native strategy decides.
//!
//! Config: `{}`, or `{"max_in_flight": 8}`.

use hangar_plugin_sdk::{Config, Invocation, LbPolicy, Member, export_lb_policy};
use serde::Deserialize;

/// The plugin's `config:` in the hangar's file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    max_in_flight: Option<u32>,
}

#[derive(Default)]
struct @@TYPE@@ {
    max_in_flight: Option<u32>,
}

impl LbPolicy for @@TYPE@@ {
    fn configure(&mut self, config: &Config) -> Result<(), String> {
        let settings: Settings = config.parse()?;
        if settings.max_in_flight == Some(0) {
            return Err("`max_in_flight` of 0 would never pick a member".into());
        }
        self.max_in_flight = settings.max_in_flight;
        Ok(())
    }

    // Reads nothing of the call, so nothing of it is copied from the hangar: the members are
    // numbers (`call.member_id(i)` would give the id of `members[i]`).
    fn pick(&mut self, _call: &Invocation, members: &[Member]) -> Option<usize> {
        members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.healthy && m.weight > 0)
            .filter(|(_, m)| self.max_in_flight.is_none_or(|max| m.in_flight < max))
            // Least load per unit of weight: in_flight / weight, compared without division.
            .min_by(|(_, a), (_, b)| {
                (u64::from(a.in_flight) * u64::from(b.weight))
                    .cmp(&(u64::from(b.in_flight) * u64::from(a.weight)))
                    .then(a.priority.cmp(&b.priority))
            })
            .map(|(index, _)| index)
    }
}

export_lb_policy!(@@TYPE@@);

#[cfg(test)]
mod tests {
    use super::*;
    use hangar_plugin_sdk::testing::LbPolicyHarness;
    use serde_json::json;

    /// A member with its id, as the harness takes them (the hangar sends the id apart).
    fn member(id: &str, weight: u32, in_flight: u32) -> (&str, Member) {
        let member = Member {
            weight,
            in_flight,
            ..Member::new(id)
        };
        (id, member)
    }

    #[test]
    fn the_least_loaded_healthy_member_for_its_weight_is_picked() {
        let mut policy = LbPolicyHarness::<@@TYPE@@>::new();
        let call = Invocation::new("pool", "echo");
        let mut down = member("c", 1, 0);
        down.1.healthy = false;
        let members = [member("a", 1, 2), member("b", 4, 4), down];
        assert_eq!(policy.pick(&call, &members), Some(1));
    }

    #[test]
    fn members_at_the_cap_are_skipped_and_none_left_means_native() {
        let mut policy = LbPolicyHarness::<@@TYPE@@>::new();
        policy.configure(json!({"max_in_flight": 2})).unwrap();
        let call = Invocation::new("pool", "echo");
        assert_eq!(policy.pick(&call, &[member("a", 1, 2), member("b", 1, 1)]), Some(1));
        assert_eq!(policy.pick(&call, &[member("a", 1, 2)]), None);
        assert!(policy.configure(json!({"max_in_flight": 0})).is_err());
    }
}
"#;

const DISCOVERY_LIB: &str = r#"//! `@@NAME@@`: a discovery source plugin for MCP Hangar (@@WIT@@, world
//! `discovery-source`).
//!
//! It asks Docker for the running containers that carry a label (`mcp.endpoint` unless
//! configured otherwise) and reports each as a remote provider at the label's URL, named after
//! the container. It needs `grants: [docker]`.
//!
//! Config: `{}`, or `{"label": "mcp.endpoint", "group": "docker"}`.

use hangar_plugin_sdk::{
    Config, DiscoverySource, Level, ProviderSpec, docker, export_discovery_source, log,
};
use serde::Deserialize;

/// The plugin's `config:` in the hangar's file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    label: Option<String>,
    /// A group every provider found joins.
    #[serde(default)]
    group: Option<String>,
}

#[derive(Default)]
struct @@TYPE@@ {
    label: String,
    group: Option<String>,
}

impl DiscoverySource for @@TYPE@@ {
    fn configure(&mut self, config: &Config) -> Result<(), String> {
        let settings: Settings = config.parse()?;
        self.label = settings.label.unwrap_or_else(|| "mcp.endpoint".to_owned());
        self.group = settings.group;
        Ok(())
    }

    fn discover(&mut self) -> Result<Vec<ProviderSpec>, String> {
        let containers = docker::list_containers(&[self.label.as_str()])?;
        let mut found = Vec::new();
        for container in containers.into_iter().filter(|c| c.state == "running") {
            let Some(endpoint) = container
                .labels
                .iter()
                .find(|(key, _)| *key == self.label)
                .map(|(_, value)| value.clone())
            else {
                continue;
            };
            let name: String = container
                .names
                .first()
                .unwrap_or(&container.id)
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
                .collect();
            found.push(ProviderSpec {
                group: self.group.clone(),
                description: Some(format!("container {} ({})", name, container.image)),
                ..ProviderSpec::remote(name, endpoint)
            });
        }
        log(Level::Debug, &format!("{} providers found", found.len()));
        Ok(found)
    }
}

export_discovery_source!(@@TYPE@@);

#[cfg(test)]
mod tests {
    use super::*;
    use hangar_plugin_sdk::Container;
    use hangar_plugin_sdk::testing::DiscoveryHarness;
    use serde_json::json;

    fn container(name: &str, state: &str, endpoint: Option<&str>) -> Container {
        Container {
            id: format!("id-{name}"),
            names: vec![name.to_owned()],
            image: "mcp/server:1".to_owned(),
            labels: endpoint
                .map(|e| vec![("mcp.endpoint".to_owned(), e.to_owned())])
                .unwrap_or_default(),
            state: state.to_owned(),
            networks: Vec::new(),
        }
    }

    #[test]
    fn running_labelled_containers_become_remote_providers() {
        let mut source = DiscoveryHarness::<@@TYPE@@>::new();
        source.configure(json!({"group": "docker"})).unwrap();
        source.host().grant_docker(vec![
            container("search", "running", Some("http://10.0.0.2:8000/mcp")),
            container("stopped", "exited", Some("http://10.0.0.3:8000/mcp")),
            container("web", "running", None),
        ]);
        let found = source.discover().unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].name, "search");
        assert_eq!(found[0].endpoint.as_deref(), Some("http://10.0.0.2:8000/mcp"));
        assert_eq!(found[0].group.as_deref(), Some("docker"));
    }

    #[test]
    fn without_the_docker_grant_discovery_fails_saying_so() {
        let mut source = DiscoveryHarness::<@@TYPE@@>::new();
        let refusal = source.discover().unwrap_err();
        assert!(refusal.contains("add `grants: [docker]`"), "{refusal}");
    }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_names_are_checked_before_anything_is_written() {
        for bad in [
            "",
            "1st",
            "my guard",
            "café",
            "-x",
            "self",
            "std",
            &"x".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["guard", "my-guard", "my_guard2", "G"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn type_names_are_camel_case_and_never_shadow_an_import() {
        assert_eq!(type_name("my-guard"), "MyGuard");
        assert_eq!(type_name("rate_limit-2"), "RateLimit2");
        assert_eq!(type_name("validator"), "ValidatorPlugin");
        assert_eq!(type_name("settings"), "SettingsPlugin");
    }

    #[test]
    fn every_placeholder_is_filled() {
        let dir = std::env::temp_dir().join(format!("hangar-scaffold-{}", std::process::id()));
        for (kind, name) in [
            (Kind::Validator, "v"),
            (Kind::LbPolicy, "l"),
            (Kind::Discovery, "d"),
        ] {
            let project = write(kind, name, &dir, Path::new(BUILT_FROM_SDK)).unwrap();
            for file in ["Cargo.toml", "src/lib.rs", "README.md"] {
                let text = std::fs::read_to_string(project.join(file)).unwrap();
                assert!(!text.contains("@@"), "{name}/{file}:\n{text}");
            }
        }
        let again = write(Kind::Validator, "v", &dir, Path::new(BUILT_FROM_SDK)).unwrap_err();
        assert!(again.contains("already exists and is not empty"), "{again}");
        let elsewhere = write(Kind::Validator, "w", &dir, &dir).unwrap_err();
        assert!(
            elsewhere.contains("is not the hangar-plugin-sdk crate"),
            "{elsewhere}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
