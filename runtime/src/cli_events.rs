//! `mcp-hangar events`: reads the event store (the audit trail) a hangar writes.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use mcp_hangar::config::event_store::{EventStoreDriver, default_path, parse_duration};
use mcp_hangar::events::store::{self, Query, StoredEvent};
use serde_json::Value;

/// How often `--follow` looks for new events (the hangar commits every 100 ms).
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// The config whose `event_store` to read; without it (and without --db), the default
    /// store, $XDG_DATA_HOME/mcp-hangar/events.db.
    #[arg(long, short = 'c', env = "MCP_HANGAR_CONFIG")]
    config: Option<PathBuf>,
    /// The database file to read (overrides --config).
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Keep printing new events as they are recorded (Ctrl-C to stop).
    #[arg(long, short = 'f')]
    follow: bool,
    /// Only events of this provider (or breaker scope, or group member).
    #[arg(long, short = 'p', value_name = "P")]
    provider: Option<String>,
    /// Only events of these types (comma-separated or repeated; `tool_invocation_*` is a
    /// prefix).
    #[arg(long = "type", short = 't', value_name = "T", value_delimiter = ',')]
    types: Vec<String>,
    /// Only events since a time: a duration back from now (`10m`, `2h`, `7d`) or an RFC 3339
    /// time (`2026-01-31T12:00:00Z`).
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Show the last N matching events (0: all).
    #[arg(long, short = 'n', value_name = "N", default_value_t = 100)]
    limit: u64,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: EventsArgs) -> Result<(), String> {
    let path = database(&args)?;
    let since_ms = args.since.as_deref().map(since).transpose()?;
    let conn = store::open_read_only(&path)?;
    let mut query = Query {
        provider: args.provider.clone(),
        types: args.types.clone(),
        since_ms,
        after_id: None,
        limit: (args.limit > 0).then_some(args.limit),
    };
    let stdout = std::io::stdout();
    loop {
        let events = store::query(&conn, &query)?;
        let mut out = stdout.lock();
        for event in &events {
            let line = if args.json {
                json_line(event)
            } else {
                text_line(event)
            };
            // A closed pipe (`| head`) ends the command quietly.
            if writeln!(out, "{line}").is_err() {
                return Ok(());
            }
        }
        if out.flush().is_err() || !args.follow {
            return Ok(());
        }
        drop(out);
        if let Some(last) = events.last() {
            query.after_id = Some(last.id);
        } else if query.after_id.is_none() {
            // Nothing matched yet: follow from the newest event, whatever it is.
            query.after_id = Some(newest_id(&conn)?);
        }
        query.limit = None;
        std::thread::sleep(FOLLOW_INTERVAL);
    }
}

/// The file to read: --db, else the config's `event_store`, else the default.
fn database(args: &EventsArgs) -> Result<PathBuf, String> {
    if let Some(db) = &args.db {
        return Ok(db.clone());
    }
    let Some(config) = &args.config else {
        return default_path();
    };
    let config = mcp_hangar::config::load(config).map_err(|e| e.to_string())?;
    let spec = &config.event_store;
    let file = config.path.display();
    if !spec.enabled {
        return Err(format!(
            "{file}: `event_store.enabled` is false, so this hangar records no events; pass \
             --db PATH to read a store anyway"
        ));
    }
    if spec.driver == EventStoreDriver::Memory {
        return Err(format!(
            "{file}: `event_store.driver` is `memory`: the events live only inside the running \
             hangar; use `driver: sqlite` to read them here"
        ));
    }
    spec.file()
}

/// `--since`: a duration back from now, or an RFC 3339 time; ms since the epoch.
fn since(text: &str) -> Result<i64, String> {
    if let Some(back) = parse_duration(text) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return Ok(i64::try_from(now.saturating_sub(back).as_millis()).unwrap_or(i64::MAX));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            format!(
                "--since `{text}` is neither a duration (10m, 2h, 7d) nor an RFC 3339 time \
                 (2026-01-31T12:00:00Z)"
            )
        })
}

fn newest_id(conn: &rusqlite::Connection) -> Result<i64, String> {
    conn.query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get(0))
        .map_err(|e| e.to_string())
}

fn time(at_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(at_ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| at_ms.to_string())
}

/// `{"id":…,"at":"…Z","type":…, …the event's fields}`.
fn json_line(event: &StoredEvent) -> String {
    let mut object = serde_json::Map::new();
    object.insert("id".into(), event.id.into());
    object.insert("at".into(), time(event.at_ms).into());
    object.insert("at_ms".into(), event.at_ms.into());
    object.insert("type".into(), event.kind.clone().into());
    for (key, value) in &event.payload {
        object.insert(key.clone(), value.clone());
    }
    Value::Object(object).to_string()
}

/// `42  2026-01-31T12:00:00.123Z  tool_invocation_completed  math  tool=echo duration_ms=3 …`
fn text_line(event: &StoredEvent) -> String {
    let mut line = format!(
        "{:>6}  {}  {:<26} {}",
        event.id,
        time(event.at_ms),
        event.kind,
        event.provider.as_deref().unwrap_or("-")
    );
    for (key, value) in &event.payload {
        if matches!(key.as_str(), "provider" | "scope" | "member")
            && value.as_str() == event.provider.as_deref()
        {
            continue;
        }
        let shown = match value {
            Value::String(s) if !s.is_empty() && !s.contains(char::is_whitespace) => s.clone(),
            other => other.to_string(),
        };
        line.push_str(&format!("  {key}={shown}"));
    }
    line
}
