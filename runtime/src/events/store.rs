//! The audit trail: every event of the bus, appended to a SQLite database off the call path.
//!
//! The store is one more subscriber of the bus, and its subscription *is* its bounded queue:
//! a dedicated writer thread takes what has accumulated on its two receivers (lifecycle and
//! calls) every `flush_interval`, or at once when asked to flush, and writes it in batches of
//! up to `batch_size` events, one transaction each. Nothing wakes the writer per event, so a
//! call pays for its events only what any subscriber costs: building the envelope and putting
//! it in the channel. When the writer falls behind (the disk is slow, a burst outruns the
//! channel's capacity), the channel drops the oldest events and tells the receiver how many;
//! the store counts them as dropped and, once it has caught up, writes one `events_dropped`
//! event with the count. A call never waits for the store.
//!
//! Durability: WAL with `synchronous=NORMAL` and one transaction per batch. A process killed
//! with SIGKILL loses what it had not yet committed — the events of at most the last
//! `flush_interval` — and the file stays consistent: SQLite replays or discards the WAL on the
//! next open. Ids come from `AUTOINCREMENT`, so numbering continues after a restart and an id
//! is never reused, even after retention deletes the newest rows. Rows are never updated (a
//! trigger refuses it); retention deletes the old ones at start and every `prune_interval`.
//!
//! Deliberately absent: argument values. A call's arguments are written as their SHA-256
//! (`arguments_sha256`) unless `record_arguments` is set, and then with the value under every
//! secret-looking key (the rule `check` uses to redact) replaced by `***`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, params_from_iter};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast::{self, error::TryRecvError};

use super::{Envelope, Event, EventBus};
use crate::config::event_store::{EventStoreDriver, EventStoreSpec};
use crate::config::{REDACTED, key_looks_secret};

/// Events per transaction, at most.
pub const BATCH_SIZE: usize = 256;
/// How often the writer takes what has accumulated.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// How often old events are deleted, at most (shorter for a short retention).
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);
/// How long the writer waits for another process (a second hangar, `mcp-hangar events`) that
/// holds the database's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The schema this build writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms          INTEGER NOT NULL,
    type           TEXT NOT NULL,
    provider       TEXT,
    correlation_id TEXT,
    payload        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_provider ON events (provider, id);
CREATE INDEX IF NOT EXISTS events_by_type ON events (type, id);
CREATE INDEX IF NOT EXISTS events_by_time ON events (at_ms);
CREATE TRIGGER IF NOT EXISTS events_are_append_only BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event store is append-only');
END;
";

/// Where the events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    /// An in-memory database: the same store, gone when the process ends.
    Memory,
}

/// How a store is opened and how it writes.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub location: Location,
    pub retention: Duration,
    pub record_arguments: bool,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub prune_interval: Duration,
}

impl StoreOptions {
    /// The defaults for `location`: 30 days, digests only, batches of 256 every 100 ms.
    pub fn new(location: Location) -> Self {
        Self {
            location,
            retention: crate::config::event_store::DEFAULT_RETENTION,
            record_arguments: false,
            batch_size: BATCH_SIZE,
            flush_interval: FLUSH_INTERVAL,
            prune_interval: PRUNE_INTERVAL,
        }
    }

    /// The options `event_store:` asks for; `Ok(None)` when it is disabled.
    ///
    /// # Errors
    ///
    /// When the default path is needed and there is no data directory.
    pub fn from_spec(spec: &EventStoreSpec) -> Result<Option<Self>, String> {
        if !spec.enabled {
            return Ok(None);
        }
        let location = match spec.driver {
            EventStoreDriver::Memory => Location::Memory,
            EventStoreDriver::Sqlite => Location::File(spec.file()?),
        };
        Ok(Some(Self {
            retention: spec.retention,
            record_arguments: spec.record_arguments,
            prune_interval: PRUNE_INTERVAL.min(spec.retention / 2),
            ..Self::new(location)
        }))
    }
}

/// Totals since the store opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounters {
    /// Events committed to the database (`events_dropped` records included).
    pub written: u64,
    /// Events lost: the store fell behind the bus, or a write failed.
    pub dropped: u64,
    /// Transactions committed.
    pub batches: u64,
}

