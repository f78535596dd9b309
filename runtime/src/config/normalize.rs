//! The normalised config: every key with its effective value, secrets as `***`, providers and
//! plugins in file order and keys in one fixed order. It is written in the 2.x format with the
//! same key names the loader reads, so (secrets aside) it loads back to the same config — the
//! tests hold it to that. Plugin paths are written resolved (absolute), so the output loads
//! back the same from any directory. Keys that load but are not acted on (a group's
//! `idle_ttl_s`, the `tools:` approval keys, …) appear only when written, so the output of a
//! file that loads without warnings loads back without warnings.

use std::time::Duration;

use yaml_serde::{Mapping, Value};

use super::Config;
use super::secret::{MaybeSecret, REDACTED};
use super::spec::{
    ContainerSpec, DEFAULT_APPROVAL_TIMEOUT, GroupMember, GroupSpec, Limits, MemberDefinition,
    PluginSpec, ProviderMode, ProviderSpec, RateLimitSpec, RemoteAuth, RemoteSpec, ToolFilter,
    ToolSpec,
};

const HEADER: &str = "# Normalised by mcp-hangar: every key with its effective value; secrets \
                      are shown as \"***\".\n";

/// A small builder so each block below reads as the YAML it produces.
struct Block(Mapping);

impl Block {
    fn new() -> Self {
        Self(Mapping::new())
    }

    fn put(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        put(&mut self.0, key, value);
        self
    }

    fn done(&mut self) -> Value {
        Value::Mapping(std::mem::take(&mut self.0))
    }
}

/// Sets `key` in a normalised block (the sections in other files build theirs with it).
pub(super) fn put(map: &mut Mapping, key: &str, value: impl Into<Value>) {
    map.insert(Value::from(key), value.into());
}

/// A value that went through `${VAR}` interpolation: `***` when secret, otherwise with `$`
/// written as `$$`, so loading the output again yields the same text instead of interpolating
/// it a second time.
fn text(value: &MaybeSecret) -> Value {
    if value.is_secret() {
        Value::from(REDACTED)
    } else {
        Value::from(escape_dollars(value.expose()))
    }
}

fn escape_dollars(text: &str) -> String {
    text.replace('$', "$$")
}

fn opt_text(value: Option<&MaybeSecret>) -> Value {
    value.map_or(Value::Null, text)
}

fn opt_string(value: Option<&str>) -> Value {
    value.map_or(Value::Null, Value::from)
}

fn list(values: &[MaybeSecret]) -> Value {
    Value::Sequence(values.iter().map(text).collect())
}

fn strings(values: &[String]) -> Value {
    Value::Sequence(values.iter().map(|v| Value::from(v.as_str())).collect())
}

fn text_map<'a>(entries: impl Iterator<Item = (&'a String, &'a MaybeSecret)>) -> Value {
    let mut map = Mapping::new();
    for (key, value) in entries {
        map.insert(Value::from(key.as_str()), text(value));
    }
    Value::Mapping(map)
}

/// Whole seconds as an integer, fractions as a float.
fn seconds(duration: Duration) -> Value {
    if duration.subsec_nanos() == 0 {
        Value::from(duration.as_secs())
    } else {
        Value::from(duration.as_secs_f64())
    }
}

/// A block kept verbatim (not interpolated on load).
fn json(value: &serde_json::Value) -> Value {
    json_with(value, &|s| Value::from(s))
}

fn json_object(map: &serde_json::Map<String, serde_json::Value>) -> Value {
    json_object_with(map, &|s| Value::from(s))
}

/// A block whose strings are interpolated on load: `$` is written `$$`, like `text`.
fn interpolated_json(value: &serde_json::Value) -> Value {
    json_with(value, &|s| Value::from(escape_dollars(s)))
}

fn json_with(value: &serde_json::Value, string: &dyn Fn(&str) -> Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Value::from(u),
            (None, Some(i), _) => Value::from(i),
            (None, None, Some(f)) => Value::from(f),
            (None, None, None) => Value::Null,
        },
        serde_json::Value::String(s) => string(s),
        serde_json::Value::Array(items) => {
            Value::Sequence(items.iter().map(|item| json_with(item, string)).collect())
        }
        serde_json::Value::Object(map) => json_object_with(map, string),
    }
}

