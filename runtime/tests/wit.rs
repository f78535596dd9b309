//! The plugin contract in `wit/` parses as one package per released version, and each version
//! has the three worlds with the imports and exports the host links.

use std::path::Path;

use wit_parser::{IndexMap, Resolve, WorldItem, WorldKey};

/// The fully qualified names of the interfaces among `items`.
fn interface_names(resolve: &Resolve, items: &IndexMap<WorldKey, WorldItem>) -> Vec<String> {
    items
        .iter()
        .filter(|(_, item)| matches!(item, WorldItem::Interface { .. }))
        .map(|(k, _)| resolve.name_world_key(k))
        .collect()
}

#[test]
fn every_released_wit_version_parses_and_has_the_three_worlds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
    let mut versions = 0;
    for entry in std::fs::read_dir(&root).expect("wit/ exists") {
        let dir = entry.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        versions += 1;
        let version = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let mut resolve = Resolve::new();
        let (pkg, _) = resolve
            .push_dir(&dir)
            .unwrap_or_else(|e| panic!("{} does not parse: {e:?}", dir.display()));
        let package = &resolve.packages[pkg];
        assert_eq!(package.name.namespace, "hangar");
        assert_eq!(package.name.name, "plugin");
        assert_eq!(
            package.name.version.as_ref().map(|v| v.to_string()),
            Some(version.clone()),
            "the folder is named for the package version"
        );
        // From 0.2.0 on, validators and policies are lent the call through `calls`.
        let call_imports = if version == "0.1.0" {
            vec!["host"]
        } else {
            vec!["host", "calls"]
        };
        let expect = [
            (
                "discovery-source",
                vec!["host", "docker", "kubernetes"],
                vec!["discovery"],
            ),
            ("lb-policy-plugin", call_imports.clone(), vec!["lb-policy"]),
            ("validator-plugin", call_imports, vec!["validator"]),
        ];
        for (world, imports, exports) in expect {
            let id = package
                .worlds
                .get(world)
                .unwrap_or_else(|| panic!("{version}: world `{world}` missing"));
            let w = &resolve.worlds[*id];
            let got_imports = interface_names(&resolve, &w.imports);
            for i in imports {
                assert!(
                    got_imports.iter().any(|n| n.contains(&format!("/{i}@"))),
                    "{version}: `{world}` imports `{i}`: {got_imports:?}"
                );
            }
            let got_exports = interface_names(&resolve, &w.exports);
            assert_eq!(
                got_exports.len(),
                exports.len(),
                "{version}: `{world}` exports {got_exports:?}"
            );
            for e in exports {
                assert!(
                    got_exports.iter().any(|n| n.contains(&format!("/{e}@"))),
                    "{version}: `{world}` exports `{e}`: {got_exports:?}"
                );
            }
        }
    }
    assert!(versions >= 2, "0.1.0 and 0.2.0, at least");
}
