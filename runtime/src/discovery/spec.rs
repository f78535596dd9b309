//! A provider a source found, as the registry takes it: checked with the config file's own
//! rules (and error texts), and fingerprinted.
//!
//! The spec is written out as a one-provider config document and read back with
//! [`config::parse`], so a discovered provider can never be accepted under rules a file would
//! fail, and its errors read exactly like a file's (`discovery:SOURCE:NAME:LINE:COL: key: …`).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::config::{self, DEFAULT_MEMBER_WEIGHT, ProviderSpec};
use crate::plugin::DiscoveredProvider;
use crate::registry::Membership;

/// Labels the hangar reads; a source sets them, and they are not passed on as plain labels.
pub const LABEL_TTL: &str = "hangar.ttl";
pub const LABEL_NAMESPACE: &str = "hangar.namespace";
/// The member's weight in the group it names (1–100, as a config member's `weight`).
pub const LABEL_WEIGHT: &str = "hangar.weight";
/// A placeholder entry carrying this label reports a problem the source met (a malformed
/// file, …) instead of a provider: its value is the message.
pub const LABEL_ERROR: &str = "hangar.error";

/// sha256 of the spec's canonical form (fields in a fixed order, env and labels sorted): equal
/// for specs that would run the same provider.
pub fn fingerprint(spec: &DiscoveredProvider) -> String {
    let sorted = |pairs: &[(String, String)]| {
        let mut pairs = pairs.to_vec();
        pairs.sort();
        pairs
    };
    let canonical = json!([
        spec.name,
        spec.mode,
        spec.command,
        spec.image,
        spec.endpoint,
        sorted(&spec.env),
        spec.group,
        sorted(&spec.labels),
        spec.description,
        spec.idle_ttl.map(|d| d.as_secs()),
        spec.tools_json,
    ]);
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of label `key`, if the source set it.
pub fn label<'a>(spec: &'a DiscoveredProvider, key: &str) -> Option<&'a str> {
    spec.labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The TTL the source asked for (`hangar.ttl`, seconds), if a valid one.
pub fn ttl(spec: &DiscoveredProvider) -> Result<Option<Duration>, String> {
    match label(spec, LABEL_TTL) {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse::<u64>()
            .map(|s| Some(Duration::from_secs(s)))
            .map_err(|_| format!("label `{LABEL_TTL}` is `{text}`, not a number of seconds")),
    }
}

/// The group the provider joins and its weight there, if it names a group. A weight
/// without a group, or outside 1–100, is an error (the config file's range for `weight`).
pub fn membership(spec: &DiscoveredProvider) -> Result<Option<Membership>, String> {
    let weight = match label(spec, LABEL_WEIGHT) {
        None => None,
        Some(text) => match text.trim().parse::<u32>() {
            Ok(w) if (1..=100).contains(&w) => Some(w),
            _ => {
                return Err(format!(
                    "`{}`: label `{LABEL_WEIGHT}` is `{text}`; give a whole number from 1 to 100",
                    spec.name
                ));
            }
        },
    };
    match spec
        .group
        .as_deref()
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        Some(group) => Ok(Some(Membership {
            group: group.to_string(),
            weight: weight.unwrap_or(DEFAULT_MEMBER_WEIGHT),
        })),
        None if weight.is_some() => Err(format!(
            "`{}`: label `{LABEL_WEIGHT}` is set but no group is named; a weight means \
             something only in a group",
            spec.name
        )),
        None => Ok(None),
    }
}

/// Converts and checks `spec` as the config file would; the error is the file's error text,
/// located in the document shown by [`document`]. The group it names, if any, is not part of
/// the provider's spec: see [`membership`].
pub fn to_provider_spec(source: &str, spec: &DiscoveredProvider) -> Result<ProviderSpec, String> {
    let text = document(spec)?;
    let path = PathBuf::from(format!("discovery:{source}:{}", spec.name));
    let config = config::parse(&text, &path, &|_| None).map_err(|e| e.to_string())?;
    config
        .providers
        .get(&spec.name)
        .cloned()
        .ok_or_else(|| format!("`{}` produced no provider", spec.name))
}

