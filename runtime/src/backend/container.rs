//! Providers that run in a Docker or Podman container, speaking MCP on the container's attached
//! stdin/stdout.
//!
//! A start is create → attach → start, the way `docker run -i` does it: attaching before the
//! start loses no output, and `StdinOnce` makes the end of the hangar's attach stream the end of
//! the provider's stdin, so closing the MCP session is a graceful stop. The attach stream is
//! demultiplexed by one task: stdout bytes become the MCP byte stream ([`Pipes::output`]),
//! stderr lines go to the [`StderrTail`]. Another task waits on the container, says how it
//! ended on the [`Exit`] and removes it.
//!
//! Hardened by default, whatever the image asks: read-only root filesystem (unless
//! `read_only: false`), no network (unless `network:` names one), every capability dropped,
//! no-new-privileges, a small noexec `/tmp`, and memory, CPU and process-count limits.
//!
//! Nothing is orphaned: every container is labelled with its provider and with this config's
//! instance label, listed in a process-wide set from before it is created until it is removed
//! (so [`remove_all_started`] ends whatever is left at shutdown), and [`sweep_orphans`] removes
//! what a hangar killed with SIGKILL left behind, the next time the same config is served.

pub(crate) mod engine;
mod image;

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as EngineError;
use bollard::models::{ContainerCreateBody, ContainerState, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use self::engine::Address;
use super::{Exit, ExitSender, MAX_STDERR_LINE, Pipes, START_TIMEOUT, StartError, StderrTail};
use crate::config::{Config, ContainerSpec, ProviderMode, ProviderSpec};

/// Label naming the provider a container runs.
pub const LABEL_PROVIDER: &str = "mcp-hangar.provider";
/// Label naming the config (its [`super::instance_label`]) whose hangar started a container.
pub const LABEL_INSTANCE: &str = "mcp-hangar.instance";

/// At most this many processes in a provider's container: enough for any MCP server and its
/// helpers, few enough that a fork bomb stays inside its box.
const PIDS_LIMIT: i64 = 256;

/// `/tmp` is the one writable place on a read-only root: small, and nothing in it runs.
const TMPFS_OPTIONS: &str = "rw,noexec,nosuid,size=64m";

/// How much of the provider's stdout may wait for the MCP reader before the demultiplexer
/// waits in turn (and with it the engine's stream).
const STDOUT_BUFFER: usize = 64 * 1024;

/// Bound on one stop, remove or list request to the engine.
const ENGINE_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the end of a container waits for the rest of its output, so the stderr tail an
/// error shows has the lines written just before the end.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// A started container.
pub(crate) struct Container {
    id: String,
    name: String,
    image: String,
    docker: Docker,
    exit: Exit,
}

/// Creates and starts the container `spec` describes, attached, and returns its MCP byte
/// stream. Its stderr lines go to `stderr`.
pub(crate) async fn launch(
    spec: &ProviderSpec,
    instance: &str,
    stderr: StderrTail,
    cancel: &CancellationToken,
) -> Result<(Container, Pipes), StartError> {
    let Some(settings) = &spec.container else {
        return Err(StartError::new(format!(
            "provider `{}` runs in a container but has no container settings; give it an \
             `image:` or a `build:`",
            spec.id
        )));
    };
    let address = Address::of(settings.socket.as_ref());
    tokio::select! {
        launched = run(spec, settings, &address, instance, stderr) => launched,
        // Dropping `run` removes a container it created (see `Pending`).
        _ = cancel.cancelled() => Err(StartError::new(format!(
            "start of provider `{}` cancelled: the provider was stopped while starting",
            spec.id
        ))),
    }
}

async fn run(
    spec: &ProviderSpec,
    settings: &ContainerSpec,
    address: &Address,
    instance: &str,
    stderr: StderrTail,
) -> Result<(Container, Pipes), StartError> {
    let provider = spec.id.as_str();
    let fail = |message: String| StartError::new(format!("provider `{provider}`: {message}"));
    let docker = engine::connect(address).await.map_err(fail)?;
    let image = image::resolve(&docker, address, spec, settings)
        .await
        .map_err(StartError::new)?;
    let name = format!("mcp-hangar-{provider}-{:08x}", rand::random::<u32>());
    let body = create_body(spec, settings, instance, &image.reference)?;
    let pending = Pending::new(docker.clone(), name.clone());

    let engine_error = |doing: &str, e: EngineError| {
        fail(format!(
            "{doing} a container of image `{}` on the engine at {} failed: {}",
            image.shown,
            address.shown(),
            engine_message(&e)
        ))
    };
    let phase = async {
        let began = Instant::now();
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let created = docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| match e {
                EngineError::DockerResponseServerError {
                    status_code: 404,
                    ref message,
                } if message.to_ascii_lowercase().contains("image") => {
                    fail(missing_image(&image.shown, address))
                }
                e => engine_error("creating", e),
            })?;
        for warning in created.warnings.iter().filter(|w| !w.is_empty()) {
            tracing::warn!(provider, "the engine warns: {warning}");
        }
        let create_ms = began.elapsed().as_millis();
        let options = AttachContainerOptionsBuilder::new()
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .build();
        let attached = docker
            .attach_container(&created.id, Some(options))
            .await
            .map_err(|e| engine_error("attaching to", e))?;
        let attach_ms = began.elapsed().as_millis() - create_ms;
        docker
            .start_container(&created.id, None)
            .await
            .map_err(|e| engine_error("starting", e))?;
        tracing::debug!(
            provider,
            container = %name,
            "engine: create {create_ms} ms, attach {attach_ms} ms, start {} ms",
            began.elapsed().as_millis() - create_ms - attach_ms
        );
        Ok::<_, StartError>((created.id, attached))
    };
    let (id, attached) = match tokio::time::timeout(START_TIMEOUT, phase).await {
        Ok(Ok(started)) => started,
        Ok(Err(e)) => {
            pending.remove().await;
            return Err(e);
        }
        Err(_) => {
            pending.remove().await;
            return Err(fail(format!(
                "the engine at {} did not create and start the container within {}s",
                address.shown(),
                START_TIMEOUT.as_secs()
            )));
        }
    };
    // From here the watcher owns the container: it removes it once it has ended.
    pending.disarm();

    let (stdout_write, stdout_read) = tokio::io::duplex(STDOUT_BUFFER);
    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(demultiplex(
        attached.output,
        stdout_write,
        provider.to_owned(),
        stderr,
        drained_tx,
    ));
    let (exit_tx, exit) = Exit::channel();
    let image_shown = image.shown.clone();
    tokio::spawn(watch_exit(
        docker.clone(),
        id.clone(),
        name.clone(),
        Ended {
            image: image_shown.clone(),
            memory: settings.resources.memory.clone(),
        },
        drained_rx,
        exit_tx,
    ));
    Ok((
        Container {
            id,
            name,
            image: image_shown,
            docker,
            exit,
        },
        Pipes {
            input: Box::new(attached.input),
            output: Box::new(stdout_read),
        },
    ))
}

