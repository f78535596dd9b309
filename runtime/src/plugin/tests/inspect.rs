//! `inspect`: the world, version, imports and exports of real plugins, and the loader's verdict
//! without loading them.

use std::path::Path;

use super::wasm;
use crate::plugin::inspect::{Inspection, inspect};

fn loadable_kinds(report: &Inspection) -> Vec<&str> {
    report
        .worlds
        .iter()
        .filter(|w| w.loadable)
        .map(|w| w.kind.as_str())
        .collect()
}

fn names(items: &[crate::plugin::inspect::Item]) -> Vec<&str> {
    items.iter().map(|i| i.name.as_str()).collect()
}

#[test]
fn a_bundled_validator_is_a_loadable_validator_plugin_of_0_2_0() {
    let report = inspect(Path::new("bundled:deny-patterns")).expect("inspects");
    assert_eq!(report.wit_versions, ["0.2.0"]);
    assert_eq!(report.worlds.len(), 1, "{report:#?}");
    assert_eq!(report.worlds[0].world, "validator-plugin");
    assert!(report.loadable && report.reason.is_none(), "{report:#?}");
    assert_eq!(loadable_kinds(&report), ["validator"]);
    assert_eq!(names(&report.exports), ["hangar:plugin/validator@0.2.0"]);
    let validator = &report.exports[0];
    assert_eq!(validator.functions, ["configure", "validate"]);
    // It logs denials, so it imports `host`; it never reads docker, so it does not import it.
    let imports = names(&report.imports);
    assert!(imports.contains(&"hangar:plugin/host@0.2.0"), "{imports:?}");
    // It reads the arguments through the lent call.
    assert!(
        imports.contains(&"hangar:plugin/calls@0.2.0"),
        "{imports:?}"
    );
    assert!(!imports.iter().any(|i| i.contains("docker")), "{imports:?}");
    let human = report.human();
    for part in [
        "world:     validator-plugin (config `kind: validator`)",
        "loadable:  yes, as `validator`",
        "hangar:plugin/validator@0.2.0: configure, validate",
    ] {
        assert!(human.contains(part), "`{part}` missing from:\n{human}");
    }
}

#[test]
fn a_policy_a_discovery_source_and_a_two_world_component_are_told_apart() {
    let sticky = inspect(&wasm("sticky-session")).expect("inspects");
    assert_eq!(loadable_kinds(&sticky), ["lb_policy"]);
    assert_eq!(sticky.worlds[0].world, "lb-policy-plugin");

    let discovery = inspect(&wasm("hostile-discovery")).expect("inspects");
    assert_eq!(loadable_kinds(&discovery), ["discovery"]);
    let imports = names(&discovery.imports);
    for capability in [
        "hangar:plugin/docker@0.2.0",
        "hangar:plugin/kubernetes@0.2.0",
    ] {
        assert!(imports.contains(&capability), "{imports:?}");
    }

    // `hostile` exports both `validator` and `lb-policy`: it loads as either.
    let hostile = inspect(&wasm("hostile")).expect("inspects");
    assert_eq!(loadable_kinds(&hostile), ["validator", "lb_policy"]);
    assert!(
        hostile
            .human()
            .contains("loadable:  yes, as `validator` or `lb_policy`"),
        "{}",
        hostile.human()
    );
}

#[test]
fn files_that_are_not_components_are_refused_saying_what_they_are() {
    let dir = std::env::temp_dir().join(format!("hangar-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let core = dir.join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let text = dir.join("notes.txt");
    std::fs::write(&text, b"hello").unwrap();
    let broken = dir.join("broken.wasm");
    std::fs::write(&broken, b"\0asm\x0d\0\x01\0garbage").unwrap();
    let cases = [
        (dir.join("absent.wasm"), "cannot read"),
        (core, "is a core WebAssembly module, not a component"),
        (text, "is not a WebAssembly component"),
        (broken, "is a component but does not compile"),
        (
            "bundled:nope".into(),
            "there is no bundled plugin `nope` (this binary has: deny-patterns, discovery-docker, discovery-entrypoints, discovery-filesystem, discovery-kubernetes, sticky-session)",
        ),
    ];
    for (path, expected) in cases {
        let err = inspect(&path).expect_err("refused");
        assert!(err.0.contains(expected), "{}: {err}", path.display());
        let shown = path.display().to_string();
        assert!(
            err.0.contains(&shown) || shown.starts_with("bundled:"),
            "{err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
