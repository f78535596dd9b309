//! `legacy-validator`: a validator of WIT `hangar:plugin@0.1.0` (world `validator-plugin`),
//! built with wit-bindgen directly against the frozen `wit/0.1.0`, without the SDK (which
//! follows the newest WIT). It is the proof that the hangar keeps loading plugins of the first
//! version: the whole call arrives as one `invocation` record, members would carry their ids.
//!
//! It denies calls of the tool `forbidden` with the reason `legacy-validator: tool forbidden`,
//! allows every other call, accepts any config and logs nothing. Never deploy it.
//!
//! Build: `cargo build --release --target wasm32-wasip2`.

wit_bindgen::generate!({
    world: "validator-plugin",
    path: "../../../wit/0.1.0",
});

use self::exports::hangar::plugin::validator::Guest;
use self::hangar::plugin::types::{Invocation, Verdict};

/// The tool it refuses.
const FORBIDDEN: &str = "forbidden";

struct LegacyValidator;

impl Guest for LegacyValidator {
    fn configure(config_json: String) -> Result<(), String> {
        // Any config: the plugin has nothing to set.
        let _ = config_json;
        Ok(())
    }

    fn validate(call: Invocation) -> Verdict {
        if call.tool == FORBIDDEN {
            Verdict::Deny("legacy-validator: tool forbidden".to_owned())
        } else {
            Verdict::Allow
        }
    }
}

export!(LegacyValidator);
