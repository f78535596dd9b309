//! The official MCP Python SDK client (PyPI `mcp`) drives the hangar, in both protocol
//! generations and over both transports, so a client nobody here wrote checks our wire format.

use std::process::Command;

use anyhow::{Result, bail};
use hangar_tests::*;
use serde_json::{Value, json};

fn sdk_config(dir: &TestDir, token: &str) -> std::path::PathBuf {
    dir.write(
        "h.yaml",
        // The SDK starts the hangar with only HOME, PATH and a few more of our variables, so
        // XDG_DATA_HOME cannot keep its event store out of the real home: the config does.
        &format!(
            "event_store: {{path: events.db}}\nproviders:\n{}",
            provider_yaml("math", token, &[], "")
        ),
    )
}

fn run_client(args: &[String]) -> Result<Value> {
    let py = python_with_mcp()?;
    let script = workspace_root().join("tests/python/sdk_client.py");
    let out = Command::new(py).arg(script).args(args).output()?;
    if !out.status.success() {
        bail!(
            "python client failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn assert_session(v: &Value) {
    assert_eq!(v["server_name"], "mcp-hangar");
    let tools: Vec<&str> = v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(tools.contains(&"registry_list"), "{tools:?}");
    let after: Vec<&str> = v["tools_after"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        after.contains(&"math__add") && after.contains(&"math__echo"),
        "live tools offered once started: {after:?}"
    );
    assert_eq!(v["add"]["structured"], json!({"result": 42}));
    assert_eq!(v["add"]["is_error"], false);
    assert_eq!(v["list"]["providers"][0]["provider"], "math");
    assert_eq!(v["echo"]["text"], "hi");
    assert_eq!(v["fail"]["is_error"], true);
    assert_eq!(v["fail"]["text"], "boom");
    assert_eq!(v["unknown"]["is_error"], true);
    assert!(
        v["unknown"]["text"]
            .as_str()
            .unwrap()
            .contains("did you mean `math`")
    );
}

#[test]
fn python_sdk_over_stdio_with_the_initialize_handshake() -> Result<()> {
    let dir = TestDir::new("py-legacy");
    let cfg = sdk_config(&dir, &unique_token("pyl"));
    let v = run_client(&[
        "--mode".into(),
        "legacy".into(),
        "--".into(),
        hangar_bin().display().to_string(),
        "serve".into(),
        "--config".into(),
        cfg.display().to_string(),
    ])?;
    assert_session(&v);
    assert!(
        v["protocol_version"].as_str().unwrap() < "2026-07-28",
        "{v}"
    );
    Ok(())
}

#[test]
fn python_sdk_over_stdio_with_the_2026_stateless_revision() -> Result<()> {
    let dir = TestDir::new("py-auto");
    let cfg = sdk_config(&dir, &unique_token("pya"));
    let v = run_client(&[
        "--mode".into(),
        "auto".into(),
        "--".into(),
        hangar_bin().display().to_string(),
        "serve".into(),
        "--config".into(),
        cfg.display().to_string(),
    ])?;
    assert_session(&v);
    assert_eq!(v["protocol_version"], "2026-07-28");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_over_streamable_http_in_both_generations() -> Result<()> {
    let dir = TestDir::new("py-http");
    let token = unique_token("pyh");
    let cfg = sdk_config(&dir, &token);
    let h = HttpHangar::start(&cfg).await?;
    let url = format!("{}/mcp", h.base);
    for mode in ["legacy", "auto"] {
        let args = vec![
            "--mode".to_string(),
            mode.to_string(),
            "--url".to_string(),
            url.clone(),
        ];
        let v = tokio::task::spawn_blocking(move || run_client(&args)).await??;
        assert_session(&v);
    }
    sigterm(h.pid());
    assert!(
        wait_until(std::time::Duration::from_secs(10), || count_processes(
            &token
        ) == 0)
        .await
    );
    Ok(())
}
