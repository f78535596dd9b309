//! What wit-bindgen generates from `wit/0.2.0`, kept private: authors see the types and traits
//! of the crate root, never these.
//!
//! Each world is generated once. `discovery-source` imports `types`, `host`, `docker` and
//! `kubernetes`, so its module holds them; `lb-policy-plugin` is the first of the two worlds
//! that import `calls`, so its module holds that; the validator's world reuses all of them
//! through `with`, so one `Call` (and one `Member`, one `Verdict`) serves both validators and
//! policies.
//!
//! `pub_export_macro` matters beyond visibility: with it, the component type recorded in this
//! crate lists only the world's imports, and the full world (with its export) is recorded by the
//! export macro in the plugin's own crate. A plugin therefore exports exactly the interfaces of
//! the macros it calls, and imports only what it uses (wit-component drops unused imports), so
//! a validator built with this SDK never claims `docker` although the SDK links it.

pub mod discovery {
    wit_bindgen::generate!({
        world: "discovery-source",
        path: "../wit/0.2.0",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "hangar_plugin_sdk::__private::discovery_world",
    });
}

pub mod lb {
    wit_bindgen::generate!({
        world: "lb-policy-plugin",
        path: "../wit/0.2.0",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "hangar_plugin_sdk::__private::lb_world",
        with: {
            "hangar:plugin/types@0.2.0": crate::bindings::discovery::hangar::plugin::types,
            "hangar:plugin/host@0.2.0": crate::bindings::discovery::hangar::plugin::host,
        },
    });
}

pub mod validator {
    wit_bindgen::generate!({
        world: "validator-plugin",
        path: "../wit/0.2.0",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "hangar_plugin_sdk::__private::validator_world",
        with: {
            "hangar:plugin/types@0.2.0": crate::bindings::discovery::hangar::plugin::types,
            "hangar:plugin/host@0.2.0": crate::bindings::discovery::hangar::plugin::host,
            "hangar:plugin/calls@0.2.0": crate::bindings::lb::hangar::plugin::calls,
        },
    });
}

pub use discovery::hangar::plugin::types as wit;
pub use lb::hangar::plugin::calls::Call;
