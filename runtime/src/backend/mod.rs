//! How a provider runs and is reached. One seam for every kind: [`start`] takes a provider's
//! spec and returns a [`Connection`] — an rmcp client [`Peer`], what the provider offered at
//! start, and how to stop it. The registry never knows whether a process, a container or a URL
//! is behind it.
//!
//! One file per way of running, mirrored by [`Runtime`] and by the config's `ProviderMode`:
//! `subprocess` (a child process on pipes), `container` (Docker or Podman, on the container's
//! attached stdin/stdout), `remote` (streamable HTTP or the legacy HTTP+SSE transport). The
//! first two speak newline-delimited JSON on a byte stream, so they share the raw `tools/call`
//! fast path ([`raw`]); a remote provider is called through rmcp only.

mod call;
mod client;
pub mod container;
pub mod downstream;
mod groups;
pub mod raw;
mod redact;
pub mod remote;
pub mod subprocess;

pub use client::{ProgressRoute, ProgressRoutes, ProgressSink, ProviderClient, ToolsChangedHook};
pub use downstream::{Callers, ClientAsk, ClientLink, Downstream, Notice};
pub use groups::kill_all_process_groups;
pub use redact::Redactor;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::RoleClient;
use rmcp::model::Tool;
use rmcp::service::{
    ClientLifecycleMode, Peer, RunningService, serve_client_with_lifecycle_and_ct,
};
use rmcp::transport::IntoTransport;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{ProviderMode, ProviderSpec};
use crate::wire::{SharedWriter, TapTransport};

/// How long a provider may take from spawn to answering `tools/list`. Generous because real
/// servers (`npx …`, `uvx …`) may install themselves on first start.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How many of a provider's last stderr lines are kept for error messages.
const STDERR_TAIL_LINES: usize = 20;

/// Lines longer than this are cut, so a provider that writes a megabyte without a newline cannot
/// grow the hangar's memory.
pub(crate) const MAX_STDERR_LINE: usize = 4096;

/// Ends a stderr line that was cut at [`MAX_STDERR_LINE`].
const STDERR_LINE_CUT: &str = "[line cut at 4096 bytes]";

/// Grace a provider gets to end on its own after its MCP session is closed (stdin EOF), before
/// it is stopped by force.
const EOF_GRACE: Duration = Duration::from_millis(500);

/// How long a failed handshake waits to learn how the provider ended. A process's end is known
/// at once; an engine may report a container's end most of a second after its stream closed
/// (Podman's wait polls).
const EXIT_AFTER_BROKEN_HANDSHAKE: Duration = Duration::from_secs(2);

/// How long after a provider is gone its MCP session is ended: long enough to read an answer it
/// wrote just before exiting, short enough that calls still in flight fail at once.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(100);

/// The last lines a provider wrote to stderr, its secrets cut out.
#[derive(Debug, Clone, Default)]
pub struct StderrTail {
    lines: Arc<Mutex<VecDeque<String>>>,
    redactor: Redactor,
}

impl StderrTail {
    pub fn new(redactor: Redactor) -> Self {
        Self {
            lines: Arc::default(),
            redactor,
        }
    }