/// A cheap handle on a store's counters, for a metrics collector that does not own the store.
#[derive(Clone)]
pub struct StoreStats(Arc<Shared>);

impl StoreStats {
    pub fn counters(&self) -> StoreCounters {
        self.0.counters()
    }
}

/// The persisted, append-only event store. Dropping it stops the writer after a last flush.
pub struct EventStore {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    location: Location,
}

struct Shared {
    written: AtomicU64,
    dropped: AtomicU64,
    batches: AtomicU64,
    control: Mutex<Control>,
    wake: Condvar,
}

#[derive(Default)]
struct Control {
    /// Flushes asked for, and the last one the writer finished.
    flush_wanted: u64,
    flush_done: u64,
    stop: bool,
    /// Set by the writer when it has ended.
    ended: bool,
}

impl Shared {
    fn counters(&self) -> StoreCounters {
        StoreCounters {
            written: self.written.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
        }
    }

    fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the event store {what}: {reason}")]
pub struct StoreError {
    what: String,
    reason: String,
}

impl StoreError {
    fn at(location: &Location, reason: impl ToString) -> Self {
        Self {
            what: match location {
                Location::File(path) => path.display().to_string(),
                Location::Memory => "in memory".to_owned(),
            },
            reason: reason.to_string(),
        }
    }
}

impl EventStore {
    /// Opens (or creates) the database, deletes events older than the retention, subscribes to
    /// `bus` and starts the writer thread. Events published before this are not recorded.
    ///
    /// # Errors
    ///
    /// The directory cannot be created, the file cannot be opened or is not an event store of
    /// a schema this build knows.
    pub fn open(options: StoreOptions, bus: &EventBus) -> Result<Self, StoreError> {
        let location = options.location.clone();
        let conn = match &location {
            Location::File(path) => open_file(path),
            Location::Memory => Connection::open_in_memory().map_err(|e| e.to_string()),
        }
        .and_then(|conn| prepare(&conn).map(|()| conn))
        .map_err(|e| StoreError::at(&location, e))?;
        prune(&conn, options.retention).map_err(|e| StoreError::at(&location, e))?;
        let shared = Arc::new(Shared {
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            control: Mutex::new(Control::default()),
            wake: Condvar::new(),
        });
        let writer = Writer {
            conn,
            lifecycle: bus.subscribe(),
            calls: bus.subscribe_calls(),
            shared: shared.clone(),
            options,
            pending_dropped: 0,
            last_failure_logged: None,
        };
        let handle = std::thread::Builder::new()
            .name("event-store".to_owned())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::at(&location, e))?;
        Ok(Self {
            shared,
            writer: Some(handle),
            location,
        })
    }

    /// Where the events go.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Written and dropped totals (for metrics: `dropped` is the events the audit trail lost).
    pub fn counters(&self) -> StoreCounters {
        self.shared.counters()
    }

    /// A handle on the counters that outlives no one and owns nothing but them.
    pub fn stats(&self) -> StoreStats {
        StoreStats(self.shared.clone())
    }

    /// Writes everything published so far and returns once it is committed (or after 10 s;
    /// `false` then, or when the writer has ended).
    pub fn flush(&self) -> bool {
        let mut control = self.shared.control();
        if control.ended {
            return false;
        }
        control.flush_wanted += 1;
        let target = control.flush_wanted;
        self.shared.wake.notify_all();
        let (control, _) = self
            .shared
            .wake
            .wait_timeout_while(control, Duration::from_secs(10), |c| {
                c.flush_done < target && !c.ended
            })
            .unwrap_or_else(|e| e.into_inner());
        control.flush_done >= target
    }

    /// Writes what is left and stops the writer. Blocks until it has (a SQLite write waits at
    /// most its busy timeout), so call it off the async threads.
    pub fn close(mut self) -> StoreCounters {
        self.stop();
        self.counters()
    }