/// The create request: the image, the MCP stdio wiring, the labels and the hardening.
fn create_body(
    spec: &ProviderSpec,
    settings: &ContainerSpec,
    instance: &str,
    image: &str,
) -> Result<ContainerCreateBody, StartError> {
    let exposed = |args: &[crate::config::MaybeSecret]| -> Option<Vec<String>> {
        (!args.is_empty()).then(|| args.iter().map(|a| a.expose().to_owned()).collect())
    };
    let user = settings.user.as_ref().map(|user| match user.expose() {
        // The hangar's own ids, so files written to a bind mount belong to whoever runs it.
        "current" => format!(
            "{}:{}",
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw()
        ),
        other => other.to_owned(),
    });
    let memory = i64::try_from(settings.resources.memory_bytes).map_err(|_| {
        StartError::new(format!(
            "provider `{}`: memory limit `{}` is too large",
            spec.id, settings.resources.memory
        ))
    })?;
    // Cores to billionths of a core; the config bounds cores to 0 < cpu <= 1024.
    #[allow(clippy::cast_possible_truncation)]
    let nano_cpus = (settings.resources.cpus * 1e9).round() as i64;
    let binds = settings
        .volumes
        .iter()
        .map(|v| {
            let mode = if v.read_only { "ro" } else { "rw" };
            format!(
                "{}:{}:{mode}",
                bind_source(v.host.expose()),
                v.container.expose()
            )
        })
        .collect();
    Ok(ContainerCreateBody {
        image: Some(image.to_owned()),
        entrypoint: exposed(&spec.command),
        cmd: exposed(&spec.args),
        env: Some(
            spec.env_pairs()
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        labels: Some(HashMap::from([
            (LABEL_PROVIDER.to_owned(), spec.id.clone()),
            (LABEL_INSTANCE.to_owned(), instance.to_owned()),
        ])),
        user,
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(true),
        stdin_once: Some(true),
        tty: Some(false),
        host_config: Some(HostConfig {
            readonly_rootfs: Some(settings.read_only),
            network_mode: Some(settings.network.as_str().to_owned()),
            cap_drop: Some(vec!["ALL".to_owned()]),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_owned(),
                TMPFS_OPTIONS.to_owned(),
            )])),
            memory: Some(memory),
            // Equal to `memory`: no swap on top of the limit.
            memory_swap: Some(memory),
            nano_cpus: Some(nano_cpus),
            pids_limit: Some(PIDS_LIMIT),
            binds: Some(binds),
            // The watcher reads how the container ended (OOM?) before removing it itself.
            auto_remove: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// A bind's host side as the engine needs it: a relative path (`./data`) made absolute
/// against the hangar's working directory; an absolute path or a volume name as written.
fn bind_source(host: &str) -> String {
    let looks_like_path = host.starts_with('.') || host.contains('/');
    if looks_like_path
        && !host.starts_with('/')
        && let Ok(cwd) = std::env::current_dir()
    {
        return cwd.join(host).display().to_string();
    }
    host.to_owned()
}

fn missing_image(image: &str, address: &Address) -> String {
    format!(
        "image `{image}` is not on the container engine at {}; build it (`docker build -t \
         {image} …`), load it (`docker load`, `docker import`) or pull it (`docker pull {image}`) \
         first, or give the provider a `build:` section (the hangar does not pull images)",
        address.shown()
    )
}

/// The engine's own words for a failed request, without bollard's wrapping.
fn engine_message(e: &EngineError) -> String {
    match e {
        EngineError::DockerResponseServerError {
            status_code,
            message,
        } => format!("{message} (HTTP {status_code})"),
        other => other.to_string(),
    }
}

/// A container that is being created: listed for the shutdown sweep before the create request
/// is sent, and removed by name if the start does not get as far as handing it to its watcher:
/// at once on an error or a timeout, from `Drop` when the start is cancelled (its future
/// dropped mid-request).
struct Pending {
    docker: Docker,
    name: String,
    armed: bool,
}

impl Pending {
    fn new(docker: Docker, name: String) -> Self {
        started_register(&name, &docker);
        Self {
            docker,
            name,
            armed: true,
        }
    }

    fn disarm(mut self) {
        self.armed = false;
    }

    /// Removes the container (if the engine made it) before the start reports its failure.
    async fn remove(mut self) {
        self.armed = false;
        remove(&self.docker, &self.name).await;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (docker, name) = (self.docker.clone(), self.name.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { remove(&docker, &name).await });
        }
    }
}

/// Copies the attach stream's stdout frames to the MCP reader and its stderr frames, line by
/// line, to the tail. Runs until the stream ends (the container is gone or the hangar let go).
async fn demultiplex(
    mut frames: impl Stream<Item = Result<LogOutput, EngineError>> + Unpin,
    mut stdout: tokio::io::DuplexStream,
    provider: String,
    tail: StderrTail,
    drained: tokio::sync::oneshot::Sender<()>,
) {
    let mut stdout_open = true;
    let mut line = Vec::with_capacity(256);
    // A line longer than MAX_STDERR_LINE is recorded cut, and the rest of it skipped.
    let mut skipping = false;
    while let Some(frame) = frames.next().await {
        match frame {
            Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                // Once the MCP session is gone nobody reads; keep draining so stderr still
                // flows.
                if stdout_open && stdout.write_all(&message).await.is_err() {
                    stdout_open = false;
                }
            }
            Ok(LogOutput::StdErr { message }) => {
                for piece in message.split_inclusive(|b| *b == b'\n') {
                    let ends_line = piece.last() == Some(&b'\n');
                    if !skipping {
                        let room = MAX_STDERR_LINE.saturating_sub(line.len());
                        line.extend_from_slice(&piece[..piece.len().min(room)]);
                        if line.len() >= MAX_STDERR_LINE && !ends_line {
                            tail.record(&provider, &line);
                            line.clear();
                            skipping = true;
                        }
                    }
                    if ends_line {
                        if !skipping {
                            tail.record(&provider, &line);
                        }
                        line.clear();
                        skipping = false;
                    }
                }
            }
            Ok(LogOutput::StdIn { .. }) => {}
            Err(e) => {
                tracing::debug!(provider, "the container's output stream ended: {e}");
                break;
            }
        }
    }
    if !line.is_empty() && !skipping {
        tail.record(&provider, &line);
    }
    let _ = stdout.shutdown().await;
    let _ = drained.send(());
}

