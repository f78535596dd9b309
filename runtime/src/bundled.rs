//! The plugins embedded in the binary (`plugins/` in the repository, built for
//! `wasm32-wasip2` by `runtime/build.rs`). A config names one with `path: bundled:NAME`, so a
//! fresh install runs them with no file beside the binary.

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// The component bytes of the bundled plugin `name`.
pub fn get(name: &str) -> Option<&'static [u8]> {
    BUNDLED
        .iter()
        .find(|(bundled, _)| *bundled == name)
        .map(|(_, bytes)| *bytes)
}

/// The names of the bundled plugins, sorted.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUNDLED.iter().map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bundled_plugins_are_embedded_components() {
        let names: Vec<_> = super::names().collect();
        assert_eq!(
            names,
            [
                "deny-patterns",
                "discovery-docker",
                "discovery-entrypoints",
                "discovery-filesystem",
                "discovery-kubernetes",
                "sticky-session"
            ]
        );
        for name in names {
            let bytes = super::get(name).unwrap();
            // The component-model preamble: magic, then version 0x0d and layer 1.
            assert_eq!(&bytes[..8], b"\0asm\x0d\0\x01\0", "{name}");
        }
    }
}
