//! # hangar-plugin-sdk
//!
//! Write MCP Hangar plugins in Rust: implement one trait, call one export macro, build for
//! `wasm32-wasip2`. The plugin contract is the WIT package `hangar:plugin@0.2.0` (`wit/` in the
//! hangar's repository); this crate generates its bindings from there and keeps them private,
//! so a plugin sees plain Rust types only.
//!
//! A call is read on demand: [`Invocation`]'s accessors (`tool()`, `arguments_json()`,
//! `session()`, …) copy a part from the hangar the first time it is read, and only then, so a
//! plugin pays for what it looks at. A policy's [`Member`]s are numbers only; `key` is a stable
//! hash of the member's id ([`member_key`]) and `call.member_id(i)` the id itself.
//!
//! | kind            | trait               | macro                       | WIT world           |
//! |-----------------|---------------------|-----------------------------|---------------------|
//! | validator       | [`Validator`]       | [`export_validator!`]       | `validator-plugin`  |
//! | lb policy       | [`LbPolicy`]        | [`export_lb_policy!`]       | `lb-policy-plugin`  |
//! | discovery source| [`DiscoverySource`] | [`export_discovery_source!`]| `discovery-source`  |
//!
//! ```
//! use hangar_plugin_sdk::{Config, Invocation, Validator, Verdict, export_validator};
//!
//! /// Refuses every call of one tool.
//! #[derive(Default)]
//! struct NoDelete {
//!     tool: String,
//! }
//!
//! impl Validator for NoDelete {
//!     fn configure(&mut self, config: &Config) -> Result<(), String> {
//!         self.tool = config.parse::<Option<String>>()?.unwrap_or_else(|| "delete".into());
//!         Ok(())
//!     }
//!
//!     fn validate(&mut self, call: &Invocation) -> Verdict {
//!         // Only the tool crosses from the hangar: the arguments are never read here.
//!         if call.tool() == self.tool {
//!             Verdict::deny(format!("`{}` is not allowed here", self.tool))
//!         } else {
//!             Verdict::Allow
//!         }
//!     }
//! }
//!
//! export_validator!(NoDelete);
//!
//! // The same code under `cargo test`, through the same conversions as the hangar's calls:
//! let mut plugin = hangar_plugin_sdk::testing::ValidatorHarness::<NoDelete>::new();
//! plugin.configure(serde_json::json!("drop")).unwrap();
//! assert_eq!(plugin.validate(&Invocation::new("db", "query")), Verdict::Allow);
//! assert!(matches!(plugin.validate(&Invocation::new("db", "drop")), Verdict::Deny(_)));
//! ```
//!
//! How instances live (the hangar decides, the harness imitates it): every instance is
//! `configure`d before its first call. A validator's or a policy's instance is kept and serves
//! later calls while it behaves; the hangar keeps several for calls that run at once, drops
//! one that trapped or ran out of time, and starts new ones after a config change. So `self`
//! may carry a cache from call to call, but never count on one instance seeing every call. A
//! discovery source gets a fresh instance for every `discover`.
//!
//! Deliberately absent: no wit-bindgen type, trait or macro is part of this API (the generated
//! code is in a private module and may change with the generator); no ambient authority beyond
//! the WIT imports (`log`, `now_ms`, and `docker`/`kubernetes` for discovery sources).

mod bindings;
mod host;
mod invocation;
mod names;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
#[cfg(test)]
mod tests;
mod types;

pub use self::host::{docker, kubernetes, log, now_ms};
pub use self::invocation::Invocation;
pub use self::names::{is_provider_name, provider_name_problem};
pub use self::types::{Config, Container, Level, Member, Pod, ProviderSpec, Verdict, member_key};

/// The version of the WIT package this SDK is built from, which is also the SDK's version.
pub const WIT_VERSION: &str = "0.2.0";

/// The WIT package a plugin built with this SDK is a component of.
pub const WIT_PACKAGE: &str = "hangar:plugin@0.2.0";

/// `Validator` is the interface to check a tool call before it reaches its provider. It runs
/// after the hangar's JSON Schema check of the arguments.
pub trait Validator: Default + 'static {
    /// Takes the plugin's `config:` (`{}` when the file sets none); an error refuses the config
    /// and is shown to the operator. By default any config is accepted.
    fn configure(&mut self, config: &Config) -> Result<(), String> {
        let _ = config;
        Ok(())
    }

    /// Allow, deny with a reason, or rewrite the arguments of `call`. By default, allow.
    /// Read only the parts of `call` the decision needs: each one read is copied from the
    /// hangar (once).
    fn validate(&mut self, call: &Invocation<'_>) -> Verdict {
        let _ = call;
        Verdict::Allow
    }
}