    pub fn push(&self, line: String) {
        let line = match self.redactor.apply(&line) {
            std::borrow::Cow::Borrowed(_) => line,
            std::borrow::Cow::Owned(cut) => cut,
        };
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == STDERR_TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// Logs one raw line of the provider's stderr (cut to [`MAX_STDERR_LINE`]) and keeps it.
    pub(crate) fn record(&self, provider: &str, raw: &[u8]) {
        let cut = raw.len() > MAX_STDERR_LINE;
        self.record_line(provider, &raw[..raw.len().min(MAX_STDERR_LINE)], cut);
    }

    /// As [`Self::record`]; `cut` says the provider wrote more of this line than `raw` holds,
    /// which the kept line then says.
    fn record_line(&self, provider: &str, raw: &[u8], cut: bool) {
        let line = String::from_utf8_lossy(raw);
        let line = self.redactor.apply(line.trim_end());
        let line = if cut {
            // A secret the cut went through would otherwise leave its first bytes behind.
            let kept = self.redactor.cut_partial_tail(&line);
            format!("{kept} {STDERR_LINE_CUT}")
        } else {
            line.into_owned()
        };
        if line.is_empty() {
            return;
        }
        tracing::info!(target: "mcp_hangar::provider", "[{provider}] {line}");
        self.push(line);
    }

    /// Reads a provider's stderr to its end, a line at a time, logging and keeping each.
    /// Never holds more than [`MAX_STDERR_LINE`] bytes of a line: the rest of a longer one
    /// is skipped as it arrives, so an endless line cannot grow the hangar's memory.
    pub(crate) async fn follow(self, provider: String, pipe: impl AsyncRead + Unpin) {
        use tokio::io::AsyncBufReadExt;
        let mut reader = tokio::io::BufReader::new(pipe);
        let mut line = Vec::with_capacity(256);
        let mut cut = false;
        loop {
            let chunk = match reader.fill_buf().await {
                Ok([]) | Err(_) => break,
                Ok(chunk) => chunk,
            };
            let (part, used, ended) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (&chunk[..i], i + 1, true),
                None => (chunk, chunk.len(), false),
            };
            let room = MAX_STDERR_LINE.saturating_sub(line.len());
            cut |= part.len() > room;
            line.extend_from_slice(&part[..part.len().min(room)]);
            reader.consume(used);
            if ended {
                self.record_line(&provider, &line, cut);
                line.clear();
                cut = false;
            }
        }
        if !line.is_empty() {
            self.record_line(&provider, &line, cut);
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// The tail as one string for an error message, or a note that there was none.
    pub fn render(&self) -> String {
        let lines = self.lines();
        if lines.is_empty() {
            "(the provider wrote nothing to stderr)".to_string()
        } else {
            lines.join("\n")
        }
    }
}

/// Why a provider could not be started.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StartError {
    pub message: String,
    pub stderr_tail: Vec<String>,
}

impl StartError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            stderr_tail: Vec::new(),
        }
    }
}

/// Resolves once a provider is gone (process exited, container stopped, remote session lost),
/// with how it ended. Cheap to clone; every clone sees the same end.
#[derive(Clone, Debug)]
pub struct Exit(watch::Receiver<Option<String>>);

/// The sending side of an [`Exit`]: whoever watches the provider says how it ended, once.
pub type ExitSender = watch::Sender<Option<String>>;

impl Exit {
    pub fn channel() -> (ExitSender, Self) {
        let (tx, rx) = watch::channel(None);
        (tx, Self(rx))
    }

    /// Waits for the end and describes it (`process exited with status 3`, …).
    pub async fn wait(&self) -> String {
        let mut rx = self.0.clone();
        match rx.wait_for(|s| s.is_some()).await {
            Ok(s) => s.clone().unwrap_or_default(),
            // A watcher that dropped its sender without a word is gone all the same.
            Err(_) => "provider ended".to_string(),
        }
    }

    pub fn has_exited(&self) -> bool {
        self.0.borrow().is_some()
    }
}

/// What runs behind a connection, one variant per backend file.
pub(crate) enum Runtime {
    Process(subprocess::Process),
    Container(container::Container),
    // Built by `remote::connect` once the remote backend lands; until then nothing makes one.
    #[allow(dead_code)]
    Remote(remote::Remote),
}

impl Runtime {
    fn exit(&self) -> &Exit {
        match self {
            Self::Process(p) => p.exit(),
            Self::Container(c) => c.exit(),
            Self::Remote(r) => r.exit(),
        }
    }

    /// Makes sure nothing is left running, within `timeout`, once the MCP session is closed:
    /// signals for a process group, `docker stop` and remove for a container.
    async fn stop(&self, timeout: Duration) {
        match self {
            Self::Process(p) => p.stop(timeout).await,
            Self::Container(c) => c.stop(timeout).await,
            Self::Remote(r) => r.stop(timeout).await,
        }
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Self::Process(p) => p.pid(),
            Self::Container(_) | Self::Remote(_) => None,
        }
    }

    /// Where the provider runs, for status output: `pid 1234`, `container 3f2a…`, a URL.
    fn location(&self) -> String {
        match self {
            Self::Process(p) => p
                .pid()
                .map_or_else(|| "process".to_string(), |pid| format!("pid {pid}")),
            Self::Container(c) => c.location(),
            Self::Remote(r) => r.location(),
        }
    }
}

