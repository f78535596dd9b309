use std::collections::hash_map;
use std::hash::{DefaultHasher, Hash, Hasher};
#[cfg(test)]
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

// Looked up on every call: a fast hash (the keys are config ids and tool names).
use foldhash::HashMap;
use serde_json::{Map, Value};

use super::error::{ValidationError, Violation};

/// How many violations one error lists; the rest are counted, not described.
const MAX_VIOLATIONS: usize = 20;
/// Longest violation message kept as the validator wrote it. Messages quote the offending value,
/// which can be a megabyte of string; past this length the value is left out of the message.
const MAX_MESSAGE_BYTES: usize = 240;

/// Compiled input schemas, one per (provider, tool), shared by all concurrent calls.
///
/// An entry is keyed by provider and tool and remembers the schema it was built from: a provider
/// that changes a tool's schema at runtime gets it recompiled on the next call, and the old
/// compiled form is replaced rather than kept alongside.
///
/// Schemas are taken as `Arc`s (the form rmcp's `Tool::input_schema` has) so that the usual call,
/// with the same `Arc` as last time, is recognised by pointer without hashing the schema: hashing
/// a 10-property schema costs about 1 µs, four times what validating ~1 KB of arguments costs.
/// An equal schema in a new allocation (a refreshed tool list) is recognised by a content hash
/// and is not recompiled.
///
/// The lock is held only to look up or insert an entry, never while hashing, compiling or
/// validating, so a slow compile of one tool's schema does not stall calls to other tools.
pub struct SchemaCache {
    entries: RwLock<HashMap<String, HashMap<String, Entry>>>,
    #[cfg(test)]
    counters: TestCounters,
}

type JsonObject = Map<String, Value>;

struct Entry {
    /// Held so that its address cannot be reused by another schema while the entry exists.
    schema: Arc<JsonObject>,
    fingerprint: u64,
    /// `None` when the schema did not compile: calls with it are forwarded unchecked.
    validator: Option<Arc<jsonschema::Validator>>,
}

/// What the cache knows of a tool, read under the lock and acted on after it is released.
struct Known {
    same_allocation: bool,
    fingerprint: u64,
    validator: Option<Arc<jsonschema::Validator>>,
}

impl Default for SchemaCache {
    fn default() -> Self {
        Self::new()
    }
}

impl SchemaCache {
    pub fn new() -> Self {
        Self {
            entries: RwLock::new(HashMap::default()),
            #[cfg(test)]
            counters: TestCounters::default(),
        }
    }

    /// Checks `arguments` against the tool's `inputSchema`, compiling the schema on first use.
    ///
    /// The result is `Ok(())` when the arguments are valid, and also when the schema itself is
    /// unusable: a provider's broken schema must not block its calls. In that case the second
    /// value is `Some(warning)` the first time this version of the schema is seen, and `None` on
    /// every later call, so the caller can log it as is.
    ///
    /// Run [`check_limits`](super::check_limits) first: validation recurses over the arguments.
    pub fn validate(
        &self,
        provider: &str,
        tool: &str,
        schema: &Arc<JsonObject>,
        arguments: &Value,
    ) -> (Result<(), ValidationError>, Option<String>) {
        let (validator, warning) = self.validator_for(provider, tool, schema);
        let result = match validator {
            Some(validator) => check(&validator, provider, tool, arguments),
            None => Ok(()),
        };
        (result, warning)
    }