/// What the end of a container is described with.
struct Ended {
    image: String,
    memory: String,
}

/// Waits for the container to end, says how on `tx` once its output is drained, and removes it.
async fn watch_exit(
    docker: Docker,
    id: String,
    name: String,
    ended: Ended,
    drained: tokio::sync::oneshot::Receiver<()>,
    tx: ExitSender,
) {
    let mut wait = docker.wait_container(&id, None);
    let waited = match wait.next().await {
        Some(Ok(answer)) => Ok(answer.status_code),
        Some(Err(EngineError::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("the engine closed the wait without an answer".to_owned()),
    };
    drop(wait);
    let state = match tokio::time::timeout(ENGINE_CALL_TIMEOUT, docker.inspect_container(&id, None))
        .await
    {
        Ok(Ok(inspected)) => inspected.state,
        _ => None,
    };
    let how = describe(waited, state.as_ref(), &ended.memory);
    let how = format!("{how} ({name}, image `{}`)", ended.image);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, drained).await;
    let _ = tx.send(Some(how));
    remove(&docker, &name).await;
}

/// How a container ended, from the wait's answer and the engine's record of it.
fn describe(waited: Result<i64, String>, state: Option<&ContainerState>, memory: &str) -> String {
    if state.and_then(|s| s.oom_killed) == Some(true) {
        return format!("container was OOM-killed (memory limit {memory})");
    }
    let code = match (&waited, state.and_then(|s| s.exit_code)) {
        (Ok(code), _) => *code,
        (Err(_), Some(code)) => code,
        (Err(e), None) => {
            return format!("container was lost: waiting on it failed ({e})");
        }
    };
    let mut how = format!("container exited with status {code}");
    if let Some(signal) = code
        .checked_sub(128)
        .filter(|n| (1..=64).contains(n))
        .and_then(|n| i32::try_from(n).ok())
        .and_then(|n| nix::sys::signal::Signal::try_from(n).ok())
    {
        how.push_str(&format!(" (killed by {})", signal.as_str()));
    }
    if let Some(error) = state
        .and_then(|s| s.error.as_deref())
        .filter(|e| !e.is_empty())
    {
        how.push_str(&format!("; the engine says: {error}"));
    }
    how
}

impl Container {
    pub(crate) fn exit(&self) -> &Exit {
        &self.exit
    }

    pub(crate) fn location(&self) -> String {
        format!(
            "container {} (image `{}`)",
            &self.id[..self.id.len().min(12)],
            self.image
        )
    }

    /// `docker stop` (SIGTERM, SIGKILL after the whole seconds left of `timeout`) if it still
    /// runs, then a forced remove.
    pub(crate) async fn stop(&self, timeout: Duration) {
        let started = Instant::now();
        if !self.exit.has_exited() {
            let grace = i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX);
            let options = StopContainerOptionsBuilder::new().t(grace).build();
            let stop = self.docker.stop_container(&self.id, Some(options));
            match tokio::time::timeout(timeout + ENGINE_CALL_TIMEOUT, stop).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) if is_gone(&e) => {}
                Ok(Err(e)) => tracing::warn!(
                    container = %self.name,
                    "stopping the container failed: {}; removing it by force",
                    engine_message(&e)
                ),
                Err(_) => tracing::warn!(
                    container = %self.name,
                    "the engine did not stop the container within {:?}; removing it by force",
                    started.elapsed()
                ),
            }
        }
        remove(&self.docker, &self.name).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.exit.wait()).await;
    }
}

