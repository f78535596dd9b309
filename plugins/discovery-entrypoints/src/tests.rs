//! The source through the SDK's harness on a site-packages directory written here (the host's
//! test with a real wheel pip-installed into a venv is in
//! `runtime/src/plugin/tests/entrypoints.rs`).

use std::path::PathBuf;

use hangar_plugin_sdk::Level;
use hangar_plugin_sdk::testing::DiscoveryHarness;
use serde_json::json;

use super::{EntrypointsDiscovery, entry_points, module_of, package_of};

/// A fresh directory with `files` (relative path, contents) in it.
fn site_packages(test: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ep-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (path, text) in files {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(file, text).expect("write");
    }
    dir
}

#[test]
fn the_ini_groups_are_read_with_comments_and_spacing() {
    let text = "# generated\n[console_scripts]\ntool = a:b\n\n[ mcp.providers ]\n\
                time=mcp_time.server:main\n; comment\nweather = weather_mcp [extra]\n\
                [mcp.mcp_servers]\nold = legacy.srv\n";
    assert_eq!(
        entry_points(text, &["mcp.providers", "mcp.mcp_servers"]),
        [
            ("time", "mcp_time.server:main"),
            ("weather", "weather_mcp [extra]"),
            ("old", "legacy.srv")
        ]
    );
    assert_eq!(module_of("mcp_time.server:main"), Some("mcp_time.server"));
    assert_eq!(module_of("weather_mcp [extra]"), Some("weather_mcp"));
    assert_eq!(module_of("1bad:x"), None);
    assert_eq!(module_of("a..b"), None);
    assert_eq!(package_of("mcp_time-1.2.0.dist-info"), "mcp_time==1.2.0");
    assert_eq!(package_of("old_pkg-0.1-py3.11.egg-info"), "old_pkg==0.1");
}

#[test]
fn each_entry_point_is_a_subprocess_provider_run_by_the_configured_python() {
    let dir = site_packages(
        "found",
        &[
            (
                "mcp_time-1.2.0.dist-info/entry_points.txt",
                "[mcp.providers]\ntime = mcp_time.server:main\n",
            ),
            (
                "legacy-0.3.dist-info/entry_points.txt",
                "[mcp.mcp_servers]\nlegacy = legacy_srv\n[console_scripts]\nx = y:z\n",
            ),
            ("requests-2.0.dist-info/METADATA", "Name: requests\n"),
            (
                "not_a_dist/entry_points.txt",
                "[mcp.providers]\nghost = g\n",
            ),
        ],
    );
    let mut source = DiscoveryHarness::<EntrypointsDiscovery>::new();
    source
        .configure(json!({"site_packages": [dir], "python": "/venv/bin/python"}))
        .expect("config");
    let found = source.discover().expect("discovers");
    let summary: Vec<(&str, Vec<&str>)> = found
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.command.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("legacy", vec!["/venv/bin/python", "-m", "legacy_srv"]),
            ("time", vec!["/venv/bin/python", "-m", "mcp_time.server"]),
        ]
    );
    assert!(found.iter().all(|s| s.mode == "subprocess"));
    assert!(
        found[1]
            .labels
            .contains(&("hangar.package".into(), "mcp_time==1.2.0".into())),
        "{:?}",
        found[1].labels
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_names_modules_and_duplicates_are_reported_and_the_rest_still_load() {
    let dir = site_packages(
        "bad",
        &[
            (
                "a-1.dist-info/entry_points.txt",
                "[mcp.providers]\ngood = a.srv\nbad.name = a.x\nnomod = 9x:y\n",
            ),
            (
                "b-1.dist-info/entry_points.txt",
                "[mcp.providers]\ngood = b.srv\n",
            ),
        ],
    );
    let mut source = DiscoveryHarness::<EntrypointsDiscovery>::new();
    source
        .configure(json!({"site_packages": [dir]}))
        .expect("config");
    let found = source.discover().expect("discovers");
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].command,
        ["python3", "-m", "a.srv"],
        "the default python"
    );
    let warnings: Vec<&str> = source
        .logs()
        .iter()
        .filter(|l| l.level == Level::Warn)
        .map(|l| l.message.as_str())
        .collect();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    for expected in [
        "`bad.name` is not a provider id",
        "`9x:y` does not name a Python module",
        "provider `good` is already declared by a==1",
    ] {
        assert!(
            warnings.iter().any(|w| w.contains(expected)),
            "{expected}: {warnings:?}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_missing_directory_fails_the_round_and_the_config_needs_site_packages() {
    let mut source = DiscoveryHarness::<EntrypointsDiscovery>::new();
    let err = source.configure(json!({})).expect_err("required");
    assert!(err.contains("missing field `site_packages`"), "{err}");
    source
        .configure(json!({"site_packages": ["/nonexistent/site-packages"]}))
        .expect("config");
    let err = source.discover().expect_err("cannot read");
    assert!(
        err.contains("cannot read the site-packages directory /nonexistent/site-packages"),
        "{err}"
    );
}
