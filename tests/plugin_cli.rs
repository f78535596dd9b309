//! `mcp-hangar plugin new` and `plugin inspect` as an author uses them: a project scaffolded
//! for each kind builds for wasm32-wasip2 with cargo as it is, its own tests pass natively, and
//! `inspect` finds the right world and says the hangar loads it; files the hangar cannot load
//! are reported with the reason and a failing exit code.
//!
//! The projects are built into one target directory under `target/plugin-cli`, so the SDK and
//! its dependencies are compiled once across runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hangar_tests::*;
use serde_json::Value;

/// The WIT version of the SDK the projects are scaffolded with (`sdk/`): what their components
/// import and export, whatever versions the hangar loads.
const SDK_WIT_VERSION: &str = "0.2.0";

/// Where every scaffolded project is built.
fn shared_target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("plugin-cli")
}

fn hangar(args: &[&str]) -> Output {
    Command::new(hangar_bin())
        .args(args)
        .output()
        .expect("run mcp-hangar")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `cargo ARGS` in `project`, as an author runs it: none of this test's cargo settings leak
/// into it except where it builds.
fn cargo(project: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.args(args).current_dir(project);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || key.starts_with("RUST") && key != "RUSTUP_HOME" && key != "RUSTUP_TOOLCHAIN"
        {
            command.env_remove(&key);
        }
    }
    command
        .env("CARGO_TARGET_DIR", shared_target())
        .output()
        .expect("run cargo")
}

/// Scaffolds `name` of `kind` in `dir` (with `extra` arguments) and returns the project.
fn scaffold(dir: &TestDir, kind: &str, name: &str, extra: &[&str]) -> PathBuf {
    let dir_arg = dir.path().to_str().unwrap();
    let mut args = vec!["plugin", "new", kind, name, "--dir", dir_arg];
    args.extend_from_slice(extra);
    let out = hangar(&args);
    assert!(out.status.success(), "plugin new: {}", text(&out.stderr));
    let project = dir.path().join(name);
    assert!(
        text(&out.stdout).contains(&project.display().to_string()),
        "{}",
        text(&out.stdout)
    );
    project
}

/// Builds `project` for wasm32-wasip2 and returns its component.
fn build_component(project: &Path, name: &str) -> PathBuf {
    let out = cargo(
        project,
        &["build", "--release", "--target", "wasm32-wasip2"],
    );
    assert!(
        out.status.success(),
        "cargo build of {name} failed:\n{}",
        text(&out.stderr)
    );
    let wasm = shared_target()
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    assert!(wasm.is_file(), "{} missing", wasm.display());
    wasm
}