/// The container is already stopped (304) or gone (404), or being removed (409).
fn is_gone(e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::DockerResponseServerError {
            status_code: 304 | 404 | 409,
            ..
        }
    )
}

/// Removes the container by force, with its anonymous volumes, and forgets it once it is gone.
/// Returns once the engine no longer has it (or the engine stops answering).
async fn remove(docker: &Docker, name: &str) {
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    match tokio::time::timeout(
        ENGINE_CALL_TIMEOUT,
        docker.remove_container(name, Some(options)),
    )
    .await
    {
        Ok(Ok(())) => started_forget(name),
        // Another removal of it is under way (the watcher's and a stop's can cross): wait for
        // that one, so a hangar that exits after a stop leaves nothing being removed.
        Ok(Err(EngineError::DockerResponseServerError {
            status_code: 409, ..
        })) => {
            if wait_until_gone(docker, name).await {
                started_forget(name);
            }
        }
        Ok(Err(e)) if is_gone(&e) => started_forget(name),
        Ok(Err(e)) => tracing::warn!(
            container = name,
            "removing the container failed: {}; it stays listed and is tried again at shutdown",
            engine_message(&e)
        ),
        Err(_) => tracing::warn!(
            container = name,
            "the engine did not remove the container within {}s; it is tried again at shutdown",
            ENGINE_CALL_TIMEOUT.as_secs()
        ),
    }
}