fn json_object_with(
    map: &serde_json::Map<String, serde_json::Value>,
    string: &dyn Fn(&str) -> Value,
) -> Value {
    let mut out = Mapping::new();
    for (key, value) in map {
        out.insert(Value::from(key.as_str()), json_with(value, string));
    }
    Value::Mapping(out)
}

fn tools(spec: &ProviderSpec) -> Value {
    match &spec.tool_filter {
        Some(filter) => tool_filter(filter),
        None => Value::Sequence(spec.tools.iter().map(tool).collect()),
    }
}

fn tool(tool: &ToolSpec) -> Value {
    Block::new()
        .put("name", tool.name.as_str())
        .put("description", opt_string(tool.description.as_deref()))
        .put("inputSchema", json_object(&tool.input_schema))
        .put(
            "outputSchema",
            tool.output_schema.as_ref().map_or(Value::Null, json_object),
        )
        .done()
}

fn tool_filter(filter: &ToolFilter) -> Value {
    let mut block = Block::new();
    block
        .put("allow_list", strings(&filter.allow_list))
        .put("deny_list", strings(&filter.deny_list));
    // The approval keys are not acted on (loading them warns): shown only when they ask for
    // something, so the normalised form of a file without them loads back without warnings.
    if !filter.approval_list.is_empty() {
        block.put("approval_list", strings(&filter.approval_list));
    }
    if filter.approval_timeout != DEFAULT_APPROVAL_TIMEOUT {
        block.put(
            "approval_timeout_seconds",
            filter.approval_timeout.as_secs(),
        );
    }
    if let Some(channel) = &filter.approval_channel {
        block.put("approval_channel", channel.as_str());
    }
    block.done()
}

fn container(block: &mut Block, container: &ContainerSpec) {
    block.put("image", opt_text(container.image.as_ref()));
    block.put(
        "build",
        container.build.as_ref().map_or(Value::Null, |build| {
            Block::new()
                .put("context", text(&build.context))
                .put("dockerfile", text(&build.dockerfile))
                .put("tag", opt_string(build.tag.as_deref()))
                .done()
        }),
    );
    block.put(
        "volumes",
        Value::Sequence(
            container
                .volumes
                .iter()
                .map(|volume| {
                    if volume.host.is_secret() || volume.container.is_secret() {
                        Value::from(REDACTED)
                    } else {
                        let mode = if volume.read_only { "ro" } else { "rw" };
                        Value::from(escape_dollars(&format!(
                            "{}:{}:{mode}",
                            volume.host.expose(),
                            volume.container.expose()
                        )))
                    }
                })
                .collect(),
        ),
    );
    block.put("network", container.network.as_str());
    block.put("read_only", container.read_only);
    block.put(
        "resources",
        Block::new()
            .put("memory", container.resources.memory.as_str())
            .put("cpu", container.resources.cpus)
            .done(),
    );
    block.put("user", opt_text(container.user.as_ref()));
    block.put("socket", opt_text(container.socket.as_ref()));
}

fn remote(block: &mut Block, remote: &RemoteSpec) {
    block.put("endpoint", text(&remote.endpoint));
    block.put("transport", remote.transport.as_str());
    let mut auth = Block::new();
    match &remote.auth {
        RemoteAuth::None => auth.put("type", "none"),
        RemoteAuth::Bearer { token } => auth.put("type", "bearer").put("token", text(token)),
        RemoteAuth::Basic { username, password } => auth
            .put("type", "basic")
            .put("username", text(username))
            .put("password", text(password)),
        RemoteAuth::ApiKey { header, key } => auth
            .put("type", "api_key")
            .put("header", text(header))
            .put("key", text(key)),
    };
    block.put("auth", auth.done());
    block.put(
        "tls",
        Block::new()
            .put("verify", remote.tls.verify)
            .put("ca_cert", opt_text(remote.tls.ca_cert.as_ref()))
            .put("client_cert", opt_text(remote.tls.client_cert.as_ref()))
            .put("client_key", opt_text(remote.tls.client_key.as_ref()))
            .done(),
    );
    let http = &remote.http;
    block.put(
        "http",
        Block::new()
            .put("headers", text_map(http.headers.iter()))
            .put("timeout_s", seconds(http.timeout))
            .put("connect_timeout_s", seconds(http.connect_timeout))
            .put("max_retries", http.max_retries)
            .put("retry_backoff_factor", http.retry_backoff_factor)
            .put("keep_alive", http.keep_alive)
            .done(),
    );
}

