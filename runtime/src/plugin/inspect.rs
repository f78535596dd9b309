//! What a plugin file is, without loading it: the component's imports and exports, the WIT
//! version and world they belong to, and whether this host would load it (for `mcp-hangar
//! plugin inspect`). The verdict comes from the loader's own checks: the file is compiled by an
//! engine configured like the hangar's, then type-checked with `instantiate_pre` against the
//! same linkers and the same generated bindings; only the plugin's `config:` is not tried
//! (there is none to try).

use std::path::Path;

use serde::Serialize;
use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, InstancePre};

use super::engine::{HostOptions, Runtime};
use super::load::{
    WIT_PACKAGE, WIT_VERSIONS, export_interface, link_error, supported_versions, typed, world_name,
};
use super::sandbox::Sandbox;
use crate::config::{BUNDLED_PREFIX, PluginKind};

/// The WIT package (with its version) that new plugins are built against: the newest this
/// host loads. It also loads every older version in `supported_wit_versions`.
pub const SUPPORTED_WIT_PACKAGE: &str = WIT_PACKAGE;

/// The WIT package name every plugin interface is under; the version follows an `@`.
const PACKAGE_NAME: &str = "hangar:plugin";

/// What `inspect` found in a component.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    /// The file as given.
    pub file: String,
    /// Its size in bytes.
    pub bytes: usize,
    /// The versions of `hangar:plugin` its imports and exports name, sorted.
    pub wit_versions: Vec<String>,
    /// The versions of `hangar:plugin` this host loads.
    pub supported_wit_versions: Vec<String>,
    /// One entry per plugin world whose export the component has (a component may have
    /// several: it then loads as any of those kinds).
    pub worlds: Vec<WorldCheck>,
    /// What the component imports (WASI, `hangar:plugin/host`, …).
    pub imports: Vec<Item>,
    /// What it exports.
    pub exports: Vec<Item>,
    /// Whether this host loads it as at least one kind of plugin.
    pub loadable: bool,
    /// Why it does not, when it does not.
    pub reason: Option<String>,
}

/// One plugin world a component exports the interface of, and whether it passes the
/// loader's type check for that world.
#[derive(Clone, Debug, Serialize)]
pub struct WorldCheck {
    /// `validator-plugin`, `lb-policy-plugin` or `discovery-source`.
    pub world: String,
    /// The plugin kind to write in the config (`kind:`).
    pub kind: String,
    /// The WIT version of the exported interface.
    pub wit_version: String,
    pub loadable: bool,
    /// The loader's error when not loadable.
    pub reason: Option<String>,
}

/// An import or export of the component.
#[derive(Clone, Debug, Serialize)]
pub struct Item {
    /// As the component names it: `hangar:plugin/host@0.1.0`, `wasi:io/streams@0.2.6`, …
    pub name: String,
    /// `interface`, `function`, `type`, `module` or `component`.
    pub item: &'static str,
    /// The functions of an interface.
    pub functions: Vec<String>,
}

/// Why a file could not be inspected at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InspectError(pub String);

/// Inspects the component at `path` (a file, or `bundled:NAME` for a plugin built into this
/// binary).
///
/// # Errors
///
/// When the file cannot be read, is not a WebAssembly component (a core module and any other
/// file are told apart, as the loader does), or does not compile for this host.
pub fn inspect(path: &Path) -> Result<Inspection, InspectError> {
    let shown = path.display().to_string();
    let bytes = match shown.strip_prefix(BUNDLED_PREFIX) {
        Some(name) => crate::bundled::get(name)
            .ok_or_else(|| {
                let names: Vec<_> = crate::bundled::names().collect();
                InspectError(format!(
                    "there is no bundled plugin `{name}` (this binary has: {})",
                    names.join(", ")
                ))
            })?
            .to_vec(),
        None => std::fs::read(path)
            .map_err(|err| InspectError(format!("cannot read `{shown}`: {err}")))?,
    };
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => {
            return Err(InspectError(format!(
                "`{shown}` is a core WebAssembly module, not a component: build it for \
                 `wasm32-wasip2` (or wrap it with `wasm-tools component new`) against a world \
                 of {WIT_PACKAGE}"
            )));
        }
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => {}
        _ => {
            return Err(InspectError(format!(
                "`{shown}` is not a WebAssembly component (it does not start with the wasm \
                 magic bytes)"
            )));
        }
    }
    // An engine like the hangar's (same pooling limits per component, so a component too big
    // for them fails here as it would there), with one slot: nothing is instantiated.
    let runtime = Runtime::new(&HostOptions {
        fuel: false,
        max_live_instances: 1,
    })
    .map_err(|err| InspectError(format!("cannot start the plugin engine: {err:#}")))?;
    let component = Component::from_binary(&runtime.engine, &bytes).map_err(|err| {
        InspectError(format!(
            "`{shown}` is a component but does not compile for this host: {err:#}"
        ))
    })?;

    let component_type = component.component_type();
    let engine = &runtime.engine;
    let imports: Vec<Item> = component_type
        .imports(engine)
        .map(|(name, item)| describe(engine, name, &item.ty))
        .collect();
    let exports: Vec<Item> = component_type
        .exports(engine)
        .map(|(name, item)| describe(engine, name, &item.ty))
        .collect();

    let mut wit_versions: Vec<String> = imports
        .iter()
        .chain(&exports)
        .filter_map(|item| plugin_interface(&item.name).map(|(_, version)| version.to_owned()))
        .collect();
    wit_versions.sort();
    wit_versions.dedup();

    let worlds: Vec<WorldCheck> = [
        PluginKind::Validator,
        PluginKind::LbPolicy,
        PluginKind::Discovery,
    ]
    .into_iter()
    .filter_map(|kind| {
        let version = exports.iter().find_map(|item| {
            plugin_interface(&item.name)
                .filter(|(interface, _)| *interface == export_interface(kind))
                .map(|(_, version)| version.to_owned())
        })?;
        let outcome = if WIT_VERSIONS.contains(&version.as_str()) {
            type_check(&runtime, &component, kind, &version, &shown)
        } else {
            Err(format!(
                "it was built against {PACKAGE_NAME}@{version}; this hangar loads \
                 {PACKAGE_NAME}@{} (rebuild it with a matching SDK, or upgrade the hangar)",
                supported_versions()
            ))
        };
        Some(WorldCheck {
            world: world_name(kind).to_owned(),
            kind: kind.as_str().to_owned(),
            wit_version: version,
            loadable: outcome.is_ok(),
            reason: outcome.err(),
        })
    })
    .collect();

    let loadable = worlds.iter().any(|world| world.loadable);
    let reason = if loadable {
        None
    } else if worlds.is_empty() {
        Some(format!(
            "it exports none of {PACKAGE_NAME}/validator, {PACKAGE_NAME}/lb-policy and \
             {PACKAGE_NAME}/discovery, so it is not a hangar plugin"
        ))
    } else {
        Some(
            worlds
                .iter()
                .filter_map(|world| world.reason.clone())
                .collect::<Vec<_>>()
                .join("; "),
        )
    };
    Ok(Inspection {
        file: shown,
        bytes: bytes.len(),
        wit_versions,
        supported_wit_versions: WIT_VERSIONS.iter().map(|v| (*v).to_owned()).collect(),
        worlds,
        imports,
        exports,
        loadable,
        reason,
    })
}

