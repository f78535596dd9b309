//! The log: `logging {level, json_format, file}` from the config, installed once the config is
//! loaded. `MCP_HANGAR_LOG` or `RUST_LOG`, when set, replace `level` (any `tracing` filter).
//!
//! Logs go to stderr (on stdio, stdout is the MCP channel) and, with `file`, are appended to
//! that file as well, in the same format.

use std::fs::OpenOptions;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};

use crate::config::LoggingSpec;

/// The filter the environment asks for, if it asks: `MCP_HANGAR_LOG`, else `RUST_LOG`.
fn filter_from_env() -> Option<String> {
    ["MCP_HANGAR_LOG", "RUST_LOG"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|v| !v.trim().is_empty())
}

/// Installs the log subscriber `spec` describes. A second call changes nothing.
///
/// # Errors
///
/// The log file cannot be opened for appending (or its directory created).
pub fn init(spec: &LoggingSpec) -> Result<(), String> {
    let filter =
        EnvFilter::new(filter_from_env().unwrap_or_else(|| spec.level.directive().to_owned()));
    let writer = match &spec.file {
        None => BoxMakeWriter::new(std::io::stderr),
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    format!(
                        "logging.file: cannot create the directory {} for the log: {e}",
                        dir.display()
                    )
                })?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    format!(
                        "logging.file: cannot open {} for appending: {e}",
                        path.display()
                    )
                })?;
            BoxMakeWriter::new(std::io::stderr.and(Mutex::new(file)))
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false);
    // Already installed (a test harness, a second call): keep that one.
    let _ = if spec.json_format {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    Ok(())
}

/// The log before (or without) a config: `info`, or what the environment asks for.
pub fn init_default() {
    let _ = init(&LoggingSpec::default());
}
