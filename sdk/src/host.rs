//! What a plugin may call: the hangar's log and clock, and for discovery sources the `docker`
//! and `kubernetes` capabilities.
//!
//! Inside the hangar these are the component's imports. Compiled for any other target (a
//! plugin's `cargo test`), wasm imports cannot link, so each call goes to the fake host of the
//! [`testing`](crate::testing) harness running the call, or, outside a harness, to stderr and
//! the system clock, and the capabilities refuse as an ungranted one does in the hangar.

use crate::types::{Container, Level, Pod};

/// Writes a line to the hangar's log, prefixed with the plugin's name. The hangar keeps at
/// most 32 lines per call and 2 KiB per line.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::discovery::hangar::plugin::host::log(level.into(), message);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::fake::log(level, message);
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::discovery::hangar::plugin::host::now_ms();
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::fake::now_ms();
}

/// The read-only Docker (or Podman) view of a discovery source. The hangar answers only when
/// the plugin's config grants `docker`; otherwise every call fails with an error naming the
/// plugin and the missing grant. Calling it from a validator or a policy makes a component the
/// hangar refuses to load (their worlds do not import it).
pub mod docker {
    use super::Container;

    /// Containers matching every filter, each `key=value` or `key` (label present).
    pub fn list_containers(label_filters: &[&str]) -> Result<Vec<Container>, String> {
        #[cfg(target_arch = "wasm32")]
        {
            let filters: Vec<String> = label_filters.iter().map(|f| (*f).to_owned()).collect();
            crate::bindings::discovery::hangar::plugin::docker::list_containers(&filters)
                .map(|list| list.into_iter().map(Container::from).collect())
        }
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::fake::list_containers(label_filters)
    }
}

/// The read-only Kubernetes view of a discovery source, granted like [`docker`] with
/// `kubernetes`.
pub mod kubernetes {
    use super::Pod;

    /// Pods in `namespaces` (all the grant allows when empty) matching `label_selector`
    /// (`key=value`, `key!=value`, `key`, comma-separated).
    pub fn list_pods(
        namespaces: &[&str],
        label_selector: Option<&str>,
    ) -> Result<Vec<Pod>, String> {
        #[cfg(target_arch = "wasm32")]
        {
            let namespaces: Vec<String> = namespaces.iter().map(|n| (*n).to_owned()).collect();
            crate::bindings::discovery::hangar::plugin::kubernetes::list_pods(
                &namespaces,
                label_selector,
            )
            .map(|list| list.into_iter().map(Pod::from).collect())
        }
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::fake::list_pods(namespaces, label_selector)
    }
}