/// What a start needs besides the spec.
pub struct Launch<'a> {
    pub spec: &'a ProviderSpec,
    /// Labels this hangar's containers, so a later start of the same config finds the ones a
    /// killed hangar left behind.
    pub instance: &'a str,
    pub on_tools_changed: ToolsChangedHook,
    /// The clients' side: what they offered, their log level, where notices go.
    pub downstream: Arc<Downstream>,
    /// Aborts a start under way (a stop or the hangar's shutdown must not wait for a provider
    /// that hangs at initialize).
    pub cancel: CancellationToken,
}

/// A started provider: the MCP peer to call, what it offered at start, and how to stop it.
pub struct Connection {
    pub peer: Peer<RoleClient>,
    pub tools: Vec<Tool>,
    pub protocol_version: String,
    pub server_name: String,
    pub pid: Option<u32>,
    /// Where it runs: `pid 1234`, `container 3f2a… (image)`, or the endpoint.
    pub location: String,
    pub stderr: StderrTail,
    /// Routes the provider's progress notifications to the callers waiting for them.
    pub progress: ProgressRoutes,
    /// The calls under way that can reach their client, for the provider's requests to it.
    pub callers: Callers,
    /// `tools/call` written and answered on the byte stream directly, past rmcp's service
    /// loop; `None` for backends that are not a byte stream (remote).
    pub raw: Option<Arc<raw::RawCalls>>,
    /// Cancels the MCP session (for a byte stream: closes the provider's stdin).
    session_ct: CancellationToken,
    /// Held so the session lives as long as the connection; dropped on shutdown.
    session: Mutex<Option<RunningService<RoleClient, ProviderClient>>>,
    runtime: Runtime,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("location", &self.location)
            .field("protocol_version", &self.protocol_version)
            .field("tools", &self.tools.len())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// What the provider said it serves at its handshake.
    pub fn capabilities(&self) -> Option<rmcp::model::ServerCapabilities> {
        self.peer.peer_info().map(|info| info.capabilities.clone())
    }

    /// Sets the provider's log level to what the clients asked for, if it logs.
    #[allow(deprecated)]
    pub fn follow_log_level(&self, level: Option<rmcp::model::LoggingLevel>) {
        let Some(level) = level else { return };
        if self.capabilities().is_none_or(|c| c.logging.is_none()) {
            return;
        }
        let peer = self.peer.clone();
        tokio::spawn(async move {
            let params = rmcp::model::SetLevelRequestParams::new(level);
            if let Err(e) = peer.set_level(params).await {
                tracing::debug!("logging/setLevel to a provider failed: {e}");
            }
        });
    }

    /// Resolves when the provider is gone, with a description of how it ended.
    pub async fn exited(&self) -> String {
        self.runtime.exit().wait().await
    }

    /// Stops the provider: MCP close, a short grace to end on its own, then the backend's
    /// forced stop (SIGTERM then SIGKILL to a process group; `docker stop` then remove).
    pub async fn shutdown(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        self.session_ct.cancel();
        let session = self
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(session);
        let exit = self.runtime.exit();
        let _ = tokio::time::timeout(EOF_GRACE.min(timeout), exit.wait()).await;
        self.runtime
            .stop(deadline.saturating_duration_since(Instant::now()))
            .await;
    }
}

/// Starts the provider `launch.spec` describes and completes the MCP handshake.
pub async fn start(launch: Launch<'_>) -> Result<Connection, StartError> {
    let spec = launch.spec;
    let redactor = Redactor::for_spec(spec);
    let started = async {
        match spec.mode {
            ProviderMode::Subprocess => {
                let stderr = StderrTail::new(redactor.clone());
                let (process, pipes) = subprocess::spawn(spec, stderr.clone())?;
                over_pipes(&launch, Runtime::Process(process), pipes, stderr).await
            }
            ProviderMode::Container => {
                let stderr = StderrTail::new(redactor.clone());
                let (container, pipes) =
                    container::launch(spec, launch.instance, stderr.clone(), &launch.cancel)
                        .await?;
                over_pipes(&launch, Runtime::Container(container), pipes, stderr).await
            }
            ProviderMode::Remote => remote::connect(&launch).await,
            ProviderMode::Group => Err(StartError::new(format!(
                "`{}` is a group; its members are started, not the group itself",
                spec.id
            ))),
        }
    }
    .await;
    // Whatever failed may quote the provider's command, endpoint or answer: no secret of it
    // leaves in an error.
    started.map_err(|e| StartError {
        message: redactor.apply(&e.message).into_owned(),
        stderr_tail: e.stderr_tail,
    })
}

