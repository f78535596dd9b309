//! The MCP conformance suite's server scenarios against the hangar's streamable HTTP face, with
//! a provider of our own behind it (tests/conformance/fixture-server.mts, written with the
//! TypeScript SDK) offered unprefixed: the suite sees the fixture's tools, resources and prompts
//! as if it talked to the fixture itself, through everything the hangar puts in between.
//!
//! The scenarios come from the suite (`conformance list --server`), so one added by a newer suite
//! is run, not skipped; each must finish without a failed check.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use hangar_tests::*;
use serde_json::Value;
use tokio::process::Command;

/// The whole suite, all scenarios one after another; it takes ~3 s here.
const SUITE_DEADLINE: Duration = Duration::from_secs(180);

/// The server scenarios the installed suite knows, in its order.
async fn server_scenarios(npm: &NpmPackages) -> Result<Vec<String>> {
    let out = Command::new(&npm.node)
        .arg(&npm.conformance)
        .args(["list", "--server"])
        .stdin(Stdio::null())
        .output()
        .await?;
    let listing = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "conformance list --server: {listing}");
    // "  - tools-call-simple-text [2025-06-18,2025-11-25]"
    let scenarios: Vec<String> = listing
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    ensure!(!scenarios.is_empty(), "no server scenarios in:\n{listing}");
    Ok(scenarios)
}

/// The checks the suite saved for `scenario` under `out` (`server-<scenario>-<timestamp>/`).
fn saved_checks(out: &Path, scenario: &str) -> Result<Vec<Value>> {
    let prefix = format!("server-{scenario}-");
    for entry in std::fs::read_dir(out)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        // The timestamp begins with the year: `resources-read-text` is not `resources-read-`.
        let is_this = name
            .strip_prefix(&prefix)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
        if is_this {
            let path = out.join(&name).join("checks.json");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            return Ok(serde_json::from_str(&text)?);
        }
    }
    bail!("the suite saved no checks for {scenario}")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_server_scenario_of_the_conformance_suite_passes_through_the_hangar() -> Result<()> {
    let npm = npm_packages()?;
    // Beside `node_modules`, so that the fixture's imports of the SDK resolve.
    let fixture = npm.prefix.join("hangar-conformance-fixture.mts");
    std::fs::copy(
        workspace_root().join("tests/conformance/fixture-server.mts"),
        &fixture,
    )?;
    // Started lazily, as by default: by the suite's first request that needs it, which comes
    // from a client that offered sampling and elicitation, so the fixture is offered them too.
    // (A provider started before any client's handshake, e.g. with `auto_start`, is offered
    // neither, and the elicitation scenarios would fail.)
    let dir = TestDir::new("conformance-server");
    let config = dir.write(
        "h.yaml",
        &format!(
            "providers:\n  fixture:\n    command: [\"{}\", \"{}\"]\n    tool_prefix: \"\"\n    \
             idle_ttl_s: 600\n",
            npm.node.display(),
            fixture.display()
        ),
    );
    let hangar = HttpHangar::start(&config).await?;
    let url = format!("{}/mcp", hangar.base);
    let scenarios = server_scenarios(&npm).await?;

    let out = dir.path().join("results");
    let started = Instant::now();
    let run = Command::new(&npm.node)
        .arg(&npm.conformance)
        .args(["server", "--suite", "all", "--url", &url, "-o"])
        .arg(&out)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let run = tokio::time::timeout(SUITE_DEADLINE, run)
        .await
        .with_context(|| format!("the suite did not finish within {SUITE_DEADLINE:?}"))??;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!(
        "{} server scenarios in {:.1} s",
        scenarios.len(),
        started.elapsed().as_secs_f64()
    );

    let mut failures = Vec::new();
    let mut warnings = Vec::new();
    for scenario in &scenarios {
        let checks = match saved_checks(&out, scenario) {
            Ok(checks) => checks,
            Err(e) => {
                failures.push(format!("{scenario}: {e:#}"));
                continue;
            }
        };
        for check in &checks {
            let line = || {
                format!(
                    "{scenario}: {} {}: {}\n    {}",
                    check["status"].as_str().unwrap_or("?"),
                    check["id"].as_str().unwrap_or("?"),
                    check["errorMessage"].as_str().unwrap_or("(no message)"),
                    check["details"]
                )
            };
            match check["status"].as_str() {
                Some("FAILURE") => failures.push(line()),
                Some("WARNING") => warnings.push(line()),
                _ => {}
            }
        }
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    assert!(
        failures.is_empty() && run.status.success(),
        "{} failed checks (suite exit {}):\n{}\n\nthe suite said:\n{report}\n\nthe hangar said:\n{}",
        failures.len(),
        run.status,
        failures.join("\n"),
        read_log(&hangar.log)
    );
    Ok(())
}
