//! Host bindings generated from `wit/`, one module per supported WIT version: `v0_1_0` and
//! `v0_2_0`. A plugin is bound to the version its exports name (`load::wit_version`).
//!
//! Only this module and its siblings in `plugin/` see these types; the rest of the runtime
//! sees the version-independent types of `plugin` (`Invocation`, `Member`, `Verdict`, …).
//! Supporting a new WIT version means a new module here (generated from `wit/<version>/`) and
//! one conversion per type; released versions are never edited (`wit/README.md`).

/// `hangar:plugin@0.1.0`. The `discovery-source` world imports every interface, so its
/// bindings hold the shared `types` and `host`; the other two worlds reuse them.
pub(super) mod v0_1_0 {
    wasmtime::component::bindgen!({
        world: "discovery-source",
        path: "../wit/0.1.0",
        imports: {
            // The capability backends (bollard, kube) are async; `host` is two plain calls.
            "hangar:plugin/docker": async,
            "hangar:plugin/kubernetes": async,
        },
        exports: { default: async },
    });

    pub(in crate::plugin) mod lb {
        wasmtime::component::bindgen!({
            world: "lb-policy-plugin",
            path: "../wit/0.1.0",
            with: {
                "hangar:plugin/types": super::hangar::plugin::types,
                "hangar:plugin/host": super::hangar::plugin::host,
            },
            exports: { default: async },
        });
    }

    pub(in crate::plugin) mod validator {
        wasmtime::component::bindgen!({
            world: "validator-plugin",
            path: "../wit/0.1.0",
            with: {
                "hangar:plugin/types": super::hangar::plugin::types,
                "hangar:plugin/host": super::hangar::plugin::host,
            },
            exports: { default: async },
        });
    }
}

/// `hangar:plugin@0.2.0`: `validate` and `pick` take a borrowed `call` resource (interface
/// `calls`) whose parts the plugin reads on demand, and members carry a key instead of an id.
/// The host never puts a `call` in a resource table: it lends `Resource::new_borrow(0)` for the
/// one call in flight on a store, whose data (`Sandbox::current`) the `calls` methods read.
pub(super) mod v0_2_0 {
    wasmtime::component::bindgen!({
        world: "discovery-source",
        path: "../wit/0.2.0",
        imports: {
            "hangar:plugin/docker": async,
            "hangar:plugin/kubernetes": async,
        },
        exports: { default: async },
    });

    /// The `lb-policy-plugin` world; it also holds the `calls` interface the validator world
    /// reuses.
    pub(in crate::plugin) mod lb {
        wasmtime::component::bindgen!({
            world: "lb-policy-plugin",
            path: "../wit/0.2.0",
            with: {
                "hangar:plugin/types": super::hangar::plugin::types,
                "hangar:plugin/host": super::hangar::plugin::host,
            },
            exports: { default: async },
        });
    }

    pub(in crate::plugin) mod validator {
        wasmtime::component::bindgen!({
            world: "validator-plugin",
            path: "../wit/0.2.0",
            with: {
                "hangar:plugin/types": super::hangar::plugin::types,
                "hangar:plugin/host": super::hangar::plugin::host,
                "hangar:plugin/calls": super::lb::hangar::plugin::calls,
            },
            exports: { default: async },
        });
    }
}