/// A provider's MCP byte stream: what the hangar writes (its stdin) and reads (its stdout).
pub(crate) struct Pipes {
    pub input: Box<dyn AsyncWrite + Send + Unpin>,
    pub output: Box<dyn AsyncRead + Send + Unpin>,
}

/// The handshake over newline-delimited JSON on `pipes`, with the raw call path tapped in.
async fn over_pipes(
    launch: &Launch<'_>,
    runtime: Runtime,
    pipes: Pipes,
    stderr: StderrTail,
) -> Result<Connection, StartError> {
    let session_ct = CancellationToken::new();
    let writer = SharedWriter::new(pipes.input);
    let (raw, tap) = raw::RawCalls::new(writer.clone());
    let transport = TapTransport::<RoleClient>::new(pipes.output, writer, tap, session_ct.clone());
    establish(
        launch,
        Established {
            runtime,
            stderr,
            raw: Some(raw),
            session_ct,
        },
        transport,
        ClientLifecycleMode::Initialize,
    )
    .await
}

/// The parts of a connection a backend brings to [`establish`].
pub(crate) struct Established {
    pub runtime: Runtime,
    pub stderr: StderrTail,
    pub raw: Option<Arc<raw::RawCalls>>,
    /// The token the transport watches; cancelling it ends the session.
    pub session_ct: CancellationToken,
}

/// Runs the MCP handshake and `tools/list` on `transport`, bounded by [`START_TIMEOUT`], the
/// provider's end and `launch.cancel`. On failure the provider is stopped and the error carries
/// its stderr tail.
pub(crate) async fn establish<T, E, A>(
    launch: &Launch<'_>,
    parts: Established,
    transport: T,
    lifecycle: ClientLifecycleMode,
) -> Result<Connection, StartError>
where
    T: IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let provider = launch.spec.id.as_str();
    let started = Instant::now();
    let Established {
        runtime,
        stderr,
        raw,
        session_ct,
    } = parts;
    // A provider that is gone ends its session soon after, so calls in flight fail at once
    // (a grandchild holding a pipe open would otherwise keep them waiting).
    tokio::spawn(end_session_on_exit(
        runtime.exit().clone(),
        session_ct.clone(),
    ));

    let progress = ProgressRoutes::default();
    let callers = Callers::default();
    let handler = ProviderClient::new(
        provider,
        launch.on_tools_changed.clone(),
        progress.clone(),
        launch.downstream.clone(),
        callers.clone(),
    );
    let handshake = async {
        let session =
            serve_client_with_lifecycle_and_ct(handler, transport, lifecycle, session_ct.clone())
                .await
                .map_err(|e| format!("MCP initialization failed: {e}"))?;
        let tools = session
            .peer()
            .list_all_tools()
            .await
            .map_err(|e| format!("tools/list failed: {e}"))?;
        Ok::<_, String>((session, tools))
    };
    let exit = runtime.exit();
    let outcome = tokio::select! {
        r = tokio::time::timeout(START_TIMEOUT, handshake) => match r {
            Ok(r) => r,
            Err(_) => Err(format!("did not answer initialize and tools/list within {}s", START_TIMEOUT.as_secs())),
        },
        how = exit.wait() => Err(format!("{how} during startup")),
        _ = launch.cancel.cancelled() => Err("start cancelled: the provider was stopped while starting".to_string()),
    };
    match outcome {
        Ok((session, tools)) => {
            let peer = session.peer().clone();
            let (protocol_version, server_name) = match peer.peer_info() {
                Some(info) => (
                    info.protocol_version.to_string(),
                    info.server_info
                        .as_ref()
                        .map(|s| s.name.clone())
                        .unwrap_or_default(),
                ),
                None => (String::new(), String::new()),
            };
            let location = Redactor::for_spec(launch.spec)
                .apply(&runtime.location())
                .into_owned();
            tracing::info!(
                provider,
                at = %location,
                protocol = %protocol_version,
                tools = tools.len(),
                "started in {} ms",
                started.elapsed().as_millis()
            );
            Ok(Connection {
                peer,
                tools,
                protocol_version,
                server_name,
                pid: runtime.pid(),
                location,
                stderr,
                progress,
                callers,
                raw,
                session_ct,
                session: Mutex::new(Some(session)),
                runtime,
            })
        }
        Err(mut why) => {
            // A provider that died during the handshake usually shows up first as a broken
            // pipe; how it ended is the useful part.
            if !why.contains("during startup")
                && let Ok(how) =
                    tokio::time::timeout(EXIT_AFTER_BROKEN_HANDSHAKE, exit.wait()).await
            {
                why = format!("{how} during startup ({why})");
            }
            session_ct.cancel();
            runtime.stop(Duration::from_secs(2)).await;
            // The stderr reader may still be draining the last lines of a crashed provider.
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err(StartError {
                message: format!("provider `{provider}` failed to start: {why}"),
                stderr_tail: stderr.lines(),
            })
        }
    }
}