/// `LbPolicy` is the interface to choose which member of a group takes a call. It is on every
/// call's path: keep `pick` small.
pub trait LbPolicy: Default + 'static {
    /// Takes the plugin's `config:` (`{}` when the file sets none). By default any config is
    /// accepted.
    fn configure(&mut self, config: &Config) -> Result<(), String> {
        let _ = config;
        Ok(())
    }

    /// The index into `members` of the member to call, or `None` to leave the choice to the
    /// group's native strategy (the default). `members` holds only members the hangar may call;
    /// `call.member_id(i)` is the id of `members[i]`, `members[i].key` a hash of it.
    fn pick(&mut self, call: &Invocation<'_>, members: &[Member]) -> Option<usize> {
        let _ = (call, members);
        None
    }
}

/// `DiscoverySource` is the interface to tell the hangar which providers exist. It may read
/// Docker ([`docker`]) or Kubernetes ([`kubernetes`]) when its config grants them.
pub trait DiscoverySource: Default + 'static {
    /// Takes the plugin's `config:` (`{}` when the file sets none). By default any config is
    /// accepted.
    fn configure(&mut self, config: &Config) -> Result<(), String> {
        let _ = config;
        Ok(())
    }

    /// Every provider this source sees now. The hangar compares the answer with the last one:
    /// new providers are registered, changed ones updated, missing ones deregistered. By
    /// default, none.
    fn discover(&mut self) -> Result<Vec<ProviderSpec>, String> {
        Ok(Vec::new())
    }
}

