//! Watches the directories of filesystem sources and asks for a cycle at once when one changes.
//! Debouncing is the loop's: it waits `SETTLE` after the first change and takes the others
//! that arrived meanwhile with it, so an editor's several writes cause one cycle.

use std::path::PathBuf;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use super::engine::Trigger;

/// How long changes are gathered before the cycle they cause.
pub const SETTLE: Duration = Duration::from_millis(200);

/// A watcher on every directory of `dirs` (missing ones are skipped with a warning); changes
/// send `Trigger::Changed`. Keep the watcher alive as long as the watching should last.
pub fn watch(
    dirs: &[PathBuf],
    tx: mpsc::Sender<Trigger>,
) -> Result<Option<notify::RecommendedWatcher>, String> {
    if dirs.is_empty() {
        return Ok(None);
    }
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !event.kind.is_access()
        {
            // Full: a cycle is already asked for, which will see this change too.
            let _ = tx.try_send(Trigger::Changed);
        }
    })
    .map_err(|e| format!("cannot watch discovery directories: {e}"))?;
    for dir in dirs {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(
                "cannot watch {} ({e}); its changes are seen at the next refresh",
                dir.display()
            );
        }
    }
    Ok(Some(watcher))
}