fn group(block: &mut Block, group: &GroupSpec) {
    block.put("strategy", group.strategy.as_str().as_ref());
    block.put("min_healthy", group.min_healthy);
    block.put(
        "health",
        Block::new()
            .put("unhealthy_threshold", group.health.unhealthy_threshold)
            .put("healthy_threshold", group.health.healthy_threshold)
            .done(),
    );
    block.put("failback_delay_s", seconds(group.failback_delay));
    block.put(
        "members",
        Value::Sequence(group.members.iter().map(member).collect()),
    );
}

fn member(member: &GroupMember) -> Value {
    let mut block = Block::new();
    block
        .put("id", member.id.as_str())
        .put("weight", member.weight)
        .put("priority", member.priority);
    match &member.definition {
        MemberDefinition::Inline(spec) => provider_keys(&mut block, spec),
        MemberDefinition::Reference => {
            if let Some(filter) = &member.tool_filter {
                block.put("tools", tool_filter(filter));
            }
        }
    }
    block.done()
}

/// The keys of one provider, in the order of the format reference.
fn provider_keys(block: &mut Block, spec: &ProviderSpec) {
    block.put("mode", spec.mode.as_str());
    block.put("description", opt_string(spec.description.as_deref()));
    if matches!(
        spec.mode,
        ProviderMode::Subprocess | ProviderMode::Container
    ) {
        block.put("command", list(&spec.command));
        block.put("args", list(&spec.args));
    }
    if spec.mode == ProviderMode::Subprocess {
        let cwd = spec
            .cwd
            .as_ref()
            .map(|cwd| MaybeSecret::new(cwd.to_string_lossy(), spec.cwd_secret));
        block.put("cwd", opt_text(cwd.as_ref()));
    }
    if matches!(
        spec.mode,
        ProviderMode::Subprocess | ProviderMode::Container
    ) {
        block.put("env", text_map(spec.env.iter()));
    }
    if spec.mode == ProviderMode::Subprocess {
        block.put("inherit_env", spec.inherit_env);
    }
    // A group does not read these (its members run on their own): not shown for one, as
    // loading them warns.
    let is_group = spec.mode == ProviderMode::Group;
    if !is_group {
        block.put("idle_ttl_s", seconds(spec.idle_ttl));
        block.put(
            "health_check_interval_s",
            seconds(spec.health_check_interval),
        );
        block.put("max_consecutive_failures", spec.max_consecutive_failures);
        block.put("shutdown_timeout_s", seconds(spec.shutdown_timeout));
    }
    block.put(
        "call_timeout_s",
        spec.call_timeout.map_or(Value::Null, seconds),
    );
    block.put(
        "max_concurrency",
        spec.max_concurrency.map_or(Value::Null, Value::from),
    );
    block.put("max_queue", spec.max_queue);
    if !is_group {
        block.put("auto_start", spec.auto_start);
    }
    block.put("tool_prefix", opt_string(spec.tool_prefix.as_deref()));
    block.put("tools", tools(spec));
    block.put("validators", strings(&spec.validators));
    if let Some(c) = &spec.container {
        container(block, c);
    }
    if let Some(r) = &spec.remote {
        remote(block, r);
    }
    if let Some(g) = &spec.group {
        group(block, g);
    }
    let cb = spec.circuit_breaker;
    block.put(
        "circuit_breaker",
        Block::new()
            .put("failure_threshold", cb.failure_threshold)
            .put("reset_timeout_s", seconds(cb.reset_timeout))
            .done(),
    );
    if !is_group {
        let recovery = spec.recovery;
        block.put(
            "recovery",
            Block::new()
                .put("base_delay_s", seconds(recovery.base_delay))
                .put("max_delay_s", seconds(recovery.max_delay))
                .put("max_retries", recovery.max_retries)
                .done(),
        );
    }
    block.put("rate_limit", rate_limit(spec.rate_limit.as_ref()));
    // Open-shaped blocks appear only when written: they have no defaults to show.
    for (key, value) in [
        ("capabilities", &spec.capabilities),
        ("access", &spec.access),
        ("tool_access", &spec.tool_access),
        ("tool_projection", &spec.tool_projection),
        ("canary", &spec.canary),
    ] {
        if let Some(value) = value {
            block.put(key, json(value));
        }
    }
}