async fn end_session_on_exit(exit: Exit, session: CancellationToken) {
    tokio::select! {
        _ = exit.wait() => {
            tokio::time::sleep(DRAIN_AFTER_EXIT).await;
            session.cancel();
        }
        _ = session.cancelled() => {}
    }
}

/// Ends whatever the hangar started and has not seen gone: every process group, and every
/// container. The last line of the "nothing is orphaned" invariant, run at shutdown.
pub async fn reap_all() -> usize {
    kill_all_process_groups() + container::remove_all_started().await
}

/// The label that marks what a hangar serving the config at `config_path` starts: the same for
/// every run of the same file (and every hangar version), different for another file. A hash,
/// so no path is shown.
pub fn instance_label(config_path: &std::path::Path) -> String {
    use sha2::Digest;
    let path = std::fs::canonicalize(config_path).unwrap_or_else(|_| config_path.to_path_buf());
    let digest = sha2::Sha256::digest(path.as_os_str().as_encoded_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_the_provider_prints_is_cut_from_the_log_and_the_tail() {
        let mut spec = ProviderSpec::subprocess("p", &["server"]);
        spec.env.insert(
            "API_TOKEN".into(),
            crate::config::MaybeSecret::secret("s3cr3t-value"),
        );
        let tail = StderrTail::new(Redactor::for_spec(&spec));
        tail.record("p", b"connecting with token s3cr3t-value\n");
        assert_eq!(tail.lines(), ["connecting with token ***"]);
        // A line cut in the middle of the secret keeps none of it.
        let mut long = vec![b'.'; MAX_STDERR_LINE - 4];
        long.extend_from_slice(b"s3cr3t-value and more");
        tail.record("p", &long);
        let last = tail.lines().pop().unwrap_or_default();
        assert!(!last.contains("s3cr"), "{}", &last[last.len() - 60..]);
        assert!(last.ends_with(&format!("*** {STDERR_LINE_CUT}")), "{last}");
    }

    #[tokio::test]
    async fn an_endless_stderr_line_is_cut_as_it_arrives_and_the_next_line_is_kept() {
        let (mut w, r) = tokio::io::duplex(64);
        let tail = StderrTail::default();
        let reader = tokio::spawn(tail.clone().follow("p".into(), r));
        use tokio::io::AsyncWriteExt;
        // 8 MiB without a newline, written in pieces smaller than one line's cap.
        let piece = vec![b'x'; 1000];
        for _ in 0..8 * 1024 {
            w.write_all(&piece).await.unwrap();
        }
        w.write_all(b"\nsecond line\nno newline at the end")
            .await
            .unwrap();
        drop(w);
        reader.await.unwrap();
        let lines = tail.lines();
        assert_eq!(
            lines.len(),
            3,
            "{:?}",
            lines.iter().map(String::len).collect::<Vec<_>>()
        );
        assert_eq!(
            lines[0],
            format!("{} {STDERR_LINE_CUT}", "x".repeat(MAX_STDERR_LINE))
        );
        assert_eq!(lines[1], "second line");
        assert_eq!(lines[2], "no newline at the end");
    }
}
