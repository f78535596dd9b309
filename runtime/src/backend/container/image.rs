//! Which image a container provider runs, building it first when the config says `build:`.
//!
//! Deliberately absent: pulling. The hangar runs what the engine already has (or what it
//! builds), so a start never waits on a registry that may be slow or out of reach; a missing
//! image is an error that says how to get it (see `missing_image`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures::StreamExt;

use super::engine::Address;
use crate::config::{BuildSpec, ContainerSpec, ProviderSpec};

/// A build may download base layers and compile; it gets much longer than a start.
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// How many lines of the build's output an error shows.
const BUILD_TAIL_LINES: usize = 15;

/// The image to run: the reference the engine is given, and how it may be shown.
#[derive(Clone, Debug)]
pub(crate) struct Image {
    pub reference: String,
    pub shown: String,
}

/// Images this process has built, by engine and tag: a build runs at the first start of a
/// provider, and later starts (restarts, after an idle stop) reuse its result.
static BUILT: LazyLock<Mutex<HashSet<(String, String)>>> =
    LazyLock::new(|| Mutex::new(HashSet::new()));

/// The image `container` names, built first if it has a `build:` this process has not built.
///
/// # Errors
///
/// A sentence naming the provider, the engine and the build's last output lines.
pub(crate) async fn resolve(
    docker: &Docker,
    address: &Address,
    spec: &ProviderSpec,
    container: &ContainerSpec,
) -> Result<Image, String> {
    let Some(build) = &container.build else {
        let image = container.image.as_ref().ok_or_else(|| {
            format!(
                "provider `{}` has neither `image:` nor `build:`; name the image to run",
                spec.id
            )
        })?;
        return Ok(Image {
            reference: image.expose().to_owned(),
            shown: image.redacted().to_owned(),
        });
    };
    // A build's tag: as written, else the `image:` it is meant to produce, else one per
    // provider (lowercase: image names may not have capitals, provider ids may).
    let tag = match (&build.tag, &container.image) {
        (Some(tag), _) => tag.clone(),
        (None, Some(image)) => image.expose().to_owned(),
        (None, None) => format!("mcp-hangar-{}:latest", spec.id.to_ascii_lowercase()),
    };
    let image = Image {
        reference: tag.clone(),
        shown: match &container.image {
            Some(image) if build.tag.is_none() => image.redacted().to_owned(),
            _ => tag.clone(),
        },
    };
    let key = (address.shown().to_owned(), tag);
    if BUILT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&key)
    {
        return Ok(image);
    }
    let started = std::time::Instant::now();
    match tokio::time::timeout(BUILD_TIMEOUT, run_build(docker, build, &image.reference)).await {
        Ok(Ok(())) => {}
        Ok(Err(why)) => {
            return Err(format!(
                "building image `{}` for provider `{}` on {} failed: {why}",
                image.shown,
                spec.id,
                address.shown()
            ));
        }
        Err(_) => {
            return Err(format!(
                "building image `{}` for provider `{}` did not finish within {}s",
                image.shown,
                spec.id,
                BUILD_TIMEOUT.as_secs()
            ));
        }
    }
    tracing::info!(
        provider = %spec.id,
        "built image `{}` in {} ms",
        image.shown,
        started.elapsed().as_millis()
    );
    BUILT.lock().unwrap_or_else(|e| e.into_inner()).insert(key);
    Ok(image)
}

async fn run_build(docker: &Docker, build: &BuildSpec, tag: &str) -> Result<(), String> {
    let context = absolute(Path::new(build.context.expose()));
    let dockerfile = dockerfile_in_context(&context, Path::new(build.dockerfile.expose()))?;
    let archive = {
        let context = context.clone();
        tokio::task::spawn_blocking(move || tar_directory(&context))
            .await
            .map_err(|e| format!("packing the build context failed: {e}"))?
            .map_err(|e| {
                format!(
                    "cannot pack the build context `{}`: {e}; check `build.context`",
                    build.context.redacted()
                )
            })?
    };
    let options = BuildImageOptionsBuilder::new()
        .dockerfile(&dockerfile)
        .t(tag)
        .rm(true)
        .forcerm(true)
        .build();
    let mut output = docker.build_image(
        options,
        None,
        Some(bollard::body_full(bytes::Bytes::from(archive))),
    );
    let mut tail: Vec<String> = Vec::new();
    while let Some(step) = output.next().await {
        match step {
            Ok(info) => {
                for line in info.stream.iter().flat_map(|s| s.lines()) {
                    let line = line.trim_end();
                    if line.is_empty() {
                        continue;
                    }
                    tracing::debug!(target: "mcp_hangar::build", "{line}");
                    if tail.len() == BUILD_TAIL_LINES {
                        tail.remove(0);
                    }
                    tail.push(line.to_owned());
                }
            }
            Err(e) => {
                let shown = if tail.is_empty() {
                    String::new()
                } else {
                    format!("; last build output:\n{}", tail.join("\n"))
                };
                return Err(format!("{e}{shown}"));
            }
        }
    }
    Ok(())
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// The engine reads the Dockerfile from inside the context it is sent, so the path it gets is
/// relative to the context. A relative `dockerfile:` already is; an absolute one must lie inside.
fn dockerfile_in_context(context: &Path, dockerfile: &Path) -> Result<String, String> {
    let relative = if dockerfile.is_absolute() {
        dockerfile.strip_prefix(context).map_err(|_| {
            format!(
                "the Dockerfile `{}` is outside the build context `{}`; move it into the \
                 context or give its path relative to the context",
                dockerfile.display(),
                context.display()
            )
        })?
    } else {
        dockerfile
    };
    Ok(relative.to_string_lossy().into_owned())
}

/// The directory as an uncompressed tar, symlinks kept as links (as `docker build` sends it).
/// Deliberately absent: `.dockerignore`; keep build contexts small.
fn tar_directory(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    archive.follow_symlinks(false);
    archive.append_dir_all(".", dir)?;
    archive.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dockerfile_is_given_relative_to_the_context() {
        let ctx = Path::new("/src/app");
        assert_eq!(
            dockerfile_in_context(ctx, Path::new("Dockerfile.fetch")).as_deref(),
            Ok("Dockerfile.fetch")
        );
        assert_eq!(
            dockerfile_in_context(ctx, Path::new("/src/app/docker/Dockerfile")).as_deref(),
            Ok("docker/Dockerfile")
        );
        let Err(e) = dockerfile_in_context(ctx, Path::new("/elsewhere/Dockerfile")) else {
            panic!("a Dockerfile outside the context was accepted");
        };
        assert!(e.contains("outside the build context `/src/app`"), "{e}");
    }

    #[test]
    fn the_context_tar_holds_the_files_under_their_relative_names() {
        let dir = std::env::temp_dir().join(format!("hangar-ctx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("sub/a.txt"), "a").unwrap_or_else(|e| panic!("{e}"));
        let bytes = tar_directory(&dir).unwrap_or_else(|e| panic!("{e}"));
        let _ = std::fs::remove_dir_all(&dir);
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut names: Vec<String> = archive
            .entries()
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok())
            .filter(|e| e.header().entry_type().is_file())
            .filter_map(|e| e.path().ok().map(|p| p.to_string_lossy().into_owned()))
            .collect();
        names.sort();
        assert_eq!(names, ["Dockerfile", "sub/a.txt"]);
    }
}