    /// Number of cached schemas, compiled or unusable.
    pub fn len(&self) -> usize {
        self.read().values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every schema of `provider`, for when it is deregistered; without this the entries of
    /// providers that discovery removed would stay until the process ends.
    pub fn remove_provider(&self, provider: &str) {
        self.write().remove(provider);
    }

    fn validator_for(
        &self,
        provider: &str,
        tool: &str,
        schema: &Arc<JsonObject>,
    ) -> (Option<Arc<jsonschema::Validator>>, Option<String>) {
        let known = self.lookup(provider, tool, schema);
        if let Some(known) = &known
            && known.same_allocation
        {
            return (known.validator.clone(), None);
        }
        let fingerprint = self.fingerprint(schema);
        match known {
            Some(known) if known.fingerprint == fingerprint => {
                self.adopt(provider, tool, schema, fingerprint);
                (known.validator, None)
            }
            _ => self.compile_and_insert(provider, tool, schema, fingerprint),
        }
    }

    fn lookup(&self, provider: &str, tool: &str, schema: &Arc<JsonObject>) -> Option<Known> {
        let entries = self.read();
        let entry = entries.get(provider)?.get(tool)?;
        Some(Known {
            same_allocation: Arc::ptr_eq(&entry.schema, schema),
            fingerprint: entry.fingerprint,
            validator: entry.validator.clone(),
        })
    }

    /// Points the entry at `schema`, equal in content to the one it was compiled from, so that the
    /// next call passing this `Arc` is recognised without hashing.
    fn adopt(&self, provider: &str, tool: &str, schema: &Arc<JsonObject>, fingerprint: u64) {
        let mut entries = self.write();
        if let Some(entry) = entries
            .get_mut(provider)
            .and_then(|tools| tools.get_mut(tool))
            && entry.fingerprint == fingerprint
        {
            entry.schema = Arc::clone(schema);
        }
    }

    fn compile_and_insert(
        &self,
        provider: &str,
        tool: &str,
        schema: &Arc<JsonObject>,
        fingerprint: u64,
    ) -> (Option<Arc<jsonschema::Validator>>, Option<String>) {
        // Compiled outside the lock. Two calls racing on a new schema may both compile it; the
        // first to insert wins and the other uses its entry, so the warning is still given once.
        let compiled = self.compile(schema);
        let mut entries = self.write();
        let slot = entries
            .entry(provider.to_owned())
            .or_default()
            .entry(tool.to_owned());
        match slot {
            hash_map::Entry::Occupied(mut existing)
                if existing.get().fingerprint == fingerprint =>
            {
                existing.get_mut().schema = Arc::clone(schema);
                (existing.get().validator.clone(), None)
            }
            slot => {
                let (validator, warning) = match compiled {
                    Ok(validator) => (Some(Arc::new(validator)), None),
                    Err(error) => (None, Some(unusable_schema_warning(provider, tool, &error))),
                };
                slot.insert_entry(Entry {
                    schema: Arc::clone(schema),
                    fingerprint,
                    validator: validator.clone(),
                });
                (validator, warning)
            }
        }
    }

    fn compile(
        &self,
        schema: &JsonObject,
    ) -> Result<jsonschema::Validator, jsonschema::ValidationError<'static>> {
        #[cfg(test)]
        self.counters.compiles.fetch_add(1, Ordering::Relaxed);
        // The draft comes from `$schema` (2020-12 when absent). `offline()` refuses every `$ref`
        // that is not inside the schema itself: the crate's HTTP and file retrievers are also left
        // out at build time, but this keeps the refusal even if another crate in the build turns
        // those features back on. A schema from a provider must never make the hangar fetch a URL
        // or read a local file.
        jsonschema::options()
            .offline()
            .build(&Value::Object(schema.clone()))
    }