/// Polls until the engine no longer knows the container; false if it still does after
/// [`ENGINE_CALL_TIMEOUT`].
async fn wait_until_gone(docker: &Docker, name: &str) -> bool {
    let deadline = Instant::now() + ENGINE_CALL_TIMEOUT;
    while Instant::now() < deadline {
        let inspected =
            tokio::time::timeout(ENGINE_CALL_TIMEOUT, docker.inspect_container(name, None)).await;
        if let Ok(Err(EngineError::DockerResponseServerError {
            status_code: 404, ..
        })) = inspected
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::warn!(
        container = name,
        "the engine was still removing the container after {}s",
        ENGINE_CALL_TIMEOUT.as_secs()
    );
    false
}

/// Every container this process created and has not yet seen removed, by name, with the
/// client of its engine.
static STARTED: LazyLock<Mutex<HashMap<String, Docker>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn started_register(name: &str, docker: &Docker) {
    STARTED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_owned(), docker.clone());
}

fn started_forget(name: &str) {
    STARTED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(name);
}

/// Removes every container this process started and has not removed yet. Returns how many
/// there were.
pub(crate) async fn remove_all_started() -> usize {
    let left: Vec<(String, Docker)> = STARTED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .collect();
    futures::future::join_all(left.iter().map(|(name, docker)| remove(docker, name))).await;
    left.len()
}

/// Removes the containers labelled with `instance` that a previous hangar serving the same
/// config left behind (it was killed and could not clean up). Looks only on the engines
/// `config`'s container providers use, and does nothing for a config without any. Returns
/// how many it removed; each is logged.
pub async fn sweep_orphans(instance: &str, config: &Config) -> usize {
    let addresses: HashSet<Address> = config
        .all_providers()
        .filter(|spec| spec.mode == ProviderMode::Container)
        .filter_map(|spec| spec.container.as_ref())
        .map(|settings| Address::of(settings.socket.as_ref()))
        .collect();
    let mut removed = 0;
    for address in &addresses {
        removed += sweep_engine(instance, address).await;
    }
    removed
}

