//! The bundled example config loads through the library exactly as `serve` loads it, and the
//! binary answers `--version` (this test also makes cargo build the binary the end-to-end
//! tests in `tests/` run).

use std::path::Path;

use mcp_hangar::config;
use mcp_hangar::events::EventBus;
use mcp_hangar::gateway::Catalog;
use mcp_hangar::registry::Registry;

#[test]
fn the_example_config_loads_and_its_tool_names_are_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hangar.yaml");
    let config = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.providers.contains_key("math"));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let registry = Registry::new(&config, EventBus::new());
    let (catalog, problems) = Catalog::build(&registry);
    assert!(problems.is_empty(), "{problems:?}");
    assert!(catalog.routes.contains_key("math__add"));
    assert!(catalog.routes.contains_key("registry_invoke"));
}

#[test]
fn the_binary_reports_its_version() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-hangar"))
        .arg("--version")
        .output()
        .expect("run mcp-hangar");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}