impl Inspection {
    /// The report as a person reads it.
    pub fn human(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(out, "file:      {} ({} bytes)", self.file, self.bytes);
        let _ = writeln!(out, "component: yes");
        let versions = if self.wit_versions.is_empty() {
            format!("none (it names no {PACKAGE_NAME} interface)")
        } else {
            self.wit_versions
                .iter()
                .map(|v| format!("{PACKAGE_NAME}@{v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "wit:       {versions} (this hangar loads {})",
            self.supported_wit_versions
                .iter()
                .map(|v| format!("{PACKAGE_NAME}@{v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if self.worlds.is_empty() {
            let _ = writeln!(out, "world:     none of the plugin worlds");
        }
        for world in &self.worlds {
            let _ = writeln!(
                out,
                "world:     {} (config `kind: {}`)",
                world.world, world.kind
            );
        }
        for (title, items) in [("imports", &self.imports), ("exports", &self.exports)] {
            let _ = writeln!(out, "{title}:");
            if items.is_empty() {
                let _ = writeln!(out, "  (none)");
            }
            for item in items {
                if item.functions.is_empty() {
                    let _ = writeln!(out, "  {} ({})", item.name, item.item);
                } else {
                    let _ = writeln!(out, "  {}: {}", item.name, item.functions.join(", "));
                }
            }
        }
        if self.loadable {
            let kinds: Vec<_> = self
                .worlds
                .iter()
                .filter(|w| w.loadable)
                .map(|w| format!("`{}`", w.kind))
                .collect();
            let _ = writeln!(out, "loadable:  yes, as {}", kinds.join(" or "));
            for world in self.worlds.iter().filter(|w| !w.loadable) {
                let reason = world.reason.as_deref().unwrap_or("");
                let _ = writeln!(out, "           not as `{}`: {reason}", world.kind);
            }
        } else {
            let reason = self.reason.as_deref().unwrap_or("");
            let _ = writeln!(out, "loadable:  no: {reason}");
        }
        out
    }
}

/// `hangar:plugin/NAME@VERSION` split into `(NAME, VERSION)`.
fn plugin_interface(name: &str) -> Option<(&str, &str)> {
    name.strip_prefix(PACKAGE_NAME)?
        .strip_prefix('/')?
        .split_once('@')
}

fn describe(engine: &Engine, name: &str, item: &ComponentItem) -> Item {
    let (kind, functions) = match item {
        ComponentItem::ComponentInstance(instance) => (
            "interface",
            instance
                .exports(engine)
                .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
                .map(|(name, _)| name.to_owned())
                .collect(),
        ),
        ComponentItem::ComponentFunc(_) | ComponentItem::CoreFunc(_) => ("function", Vec::new()),
        ComponentItem::Module(_) => ("module", Vec::new()),
        ComponentItem::Component(_) => ("component", Vec::new()),
        ComponentItem::Type(_) | ComponentItem::Resource(_) => ("type", Vec::new()),
    };
    Item {
        name: name.to_owned(),
        item: kind,
        functions,
    }
}

/// The loader's type check for `kind` at WIT `version` (see `load::compile` and `load::load`):
/// linking against the kind's imports, then the typed exports of its world. The error is the
/// loader's.
fn type_check(
    runtime: &Runtime,
    component: &Component,
    kind: PluginKind,
    version: &str,
    shown: &str,
) -> Result<(), String> {
    let linker = match kind {
        PluginKind::Discovery => &runtime.discovery,
        PluginKind::Validator | PluginKind::LbPolicy => &runtime.plain,
    };
    let pre: InstancePre<Sandbox> = linker
        .instantiate_pre(component)
        .map_err(|err| link_error(shown, kind, &err))?;
    typed(pre, kind, version).map(drop).map_err(|err| {
        format!(
            "`{shown}` is not a component of the `{}` world of {PACKAGE_NAME}@{version}, which \
             a plugin of kind `{kind}` must be: {err:#}",
            world_name(kind)
        )
    })
}
