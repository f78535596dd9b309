//! Every process group the hangar has started and not yet seen gone.
//!
//! This is the last line of the "nothing is orphaned" invariant: whatever path a shutdown takes
//! (graceful stop, a start that was abandoned, a panic unwinding through a task), the hangar kills
//! every group still listed here before it exits.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

static GROUPS: LazyLock<Mutex<HashSet<i32>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

pub(super) fn register(pgid: i32) {
    GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pgid);
}

pub(super) fn forget(pgid: i32) {
    GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&pgid);
}

/// Sends `signal` to the whole group. A group that no longer exists is not an error.
pub(super) fn signal_group(pgid: i32, signal: Signal) {
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => tracing::warn!("could not send {signal} to process group {pgid}: {e}"),
    }
}

/// SIGKILLs every process group still registered. Returns how many there were.
pub fn kill_all_process_groups() -> usize {
    let groups: Vec<i32> = GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .collect();
    for pgid in &groups {
        signal_group(*pgid, Signal::SIGKILL);
    }
    groups.len()
}
