use std::sync::atomic::AtomicUsize;

use super::*;
use crate::events::ArgumentsJson;

/// A scratch directory for one test, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hangar-store-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }

    fn db(&self) -> PathBuf {
        self.0.join("nested/dir/events.db")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Options that never write on their own: the test decides when, with `flush`.
fn manual(path: &Path) -> StoreOptions {
    StoreOptions {
        flush_interval: Duration::from_secs(3600),
        ..StoreOptions::new(Location::File(path.to_path_buf()))
    }
}

fn stopped(provider: &str) -> Event {
    Event::ProviderStopped {
        provider: provider.to_owned(),
        reason: "test".to_owned(),
    }
}

fn requested(provider: &str, arguments: &str) -> Event {
    Event::ToolInvocationRequested {
        provider: provider.to_owned(),
        tool: "echo".to_owned(),
        correlation_id: "c-1".to_owned(),
        arguments: Some(ArgumentsJson(Arc::from(arguments))),
    }
}

fn all(path: &Path) -> Vec<StoredEvent> {
    let conn = open_read_only(path).expect("open for reading");
    query(&conn, &Query::default()).expect("query")
}

#[test]
fn a_flush_writes_every_published_event_in_batches_of_batch_size() {
    let dir = Scratch::new("batches");
    let bus = EventBus::new();
    let store = EventStore::open(
        StoreOptions {
            batch_size: 4,
            ..manual(&dir.db())
        },
        &bus,
    )
    .expect("open");
    for i in 0..10 {
        bus.publish(stopped(&format!("p{i}")));
    }
    assert!(store.flush());
    let counters = store.counters();
    assert_eq!((counters.written, counters.dropped), (10, 0));
    assert_eq!(counters.batches, 3, "10 events in batches of 4");
    let events = all(&dir.db());
    let providers: Vec<_> = events.iter().filter_map(|e| e.provider.clone()).collect();
    let expected: Vec<_> = (0..10).map(|i| format!("p{i}")).collect();
    assert_eq!(providers, expected, "in publication order");
    assert!(events.iter().all(|e| e.kind == "provider_stopped"));
    assert_eq!(events[0].payload["reason"], "test");
}

#[test]
fn events_are_written_within_the_flush_interval_without_being_asked() {
    let dir = Scratch::new("interval");
    let bus = EventBus::new();
    let store = EventStore::open(
        StoreOptions {
            flush_interval: Duration::from_millis(50),
            ..manual(&dir.db())
        },
        &bus,
    )
    .expect("open");
    bus.publish(stopped("p"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.counters().written == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(store.counters().written, 1);
    assert_eq!(all(&dir.db()).len(), 1);
}

#[test]
fn numbering_continues_after_a_reopen_and_after_every_row_is_pruned() {
    let dir = Scratch::new("numbering");
    let bus = EventBus::new();
    let store = EventStore::open(manual(&dir.db()), &bus).expect("open");
    for _ in 0..3 {
        bus.publish(stopped("a"));
    }
    store.close();
    let store = EventStore::open(manual(&dir.db()), &bus).expect("reopen");
    bus.publish(stopped("b"));
    bus.publish(stopped("b"));
    store.close();
    let ids: Vec<i64> = all(&dir.db()).iter().map(|e| e.id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);

    // Retention deletes every row; the next event still gets a new number.
    let conn = Connection::open(dir.db()).expect("open");
    conn.execute("DELETE FROM events", []).expect("delete");
    drop(conn);
    let store = EventStore::open(manual(&dir.db()), &bus).expect("reopen");
    bus.publish(stopped("c"));
    store.close();
    let ids: Vec<i64> = all(&dir.db()).iter().map(|e| e.id).collect();
    assert_eq!(ids, [6]);
}

#[test]
fn retention_deletes_old_events_at_open_and_keeps_recent_ones() {
    let dir = Scratch::new("retention");
    let bus = EventBus::new();
    let store = EventStore::open(manual(&dir.db()), &bus).expect("open");
    bus.publish(stopped("recent"));
    store.close();
    // An event from 40 days ago, as a store left running that long would hold.
    let conn = Connection::open(dir.db()).expect("open");
    let old = now_ms() as i64 - 40 * 86_400_000;
    conn.execute(
        "INSERT INTO events (at_ms, type, provider, payload) VALUES (?1, 'provider_stopped', 'old', '{}')",
        [old],
    )
    .expect("insert");
    drop(conn);
    assert_eq!(all(&dir.db()).len(), 2);

    let store = EventStore::open(manual(&dir.db()), &bus).expect("reopen with 30 days");
    store.close();
    let left: Vec<_> = all(&dir.db())
        .into_iter()
        .filter_map(|e| e.provider)
        .collect();
    assert_eq!(left, ["recent"]);
}

#[test]
fn retention_is_applied_periodically_while_running() {
    let dir = Scratch::new("prune");
    let bus = EventBus::new();
    let store = EventStore::open(
        StoreOptions {
            retention: Duration::from_secs(1),
            prune_interval: Duration::from_millis(100),
            flush_interval: Duration::from_millis(50),
            ..manual(&dir.db())
        },
        &bus,
    )
    .expect("open");
    bus.publish(stopped("p"));
    assert!(store.flush());
    assert_eq!(all(&dir.db()).len(), 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !all(&dir.db()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(all(&dir.db()).is_empty(), "pruned after its second");
}

#[test]
fn a_full_queue_drops_and_counts_and_records_events_dropped_once_caught_up() {
    let dir = Scratch::new("dropped");
    let bus = EventBus::new();
    let store = EventStore::open(manual(&dir.db()), &bus).expect("open");
    // The writer does not run until the flush: the lifecycle channel holds 4096 events, so
    // the 904 oldest are lost, without the publisher ever waiting.
    let started = Instant::now();
    for i in 0..5000 {
        bus.publish(stopped(&format!("p{i}")));
    }
    let publishing = started.elapsed();
    assert!(store.flush());
    let counters = store.counters();
    assert_eq!(counters.dropped, 904);
    assert_eq!(
        counters.written,
        4096 + 1,
        "the events kept, and one events_dropped"
    );
    let events = all(&dir.db());
    let last = events.last().expect("events");
    assert_eq!(last.kind, "events_dropped");
    assert_eq!(last.payload["count"], 904);
    assert_eq!(
        events[0].provider.as_deref(),
        Some("p904"),
        "the oldest went"
    );
    assert!(
        publishing < Duration::from_secs(2),
        "publishing never waits on the store ({publishing:?})"
    );

    // Caught up: the next flush reports nothing more.
    bus.publish(stopped("after"));
    assert!(store.flush());
    assert_eq!(store.counters().dropped, 904);
    assert_eq!(
        all(&dir.db()).last().map(|e| e.kind.clone()).as_deref(),
        Some("provider_stopped")
    );
}

#[test]
fn calls_are_recorded_with_the_digest_of_their_arguments_and_not_their_values() {
    let dir = Scratch::new("digest");
    let bus = EventBus::new();
    let store = EventStore::open(manual(&dir.db()), &bus).expect("open");
    let arguments = r#"{"message":"hunter2"}"#;
    bus.publish(requested("math", arguments));
    store.close();
    let events = all(&dir.db());
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.kind, "tool_invocation_requested");
    assert_eq!(e.correlation_id.as_deref(), Some("c-1"));
    assert_eq!(
        e.payload["arguments_sha256"],
        hex(&Sha256::digest(arguments.as_bytes()))
    );
    assert!(!e.payload.contains_key("arguments"));
    let raw: String = Connection::open(dir.db())
        .and_then(|c| c.query_row("SELECT group_concat(payload) FROM events", [], |r| r.get(0)))
        .expect("payloads");
    assert!(!raw.contains("hunter2"), "{raw}");
}

#[test]
fn recorded_arguments_have_secret_looking_keys_redacted() {
    let dir = Scratch::new("record");
    let bus = EventBus::new();
    let store = EventStore::open(
        StoreOptions {
            record_arguments: true,
            ..manual(&dir.db())
        },
        &bus,
    )
    .expect("open");
    bus.publish(requested(
        "math",
        r#"{"query":"weather","account":{"api_key":"sk-live-1","user":"ann"},"auth":{"a":1},"items":[{"password":"pw"}]}"#,
    ));
    store.close();
    let e = &all(&dir.db())[0];
    assert_eq!(
        e.payload["arguments"],
        serde_json::json!({"query": "weather", "account": {"api_key": "***", "user": "ann"}, "auth": "***", "items": [{"password": "***"}]})
    );
    assert!(e.payload.contains_key("arguments_sha256"));
}

#[test]
fn the_memory_driver_records_without_a_file() {
    let bus = EventBus::new();
    let store = EventStore::open(StoreOptions::new(Location::Memory), &bus).expect("open");
    bus.publish(stopped("p"));
    assert!(store.flush());
    assert_eq!(store.counters().written, 1);
}

#[test]
fn a_path_that_cannot_be_created_is_a_clear_error() {
    let dir = Scratch::new("bad");
    let blocker = dir.0.join("file");
    std::fs::write(&blocker, "not a directory").expect("write");
    let bus = EventBus::new();
    let Err(e) = EventStore::open(manual(&blocker.join("events.db")), &bus) else {
        panic!("a path under a file must not open");
    };
    let message = e.to_string();
    assert!(message.contains("cannot open the event store"), "{message}");
    assert!(
        message.contains(&blocker.display().to_string()),
        "{message}"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let dir = Scratch::new("garbage");
    std::fs::create_dir_all(dir.db().parent().expect("parent")).expect("dir");
    std::fs::write(dir.db(), vec![b'x'; 8192]).expect("write");
    let bus = EventBus::new();
    let Err(e) = EventStore::open(manual(&dir.db()), &bus) else {
        panic!("garbage must not open");
    };
    assert!(e.to_string().contains("not a SQLite database"), "{e}");
    assert_eq!(std::fs::read(dir.db()).expect("read").len(), 8192);
}

#[test]
fn rows_are_never_updated() {
    let dir = Scratch::new("append");
    let bus = EventBus::new();
    let store = EventStore::open(manual(&dir.db()), &bus).expect("open");
    bus.publish(stopped("p"));
    store.close();
    let conn = Connection::open(dir.db()).expect("open");
    let e = conn
        .execute("UPDATE events SET provider = 'q'", [])
        .expect_err("update must fail");
    assert!(e.to_string().contains("append-only"), "{e}");
}

#[test]
fn queries_filter_by_provider_type_prefix_time_and_id_and_take_the_last_n() {
    let dir = Scratch::new("query");
    let bus = EventBus::new();
    let store = EventStore::open(manual(&dir.db()), &bus).expect("open");
    bus.publish(stopped("a"));
    bus.publish(requested("a", "{}"));
    bus.publish(stopped("b"));
    bus.publish(Event::HealthChecked {
        provider: "a".to_owned(),
        ok: true,
    });
    store.close();
    let conn = open_read_only(&dir.db()).expect("open");
    let ids = |q: Query| -> Vec<i64> {
        query(&conn, &q)
            .expect("query")
            .iter()
            .map(|e| e.id)
            .collect()
    };
    // Lifecycle events are ordered among themselves; the call event sorts in by time.
    let a = ids(Query {
        provider: Some("a".into()),
        ..Query::default()
    });
    assert_eq!(a.len(), 3);
    let typed = query(
        &conn,
        &Query {
            types: vec!["provider_*".into()],
            ..Query::default()
        },
    )
    .expect("query");
    assert!(typed.iter().all(|e| e.kind == "provider_stopped") && typed.len() == 2);
    let last_two = ids(Query {
        limit: Some(2),
        ..Query::default()
    });
    assert_eq!(last_two, [3, 4]);
    assert_eq!(
        ids(Query {
            after_id: Some(3),
            ..Query::default()
        }),
        [4]
    );
    assert!(
        ids(Query {
            since_ms: Some(now_ms() as i64 + 60_000),
            ..Query::default()
        })
        .is_empty()
    );
}