    fn stop(&mut self) {
        self.shared.control().stop = true;
        self.shared.wake.notify_all();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Drop for EventStore {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Opens the store `spec` describes and subscribes it to `bus`. `None` when it is disabled, or
/// when it cannot be opened: that is logged as a warning and the hangar serves without an
/// audit trail — observability listens, it does not decide whether the hangar runs.
pub fn start(spec: &EventStoreSpec, bus: &EventBus) -> Option<EventStore> {
    let options = match StoreOptions::from_spec(spec) {
        Ok(Some(options)) => options,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!("{e}; serving without an event store");
            return None;
        }
    };
    match EventStore::open(options, bus) {
        Ok(store) => {
            match store.location() {
                Location::File(path) => {
                    tracing::info!("recording events in {}", path.display())
                }
                Location::Memory => tracing::info!("recording events in memory"),
            }
            Some(store)
        }
        Err(e) => {
            tracing::warn!(
                "{e}; serving without an event store (fix `event_store.path`, or set `event_store.enabled: false`)"
            );
            None
        }
    }
}

/// Opens the file, creating it and its directory (private to the user: calls are recorded
/// in it) when missing.
fn open_file(path: &Path) -> Result<Connection, String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // Created here rather than by SQLite so that it is 0600 (its -wal and -shm files take the
    // same mode).
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| e.to_string())?;
    Connection::open(path).map_err(|e| e.to_string())
}

/// WAL, `synchronous=NORMAL`, the schema; refuses a database of a newer schema.
fn prepare(conn: &Connection) -> Result<(), String> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| e.to_string())?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|e| format!("not a SQLite database, or not writable: {e}"))?;
    if mode != "wal" && mode != "memory" {
        return Err(format!(
            "the database cannot use write-ahead logging (journal mode `{mode}`)"
        ));
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| e.to_string())?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| e.to_string())?;
    if version > SCHEMA_VERSION {
        return Err(format!(
            "it was written by a newer mcp-hangar (schema {version}; this one knows {SCHEMA_VERSION})"
        ));
    }
    conn.execute_batch(SCHEMA).map_err(|e| e.to_string())?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(|e| e.to_string())
}

