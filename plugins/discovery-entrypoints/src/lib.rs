//! `discovery-entrypoints`: a discovery source (WIT `hangar:plugin@0.2.0`, world
//! `discovery-source`) that finds subprocess providers among installed Python packages: every
//! entry point in the group `mcp.providers` (or `mcp.mcp_servers`) declared by a distribution
//! in the configured site-packages directories.
//!
//! It reads `*.dist-info/entry_points.txt` (and the older `*.egg-info/entry_points.txt`), the
//! INI file pip writes, through read-only preopened directories: the plugin has no other view
//! of the host. An entry point `name = module.path:attr` becomes the provider `name` run as
//! `PYTHON -m module.path`, where `PYTHON` is the config's `python` (give the venv's
//! interpreter, so the package is importable). An invalid provider id, or a name two packages
//! declare, is reported (a warning in the hangar's log) and left out.
//!
//! Config:
//!
//! ```json
//! {"site_packages": ["/opt/venv/lib/python3.11/site-packages"],
//!  "python": "/opt/venv/bin/python",
//!  "groups": ["mcp.providers", "mcp.mcp_servers"]}
//! ```
//!
//! Each `site_packages` entry is a directory as the plugin sees it: the plugin's `preopens:`
//! must expose it (read-only) at that path (the discovery engine preopens each at its own
//! path). The spec's labels carry `hangar.source` (`entrypoints`), `hangar.package`
//! (`name==version`, from the dist-info directory's name) and `hangar.entry-point` (the entry
//! point's value). `type` and `mode` (the engine's own keys of a source) are accepted and
//! ignored.
//!
//! Build: `cargo build --release --target wasm32-wasip2`.

use std::path::Path;

use hangar_plugin_sdk::{
    Config as PluginConfig, DiscoverySource, Level, ProviderSpec, log, provider_name_problem,
};
use serde::Deserialize;

#[cfg(test)]
mod tests;

const DEFAULT_GROUPS: &[&str] = &["mcp.providers", "mcp.mcp_servers"];
/// Largest `entry_points.txt` read; real ones are a few hundred bytes.
const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    site_packages: Vec<String>,
    #[serde(default = "default_python")]
    python: String,
    #[serde(default)]
    groups: Option<Vec<String>>,
    /// The discovery engine's own keys of a source, ignored here.
    #[serde(default, rename = "type")]
    _type: Option<serde_json::Value>,
    #[serde(default, rename = "mode")]
    _mode: Option<serde_json::Value>,
}

fn default_python() -> String {
    "python3".to_owned()
}

#[derive(Default)]
struct EntrypointsDiscovery {
    config: Option<Config>,
}

impl DiscoverySource for EntrypointsDiscovery {
    fn configure(&mut self, config: &PluginConfig) -> Result<(), String> {
        let config: Config = config.parse()?;
        if config.site_packages.is_empty() {
            return Err(
                "invalid config: `site_packages` is empty; list the site-packages \
                        directories to read"
                    .into(),
            );
        }
        if config.python.trim().is_empty() {
            return Err("invalid config: `python` is empty; give the interpreter to run".into());
        }
        self.config = Some(config);
        Ok(())
    }

    fn discover(&mut self) -> Result<Vec<ProviderSpec>, String> {
        let config = self
            .config
            .as_ref()
            .ok_or("not configured: `site_packages` is required")?;
        let groups: Vec<&str> = match &config.groups {
            Some(groups) => groups.iter().map(String::as_str).collect(),
            None => DEFAULT_GROUPS.to_vec(),
        };
        let mut declared = Vec::new();
        for dir in &config.site_packages {
            declared.extend(read_site_packages(Path::new(dir))?);
        }
        let (found, problems) = providers(&declared, &groups, &config.python);
        for problem in problems {
            log(Level::Warn, &problem);
        }
        Ok(found)
    }
}

/// One distribution's `entry_points.txt`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Declared {
    /// `name==version`, or the directory's name when it does not split.
    package: String,
    /// Where it was read, for reports.
    file: String,
    text: String,
}

