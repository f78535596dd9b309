//! The container engine for the container tests and bench: make sure one answers, build the
//! example provider's image from the binary under test, and look at containers through the
//! real `docker` CLI.
//!
//! No registry is reachable where these run, so nothing is pulled: the image is a `docker
//! import` of a root filesystem holding the example provider and the shared libraries `ldd`
//! lists for it (the dynamic loader included), tagged by a hash of their contents so a run
//! reuses it and a rebuilt binary gets a new one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use sha2::Digest;

use crate::{provider_bin, workspace_root};

/// The repository of the test images; the tag is a content hash.
pub const IMAGE_REPOSITORY: &str = "mcp-hangar-test-provider";

/// How many of the newest test images are kept when a new one is imported.
const KEEP_IMAGES: usize = 4;

/// The label a hangar puts on the containers it starts for a config (see
/// `mcp_hangar::backend::instance_label`).
pub const LABEL_INSTANCE: &str = "mcp-hangar.instance";

fn docker(args: &[&str]) -> Result<String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .with_context(|| format!("run `docker {}`", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`docker {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn answers() -> bool {
    docker(&["version", "--format", "{{.Server.Version}}"]).is_ok()
}

/// Makes sure an engine answers, running `.ci/docker` (install docker.io, start dockerd) once
/// if none does.
pub fn ensure_engine() -> Result<()> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            if answers() {
                return Ok(());
            }
            let script = workspace_root().join(".ci/docker");
            let status = Command::new("bash")
                .arg(&script)
                .status()
                .map_err(|e| format!("run {}: {e}", script.display()))?;
            if status.success() && answers() {
                Ok(())
            } else {
                Err(format!(
                    "no container engine answers, and {} could not start one ({status}); \
                     start Docker or Podman, or set DOCKER_HOST",
                    script.display()
                ))
            }
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// The example provider's image (`mcp-hangar-test-provider:<hash>`), imported on first use.
pub fn provider_image() -> Result<String> {
    static IMAGE: OnceLock<Result<String, String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| import_provider_image(&provider_bin()).map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

/// Imports an image of `binary` (tagged by content) unless the engine already has it.
pub fn import_provider_image(binary: &Path) -> Result<String> {
    ensure_engine()?;
    let files = rootfs_files(binary)?;
    let mut hash = sha2::Sha256::new();
    for (inside, outside) in &files {
        hash.update(inside.as_bytes());
        hash.update(std::fs::read(outside).with_context(|| outside.display().to_string())?);
    }
    let digest = hash.finalize();
    let tag: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let image = format!("{IMAGE_REPOSITORY}:{tag}");
    if docker(&["image", "inspect", "--format", "{{.Id}}", &image]).is_ok() {
        return Ok(image);
    }
    // Each file is written from its bytes, as a plain executable file: appending by path would
    // keep a sparse file sparse, a tar entry type the engine's importer refuses.
    let mut archive = tar::Builder::new(Vec::new());
    for (inside, outside) in &files {
        let bytes = std::fs::read(outside).with_context(|| outside.display().to_string())?;
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o755);
        header.set_entry_type(tar::EntryType::Regular);
        archive
            .append_data(
                &mut header,
                inside.trim_start_matches('/'),
                bytes.as_slice(),
            )
            .with_context(|| format!("add {} to the image", outside.display()))?;
    }
    let archive = archive.into_inner()?;
    let mut import = Command::new("docker")
        .args([
            "import",
            "--change",
            r#"ENTRYPOINT ["/example-provider"]"#,
            "-",
            &image,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("run `docker import`")?;
    import
        .stdin
        .take()
        .ok_or_else(|| anyhow!("no stdin for docker import"))?
        .write_all(&archive)?;
    let out = import.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "`docker import` of {image} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Images of older builds pile up as the binary changes. The newest few stay (the debug
    // build's for the tests and the release build's for the bench must not evict each other),
    // and one a container still uses stays anyway.
    if let Ok(tags) = docker(&[
        "images",
        IMAGE_REPOSITORY,
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]) {
        for old in tags.lines().skip(KEEP_IMAGES).filter(|t| *t != image) {
            let _ = docker(&["rmi", old]);
        }
    }
    Ok(image)
}

/// `(path in the image, file on this machine)`: the binary as `/example-provider`, and every
/// library it loads at the path the loader looks for it.
fn rootfs_files(binary: &Path) -> Result<Vec<(String, PathBuf)>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("run ldd")?;
    if !out.status.success() {
        bail!(
            "ldd {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut files = vec![("/example-provider".to_string(), binary.to_path_buf())];
    // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)`, `/lib64/ld-linux-x86-64.so.2 (0x…)`;
    // the vDSO has no file.
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            files.push((path.to_string(), PathBuf::from(path)));
        }
    }
    Ok(files)
}

/// Ids of the containers (running or not) carrying `label` (`key=value`).
pub fn containers_with_label(label: &str) -> Result<Vec<String>> {
    let out = docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label={label}"),
    ])?;
    Ok(out.lines().map(str::to_string).collect())
}

/// The containers a hangar serving `config` has (the instance label of its path).
pub fn containers_of(config: &Path) -> Result<Vec<String>> {
    containers_with_label(&format!(
        "{LABEL_INSTANCE}={}",
        mcp_hangar::backend::instance_label(config)
    ))
}

/// `docker inspect` of one container.
pub fn inspect(id: &str) -> Result<Value> {
    let out = docker(&["inspect", id])?;
    let all: Value = serde_json::from_str(&out)?;
    all.get(0)
        .cloned()
        .ok_or_else(|| anyhow!("docker inspect {id} returned nothing"))
}

/// Removes containers by force (a test's cleanup after a failure).
pub fn remove(ids: &[String]) {
    for id in ids {
        let _ = docker(&["rm", "-f", id]);
    }
}
