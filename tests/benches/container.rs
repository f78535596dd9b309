//! Container cold start: what the hangar adds over running the same container by hand.
//!
//! Side by side, p50 (and min–max) over RUNS starts each, same image, same hardening:
//!
//! - `docker run -i --rm …` + MCP initialize + tools/list, by an rmcp client on the CLI's
//!   stdin/stdout — the floor: what any client pays to get a containerised server answering;
//! - `registry_start` of a stopped container provider through a running hangar — create,
//!   attach and start over the engine API, then the same initialize + tools/list;
//! - the first tools/call to a cold provider (start + call), and `registry_stop` (MCP close,
//!   the container ends on stdin EOF, remove).
//!
//! Run: `cargo bench -p hangar-tests --bench container` (builds the release binaries first and
//! imports the release example provider as an image; needs an engine, see `.ci/docker`).

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hangar_tests::engine::{containers_of, import_provider_image};
use hangar_tests::{TestClient, TestDir, call, release_binaries, text};
use rmcp::ServiceExt;
use rmcp::transport::TokioChildProcess;
use serde_json::json;
use tokio::process::Command;

const RUNS: usize = 10;

/// The flags the hangar's container backend sets by default, so both sides start the same box.
const HARDENED: &[&str] = &[
    "--network",
    "none",
    "--read-only",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--memory",
    "512m",
    "--memory-swap",
    "512m",
    "--cpus",
    "1",
    "--pids-limit",
    "256",
    "--tmpfs",
    "/tmp:rw,noexec,nosuid,size=64m",
];

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `p50 (min–max)` in milliseconds.
fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    format!(
        "{:7.1} ms  ({:.1}–{:.1})",
        ms(samples[samples.len() / 2]),
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    )
}

/// `docker run -i` + initialize + tools/list, timed from spawning the CLI.
async fn docker_run_once(image: &str) -> Result<Duration> {
    let mut cmd = Command::new("docker");
    cmd.args(["run", "-i", "--rm"]).args(HARDENED).arg(image);
    let started = Instant::now();
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()?;
    let client = TestClient::default().serve(transport).await?;
    let tools = client.peer().list_all_tools().await?;
    let took = started.elapsed();
    if tools.is_empty() {
        bail!("the provider offered no tools");
    }
    // Closing stdin ends the provider; `--rm` removes the container. Not timed.
    let _ = client.cancel().await;
    Ok(took)
}

#[tokio::main]
async fn main() -> Result<()> {
    let bin = release_binaries()?;
    let image = import_provider_image(&bin.join("example-provider"))?;
    let dir = TestDir::new("container-bench");
    let cfg = dir.write(
        "h.yaml",
        &format!("providers:\n  box:\n    mode: docker\n    image: {image}\n"),
    );

    let mut cmd = Command::new(bin.join("mcp-hangar"));
    cmd.arg("serve").arg("--config").arg(&cfg);
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()?;
    let hangar = TestClient::default().serve(transport).await?;
    let start = json!({"provider": "box"});
    let mut by_hand = Vec::with_capacity(RUNS);
    let mut via_hangar = Vec::with_capacity(RUNS);
    let mut first_call = Vec::with_capacity(RUNS);
    let mut stops = Vec::with_capacity(RUNS);
    // One unmeasured start of each, so the image's layers are warm in the page cache.
    docker_run_once(&image).await?;
    call(&hangar, "registry_start", start.clone()).await?;
    call(&hangar, "registry_stop", start.clone()).await?;
    // Interleaved, so a slow moment of the machine falls on both sides alike.
    for _ in 0..RUNS {
        by_hand.push(docker_run_once(&image).await?);

        let t = Instant::now();
        let r = call(&hangar, "registry_start", start.clone()).await?;
        via_hangar.push(t.elapsed());
        if r.is_error == Some(true) {
            bail!("registry_start failed: {}", text(&r));
        }
        let t = Instant::now();
        call(&hangar, "registry_stop", start.clone()).await?;
        stops.push(t.elapsed());

        let t = Instant::now();
        let r = call(&hangar, "box__add", json!({"a": 1, "b": 2})).await?;
        first_call.push(t.elapsed());
        if r.is_error == Some(true) {
            bail!("the first call failed: {}", text(&r));
        }
        call(&hangar, "registry_stop", start.clone()).await?;
    }
    let _ = hangar.cancel().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let left = containers_of(&cfg)?.len();

    let hand = summary(&mut by_hand);
    let hangar_start = summary(&mut via_hangar);
    let added = ms(via_hangar[RUNS / 2]) - ms(by_hand[RUNS / 2]);
    println!("container cold start, p50 (min–max) of {RUNS} runs, image {image}:");
    println!("  docker run -i --rm + initialize + tools/list  {hand}");
    println!("  hangar registry_start (same box, same calls)   {hangar_start}");
    println!("  added by the hangar (p50 - p50)                {added:7.1} ms");
    println!(
        "  hangar first tools/call to a cold provider     {}",
        summary(&mut first_call)
    );
    println!(
        "  hangar registry_stop (close, exit, remove)     {}",
        summary(&mut stops)
    );
    println!("  containers left after the hangar exited: {left}");
    Ok(())
}