/// The spec as a config document (`mcp_servers: {NAME: {...}}`), `$` escaped so nothing a
/// source reports is interpolated.
pub fn document(spec: &DiscoveredProvider) -> Result<String, String> {
    let text = |s: &str| Value::String(s.replace('$', "$$"));
    let mut p = Map::new();
    p.insert("mode".into(), text(&spec.mode));
    if !spec.command.is_empty() {
        p.insert(
            "command".into(),
            Value::Array(spec.command.iter().map(|c| text(c)).collect()),
        );
    }
    if let Some(image) = &spec.image {
        p.insert("image".into(), text(image));
    }
    if let Some(endpoint) = &spec.endpoint {
        p.insert("endpoint".into(), text(endpoint));
    }
    if !spec.env.is_empty() {
        let env: Map<String, Value> = spec.env.iter().map(|(k, v)| (k.clone(), text(v))).collect();
        p.insert("env".into(), Value::Object(env));
    }
    if let Some(description) = &spec.description {
        p.insert("description".into(), text(description));
    }
    if let Some(ttl) = spec.idle_ttl {
        p.insert("idle_ttl_s".into(), json!(ttl.as_secs()));
    }
    if let Some(tools) = &spec.tools_json {
        let tools: Value = serde_json::from_str(tools)
            .map_err(|e| format!("`{}`: tools-json is not JSON: {e}", spec.name))?;
        p.insert("tools".into(), tools);
    }
    let mut servers = Map::new();
    servers.insert(spec.name.clone(), Value::Object(p));
    let doc = json!({ "mcp_servers": servers });
    yaml_serde::to_string(&doc)
        .map_err(|e| format!("`{}`: cannot be written as YAML: {e}", spec.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn found(name: &str, command: &[&str]) -> DiscoveredProvider {
        DiscoveredProvider {
            name: name.into(),
            mode: "subprocess".into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            image: None,
            endpoint: None,
            env: vec![("B".into(), "2".into()), ("A".into(), "1".into())],
            group: None,
            labels: vec![],
            description: None,
            idle_ttl: None,
            tools_json: None,
        }
    }

    #[test]
    fn the_fingerprint_changes_with_the_spec_and_not_with_pair_order() {
        let a = found("echo", &["prov", "--x"]);
        let mut reordered = a.clone();
        reordered.env.reverse();
        assert_eq!(fingerprint(&a), fingerprint(&reordered));
        let mut edited = a.clone();
        edited.command.push("--y".into());
        assert_ne!(fingerprint(&a), fingerprint(&edited));
        assert_eq!(fingerprint(&a).len(), 64);
    }

    #[test]
    fn a_valid_spec_converts_with_the_config_defaults() {
        let spec = to_provider_spec("filesystem", &found("echo", &["prov", "$HOME"])).unwrap();
        assert_eq!(spec.id, "echo");
        assert_eq!(
            spec.command[1].expose(),
            "$HOME",
            "no interpolation of a source's text"
        );
        assert_eq!(spec.env["A"].expose(), "1");
        assert!(
            !spec.env["A"].is_secret(),
            "a source's values are not marked secret"
        );
    }

    #[test]
    fn an_invalid_spec_gets_the_config_files_error_text() {
        let err = to_provider_spec("filesystem", &found("9bad", &["prov"])).unwrap_err();
        assert!(err.starts_with("discovery:filesystem:9bad:"), "{err}");
        assert!(err.contains("9bad"), "{err}");
        let mut remote = found("r", &[]);
        remote.mode = "remote".into();
        remote.env.clear();
        let err = to_provider_spec("docker", &remote).unwrap_err();
        assert!(err.contains("endpoint"), "{err}");
    }

    #[test]
    fn a_group_and_weight_become_a_membership_with_the_config_weight_rules() {
        let mut grouped = found("g", &["prov"]);
        assert_eq!(membership(&grouped), Ok(None));
        grouped.group = Some("pool".into());
        assert!(
            to_provider_spec("docker", &grouped).is_ok(),
            "a group is no longer refused"
        );
        assert_eq!(
            membership(&grouped),
            Ok(Some(Membership {
                group: "pool".into(),
                weight: 1
            }))
        );
        grouped.labels.push((LABEL_WEIGHT.into(), " 7 ".into()));
        assert_eq!(membership(&grouped).unwrap().unwrap().weight, 7);
        grouped.labels[0].1 = "0".into();
        assert!(membership(&grouped).unwrap_err().contains("1 to 100"));
        grouped.labels[0].1 = "5".into();
        grouped.group = None;
        assert!(membership(&grouped).unwrap_err().contains("no group"));
    }
}
