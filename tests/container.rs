//! The container backend end to end: the real `mcp-hangar` binary runs the example provider in
//! containers on a real engine (Docker here; `.ci/docker` starts one when none answers).
//!
//! Every test counts the containers carrying its config's instance label before it starts and
//! after its hangar is gone: none may be left.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hangar_tests::engine::{containers_of, inspect, provider_image, remove};
use hangar_tests::{Hangar, TestDir, provider_yaml, text, unique_token, wait_until_async};
use serde_json::{Value, json};

/// A container provider running the example provider image with `args`.
fn container_yaml(id: &str, image: &str, args: &[&str], extra_yaml: &str) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("\"{a}\"")).collect();
    let mut s = format!(
        "  {id}:\n    mode: docker\n    image: {image}\n    args: [{}]\n",
        args.join(", ")
    );
    for line in extra_yaml.lines().filter(|l| !l.trim().is_empty()) {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

fn config(entries: &[String]) -> String {
    format!("providers:\n{}", entries.concat())
}

/// Checks that no container of `cfg` is left; removes any that are so the next run starts
/// clean, and fails naming them.
async fn assert_none_left(cfg: &Path, log: &str) -> Result<()> {
    let gone = wait_until_async(Duration::from_secs(10), || async {
        containers_of(cfg).ok().filter(Vec::is_empty)
    })
    .await;
    if gone.is_none() {
        let left = containers_of(cfg)?;
        remove(&left);
        bail!("containers left behind: {left:?}; log:\n{log}");
    }
    Ok(())
}

/// Ends the hangar the way a client does (closing its stdin) and waits for it to exit.
async fn close(h: Hangar) -> Result<String> {
    let pid = h.pid;
    let log = h.log.clone();
    let _ = h.client.cancel().await;
    let exited = wait_until_async(Duration::from_secs(15), || async {
        (!Path::new(&format!("/proc/{pid}/cmdline")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            }))
        .then_some(())
    })
    .await;
    let log = hangar_tests::read_log(&log);
    if exited.is_none() {
        bail!("the hangar did not exit after its client left; log:\n{log}");
    }
    Ok(log)
}

