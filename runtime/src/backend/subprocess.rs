//! Providers that run as child processes speaking MCP over their stdin/stdout.
//!
//! Each child gets its own process group, so a stop reaches whatever it spawned in turn
//! (`npx` → `node`, `uv` → `python`), and `PR_SET_PDEATHSIG` so it dies with the hangar even when
//! the hangar itself is killed with SIGKILL and cannot clean up.

use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::process::{Child, Command};

use super::{Exit, ExitSender, Pipes, StartError, StderrTail, groups};
use crate::config::ProviderSpec;

/// The running child: its end and its process group.
pub(crate) struct Process {
    pid: Option<u32>,
    pgid: Option<i32>,
    exit: Exit,
}

/// Spawns `spec`'s command with piped stdio in a process group of its own. The MCP session is
/// the caller's to run on the returned pipes.
pub(crate) fn spawn(
    spec: &ProviderSpec,
    stderr: StderrTail,
) -> Result<(Process, Pipes), StartError> {
    let argv = spec.argv();
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| StartError::new(format!("provider `{}` has an empty `command`", spec.id)))?;
    let mut cmd = Command::new(program);
    if !spec.inherit_env {
        cmd.env_clear().envs(base_environment());
    }
    cmd.args(args)
        .envs(spec.env_pairs())
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
    let shown = spec.redacted_argv();
    let mut child = cmd.spawn().map_err(|e| {
        StartError::new(format!(
            "could not run `{}` for provider `{}`: {e}; check `command` in the config and that the program is installed and on PATH",
            shown.first().map_or("", String::as_str),
            spec.id
        ))
    })?;
    let pid = child.id();
    let pgid = pid.map(|p| p as i32);
    if let Some(pgid) = pgid {
        groups::register(pgid);
    }
    if let Some(pipe) = child.stderr.take() {
        tokio::spawn(stderr.follow(spec.id.clone(), pipe));
    }
    let (input, output) = match (child.stdin.take(), child.stdout.take()) {
        (Some(i), Some(o)) => (i, o),
        _ => unreachable!("stdin and stdout are piped above"),
    };
    let (exit_tx, exit) = Exit::channel();
    tokio::spawn(watch_exit(child, pgid, exit_tx));
    Ok((
        Process { pid, pgid, exit },
        Pipes {
            input: Box::new(input),
            output: Box::new(output),
        },
    ))
}

/// Variables of the hangar's environment every provider gets: what programs need to find
/// themselves, their home, their locale and the network's proxy. Nothing else is passed
/// unless the provider sets `inherit_env: true`, so no provider sees the credentials the
/// hangar was started with for another.
const BASE_ENVIRONMENT: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "TERM",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_DATA_HOME",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

/// The part of the hangar's environment a provider gets by default: [`BASE_ENVIRONMENT`] and
/// the locale (`LC_*`).
fn base_environment() -> impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)> {
    std::env::vars_os().filter(|(name, _)| {
        name.to_str()
            .is_some_and(|name| BASE_ENVIRONMENT.contains(&name) || name.starts_with("LC_"))
    })
}

impl Process {
    pub(crate) fn exit(&self) -> &Exit {
        &self.exit
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// SIGTERM to the group if the process still runs, SIGKILL once `timeout` is spent; then
    /// SIGKILL to whatever it left behind in its group.
    pub(crate) async fn stop(&self, timeout: Duration) {
        let Some(pgid) = self.pgid else { return };
        let deadline = Instant::now() + timeout;
        if !self.exit.has_exited() {
            groups::signal_group(pgid, Signal::SIGTERM);
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, self.exit.wait()).await.is_err() {
                tracing::warn!(
                    pgid,
                    "provider ignored SIGTERM for {timeout:?}; sending SIGKILL"
                );
                groups::signal_group(pgid, Signal::SIGKILL);
                let _ = tokio::time::timeout(Duration::from_secs(2), self.exit.wait()).await;
            }
        }
        // The leader is gone; anything it left behind in its group goes with it.
        groups::signal_group(pgid, Signal::SIGKILL);
        if self.exit.has_exited() {
            groups::forget(pgid);
        }
    }
}

async fn watch_exit(mut child: Child, pgid: Option<i32>, tx: ExitSender) {
    let how = match child.wait().await {
        Ok(status) => describe(status),
        Err(e) => format!("could not be waited for: {e}"),
    };
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
