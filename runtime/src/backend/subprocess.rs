//! Providers that run as child processes speaking MCP over their stdin/stdout.
//!
//! Each child gets its own process group, so a stop reaches whatever it spawned in turn
//! (`npx` → `node`, `uv` → `python`), and `PR_SET_PDEATHSIG` so it dies with the hangar even when
//! the hangar itself is killed with SIGKILL and cannot clean up.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rmcp::RoleClient;
use rmcp::service::{RunningService, serve_client_with_ct};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::client::{ProgressRoutes, ProviderClient, ToolsChangedHook};
use super::raw::RawCalls;
use super::{Connection, START_TIMEOUT, StartError, StderrTail, groups};
use crate::wire::{SharedWriter, TapTransport};

/// What to run.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    pub provider: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
}

/// The running child: its exit, its group, and the MCP session on its pipes.
pub(super) struct Process {
    pgid: Option<i32>,
    exit: watch::Receiver<Option<String>>,
    /// Cancels the MCP session, which closes the child's stdin.
    session_ct: CancellationToken,
    /// Held so the session lives as long as the connection; dropped on shutdown.
    session: Mutex<Option<RunningService<RoleClient, ProviderClient>>>,
}

/// Lines longer than this are cut, so a provider that writes a megabyte without a newline cannot
/// grow the hangar's memory.
const MAX_STDERR_LINE: usize = 4096;

/// Grace a provider gets to exit on its own after its stdin is closed, before SIGTERM.
const EOF_GRACE: Duration = Duration::from_millis(500);

/// Spawns the provider and completes the MCP handshake. `cancel` aborts a start under way (a
/// stop or the hangar's shutdown must not wait for a provider that hangs at initialize).
pub async fn start(
    spec: SpawnSpec,
    on_tools_changed: ToolsChangedHook,
    cancel: CancellationToken,
) -> Result<Connection, StartError> {
    let started = Instant::now();
    let (program, args) = spec.argv.split_first().ok_or_else(|| StartError {
        message: format!("provider `{}` has an empty `command`", spec.provider),
        stderr_tail: vec![],
    })?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2), which is
    // async-signal-safe; it touches no memory shared with the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().map_err(|e| StartError {
        message: format!(
            "could not run `{program}` for provider `{}`: {e}; check `command` in the config and that the program is installed and on PATH",
            spec.provider
        ),
        stderr_tail: vec![],
    })?;
    let pid = child.id();
    let pgid = pid.map(|p| p as i32);
    if let Some(pgid) = pgid {
        groups::register(pgid);
    }

    let stderr = StderrTail::default();
    if let Some(pipe) = child.stderr.take() {
        tokio::spawn(forward_stderr(spec.provider.clone(), pipe, stderr.clone()));
    }
    let (stdin, stdout) = match (child.stdin.take(), child.stdout.take()) {
        (Some(i), Some(o)) => (i, o),
        _ => unreachable!("stdin and stdout are piped above"),
    };
    let (exit_tx, exit_rx) = watch::channel(None);
    let session_ct = CancellationToken::new();
    tokio::spawn(watch_exit(child, pgid, exit_tx, session_ct.clone()));

    let progress = ProgressRoutes::default();
    let handler = ProviderClient::new(spec.provider.clone(), on_tools_changed, progress.clone());
    let process = Process {
        pgid,
        exit: exit_rx,
        session_ct: session_ct.clone(),
        session: Mutex::new(None),
    };

    let writer = SharedWriter::new(stdin);
    let (raw, tap) = RawCalls::new(writer.clone());
    let transport = TapTransport::<RoleClient>::new(stdout, writer, tap, session_ct.clone());
    let handshake = async {
        let session = serve_client_with_ct(handler, transport, session_ct.clone())
            .await
            .map_err(|e| format!("MCP initialization failed: {e}"))?;
        let tools = session
            .peer()
            .list_all_tools()
            .await
            .map_err(|e| format!("tools/list failed: {e}"))?;
        Ok::<_, String>((session, tools))
    };
    let outcome = tokio::select! {
        r = tokio::time::timeout(START_TIMEOUT, handshake) => match r {
            Ok(r) => r,
            Err(_) => Err(format!("did not answer initialize and tools/list within {}s", START_TIMEOUT.as_secs())),
        },
        how = process.exited() => Err(format!("{how} during startup")),
        _ = cancel.cancelled() => Err("start cancelled: the provider was stopped while starting".to_string()),
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
            *process.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(session);
            tracing::info!(
                provider = %spec.provider,
                pid = ?pid,
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
                pid,
                stderr,
                progress,
                raw,
                process,
            })
        }
        Err(mut why) => {
            // A child that died during the handshake usually shows up first as a broken pipe;
            // its exit status is the useful part.
            if !why.contains("during startup")
                && let Ok(how) =
                    tokio::time::timeout(Duration::from_millis(500), process.exited()).await
            {
                why = format!("{how} during startup ({why})");
            }
            process.shutdown(Duration::from_secs(2)).await;
            // The stderr reader may still be draining the last lines of a crashed child.
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err(StartError {
                message: format!("provider `{}` failed to start: {why}", spec.provider),
                stderr_tail: stderr.lines(),
            })
        }
    }
}

