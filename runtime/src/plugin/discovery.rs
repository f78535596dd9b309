//! Discovery sources: a fresh instance per `discover` (they run seconds apart, and a fresh
//! instance cannot carry a broken state from one round to the next).

use std::sync::Arc;
use std::time::Duration;

use super::DiscoveredProvider;
use super::bindings::v0_1_0::hangar::plugin::types as wit;
use super::bindings::{v0_1_0 as v1, v0_2_0 as v2};
use super::engine::Runtime;
use super::error::{PluginError, PluginErrorKind, truncate};
use super::load::{Loaded, backstop, configured, instantiate_configured, settle, store, within};
use super::sandbox::Sandbox;
use super::stats::Stats;

/// Largest answer accepted, counted as the bytes of all its strings: ample for thousands of
/// providers, and a bound on what a source can make the hangar hold.
pub(super) const MAX_DISCOVERY_BYTES: usize = 16 << 20;
/// Longest error message of a source kept.
const REPORTED_BYTES: usize = 4096;

/// How to make instances of a discovery source, by the WIT version it was built against.
pub(super) enum Pre {
    V1(v1::DiscoverySourcePre<Sandbox>),
    V2(v2::DiscoverySourcePre<Sandbox>),
}

/// A fresh instance, configured, asked once (the `discovery` interface is the same in both
/// versions; its answer is in the version's generated types).
macro_rules! configure_and_discover {
    ($pre:expr, $store:expr, $config_json:expr) => {{
        let instance = instantiate_configured!($pre, $store, $config_json, hangar_plugin_discovery);
        let exports = instance.hangar_plugin_discovery();
        let outcome = within(backstop(&$store), exports.call_discover(&mut $store)).await;
        settle(&$store, outcome)?
    }};
}

pub(super) async fn discover(
    runtime: &Runtime,
    loaded: &Loaded,
    pre: &Pre,
    stats: &Arc<Stats>,
) -> Result<Vec<DiscoveredProvider>, PluginError> {
    let plugin = &*loaded.sandbox.plugin;
    let mut store = store(runtime, &loaded.sandbox, stats)?;
    let answer: Result<Vec<DiscoveredProvider>, String> = match pre {
        Pre::V1(pre) => configure_and_discover!(pre, store, &loaded.config_json)
            .map(|found| found.into_iter().map(DiscoveredProvider::from).collect()),
        Pre::V2(pre) => configure_and_discover!(pre, store, &loaded.config_json)
            .map(|found| found.into_iter().map(DiscoveredProvider::from).collect()),
    };
    let found = answer.map_err(|reported| {
        PluginError::new(
            plugin,
            PluginErrorKind::Reported,
            format!("discover failed: {}", truncate(&reported, REPORTED_BYTES)),
        )
    })?;
    let size: usize = found.iter().map(spec_bytes).sum();
    if size > MAX_DISCOVERY_BYTES {
        return Err(PluginError::new(
            plugin,
            PluginErrorKind::OutputTooLarge,
            format!(
                "answered with {} providers in {size} bytes; at most {MAX_DISCOVERY_BYTES} are \
                 accepted",
                found.len()
            ),
        ));
    }
    Ok(found)
}

fn spec_bytes(spec: &DiscoveredProvider) -> usize {
    let pairs = |p: &[(String, String)]| p.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    let opt = |o: &Option<String>| o.as_ref().map_or(0, String::len);
    spec.name.len()
        + spec.mode.len()
        + spec.command.iter().map(String::len).sum::<usize>()
        + opt(&spec.image)
        + opt(&spec.endpoint)
        + pairs(&spec.env)
        + opt(&spec.group)
        + pairs(&spec.labels)
        + opt(&spec.description)
        + opt(&spec.tools_json)
}

/// `provider-spec` is the same record in every WIT version; one conversion per version.
macro_rules! from_provider_spec {
    ($spec:ty) => {
        impl From<$spec> for DiscoveredProvider {
            fn from(spec: $spec) -> Self {
                Self {
                    name: spec.name,
                    mode: spec.mode,
                    command: spec.command,
                    image: spec.image,
                    endpoint: spec.endpoint,
                    env: spec.env,
                    group: spec.group,
                    labels: spec.labels,
                    description: spec.description,
                    idle_ttl: spec.idle_ttl_s.map(|s| Duration::from_secs(u64::from(s))),
                    tools_json: spec.tools_json,
                }
            }
        }
    };
}

from_provider_spec!(wit::ProviderSpec);
from_provider_spec!(v2::hangar::plugin::types::ProviderSpec);