    fn fingerprint(&self, schema: &JsonObject) -> u64 {
        #[cfg(test)]
        self.counters.fingerprints.fetch_add(1, Ordering::Relaxed);
        fingerprint(schema)
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, HashMap<String, Entry>>> {
        // Every write is a single insert, replace or remove, so a panic elsewhere cannot leave the
        // map half-updated; carrying on after poisoning is safe.
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, HashMap<String, Entry>>> {
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[derive(Default)]
struct TestCounters {
    compiles: std::sync::atomic::AtomicUsize,
    fingerprints: std::sync::atomic::AtomicUsize,
}

/// A hash of the schema's content, to notice a changed schema without keeping a copy to compare.
/// A collision would only make the hangar keep validating with the provider's previous schema.
fn fingerprint(schema: &JsonObject) -> u64 {
    let mut hasher = DefaultHasher::new();
    schema.hash(&mut hasher);
    hasher.finish()
}

fn check(
    validator: &jsonschema::Validator,
    provider: &str,
    tool: &str,
    arguments: &Value,
) -> Result<(), ValidationError> {
    // The common case is valid arguments; `is_valid` skips building error reports for it.
    if validator.is_valid(arguments) {
        return Ok(());
    }
    let mut errors = validator.iter_errors(arguments);
    let violations: Vec<Violation> = errors
        .by_ref()
        .take(MAX_VIOLATIONS)
        .map(|error| Violation {
            pointer: error.instance_path().as_str().to_owned(),
            message: message_of(&error),
        })
        .collect();
    let more = errors.count();
    Err(ValidationError::Schema {
        provider: provider.to_owned(),
        tool: tool.to_owned(),
        violations,
        more,
    })
}

/// The validator's message, without the quoted value when that would make it long.
fn message_of(error: &jsonschema::ValidationError<'_>) -> String {
    let full = error.to_string();
    if full.len() <= MAX_MESSAGE_BYTES {
        return full;
    }
    let mut masked = error.masked().to_string();
    if masked.len() > MAX_MESSAGE_BYTES {
        // Long even without the value (a long enum list from the schema): cut it.
        let mut end = MAX_MESSAGE_BYTES;
        while !masked.is_char_boundary(end) {
            end -= 1;
        }
        masked.truncate(end);
        masked.push('…');
    }
    masked
}

fn unusable_schema_warning(
    provider: &str,
    tool: &str,
    error: &jsonschema::ValidationError<'_>,
) -> String {
    // For a schema that breaks its meta-schema, the instance path points into the schema.
    let location = match error.instance_path().as_str() {
        "" => String::new(),
        pointer => format!(" at {pointer}"),
    };
    format!(
        "the inputSchema of tool `{tool}` of provider `{provider}` cannot be used{location}: \
         {error}; the hangar forwards its calls without checking their arguments until the \
         provider publishes a corrected schema"
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Arc<JsonObject> {
        match value {
            Value::Object(map) => Arc::new(map),
            other => panic!("test fixture is not an object: {other}"),
        }
    }

    fn compiles(cache: &SchemaCache) -> usize {
        cache.counters.compiles.load(Ordering::Relaxed)
    }

    fn fingerprints(cache: &SchemaCache) -> usize {
        cache.counters.fingerprints.load(Ordering::Relaxed)
    }

    fn add_schema() -> Arc<JsonObject> {
        object(json!({
            "type": "object",
            "properties": {
                "a": { "type": "number" },
                "b": { "type": "number" },
                "op": { "enum": ["add", "sub"] },
            },
            "required": ["a", "b"],
        }))
    }

    fn violations(result: Result<(), ValidationError>) -> Vec<(String, String)> {
        match result {
            Err(ValidationError::Schema { violations, .. }) => violations
                .into_iter()
                .map(|v| (v.pointer, v.message))
                .collect(),
            other => panic!("expected a schema error, got {other:?}"),
        }
    }

    #[test]
    fn valid_arguments_pass() {
        let cache = SchemaCache::new();
        let (result, warning) =
            cache.validate("math", "add", &add_schema(), &json!({ "a": 1, "b": 2.5 }));
        assert_eq!(result, Ok(()));
        assert_eq!(warning, None);
    }

    #[test]
    fn every_violation_is_listed_with_its_pointer() {
        let cache = SchemaCache::new();
        let (result, _) = cache.validate(
            "math",
            "add",
            &add_schema(),
            &json!({ "a": "x", "op": "mul" }),
        );
        let mut found = violations(result.clone());
        found.sort();
        assert_eq!(
            found,
            vec![
                ("".into(), r#""b" is a required property"#.into()),
                ("/a".into(), r#""x" is not of type "number""#.into()),
                ("/op".into(), r#""mul" is not one of "add" or "sub""#.into()),
            ]
        );
        let message = result.unwrap_err().to_string();
        assert!(
            message.starts_with("invalid arguments for tool `add` of provider `math`: "),
            "{message}"
        );
        assert!(
            message.contains(r#"/a: "x" is not of type "number""#),
            "{message}"
        );
        assert!(
            message.contains(r#"/: "b" is a required property"#),
            "{message}"
        );
    }

    #[test]
    fn violations_past_the_cap_are_counted_not_listed() {
        let cache = SchemaCache::new();
        let schema = object(json!({
            "type": "object",
            "properties": { "xs": { "type": "array", "items": { "type": "string" } } },
        }));
        let (result, _) = cache.validate("p", "t", &schema, &json!({ "xs": vec![0; 25] }));
        let Err(ValidationError::Schema {
            violations, more, ..
        }) = result
        else {
            panic!("expected a schema error, got {result:?}");
        };
        assert_eq!(violations.len(), MAX_VIOLATIONS);
        assert_eq!(violations[3].pointer, "/xs/3");
        assert_eq!(more, 5);
    }

    #[test]
    fn long_offending_values_are_left_out_of_the_message() {
        let cache = SchemaCache::new();
        let (result, _) = cache.validate(
            "math",
            "add",
            &add_schema(),
            &json!({ "a": "x".repeat(10_000), "b": 1 }),
        );
        let found = violations(result);
        assert_eq!(
            found,
            vec![("/a".into(), r#"value is not of type "number""#.into())]
        );
    }

    #[test]
    fn draft_07_schema_is_enforced_with_draft_07_keywords() {
        // `dependencies` is the draft-07 spelling (2019-09 split it into `dependentRequired` and
        // `dependentSchemas`). The crate honours it under later drafts too, so the proof that
        // `$schema` selects the draft is the `items` test below; this one shows draft-07 works.
        let schema = object(json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": { "card": { "type": "string" }, "billing": { "type": "string" } },
            "dependencies": { "card": ["billing"] },
        }));
        let cache = SchemaCache::new();
        let (ok, warning) = cache.validate("pay", "charge", &schema, &json!({ "billing": "x" }));
        assert_eq!((ok, warning), (Ok(()), None));
        let (result, _) = cache.validate("pay", "charge", &schema, &json!({ "card": "4242" }));
        let found = violations(result);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "");
        assert!(found[0].1.contains("billing"), "{found:?}");
    }

    #[test]
    fn draft_07_items_array_is_positional_but_2020_12_ignores_it() {
        // The same keyword means different things per draft: proof that `$schema` is honoured.
        let tuple = json!({ "type": "array", "items": [{ "type": "string" }] });
        let draft7 = object(json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "properties": { "t": tuple },
        }));
        let cache = SchemaCache::new();
        let arguments = json!({ "t": [1] });
        let found = violations(cache.validate("p", "seven", &draft7, &arguments).0);
        assert_eq!(found[0].0, "/t/0");
        // Under 2020-12 the array form of `items` is not valid schema at all.
        let draft2020 = object(json!({ "properties": { "t": tuple } }));
        let (result, warning) = cache.validate("p", "twenty", &draft2020, &arguments);
        assert_eq!(result, Ok(()));
        assert!(warning.is_some());
    }

    #[test]
    fn schema_without_dollar_schema_is_2020_12_and_enforces_prefix_items() {
        let schema = object(json!({
            "type": "object",
            "properties": {
                "point": {
                    "type": "array",
                    "prefixItems": [{ "type": "number" }, { "type": "number" }],
                    "items": false,
                },
            },
        }));
        let cache = SchemaCache::new();
        let (ok, _) = cache.validate("geo", "plot", &schema, &json!({ "point": [1, 2] }));
        assert_eq!(ok, Ok(()));
        let (result, _) = cache.validate("geo", "plot", &schema, &json!({ "point": ["x", 2, 3] }));
        // The first item has the wrong type; the third is one more than `items: false` allows.
        let mut pointers: Vec<String> = violations(result).into_iter().map(|v| v.0).collect();
        pointers.sort();
        assert_eq!(pointers, ["/point/0", "/point/2"]);
    }

    #[test]
    fn schema_is_compiled_once_and_reused() {
        let cache = SchemaCache::new();
        let schema = add_schema();
        for _ in 0..3 {
            let (result, _) = cache.validate("math", "add", &schema, &json!({ "a": 1, "b": 2 }));
            assert_eq!(result, Ok(()));
        }
        assert_eq!(compiles(&cache), 1);
        // Only the first call hashed the schema; the others matched the same `Arc`.
        assert_eq!(fingerprints(&cache), 1);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn equal_schema_in_a_new_allocation_is_not_recompiled() {
        let cache = SchemaCache::new();
        let arguments = json!({ "a": 1, "b": 2 });
        assert_eq!(
            cache.validate("math", "add", &add_schema(), &arguments).0,
            Ok(())
        );
        let refreshed = add_schema();
        assert_eq!(
            cache.validate("math", "add", &refreshed, &arguments).0,
            Ok(())
        );
        assert_eq!(compiles(&cache), 1);
        assert_eq!(fingerprints(&cache), 2);
        // The entry now points at the refreshed `Arc`, so it is matched without hashing.
        assert_eq!(
            cache.validate("math", "add", &refreshed, &arguments).0,
            Ok(())
        );
        assert_eq!(fingerprints(&cache), 2);
    }

    #[test]
    fn changed_schema_for_the_same_tool_is_recompiled_and_replaces_the_old_one() {
        let cache = SchemaCache::new();
        let arguments = json!({ "a": 1, "b": 2 });
        assert_eq!(
            cache.validate("math", "add", &add_schema(), &arguments).0,
            Ok(())
        );

        let mut stricter = JsonObject::clone(&add_schema());
        stricter.insert("required".into(), json!(["a", "b", "op"]));
        let stricter = Arc::new(stricter);
        let found = violations(cache.validate("math", "add", &stricter, &arguments).0);
        assert_eq!(
            found,
            vec![("".into(), r#""op" is a required property"#.into())]
        );
        assert_eq!(compiles(&cache), 2);
        assert_eq!(cache.len(), 1);

        // Same schema again: no further compile.
        let _ = cache.validate("math", "add", &stricter, &arguments);
        assert_eq!(compiles(&cache), 2);
    }

    #[test]
    fn same_tool_name_on_two_providers_keeps_two_schemas() {
        let cache = SchemaCache::new();
        let other = object(json!({ "type": "object", "required": ["z"] }));
        assert_eq!(
            cache
                .validate("p1", "t", &add_schema(), &json!({ "a": 1, "b": 2 }))
                .0,
            Ok(())
        );
        assert!(
            cache
                .validate("p2", "t", &other, &json!({ "a": 1, "b": 2 }))
                .0
                .is_err()
        );
        assert_eq!(cache.len(), 2);
        cache.remove_provider("p1");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn unusable_schema_skips_validation_and_warns_exactly_once() {
        let cache = SchemaCache::new();
        let broken =
            object(json!({ "type": "object", "properties": { "a": { "type": "numbr" } } }));
        let (result, warning) = cache.validate("math", "add", &broken, &json!({ "a": "x" }));
        assert_eq!(result, Ok(()));
        let warning = warning.expect("first call warns");
        assert!(
            warning.contains("tool `add` of provider `math`"),
            "{warning}"
        );
        assert!(warning.contains("/properties/a/type"), "{warning}");

        for _ in 0..3 {
            let (result, warning) = cache.validate("math", "add", &broken, &json!({ "a": "x" }));
            assert_eq!((result, warning), (Ok(()), None));
        }
        assert_eq!(compiles(&cache), 1);

        // A fixed schema is compiled and enforced again.
        let (result, warning) = cache.validate("math", "add", &add_schema(), &json!({ "a": "x" }));
        assert!(result.is_err());
        assert_eq!(warning, None);
    }

    #[test]
    fn remote_ref_is_not_fetched_and_the_schema_is_reported_unusable() {
        // 192.0.2.0/24 is reserved for documentation: were a fetch attempted, it could only hang
        // or fail. The deadline below proves none is attempted.
        let schemas = [
            json!({ "properties": { "a": { "$ref": "http://192.0.2.1/schema.json" } } }),
            json!({ "$ref": "https://192.0.2.1/args.json#/definitions/x" }),
            json!({ "$schema": "http://192.0.2.1/custom-meta", "type": "object" }),
            json!({ "$ref": "file:///etc/passwd" }),
        ];
        let cache = SchemaCache::new();
        let started = Instant::now();
        for (i, schema) in schemas.into_iter().enumerate() {
            let (result, warning) =
                cache.validate("web", &format!("t{i}"), &object(schema), &json!({ "a": 1 }));
            assert_eq!(result, Ok(()));
            let warning = warning.expect("an unresolvable reference makes the schema unusable");
            assert!(warning.contains("provider `web`"), "{warning}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn local_refs_inside_the_schema_still_resolve() {
        let schema = object(json!({
            "$defs": { "n": { "type": "number" } },
            "properties": { "a": { "$ref": "#/$defs/n" } },
        }));
        let cache = SchemaCache::new();
        let (ok, warning) = cache.validate("p", "t", &schema, &json!({ "a": 1 }));
        assert_eq!((ok, warning), (Ok(()), None));
        let found = violations(cache.validate("p", "t", &schema, &json!({ "a": "x" })).0);
        assert_eq!(found[0].0, "/a");
    }

    #[test]
    fn concurrent_first_calls_warn_once_in_total() {
        let cache = Arc::new(SchemaCache::new());
        let broken = object(json!({ "type": 5 }));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (cache, broken) = (Arc::clone(&cache), Arc::clone(&broken));
                std::thread::spawn(move || cache.validate("p", "t", &broken, &json!({})).1)
            })
            .collect();
        let warnings = handles
            .into_iter()
            .filter_map(|handle| handle.join().ok().flatten())
            .count();
        assert_eq!(warnings, 1);
        assert_eq!(cache.len(), 1);
    }
}