/// Deletes the events older than `retention`; how many.
fn prune(conn: &Connection, retention: Duration) -> Result<usize, String> {
    let cutoff = now_ms().saturating_sub(u64::try_from(retention.as_millis()).unwrap_or(u64::MAX));
    conn.execute(
        "DELETE FROM events WHERE at_ms < ?1",
        [i64::try_from(cutoff).unwrap_or(i64::MAX)],
    )
    .map_err(|e| format!("cannot delete old events: {e}"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    lifecycle: broadcast::Receiver<Envelope>,
    calls: broadcast::Receiver<Envelope>,
    shared: Arc<Shared>,
    options: StoreOptions,
    /// Events lost and not yet reported by an `events_dropped` record.
    pending_dropped: u64,
    last_failure_logged: Option<Instant>,
}

impl Writer {
    fn run(mut self) {
        let mut next_prune = Instant::now() + self.options.prune_interval;
        loop {
            let (wanted, stop) = self.wait();
            self.drain();
            if Instant::now() >= next_prune {
                if let Err(e) = prune(&self.conn, self.options.retention) {
                    tracing::warn!("event store: {e}");
                }
                next_prune = Instant::now() + self.options.prune_interval;
            }
            let mut control = self.shared.control();
            control.flush_done = control.flush_done.max(wanted);
            if stop {
                control.ended = true;
            }
            drop(control);
            self.shared.wake.notify_all();
            if stop {
                return;
            }
        }
    }

    /// Sleeps until the flush interval passes, a flush is asked for, or the store stops.
    fn wait(&self) -> (u64, bool) {
        let (control, _) = self
            .shared
            .wake
            .wait_timeout_while(self.shared.control(), self.options.flush_interval, |c| {
                c.flush_wanted == c.flush_done && !c.stop
            })
            .unwrap_or_else(|e| e.into_inner());
        (control.flush_wanted, control.stop)
    }

    /// Writes everything the receivers hold, a batch per transaction.
    fn drain(&mut self) {
        loop {
            let batch = self.take_batch();
            if batch.is_empty() && self.pending_dropped == 0 {
                return;
            }
            let full = batch.len() >= self.options.batch_size;
            if !self.write(&batch, !full) {
                return; // try again at the next interval rather than spin on a failing disk
            }
            if !full {
                return;
            }
        }
    }

    /// Up to `batch_size` events from both receivers, in publication order.
    fn take_batch(&mut self) -> Vec<Envelope> {
        let mut batch = Vec::new();
        let mut open = [true, true];
        while batch.len() < self.options.batch_size && open.iter().any(|o| *o) {
            for (i, rx) in [&mut self.lifecycle, &mut self.calls]
                .into_iter()
                .enumerate()
            {
                if !open[i] || batch.len() >= self.options.batch_size {
                    continue;
                }
                match rx.try_recv() {
                    Ok(envelope) => batch.push(envelope),
                    Err(TryRecvError::Lagged(n)) => {
                        self.shared.dropped.fetch_add(n, Ordering::Relaxed);
                        self.pending_dropped += n;
                    }
                    Err(TryRecvError::Empty | TryRecvError::Closed) => open[i] = false,
                }
            }
        }
        // The two channels are drained side by side; the clock puts them back in order.
        batch.sort_by_key(|e| e.at_ms);
        batch
    }

    /// One transaction: the batch, then, once the writer has caught up (the batch is the last
    /// of this drain), an `events_dropped` record if events were lost.
    fn write(&mut self, batch: &[Envelope], caught_up: bool) -> bool {
        let mut rows: Vec<Row> = batch
            .iter()
            .filter_map(|e| Row::of(e, self.options.record_arguments))
            .collect();
        let reported = if caught_up { self.pending_dropped } else { 0 };
        if reported > 0 {
            rows.extend(Row::of(
                &Envelope {
                    at_ms: now_ms(),
                    event: Event::EventsDropped { count: reported },
                },
                false,
            ));
        }
        match insert(&mut self.conn, &rows) {
            Ok(()) => {
                self.shared
                    .written
                    .fetch_add(rows.len() as u64, Ordering::Relaxed);
                self.shared.batches.fetch_add(1, Ordering::Relaxed);
                if reported > 0 {
                    tracing::warn!(
                        "event store fell behind: {reported} event(s) were not recorded"
                    );
                    self.pending_dropped = 0;
                }
                true
            }
            Err(e) => {
                let lost = batch.len() as u64;
                self.shared.dropped.fetch_add(lost, Ordering::Relaxed);
                self.pending_dropped += lost;
                // A full disk fails every batch: say so once a minute, not ten times a second.
                if self
                    .last_failure_logged
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
                {
                    tracing::warn!("event store: writing {lost} event(s) failed: {e}");
                    self.last_failure_logged = Some(Instant::now());
                }
                false
            }
        }
    }
}

fn insert(conn: &mut Connection, rows: &[Row]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO events (at_ms, type, provider, correlation_id, payload) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for row in rows {
            stmt.execute((
                row.at_ms,
                &row.kind,
                &row.provider,
                &row.correlation_id,
                &row.payload,
            ))?;
        }
    }
    tx.commit()
}

/// One event as a row.
struct Row {
    at_ms: i64,
    kind: String,
    provider: Option<String>,
    correlation_id: Option<String>,
    payload: String,
}

impl Row {
    fn of(envelope: &Envelope, record_arguments: bool) -> Option<Self> {
        let Ok(Value::Object(mut fields)) = serde_json::to_value(&envelope.event) else {
            return None;
        };
        let Some(Value::String(kind)) = fields.remove("type") else {
            return None;
        };
        if let Event::ToolInvocationRequested {
            arguments: Some(arguments),
            ..
        } = &envelope.event
        {
            let text = arguments.0.as_bytes();
            fields.insert(
                "arguments_sha256".to_owned(),
                Value::String(hex(&Sha256::digest(text))),
            );
            if record_arguments {
                let value = serde_json::from_slice(text)
                    .map(redact)
                    .unwrap_or_else(|_| Value::String(REDACTED.to_owned()));
                fields.insert("arguments".to_owned(), value);
            }
        }
        // The subject: a provider, a breaker's scope (provider or group), a group's member,
        // else the group itself (a group made or removed by discovery).
        let provider = ["provider", "scope", "member", "group"]
            .iter()
            .find_map(|key| fields.get(*key).and_then(Value::as_str))
            .map(str::to_owned);
        let correlation_id = fields
            .get("correlation_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Some(Self {
            at_ms: i64::try_from(envelope.at_ms).unwrap_or(i64::MAX),
            kind,
            provider,
            correlation_id,
            payload: Value::Object(fields).to_string(),
        })
    }
}