async fn details(h: &Hangar, provider: &str) -> Result<Value> {
    h.call_ok("registry_details", json!({ "provider": provider }))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_provider_starts_on_first_call_answers_and_runs_hardened() -> Result<()> {
    let image = provider_image()?;
    let dir = TestDir::new("ctr-first");
    let token = unique_token("ctr");
    let cfg = dir.write(
        "h.yaml",
        &config(&[container_yaml(
            "box",
            &image,
            &["--name", &token],
            "resources: {memory: 256m, cpu: \"0.5\"}",
        )]),
    );
    assert!(containers_of(&cfg)?.is_empty());
    let h = Hangar::stdio(&cfg).await?;

    // Nothing runs until the first call.
    assert_eq!(details(&h, "box").await?["state"], "cold");
    assert!(containers_of(&cfg)?.is_empty(), "started before any call");
    let sum = h.call_ok("box__add", json!({"a": 2, "b": 3})).await?;
    assert_eq!(sum, json!({"result": 5}));
    let echoed = h
        .call("box__echo", json!({"text": "through the box"}))
        .await?;
    assert_eq!(text(&echoed), "through the box");

    let ids = containers_of(&cfg)?;
    assert_eq!(ids.len(), 1, "{ids:?}");
    let id = &ids[0];
    let d = details(&h, "box").await?;
    assert_eq!(d["state"], "ready");
    assert_eq!(d["mode"], "container");
    assert!(
        d["pid"].is_null(),
        "a container has no pid of the hangar's: {d}"
    );
    let location = d["location"].as_str().unwrap_or_default();
    assert!(
        location.starts_with(&format!("container {}", &id[..12])) && location.contains(&image),
        "{location}"
    );
    let started = h
        .call_ok("registry_start", json!({"provider": "box"}))
        .await?;
    assert_eq!(started["location"], d["location"]);
    assert!(started["pid"].is_null());

    // Hardened whatever the image asks for.
    let c = inspect(id)?;
    let host = &c["HostConfig"];
    assert_eq!(host["ReadonlyRootfs"], true, "{host}");
    assert_eq!(host["NetworkMode"], "none");
    assert_eq!(host["CapDrop"], json!(["ALL"]));
    assert!(
        host["SecurityOpt"]
            .as_array()
            .is_some_and(|o| o.iter().any(|o| o
                .as_str()
                .is_some_and(|o| o.starts_with("no-new-privileges")))),
        "{}",
        host["SecurityOpt"]
    );
    assert_eq!(host["Memory"], 256 << 20);
    assert_eq!(host["NanoCpus"], 500_000_000);
    assert_eq!(host["PidsLimit"], 256);
    assert_eq!(host["Tmpfs"], json!({"/tmp": "rw,noexec,nosuid,size=64m"}));
    let labels = &c["Config"]["Labels"];
    assert_eq!(labels["mcp-hangar.provider"], "box");
    assert_eq!(
        labels["mcp-hangar.instance"],
        mcp_hangar::backend::instance_label(&cfg)
    );
    assert_eq!(
        (
            &c["Config"]["OpenStdin"],
            &c["Config"]["StdinOnce"],
            &c["Config"]["Tty"]
        ),
        (&json!(true), &json!(true), &json!(false))
    );
    assert!(
        c["Name"]
            .as_str()
            .is_some_and(|n| n.starts_with("/mcp-hangar-box-")),
        "{}",
        c["Name"]
    );

    let log = close(h).await?;
    assert_none_left(&cfg, &log).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_container_is_stopped_and_removed_and_the_next_call_starts_a_new_one() -> Result<()>
{
    let image = provider_image()?;
    let dir = TestDir::new("ctr-idle");
    let cfg = dir.write(
        "h.yaml",
        &config(&[container_yaml("box", &image, &[], "idle_ttl_s: 1")]),
    );
    let h = Hangar::stdio(&cfg).await?;
    h.call_ok("box__add", json!({"a": 1, "b": 1})).await?;
    let first = containers_of(&cfg)?;
    assert_eq!(first.len(), 1);
    let stopped_at = Instant::now();
    let removed = wait_until_async(Duration::from_secs(8), || async {
        containers_of(&cfg).ok().filter(Vec::is_empty)
    })
    .await;
    assert!(
        removed.is_some(),
        "idle container not removed; log:\n{}",
        h.log()
    );
    assert!(
        stopped_at.elapsed() < Duration::from_secs(6),
        "the idle stop took {:?}",
        stopped_at.elapsed()
    );
    assert_eq!(details(&h, "box").await?["state"], "cold");

    h.call_ok("box__add", json!({"a": 2, "b": 2})).await?;
    let second = containers_of(&cfg)?;
    assert_eq!(second.len(), 1);
    assert_ne!(second, first, "a new container for the new start");

    let log = close(h).await?;
    assert_none_left(&cfg, &log).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_container_is_reported_removed_and_recovered() -> Result<()> {
    let image = provider_image()?;
    let dir = TestDir::new("ctr-crash");
    let cfg = dir.write(
        "h.yaml",
        &config(&[container_yaml(
            "box",
            &image,
            &[],
            "recovery: {base_delay_s: 0.2, max_delay_s: 1, max_retries: 3}",
        )]),
    );
    let h = Hangar::stdio(&cfg).await?;
    let before = h
        .call_ok("registry_start", json!({"provider": "box"}))
        .await?;
    let first = containers_of(&cfg)?;
    assert_eq!(first.len(), 1);

    let crashed = h.call("box__crash", json!({"code": 3})).await?;
    assert_eq!(crashed.is_error, Some(true), "{}", text(&crashed));

    let recovered = wait_until_async(Duration::from_secs(15), || async {
        let d = details(&h, "box").await.ok()?;
        (d["state"] == "ready" && d["location"] != before["location"]).then_some(d)
    })
    .await;
    assert!(recovered.is_some(), "not recovered; log:\n{}", h.log());
    let log = h.log();
    assert!(
        log.contains("container exited with status 3"),
        "the end is described; log:\n{log}"
    );
    let sum = h.call_ok("box__add", json!({"a": 20, "b": 22})).await?;
    assert_eq!(sum, json!({"result": 42}));
    let now = containers_of(&cfg)?;
    assert_eq!(now.len(), 1, "the crashed container is removed: {now:?}");
    assert_ne!(now, first);

    let log = close(h).await?;
    assert_none_left(&cfg, &log).await
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_left_by_a_killed_hangar_are_removed_at_the_next_start() -> Result<()> {
    let image = provider_image()?;
    let dir = TestDir::new("ctr-orphan");
    let cfg = dir.write("h.yaml", &config(&[container_yaml("box", &image, &[], "")]));
    let h = Hangar::stdio(&cfg).await?;
    h.call_ok("box__add", json!({"a": 1, "b": 2})).await?;
    let orphans = containers_of(&cfg)?;
    assert_eq!(orphans.len(), 1);

    // SIGKILL: the hangar cannot clean up.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(h.pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    drop(h);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        containers_of(&cfg)?,
        orphans,
        "the killed hangar's container is still there"
    );

    let h = Hangar::stdio(&cfg).await?;
    let left = containers_of(&cfg)?;
    assert!(
        !left.iter().any(|id| orphans.contains(id)),
        "the orphan was not removed before serving: {left:?}; log:\n{}",
        h.log()
    );
    assert!(
        h.log()
            .contains("left behind by an earlier run of this config"),
        "the sweep says what it removed; log:\n{}",
        h.log()
    );
    h.call_ok("box__add", json!({"a": 1, "b": 2})).await?;

    let log = close(h).await?;
    remove(&orphans);
    assert_none_left(&cfg, &log).await
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_container_providers_fail_clearly_and_the_others_keep_serving() -> Result<()> {
    let image = provider_image()?;
    let dir = TestDir::new("ctr-broken");
    // A socket file with nothing listening: a daemon that is down.
    let dead_socket = dir.path().join("dead-engine.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead_socket)?);
    let token = unique_token("ctr-broken");
    let cfg = dir.write(
        "h.yaml",
        &config(&[
            provider_yaml("math", &token, &[], ""),
            container_yaml(
                "nodaemon",
                &image,
                &[],
                &format!("socket: {}", dead_socket.display()),
            ),
            container_yaml("noimage", "mcp-hangar-test-absent:none", &[], ""),
            container_yaml(
                "dies",
                &image,
                &["--stderr-lines", "2", "--exit-at-start", "7"],
                "",
            ),
        ]),
    );
    let h = Hangar::stdio(&cfg).await?;

    let start = |id: &'static str| {
        let h = &h;
        async move {
            let r = h.call("registry_start", json!({ "provider": id })).await?;
            if r.is_error != Some(true) {
                bail!("`{id}` started: {}", text(&r));
            }
            Ok::<_, anyhow::Error>((text(&r), r.structured_content.unwrap_or_default()))
        }
    };

    let (nodaemon, _) = start("nodaemon").await?;
    assert!(
        nodaemon.contains(&format!(
            "cannot reach the container engine at unix://{}: Connection refused",
            dead_socket.display()
        )) && nodaemon.contains("start Docker"),
        "{nodaemon}"
    );

    let (noimage, _) = start("noimage").await?;
    assert!(
        noimage.contains("image `mcp-hangar-test-absent:none` is not on the container engine")
            && noimage.contains("the hangar does not pull images"),
        "{noimage}"
    );

    let (dies, details) = start("dies").await?;
    assert!(
        dies.contains("container exited with status 7") && dies.contains(&image),
        "{dies}"
    );
    let tail = details["details"]["stderr_tail"].clone();
    let tail: Vec<String> = serde_json::from_value(tail).unwrap_or_default();
    assert!(
        tail.iter().any(|l| l == "example-provider stderr line 2")
            && tail
                .iter()
                .any(|l| l == "fatal: exiting at start with code 7"),
        "{tail:?}\n{dies}"
    );

    let sum = h.call_ok("math__add", json!({"a": 4, "b": 5})).await?;
    assert_eq!(sum, json!({"result": 9}));

    let log = close(h).await?;
    assert_none_left(&cfg, &log).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_section_builds_once_and_runs_with_env_user_and_volumes() -> Result<()> {
    let base = provider_image()?;
    let dir = TestDir::new("ctr-build");
    let context = dir.path().join("ctx");
    std::fs::create_dir_all(&context)?;
    std::fs::write(
        context.join("Dockerfile.box"),
        format!("FROM {base}\nENV BUILT_BY=dockerfile\n"),
    )?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let tag = format!("mcp-hangar-test-built:{}", unique_token("b").to_lowercase());
    let cfg = dir.write(
        "h.yaml",
        &format!(
            "providers:\n  box:\n    mode: docker\n    build: {{context: {}, dockerfile: \
             Dockerfile.box, tag: \"{tag}\"}}\n    env: {{FROM_CONFIG: \"yes\"}}\n    user: \
             current\n    volumes: [\"{}:/data:ro\"]\n",
            context.display(),
            data.display()
        ),
    );
    let h = Hangar::stdio(&cfg).await?;
    let built_by = h.call("box__env", json!({"name": "BUILT_BY"})).await?;
    assert_eq!(
        text(&built_by),
        "dockerfile",
        "the image was built from the Dockerfile"
    );
    let from_config = h.call("box__env", json!({"name": "FROM_CONFIG"})).await?;
    assert_eq!(text(&from_config), "yes");

    let ids = containers_of(&cfg)?;
    assert_eq!(ids.len(), 1);
    let c = inspect(&ids[0])?;
    let me = format!(
        "{}:{}",
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw()
    );
    assert_eq!(c["Config"]["User"], me.as_str(), "user: current");
    assert_eq!(c["Config"]["Image"], tag.as_str());
    assert_eq!(
        c["HostConfig"]["Binds"],
        json!([format!("{}:/data:ro", data.display())])
    );

    // A restart reuses what this run built.
    h.call_ok("registry_stop", json!({"provider": "box"}))
        .await?;
    h.call_ok("registry_start", json!({"provider": "box"}))
        .await?;
    let log = close(h).await?;
    assert_eq!(
        log.matches("built image").count(),
        1,
        "built once per run; log:\n{log}"
    );
    // The hangar removed its containers before it exited, so the image is free to go.
    let rmi = std::process::Command::new("docker")
        .args(["rmi", &tag])
        .output()?;
    assert_none_left(&cfg, &log).await?;
    assert!(
        rmi.status.success(),
        "{}",
        String::from_utf8_lossy(&rmi.stderr)
    );
    Ok(())
}

#[test]
fn the_container_example_config_is_valid() -> Result<()> {
    let example = hangar_tests::workspace_root().join("examples/container.yaml");
    let out = std::process::Command::new(hangar_tests::hangar_bin())
        .args(["check", "--config"])
        .arg(&example)
        .output()?;
    let normalised = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        normalised.contains("socket: unix:///run/user/1000/podman/podman.sock"),
        "{normalised}"
    );
    Ok(())
}