/// The whole path for one kind: scaffold, build, the project's own tests, inspect.
fn scaffold_build_test_inspect(
    kind: &str,
    name: &str,
    world: &str,
    config_kind: &str,
    extra: &[&str],
) {
    let dir = TestDir::new(&format!("plugin-cli-{name}"));
    let project = scaffold(&dir, kind, name, extra);
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("kind: {config_kind}")),
        "the README shows the config:\n{readme}"
    );

    let wasm = build_component(&project, name);

    let tests = cargo(&project, &["test"]);
    let report = text(&tests.stdout);
    assert!(
        tests.status.success(),
        "the scaffolded tests of {name} fail:\n{report}\n{}",
        text(&tests.stderr)
    );
    assert!(
        report.contains("test result: ok. 2 passed"),
        "its two tests ran:\n{report}"
    );

    let wasm_arg = wasm.to_str().unwrap();
    let out = hangar(&["plugin", "inspect", wasm_arg]);
    let human = text(&out.stdout);
    assert!(out.status.success(), "{human}\n{}", text(&out.stderr));
    for part in [
        format!("world:     {world} (config `kind: {config_kind}`)"),
        format!("wit:       hangar:plugin@{SDK_WIT_VERSION}"),
        format!("loadable:  yes, as `{config_kind}`"),
    ] {
        assert!(human.contains(&part), "`{part}` missing from:\n{human}");
    }

    let out = hangar(&["plugin", "inspect", "--json", wasm_arg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON");
    assert_eq!(json["loadable"], true, "{json:#}");
    assert_eq!(json["wit_versions"], serde_json::json!([SDK_WIT_VERSION]));
    let worlds = json["worlds"].as_array().unwrap();
    assert_eq!(worlds.len(), 1, "{json:#}");
    assert_eq!(worlds[0]["world"], world);
    assert_eq!(worlds[0]["kind"], config_kind);
}

#[test]
fn a_scaffolded_validator_builds_passes_its_tests_and_loads() {
    scaffold_build_test_inspect(
        "validator",
        "cli-guard",
        "validator-plugin",
        "validator",
        &[],
    );
}

#[test]
fn a_scaffolded_lb_policy_builds_passes_its_tests_and_loads() {
    // `--sdk` given explicitly: the same SDK the default points at.
    let sdk = workspace_root().join("sdk");
    scaffold_build_test_inspect(
        "lb-policy",
        "cli-least-busy",
        "lb-policy-plugin",
        "lb_policy",
        &["--sdk", sdk.to_str().unwrap()],
    );
}

#[test]
fn a_scaffolded_discovery_source_builds_passes_its_tests_and_loads() {
    scaffold_build_test_inspect(
        "discovery",
        "cli-finder",
        "discovery-source",
        "discovery",
        &[],
    );
}

#[test]
fn a_validator_that_reads_docker_is_reported_as_not_loadable_and_why() {
    let dir = TestDir::new("plugin-cli-greedy");
    let project = scaffold(&dir, "validator", "cli-greedy", &[]);
    // A validator may import only `host` and `calls`: reaching for the discovery capability
    // makes a component the hangar refuses, which inspect must say before anyone deploys it.
    std::fs::write(
        project.join("src/lib.rs"),
        r#"use hangar_plugin_sdk::{Invocation, Validator, Verdict, docker, export_validator};

#[derive(Default)]
struct Greedy;

impl Validator for Greedy {
    fn validate(&mut self, _call: &Invocation) -> Verdict {
        match docker::list_containers(&[]) {
            Ok(found) => Verdict::deny(format!("{} containers", found.len())),
            Err(err) => Verdict::deny(err),
        }
    }
}

export_validator!(Greedy);
"#,
    )
    .unwrap();
    let wasm = build_component(&project, "cli-greedy");
    let out = hangar(&["plugin", "inspect", wasm.to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "hangar:plugin/docker@{SDK_WIT_VERSION}: list-containers"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("loadable:  no:"), "{stdout}");
    assert!(
        stderr.contains("this hangar cannot load")
            && stderr.contains("it may import only WASI, `host` and `calls`")
            && stderr.contains("hangar:plugin/docker"),
        "{stderr}"
    );
}

#[test]
fn inspect_refuses_files_that_are_not_components_with_the_reason() {
    let dir = TestDir::new("plugin-cli-inspect");
    let notes = dir.write("notes.wasm", "not wasm at all");
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    for (file, expected) in [
        (notes, "is not a WebAssembly component"),
        (core, "is a core WebAssembly module, not a component"),
        (dir.path().join("absent.wasm"), "cannot read"),
    ] {
        for json in [false, true] {
            let mut args = vec!["plugin", "inspect", file.to_str().unwrap()];
            if json {
                args.push("--json");
            }
            let out = hangar(&args);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{}: {stderr}", file.display());
            assert!(stderr.contains(expected), "{}: {stderr}", file.display());
            assert!(
                out.stdout.is_empty(),
                "nothing on stdout: {}",
                text(&out.stdout)
            );
        }
    }
}

#[test]
fn plugin_new_refuses_bad_names_existing_projects_and_a_wrong_sdk() {
    let dir = TestDir::new("plugin-cli-refuse");
    let dir_arg = dir.path().to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["plugin", "new", "validator", "9lives", "--dir", dir_arg],
            "cannot name a plugin crate",
        ),
        (
            &["plugin", "new", "validator", "self", "--dir", dir_arg],
            "Rust keyword",
        ),
        (
            &["plugin", "new", "filter", "ok", "--dir", dir_arg],
            "invalid value 'filter'",
        ),
        (
            &[
                "plugin",
                "new",
                "validator",
                "ok",
                "--dir",
                dir_arg,
                "--sdk",
                dir_arg,
            ],
            "is not the hangar-plugin-sdk crate",
        ),
    ];
    for (args, expected) in cases {
        let out = hangar(args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let written: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(written.is_empty(), "nothing written for a refused project");

    scaffold(&dir, "validator", "taken", &[]);
    let out = hangar(&["plugin", "new", "lb-policy", "taken", "--dir", dir_arg]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already exists and is not empty"),
        "{}",
        text(&out.stderr)
    );
    let lib = std::fs::read_to_string(dir.path().join("taken/src/lib.rs")).unwrap();
    assert!(
        lib.contains("impl Validator for Taken"),
        "left as it was:\n{lib}"
    );
}
