//! The command line other tools script against: `check` output and exit codes, config errors
//! with file, line and key, `MCP_HANGAR_CONFIG`, and serving without a subcommand.

use std::process::Command;

use hangar_tests::*;

fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(hangar_bin())
        .args(args)
        .env_remove("MCP_HANGAR_CONFIG")
        .envs(env.iter().copied())
        .output()
        .expect("run mcp-hangar");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_prints_the_normalised_config_with_secrets_redacted() {
    let example = workspace_root().join("examples/hangar.yaml");
    let (ok, out, err) = run(
        &["check", "--config", example.to_str().unwrap()],
        &[("EXAMPLE_API_TOKEN", "s3cr3t-value")],
    );
    assert!(ok, "{err}");
    assert!(out.contains("math"), "{out}");
    assert!(
        out.contains("idle_ttl_s"),
        "defaults are spelled out: {out}"
    );
    assert!(!out.contains("s3cr3t-value"), "secret leaked: {out}");
    assert!(out.contains("***"), "{out}");
}

#[test]
fn a_typo_is_reported_with_file_line_key_and_suggestion() {
    let dir = TestDir::new("typo");
    let cfg = dir.write("bad.yaml", "providers:\n  math:\n    comand: [echo]\n");
    let (ok, _, err) = run(&["check", "--config", cfg.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(err.contains("bad.yaml:3"), "file and line: {err}");
    assert!(err.contains("comand"), "key: {err}");
    assert!(err.contains("did you mean `command`"), "suggestion: {err}");
}

#[test]
fn a_container_provider_without_an_image_is_rejected_naming_the_provider_and_line() {
    let dir = TestDir::new("mode");
    let cfg = dir.write("c.yaml", "mcp_servers:\n  db:\n    mode: container\n");
    let (ok, _, err) = run(&["check", "--config", cfg.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(err.contains("c.yaml:2"), "file and line: {err}");
    assert!(err.contains("`db`") && err.contains("image"), "{err}");
}

#[test]
fn colliding_aggregated_names_are_an_error_naming_both_sources() {
    let dir = TestDir::new("collide");
    let cfg = dir.write(
        "c.yaml",
        "providers:\n  a:\n    command: [x]\n    tool_prefix: same\n    tools: [{name: t}]\n  b:\n    command: [y]\n    tool_prefix: same\n    tools: [{name: t}]\n",
    );
    let (ok, _, err) = run(&["check", "--config", cfg.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(
        err.contains("provider `a`") && err.contains("provider `b`"),
        "{err}"
    );
    assert!(err.contains("same__t"), "{err}");
}

#[test]
fn the_config_can_come_from_the_environment() {
    let example = workspace_root().join("examples/hangar.yaml");
    let (ok, out, err) = run(
        &["check"],
        &[("MCP_HANGAR_CONFIG", example.to_str().unwrap())],
    );
    assert!(ok, "{err}");
    assert!(out.contains("scratch"));
}

#[test]
fn a_missing_config_says_how_to_give_one() {
    let (ok, _, err) = run(&["check"], &[]);
    assert!(!ok);
    assert!(err.contains("--config"), "{err}");
}

#[test]
fn no_subcommand_serves_like_serve_and_ends_on_stdin_eof() {
    let example = workspace_root().join("examples/hangar.yaml");
    // stdin is empty: the client "goes away" at once, so the hangar must exit, not hang.
    let out = Command::new(hangar_bin())
        .args(["--config", example.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("serving 2 provider(s)"), "{err}");
    assert!(out.stdout.is_empty(), "nothing but MCP on stdout");
}