/// Every `entry_points.txt` of the distributions in `dir`, in name order.
fn read_site_packages(dir: &Path) -> Result<Vec<Declared>, String> {
    let entries = std::fs::read_dir(dir).map_err(|err| {
        format!(
            "cannot read the site-packages directory {}: {err}; preopen it for the plugin at \
             that path",
            dir.display()
        )
    })?;
    let mut metadata_dirs: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.ends_with(".dist-info") || name.ends_with(".egg-info"))
        .collect();
    metadata_dirs.sort();
    let mut declared = Vec::new();
    for name in metadata_dirs {
        let file = dir.join(&name).join("entry_points.txt");
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        if meta.len() > MAX_FILE_BYTES {
            log(
                Level::Warn,
                &format!("{} is larger than 1 MiB and is skipped", file.display()),
            );
            continue;
        }
        match std::fs::read_to_string(&file) {
            Ok(text) => declared.push(Declared {
                package: package_of(&name),
                file: file.display().to_string(),
                text,
            }),
            Err(err) => log(
                Level::Warn,
                &format!("cannot read {}: {err}; skipped", file.display()),
            ),
        }
    }
    Ok(declared)
}

/// `mcp_time-1.2.0.dist-info` → `mcp_time==1.2.0`.
fn package_of(dir_name: &str) -> String {
    let stem = dir_name
        .strip_suffix(".dist-info")
        .or_else(|| dir_name.strip_suffix(".egg-info"))
        .unwrap_or(dir_name);
    match stem.split_once('-') {
        Some((name, version)) => {
            // An egg-info may add `-py3.11`; the version is what comes before it.
            let version = version.split('-').next().unwrap_or(version);
            format!("{name}=={version}")
        }
        None => stem.to_owned(),
    }
}

/// The entry points of `groups` in `text` (INI: `[group]` headers, `name = value` lines,
/// `#`/`;` comments), as `(name, value)` in file order.
fn entry_points<'t>(text: &'t str, groups: &[&str]) -> Vec<(&'t str, &'t str)> {
    let mut in_group = false;
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_group = groups.contains(&header.trim());
            continue;
        }
        if in_group && let Some((name, value)) = line.split_once('=') {
            found.push((name.trim(), value.trim()));
        }
    }
    found
}

/// `module.path:attr [extra]` → `module.path`, if it is a dotted Python module path.
fn module_of(value: &str) -> Option<&str> {
    let module = value.split(['[', ':']).next()?.trim();
    let valid = !module.is_empty()
        && module.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    valid.then_some(module)
}

fn providers(
    declared: &[Declared],
    groups: &[&str],
    python: &str,
) -> (Vec<ProviderSpec>, Vec<String>) {
    let mut found: Vec<ProviderSpec> = Vec::new();
    let mut problems = Vec::new();
    for dist in declared {
        for (name, value) in entry_points(&dist.text, groups) {
            let place = format!("entry point `{name}` of {} ({})", dist.package, dist.file);
            if let Some(problem) = provider_name_problem(name) {
                problems.push(format!(
                    "{place} is left out: `{name}` is not a provider id ({problem})"
                ));
                continue;
            }
            let Some(module) = module_of(value) else {
                problems.push(format!(
                    "{place} is left out: `{value}` does not name a Python module"
                ));
                continue;
            };
            if let Some(first) = found.iter().find(|f| f.name == name) {
                let other = first
                    .labels
                    .iter()
                    .find(|(k, _)| k == "hangar.package")
                    .map_or("", |(_, v)| v.as_str());
                problems.push(format!(
                    "{place} is left out: provider `{name}` is already declared by {other}"
                ));
                continue;
            }
            let mut spec = ProviderSpec::subprocess(
                name,
                vec![python.to_owned(), "-m".to_owned(), module.to_owned()],
            );
            spec.labels = vec![
                ("hangar.source".to_owned(), "entrypoints".to_owned()),
                ("hangar.package".to_owned(), dist.package.clone()),
                ("hangar.entry-point".to_owned(), value.to_owned()),
            ];
            spec.description = Some(format!("Python entry point {value} of {}", dist.package));
            found.push(spec);
        }
    }
    (found, problems)
}

// Only the wasm build exports it: a native build (for `cargo test`) cannot link its export names.
#[cfg(target_arch = "wasm32")]
hangar_plugin_sdk::export_discovery_source!(EntrypointsDiscovery);
