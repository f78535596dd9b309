//! What can go wrong with a plugin, as a person reading a log or a refused call needs it said.

use std::fmt;
use std::time::Duration;

use wasmtime::Trap;

/// A plugin could not be loaded, or one call into it failed. The plugin's `on_error` decides
/// what the failed call becomes (see `Plugin::validate` and `Plugin::pick`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("plugin `{plugin}`: {message}")]
pub struct PluginError {
    /// The plugin's name (its key under `plugins:`).
    pub plugin: String,
    pub kind: PluginErrorKind,
    /// What happened and, where there is one, what to change.
    pub message: String,
}

/// The kinds of plugin failure. Every kind but `Load` and `WrongKind` is about one call, and
/// after each of them the instance that failed is dropped, never entered again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PluginErrorKind {
    /// The file is missing, not a component, built for another world, or its sandbox cannot
    /// be set up (a preopened directory is missing, fuel is asked of a host without it).
    Load,
    /// `configure` refused the plugin's `config:`.
    Configure,
    /// The plugin trapped: `unreachable`, a panic, an out-of-bounds access, `exit`, a stack
    /// overflow, or a host call it made failed in a way that cannot be answered.
    Trap,
    /// The call outlived the plugin's `timeout_ms` and was stopped.
    Timeout,
    /// The call used up the plugin's `fuel`.
    OutOfFuel,
    /// The plugin tried to grow its memory past `memory_mb`.
    MemoryLimit,
    /// The plugin answered with more bytes than the host accepts.
    OutputTooLarge,
    /// The answer is not one the contract allows (a member index out of range, a rewrite
    /// that is not a JSON object, …).
    InvalidAnswer,
    /// The plugin answered with an error of its own (`discover` returned `err`).
    Reported,
    /// Too many plugin calls at once: every instance slot of the host is taken. The call is
    /// not made.
    Busy,
    /// The plugin was asked for something its kind does not do (`pick` on a validator).
    WrongKind,
}

impl PluginErrorKind {
    /// A short name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Load => "load",
            Self::Configure => "configure",
            Self::Trap => "trap",
            Self::Timeout => "timeout",
            Self::OutOfFuel => "out_of_fuel",
            Self::MemoryLimit => "memory_limit",
            Self::OutputTooLarge => "output_too_large",
            Self::InvalidAnswer => "invalid_answer",
            Self::Reported => "reported",
            Self::Busy => "busy",
            Self::WrongKind => "wrong_kind",
        }
    }

    pub(super) const ALL: [Self; 11] = [
        Self::Load,
        Self::Configure,
        Self::Trap,
        Self::Timeout,
        Self::OutOfFuel,
        Self::MemoryLimit,
        Self::OutputTooLarge,
        Self::InvalidAnswer,
        Self::Reported,
        Self::Busy,
        Self::WrongKind,
    ];

    pub(super) fn index(self) -> usize {
        Self::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

impl fmt::Display for PluginErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PluginError {
    pub(super) fn new(plugin: &str, kind: PluginErrorKind, message: impl Into<String>) -> Self {
        Self {
            plugin: plugin.to_owned(),
            kind,
            message: message.into(),
        }
    }
}

/// Raised by the store's resource limiter when the plugin asks for more memory than
/// `memory_mb`; found again in the trap's error chain to tell a memory bomb from other traps.
#[derive(Debug)]
pub(super) struct MemoryCapHit {
    pub cap: usize,
    pub desired: usize,
}

impl fmt::Display for MemoryCapHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ran out of memory: it tried to grow its memory to {}, past its limit of {} \
             (`memory_mb`)",
            mib(self.desired),
            mib(self.cap)
        )
    }
}

impl std::error::Error for MemoryCapHit {}

/// `bytes` in MiB, with two decimals when it is not a whole number of MiB (wasm pages are
/// 64 KiB, so a growth past a cap is often a fraction of a MiB past it).
pub(super) fn mib(bytes: usize) -> String {
    let whole = bytes >> 20;
    let hundredths = ((bytes & ((1 << 20) - 1)) * 100) >> 20;
    if bytes & ((1 << 20) - 1) == 0 {
        format!("{whole} MiB")
    } else {
        format!("{whole}.{hundredths:02} MiB")
    }
}

/// What a failed call into a plugin was, from wasmtime's error and what the plugin wrote on
/// stderr before it failed (a Rust panic message goes there).
pub(super) fn classify(
    plugin: &str,
    err: &wasmtime::Error,
    timeout: Duration,
    stderr: &str,
) -> PluginError {
    let stderr = stderr_summary(stderr);
    let with_stderr = |message: String| {
        if stderr.is_empty() {
            message
        } else {
            format!("{message}; its stderr: {stderr}")
        }
    };
    if let Some(hit) = err.chain().find_map(|e| e.downcast_ref::<MemoryCapHit>()) {
        return PluginError::new(plugin, PluginErrorKind::MemoryLimit, hit.to_string());
    }
    if let Some(limit) = err
        .chain()
        .find_map(|e| e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>())
    {
        return PluginError::new(
            plugin,
            PluginErrorKind::Busy,
            format!("not called: too many plugin instances at once ({limit})"),
        );
    }
    if let Some(exit) = err
        .chain()
        .find_map(|e| e.downcast_ref::<wasmtime_wasi::I32Exit>())
    {
        return PluginError::new(
            plugin,
            PluginErrorKind::Trap,
            with_stderr(format!(
                "exited with status {} instead of answering",
                exit.0
            )),
        );
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginError::new(
            plugin,
            PluginErrorKind::Timeout,
            format!(
                "did not answer within its timeout of {} ms and was stopped",
                timeout.as_millis()
            ),
        ),
        Some(Trap::OutOfFuel) => PluginError::new(
            plugin,
            PluginErrorKind::OutOfFuel,
            "used up its fuel (`fuel`) before answering",
        ),
        Some(trap) => {
            let shown = trap.to_string();
            let shown = shown.strip_prefix("wasm trap: ").unwrap_or(&shown);
            PluginError::new(
                plugin,
                PluginErrorKind::Trap,
                with_stderr(format!("trapped ({shown})")),
            )
        }
        None => PluginError::new(
            plugin,
            PluginErrorKind::Trap,
            with_stderr(format!("failed: {}", first_line(&format!("{err:#}")))),
        ),
    }
}

/// At most this much of a plugin's stderr goes into an error message.
const STDERR_SHOWN: usize = 512;

/// The plugin's stderr on one line, without Rust's backtrace hint, capped.
fn stderr_summary(stderr: &str) -> String {
    let joined = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
        .collect::<Vec<_>>()
        .join(" | ");
    truncate(&joined, STDERR_SHOWN)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// `text` cut to at most `max` bytes on a character boundary, with `…` when cut.
pub(super) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mib_shows_decimals_only_when_there_are_some() {
        assert_eq!(mib(64 << 20), "64 MiB");
        assert_eq!(mib((64 << 20) + (1 << 19)), "64.50 MiB");
        assert_eq!(mib((64 << 20) + (64 << 10)), "64.06 MiB");
    }

    #[test]
    fn stderr_summary_keeps_the_panic_and_drops_the_backtrace_hint() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:9:5:\nboom\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            stderr_summary(stderr),
            "thread '<unnamed>' panicked at src/lib.rs:9:5: | boom"
        );
    }

    #[test]
    fn truncate_cuts_on_a_character_boundary() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("hello", 5), "hello");
    }

    #[test]
    fn every_kind_has_its_own_index() {
        for (i, kind) in PluginErrorKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
    }
}
