//! `docker.list-containers` on the engine the container backend uses (the same socket lookup
//! and the same cached, version-negotiated client).

use std::collections::HashMap;

use bollard::query_parameters::ListContainersOptions;

use super::{Container, MAX_ITEMS, sorted_pairs};
use crate::backend::container::engine::{self, Address};
use crate::config::{DockerGrant, MaybeSecret};

/// Longest label filter accepted; a label key and value are far shorter in practice.
const MAX_FILTER_BYTES: usize = 1024;
/// Most label filters in one call.
const MAX_FILTERS: usize = 64;

/// The granted `docker` capability of one plugin.
pub(super) struct Docker {
    address: Address,
}

impl Docker {
    pub fn new(grant: &DockerGrant) -> Self {
        let socket = grant.socket.as_deref().map(MaybeSecret::plain);
        Self {
            address: Address::of(socket.as_ref()),
        }
    }

    /// Every container (running or not: `state` says) carrying all of `label_filters`.
    pub async fn list_containers(
        &self,
        plugin: &str,
        label_filters: Vec<String>,
    ) -> Result<Vec<Container>, String> {
        check_filters(plugin, &label_filters)?;
        let docker = engine::connect(&self.address).await?;
        let mut filters = HashMap::new();
        if !label_filters.is_empty() {
            filters.insert("label".to_owned(), label_filters);
        }
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let listed = docker
            .list_containers(Some(options))
            .await
            .map_err(|err| engine::unreachable(&self.address, &err))?;
        if listed.len() > MAX_ITEMS {
            return Err(format!(
                "the engine at {} lists {} containers for these filters; at most {MAX_ITEMS} \
                 are answered (narrow the label filters)",
                self.address.shown(),
                listed.len()
            ));
        }
        Ok(listed.into_iter().map(container).collect())
    }
}

fn check_filters(plugin: &str, filters: &[String]) -> Result<(), String> {
    if filters.len() > MAX_FILTERS {
        return Err(format!(
            "plugin `{plugin}` passed {} label filters; at most {MAX_FILTERS} are accepted",
            filters.len()
        ));
    }
    for filter in filters {
        let key = filter.split_once('=').map_or(filter.as_str(), |(k, _)| k);
        if key.trim().is_empty()
            || filter.len() > MAX_FILTER_BYTES
            || filter.chars().any(char::is_control)
        {
            return Err(format!(
                "plugin `{plugin}` passed the label filter {filter:?}; a filter is `key` or \
                 `key=value`, at most {MAX_FILTER_BYTES} bytes, without control characters"
            ));
        }
    }
    Ok(())
}

fn container(summary: bollard::models::ContainerSummary) -> Container {
    let networks = summary
        .network_settings
        .and_then(|settings| settings.networks)
        .map(|networks| {
            let mut pairs: Vec<(String, String)> = networks
                .into_iter()
                .filter_map(|(name, endpoint)| {
                    let ip = endpoint.ip_address.filter(|ip| !ip.is_empty())?;
                    Some((name, ip))
                })
                .collect();
            pairs.sort();
            pairs
        })
        .unwrap_or_default();
    Container {
        id: summary.id.unwrap_or_default(),
        names: summary
            .names
            .unwrap_or_default()
            .into_iter()
            .map(|name| name.strip_prefix('/').map(str::to_owned).unwrap_or(name))
            .collect(),
        image: summary.image.unwrap_or_default(),
        labels: summary
            .labels
            .as_ref()
            .map(sorted_pairs)
            .unwrap_or_default(),
        state: summary
            .state
            .map(|state| state.to_string())
            .unwrap_or_default(),
        networks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_must_have_a_key_and_no_control_characters() {
        assert!(check_filters("p", &["mcp.hangar.enabled=true".into(), "x".into()]).is_ok());
        for bad in ["", "=true", "a\nb", &"k".repeat(MAX_FILTER_BYTES + 1)] {
            let err = check_filters("p", &[bad.to_owned()]).expect_err(bad);
            assert!(err.contains("plugin `p` passed the label filter"), "{err}");
        }
    }

    #[test]
    fn a_summary_becomes_a_container_with_sorted_labels_and_only_networks_with_an_ip() {
        let summary: bollard::models::ContainerSummary =
            serde_json::from_value(serde_json::json!({
                "Id": "abc",
                "Names": ["/web"],
                "Image": "example:1",
                "State": "running",
                "Labels": {"b": "2", "a": "1"},
                "NetworkSettings": {"Networks": {
                    "none": {"IPAddress": ""},
                    "bridge": {"IPAddress": "172.17.0.2"}
                }}
            }))
            .expect("a summary as the engine sends it");
        let c = container(summary);
        assert_eq!(c.names, ["web"]);
        assert_eq!(c.state, "running");
        assert_eq!(
            c.labels,
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert_eq!(c.networks, [("bridge".into(), "172.17.0.2".into())]);
    }
}