/// Makes `$plugin` (a [`Validator`]) the `validator` export of this crate's component (world
/// `validator-plugin`). Call it once, at the crate's top level.
#[macro_export]
macro_rules! export_validator {
    ($plugin:ty) => {
        const _: () = {
            ::std::thread_local! {
                static PLUGIN: ::core::cell::RefCell<::core::option::Option<$plugin>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            struct Export;

            impl $crate::__private::ValidatorGuest for Export {
                fn configure(
                    config_json: ::std::string::String,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    PLUGIN.with_borrow_mut(|slot| {
                        $crate::__private::configure(
                            slot,
                            config_json,
                            <$plugin as $crate::Validator>::configure,
                        )
                    })
                }

                fn validate(call: &$crate::__private::Call) -> $crate::__private::wit::Verdict {
                    PLUGIN.with_borrow_mut(|slot| $crate::__private::validate(slot, call))
                }
            }

            $crate::__private::validator_world::export!(
                Export with_types_in $crate::__private::validator_world
            );
        };
    };
}

/// Makes `$plugin` (an [`LbPolicy`]) the `lb-policy` export of this crate's component (world
/// `lb-policy-plugin`). Call it once, at the crate's top level.
#[macro_export]
macro_rules! export_lb_policy {
    ($plugin:ty) => {
        const _: () = {
            ::std::thread_local! {
                static PLUGIN: ::core::cell::RefCell<::core::option::Option<$plugin>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            struct Export;

            impl $crate::__private::LbPolicyGuest for Export {
                fn configure(
                    config_json: ::std::string::String,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    PLUGIN.with_borrow_mut(|slot| {
                        $crate::__private::configure(
                            slot,
                            config_json,
                            <$plugin as $crate::LbPolicy>::configure,
                        )
                    })
                }

                fn pick(
                    call: &$crate::__private::Call,
                    members: ::std::vec::Vec<$crate::__private::wit::Member>,
                ) -> ::core::option::Option<u32> {
                    PLUGIN.with_borrow_mut(|slot| $crate::__private::pick(slot, call, members))
                }
            }

            $crate::__private::lb_world::export!(
                Export with_types_in $crate::__private::lb_world
            );
        };
    };
}

/// Makes `$plugin` (a [`DiscoverySource`]) the `discovery` export of this crate's component
/// (world `discovery-source`). Call it once, at the crate's top level.
#[macro_export]
macro_rules! export_discovery_source {
    ($plugin:ty) => {
        const _: () = {
            ::std::thread_local! {
                static PLUGIN: ::core::cell::RefCell<::core::option::Option<$plugin>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            struct Export;

            impl $crate::__private::DiscoveryGuest for Export {
                fn configure(
                    config_json: ::std::string::String,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    PLUGIN.with_borrow_mut(|slot| {
                        $crate::__private::configure(
                            slot,
                            config_json,
                            <$plugin as $crate::DiscoverySource>::configure,
                        )
                    })
                }

                fn discover() -> ::core::result::Result<
                    ::std::vec::Vec<$crate::__private::wit::ProviderSpec>,
                    ::std::string::String,
                > {
                    PLUGIN.with_borrow_mut(|slot| $crate::__private::discover(slot))
                }
            }

            $crate::__private::discovery_world::export!(
                Export with_types_in $crate::__private::discovery_world
            );
        };
    };
}

/// What the export macros expand to, and the test harness calls: not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::discovery as discovery_world;
    pub use crate::bindings::discovery::exports::hangar::plugin::discovery::Guest as DiscoveryGuest;
    pub use crate::bindings::lb as lb_world;
    pub use crate::bindings::lb::exports::hangar::plugin::lb_policy::Guest as LbPolicyGuest;
    pub use crate::bindings::validator as validator_world;
    pub use crate::bindings::validator::exports::hangar::plugin::validator::Guest as ValidatorGuest;
    pub use crate::bindings::{Call, wit};

    use crate::{Config, DiscoverySource, Invocation, LbPolicy, Member, Validator};

    /// What a call answers when the hangar did not `configure` the instance first (it always
    /// does; this is for a host that breaks the contract).
    const NOT_CONFIGURED: &str = "the plugin was called before `configure`";

    /// `configure` of any kind: a fresh plugin value, configured, takes the slot; a refused
    /// config leaves the slot empty.
    pub fn configure<T: Default>(
        slot: &mut Option<T>,
        config_json: String,
        configure: fn(&mut T, &Config) -> Result<(), String>,
    ) -> Result<(), String> {
        *slot = None;
        let mut plugin = T::default();
        configure(&mut plugin, &Config::new(config_json))?;
        *slot = Some(plugin);
        Ok(())
    }

    /// The `validate` export: the borrowed `call`, as an [`Invocation`] that reads it on demand.
    pub fn validate<T: Validator>(slot: &mut Option<T>, call: &Call) -> wit::Verdict {
        validate_invocation(slot, &Invocation::from_host(call, 0))
    }

    /// What `validate` does with the call, wherever it comes from (the hangar, the harness).
    pub fn validate_invocation<T: Validator>(
        slot: &mut Option<T>,
        call: &Invocation<'_>,
    ) -> wit::Verdict {
        match slot {
            Some(plugin) => plugin.validate(call).into(),
            None => wit::Verdict::Deny(NOT_CONFIGURED.to_owned()),
        }
    }

    /// The `pick` export: the borrowed `call`, as an [`Invocation`] that reads it on demand.
    pub fn pick<T: LbPolicy>(
        slot: &mut Option<T>,
        call: &Call,
        members: Vec<wit::Member>,
    ) -> Option<u32> {
        let count = members.len();
        pick_invocation(slot, &Invocation::from_host(call, count), members)
    }

    /// What `pick` does with the call and the members, wherever they come from.
    pub fn pick_invocation<T: LbPolicy>(
        slot: &mut Option<T>,
        call: &Invocation<'_>,
        members: Vec<wit::Member>,
    ) -> Option<u32> {
        let plugin = slot.as_mut()?;
        // In place (same layout, see `types.rs`): no allocation and no copy per member.
        let members: Vec<Member> = members.into_iter().map(Member::from).collect();
        let index = plugin.pick(call, &members)?;
        // Out of range of `members` is the hangar's to refuse (it names the plugin); an index
        // that does not even fit a u32 is refused the same way, as the largest one.
        Some(u32::try_from(index).unwrap_or(u32::MAX))
    }

    pub fn discover<T: DiscoverySource>(
        slot: &mut Option<T>,
    ) -> Result<Vec<wit::ProviderSpec>, String> {
        let plugin = slot.as_mut().ok_or(NOT_CONFIGURED)?;
        Ok(plugin
            .discover()?
            .into_iter()
            .map(wit::ProviderSpec::from)
            .collect())
    }
}