/// `value` with whatever sits under a secret-looking key replaced by `***`, at any depth.
fn redact(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, v)| {
                    let v = if key_looks_secret(&key) {
                        Value::String(REDACTED.to_owned())
                    } else {
                        redact(v)
                    };
                    (key, v)
                })
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact).collect()),
        other => other,
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

// ---------------------------------------------------------------------------------------------
// Reading (`mcp-hangar events`)
// ---------------------------------------------------------------------------------------------

/// One recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: i64,
    pub at_ms: i64,
    pub kind: String,
    pub provider: Option<String>,
    pub correlation_id: Option<String>,
    /// The event's fields (all but `type`).
    pub payload: Map<String, Value>,
}

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only this provider (or breaker scope, or group member).
    pub provider: Option<String>,
    /// Only these types; an entry ending in `*` is a prefix (`tool_invocation_*`).
    pub types: Vec<String>,
    /// Only events at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only events with a larger id.
    pub after_id: Option<i64>,
    /// The last `limit` matching events (all when `None`).
    pub limit: Option<u64>,
}

/// Opens a store file for reading, without creating it or taking the write lock.
///
/// # Errors
///
/// A missing file, or one that is not an event store.
pub fn open_read_only(path: &Path) -> Result<Connection, String> {
    if !path.exists() {
        return Err(format!(
            "no event store at {} (the hangar creates it when it serves with `event_store` \
             enabled)",
            path.display()
        ));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(conn)
}

/// The events `query` selects, oldest first.
///
/// # Errors
///
/// The database cannot be read (not an event store, locked for longer than the busy timeout).
pub fn query(conn: &Connection, query: &Query) -> Result<Vec<StoredEvent>, String> {
    let mut clauses = Vec::new();
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(provider) = &query.provider {
        clauses.push("provider = ?".to_owned());
        args.push(provider.clone().into());
    }
    if !query.types.is_empty() {
        let mut alternatives = Vec::new();
        for t in &query.types {
            match t.strip_suffix('*') {
                Some(prefix) => {
                    alternatives.push("substr(type, 1, length(?)) = ?".to_owned());
                    args.push(prefix.to_owned().into());
                    args.push(prefix.to_owned().into());
                }
                None => {
                    alternatives.push("type = ?".to_owned());
                    args.push(t.clone().into());
                }
            }
        }
        clauses.push(format!("({})", alternatives.join(" OR ")));
    }
    if let Some(since) = query.since_ms {
        clauses.push("at_ms >= ?".to_owned());
        args.push(since.into());
    }
    if let Some(after) = query.after_id {
        clauses.push("id > ?".to_owned());
        args.push(after.into());
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let columns = "id, at_ms, type, provider, correlation_id, payload";
    let sql = match query.limit {
        Some(limit) => format!(
            "SELECT * FROM (SELECT {columns} FROM events {filter} ORDER BY id DESC LIMIT {limit}) \
             ORDER BY id"
        ),
        None => format!("SELECT {columns} FROM events {filter} ORDER BY id"),
    };
    let mut stmt = conn
        .prepare(&sql)
        .map_err(|e| format!("not an event store, or of another version: {e}"))?;
    let rows = stmt
        .query_map(params_from_iter(args), |row| {
            let payload: String = row.get(5)?;
            Ok(StoredEvent {
                id: row.get(0)?,
                at_ms: row.get(1)?,
                kind: row.get(2)?,
                provider: row.get(3)?,
                correlation_id: row.get(4)?,
                payload: match serde_json::from_str(&payload) {
                    Ok(Value::Object(map)) => map,
                    _ => Map::new(),
                },
            })
        })
        .map_err(|e| e.to_string())?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