fn rate_limit(rate_limit: Option<&RateLimitSpec>) -> Value {
    rate_limit.map_or(Value::Null, |rl| {
        Block::new()
            .put("requests_per_second", rl.requests_per_second)
            .put("burst", rl.burst)
            .done()
    })
}

/// `observability:` with what the environment filled in; absent exporters are `null`.
fn observability(config: &Config) -> Value {
    let tracing = config.tracing.as_ref().map_or(Value::Null, |t| {
        let mut headers = Mapping::new();
        for (k, v) in &t.headers {
            headers.insert(Value::from(k.as_str()), text(v));
        }
        Block::new()
            .put("enabled", t.enabled)
            .put("otlp_endpoint", escape_dollars(&t.endpoint))
            .put("protocol", t.protocol.as_str())
            .put("service_name", escape_dollars(&t.service_name))
            .put("sample_rate", t.sample_rate)
            .put("headers", Value::Mapping(headers))
            .done()
    });
    let langfuse = config.langfuse.as_ref().map_or(Value::Null, |l| {
        Block::new()
            .put("enabled", l.enabled)
            .put("public_key", text(&l.public_key))
            .put("secret_key", text(&l.secret_key))
            .put("host", escape_dollars(&l.host))
            .put("sample_rate", l.sample_rate)
            .put("scrub_inputs", l.scrub_inputs)
            .put("scrub_outputs", l.scrub_outputs)
            .done()
    });
    Block::new()
        .put(
            "metrics",
            super::observability::normalised_metrics(&config.observability.metrics),
        )
        .put("tracing", tracing)
        .put("langfuse", langfuse)
        .done()
}

fn limits(limits: &Limits) -> Value {
    Block::new()
        .put(
            "max_argument_bytes",
            u64::try_from(limits.max_argument_bytes).unwrap_or(u64::MAX),
        )
        .put(
            "max_argument_depth",
            u64::try_from(limits.max_argument_depth).unwrap_or(u64::MAX),
        )
        .done()
}

fn plugin(plugin: &PluginSpec) -> Value {
    Block::new()
        .put("kind", plugin.kind.as_str())
        // Paths are never interpolated, so they are written as they are.
        .put("path", plugin.path.to_string_lossy().as_ref())
        .put("config", interpolated_json(&plugin.config.redacted()))
        .put(
            "timeout_ms",
            u64::try_from(plugin.timeout.as_millis()).unwrap_or(u64::MAX),
        )
        .put("memory_mb", plugin.memory_mb)
        .put("fuel", plugin.fuel.map_or(Value::Null, Value::from))
        .put("on_error", plugin.on_error.as_str())
        .put(
            "grants",
            Value::Sequence(
                plugin
                    .grants
                    .iter()
                    .map(|g| Value::from(g.as_str()))
                    .collect(),
            ),
        )
        .put(
            "preopens",
            Value::Sequence(
                plugin
                    .preopens
                    .iter()
                    .map(|p| {
                        Block::new()
                            .put("host", p.host.to_string_lossy().as_ref())
                            .put("guest", p.guest.as_str())
                            .done()
                    })
                    .collect(),
            ),
        )
        .done()
}