async fn sweep_engine(instance: &str, address: &Address) -> usize {
    let docker = match engine::connect(address).await {
        Ok(docker) => docker,
        Err(e) => {
            tracing::warn!("cannot look for containers an earlier run left behind: {e}");
            return 0;
        }
    };
    let filters = HashMap::from([("label", vec![format!("{LABEL_INSTANCE}={instance}")])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let found = match tokio::time::timeout(
        ENGINE_CALL_TIMEOUT,
        docker.list_containers(Some(options)),
    )
    .await
    {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            tracing::warn!(
                "cannot list containers on {} to remove what an earlier run left behind: {}",
                address.shown(),
                engine_message(&e)
            );
            return 0;
        }
        Err(_) => {
            tracing::warn!(
                "the engine at {} did not list containers within {}s; containers an earlier run \
                 left behind stay",
                address.shown(),
                ENGINE_CALL_TIMEOUT.as_secs()
            );
            return 0;
        }
    };
    let mut removed = 0;
    for summary in found {
        let Some(id) = summary.id else { continue };
        let name = summary
            .names
            .and_then(|names| names.into_iter().next())
            .map_or_else(|| id.clone(), |n| n.trim_start_matches('/').to_owned());
        let provider = summary
            .labels
            .and_then(|labels| labels.get(LABEL_PROVIDER).cloned())
            .unwrap_or_default();
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match tokio::time::timeout(
            ENGINE_CALL_TIMEOUT,
            docker.remove_container(&id, Some(options)),
        )
        .await
        {
            Ok(Ok(())) => {
                removed += 1;
                tracing::info!(
                    "removed container {name} of provider `{provider}`, left behind by an \
                     earlier run of this config"
                );
            }
            Ok(Err(e)) if is_gone(&e) => {}
            Ok(Err(e)) => tracing::warn!(
                "cannot remove container {name} left behind by an earlier run: {}",
                engine_message(&e)
            ),
            Err(_) => tracing::warn!(
                "the engine did not remove container {name} (left behind by an earlier run) \
                 within {}s",
                ENGINE_CALL_TIMEOUT.as_secs()
            ),
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MaybeSecret, VolumeMount};

    fn state(exit_code: i64, oom_killed: bool) -> ContainerState {
        ContainerState {
            exit_code: Some(exit_code),
            oom_killed: Some(oom_killed),
            ..Default::default()
        }
    }

    #[test]
    fn an_end_is_described_with_its_status_signal_or_oom_kill() {
        assert_eq!(
            describe(Ok(3), Some(&state(3, false)), "512m"),
            "container exited with status 3"
        );
        assert_eq!(
            describe(Ok(137), Some(&state(137, false)), "512m"),
            "container exited with status 137 (killed by SIGKILL)"
        );
        assert_eq!(
            describe(Ok(137), Some(&state(137, true)), "64m"),
            "container was OOM-killed (memory limit 64m)"
        );
        assert_eq!(
            describe(Err("broken pipe".into()), Some(&state(2, false)), "512m"),
            "container exited with status 2",
            "the engine's record stands in for a lost wait"
        );
        assert_eq!(
            describe(Err("broken pipe".into()), None, "512m"),
            "container was lost: waiting on it failed (broken pipe)"
        );
    }

    #[test]
    fn the_create_request_is_hardened_labelled_and_wired_for_stdio() {
        let mut spec = ProviderSpec::new("math", ProviderMode::Container);
        spec.args = vec![MaybeSecret::plain("--name"), MaybeSecret::plain("m")];
        let settings = ContainerSpec {
            image: Some(MaybeSecret::plain("example:1")),
            build: None,
            volumes: vec![VolumeMount {
                host: MaybeSecret::plain("/srv/data"),
                container: MaybeSecret::plain("/data"),
                read_only: true,
            }],
            network: crate::config::ContainerNetwork::None,
            read_only: true,
            resources: crate::config::ContainerResources {
                memory: "256m".into(),
                memory_bytes: 256 << 20,
                cpus: 0.5,
            },
            user: Some(MaybeSecret::plain("current")),
            socket: None,
        };
        let body = match create_body(&spec, &settings, "abc123", "example:1") {
            Ok(body) => body,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(body.entrypoint, None, "the image's entrypoint stays");
        assert_eq!(body.cmd, Some(vec!["--name".into(), "m".into()]));
        assert_eq!(
            (body.open_stdin, body.stdin_once, body.tty),
            (Some(true), Some(true), Some(false))
        );
        let labels = body.labels.unwrap_or_default();
        assert_eq!(labels.get(LABEL_PROVIDER).map(String::as_str), Some("math"));
        assert_eq!(
            labels.get(LABEL_INSTANCE).map(String::as_str),
            Some("abc123")
        );
        let uid = nix::unistd::geteuid().as_raw();
        assert!(
            body.user
                .as_deref()
                .is_some_and(|u| u.starts_with(&format!("{uid}:")))
        );
        let host = body.host_config.unwrap_or_default();
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges".to_owned()])
        );
        assert_eq!(host.memory, Some(256 << 20));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.pids_limit, Some(PIDS_LIMIT));
        assert_eq!(
            host.tmpfs
                .as_ref()
                .and_then(|t| t.get("/tmp"))
                .map(String::as_str),
            Some(TMPFS_OPTIONS)
        );
        assert_eq!(host.binds, Some(vec!["/srv/data:/data:ro".to_owned()]));
    }

    #[test]
    fn relative_bind_sources_are_made_absolute_and_volume_names_kept() {
        let cwd = std::env::current_dir().unwrap_or_default();
        assert_eq!(
            bind_source("./data"),
            cwd.join("./data").display().to_string()
        );
        assert_eq!(bind_source("/abs"), "/abs");
        assert_eq!(bind_source("named-volume"), "named-volume");
    }
}