impl Process {
    /// Resolves with a description of how the process ended (`exited with status 3`, …).
    pub(super) async fn exited(&self) -> String {
        let mut rx = self.exit.clone();
        match rx.wait_for(|s| s.is_some()).await {
            Ok(s) => s.clone().unwrap_or_default(),
            // The watcher owns the sender and only drops it after sending.
            Err(_) => "process ended".to_string(),
        }
    }

    fn has_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    pub(super) async fn shutdown(&self, timeout: Duration) {
        // 1. MCP close: end the session, which closes the child's stdin.
        self.session_ct.cancel();
        let session = self
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(session);
        let deadline = Instant::now() + timeout;
        let grace = EOF_GRACE.min(timeout);
        if tokio::time::timeout(grace, self.exited()).await.is_err()
            && let Some(pgid) = self.pgid
        {
            // 2. SIGTERM to the group, 3. SIGKILL once the shutdown timeout is spent.
            groups::signal_group(pgid, Signal::SIGTERM);
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, self.exited()).await.is_err() {
                tracing::warn!(
                    pgid,
                    "provider ignored SIGTERM for {timeout:?}; sending SIGKILL"
                );
                groups::signal_group(pgid, Signal::SIGKILL);
                let _ = tokio::time::timeout(Duration::from_secs(2), self.exited()).await;
            }
        }
        if let Some(pgid) = self.pgid {
            // The leader is gone; anything it left behind in its group goes with it.
            groups::signal_group(pgid, Signal::SIGKILL);
            if self.has_exited() {
                groups::forget(pgid);
            }
        }
    }
}

/// How long after the process exits its MCP session is ended: long enough to read an answer it
/// wrote just before exiting, short enough that calls still in flight fail at once.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(100);

async fn watch_exit(
    mut child: Child,
    pgid: Option<i32>,
    tx: watch::Sender<Option<String>>,
    session: CancellationToken,
) {
    let how = match child.wait().await {
        Ok(status) => describe(status),
        Err(e) => format!("could not be waited for: {e}"),
    };
    // A grandchild holding the pipe open would otherwise keep in-flight calls waiting.
    tokio::spawn(async move {
        tokio::time::sleep(DRAIN_AFTER_EXIT).await;
        session.cancel();
    });
    if let Some(pgid) = pgid {
        // Children of a provider that exited on its own would otherwise outlive it.
        groups::signal_group(pgid, Signal::SIGKILL);
        groups::forget(pgid);
    }
    let _ = tx.send(Some(how));
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("process exited with status {code}"),
        (None, Some(sig)) => {
            let name = Signal::try_from(sig)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| sig.to_string());
            format!("process was killed by signal {name}")
        }
        _ => format!("process ended ({status})"),
    }
}

async fn forward_stderr(provider: String, pipe: ChildStderr, tail: StderrTail) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::with_capacity(256);
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                buf.truncate(MAX_STDERR_LINE);
                let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                if line.is_empty() {
                    continue;
                }
                tracing::info!(target: "mcp_hangar::provider", "[{provider}] {line}");
                tail.push(line);
            }
        }
    }
}