/// `event_store:`; `path: null` is the default under the XDG data directory, decided where the
/// hangar runs.
fn event_store(spec: &super::event_store::EventStoreSpec) -> Value {
    Block::new()
        .put("enabled", spec.enabled)
        .put("driver", spec.driver.as_str())
        .put(
            "path",
            spec.path.as_ref().map_or(Value::Null, |p| {
                Value::from(escape_dollars(&p.to_string_lossy()))
            }),
        )
        .put(
            "retention",
            super::event_store::format_duration(spec.retention),
        )
        .put("record_arguments", spec.record_arguments)
        .done()
}

/// `discovery:` with every default filled in; a source's own keys as written (they are not
/// interpolated), secret-looking ones redacted.
fn discovery(spec: &super::DiscoverySpec) -> Value {
    let secs = |d: Duration| d.as_secs();
    let names = |v: &[String]| Value::Sequence(v.iter().map(|n| Value::from(n.as_str())).collect());
    let sources = spec
        .sources
        .iter()
        .map(|source| {
            let mut block = Block::new();
            block
                .put("type", source.kind.to_string())
                .put("mode", source.mode.as_str())
                .put("name", escape_dollars(&source.name));
            for (key, value) in &source.config {
                if super::key_looks_secret(key) {
                    block.put(key, REDACTED);
                } else {
                    // Source keys are not interpolated, so `$` is written as it is.
                    block.put(key, json_with(value, &|s| Value::from(s)));
                }
            }
            block.done()
        })
        .collect();
    let l = &spec.lifecycle;
    let s = &spec.security;
    Block::new()
        .put("enabled", spec.enabled)
        .put("refresh_interval_s", secs(spec.refresh_interval))
        .put("auto_register", spec.auto_register)
        .put(
            "lifecycle",
            Block::new()
                .put("default_ttl_s", secs(l.default_ttl))
                .put("check_interval_s", secs(l.check_interval))
                .put("drain_timeout_s", secs(l.drain_timeout))
                .done(),
        )
        .put(
            "security",
            Block::new()
                .put("allowed_namespaces", names(&s.allowed_namespaces))
                .put("denied_namespaces", names(&s.denied_namespaces))
                .put(
                    "max_providers_per_source",
                    u64::try_from(s.max_providers_per_source).unwrap_or(u64::MAX),
                )
                .put("max_registration_rate", s.max_registration_rate.to_string())
                .put("require_health_check", s.require_health_check)
                .put("quarantine_on_failure", s.quarantine_on_failure)
                .done(),
        )
        .put("sources", Value::Sequence(sources))
        .done()
}

pub(super) fn to_redacted_yaml(config: &Config) -> String {
    let mut plugins = Mapping::new();
    for (name, spec) in &config.plugins {
        plugins.insert(Value::from(name.as_str()), plugin(spec));
    }
    let mut servers = Mapping::new();
    for (id, spec) in &config.providers {
        let mut block = Block::new();
        provider_keys(&mut block, spec);
        servers.insert(Value::from(id.as_str()), block.done());
    }
    let mut document = Block::new();
    document
        .put("rate_limit", rate_limit(config.rate_limit.as_ref()))
        .put("limits", limits(&config.limits))
        .put("plugins", Value::Mapping(plugins))
        .put(
            "logging",
            super::observability::normalised_logging(&config.logging),
        )
        .put("observability", observability(config))
        .put("http", super::http::normalised(&config.http))
        .put("event_store", event_store(&config.event_store));
    // Absent stays absent: `discovery:` with no value would turn discovery on.
    if let Some(spec) = &config.discovery {
        document.put("discovery", discovery(spec));
    }
    let document = document.put("mcp_servers", Value::Mapping(servers)).done();
    match yaml_serde::to_string(&document) {
        Ok(body) => format!("{HEADER}{body}"),
        // Emitting a tree of plain strings, numbers and maps does not fail; if it ever does,
        // say so in the output instead of printing something partial.
        Err(err) => format!("{HEADER}# the normalised config could not be rendered: {err}\n"),
    }
}
