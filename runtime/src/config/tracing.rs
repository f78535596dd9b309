//! `observability.tracing` (OTLP export) and `observability.langfuse`, with the OTEL_* and
//! LANGFUSE_* environment variables filling what the file leaves out.

use indexmap::IndexMap;
use serde::Deserialize;

use super::locate::KeyPath;
use super::resolve::Resolver;
use super::{ConfigError, MaybeSecret};

/// `observability.tracing:` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTracing {
    pub enabled: Option<bool>,
    #[serde(alias = "endpoint")]
    pub otlp_endpoint: Option<String>,
    pub protocol: Option<String>,
    pub service_name: Option<String>,
    pub sample_rate: Option<f64>,
    pub headers: Option<IndexMap<String, String>>,
}

/// `observability.langfuse:` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLangfuse {
    pub enabled: Option<bool>,
    pub public_key: Option<String>,
    pub secret_key: Option<String>,
    pub host: Option<String>,
    pub sample_rate: Option<f64>,
    pub scrub_inputs: Option<bool>,
    pub scrub_outputs: Option<bool>,
}

/// How spans travel to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

impl OtlpProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
        }
    }
}

/// Export of spans to an OTLP collector.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingSpec {
    pub enabled: bool,
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    pub service_name: String,
    /// Share of root traces kept, 0..=1; a client's sampled flag decides for its own traces.
    pub sample_rate: f64,
    /// Sent with every export (auth of a hosted collector); values are secrets.
    pub headers: Vec<(String, MaybeSecret)>,
}

/// Export of spans to Langfuse's OTLP endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct LangfuseSpec {
    pub enabled: bool,
    pub public_key: MaybeSecret,
    pub secret_key: MaybeSecret,
    pub host: String,
    pub sample_rate: f64,
    /// Leave a call's arguments out of what Langfuse gets.
    pub scrub_inputs: bool,
    /// Leave a call's result out of what Langfuse gets.
    pub scrub_outputs: bool,
}

const DEFAULT_LANGFUSE_HOST: &str = "https://cloud.langfuse.com";

impl Resolver<'_> {
    /// `observability.tracing`; `None` when neither the file nor `OTEL_EXPORTER_OTLP_*` asks
    /// for traces.
    pub(super) fn tracing(
        &mut self,
        raw: Option<&RawTracing>,
    ) -> Result<Option<TracingSpec>, ConfigError> {
        let base = KeyPath::root().key("observability").key("tracing");
        let vars = self.env;
        let env = |name: &str| vars(name).filter(|v| !v.trim().is_empty());
        let env_endpoint = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"));
        let sdk_disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let default = RawTracing::default();
        let written = raw.is_some();
        let raw = raw.unwrap_or(&default);
        let enabled = match raw.enabled {
            Some(on) => on,
            None => !sdk_disabled && (written || env_endpoint.is_some()),
        };
        if !written && !enabled {
            return Ok(None);
        }
        let protocol = match raw.protocol.as_deref() {
            Some(p) => protocol(p).ok_or_else(|| {
                self.invalid(
                    &base.key("protocol"),
                    format!("unknown OTLP protocol `{p}`; use `grpc` or `http/protobuf`"),
                )
            })?,
            None => {
                let from_env = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                    .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"));
                match from_env {
                    None => OtlpProtocol::Grpc,
                    Some(p) => protocol(&p).unwrap_or_else(|| {
                        self.warn(
                            &base,
                            &format!(
                                "OTEL_EXPORTER_OTLP_PROTOCOL `{p}` is not supported (use `grpc` \
                                 or `http/protobuf`); using grpc"
                            ),
                        );
                        OtlpProtocol::Grpc
                    }),
                }
            }
        };
        let endpoint = match &raw.otlp_endpoint {
            Some(e) => self
                .text(&base.key("otlp_endpoint"), e, false)?
                .expose()
                .to_string(),
            None => env_endpoint.unwrap_or_else(|| {
                match protocol {
                    OtlpProtocol::Grpc => "http://localhost:4317",
                    OtlpProtocol::HttpProtobuf => "http://localhost:4318",
                }
                .to_string()
            }),
        };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(self.invalid(
                &base.key("otlp_endpoint"),
                format!("`{endpoint}` is not an http:// or https:// URL"),
            ));
        }
        let service_name = match &raw.service_name {
            Some(s) => self
                .text(&base.key("service_name"), s, false)?
                .expose()
                .to_string(),
            None => env("OTEL_SERVICE_NAME").unwrap_or_else(|| "mcp-hangar".to_string()),
        };
        let sample_rate = match raw.sample_rate {
            Some(r) => self.rate(&base.key("sample_rate"), r)?,
            None => env("OTEL_TRACES_SAMPLER_ARG")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|r| (0.0..=1.0).contains(r))
                .unwrap_or(1.0),
        };
        let headers = match &raw.headers {
            Some(map) => self
                .text_map(&base.key("headers"), map)?
                .into_iter()
                .map(|(k, v)| (k, MaybeSecret::secret(v.expose())))
                .collect(),
            None => env("OTEL_EXPORTER_OTLP_HEADERS")
                .map(|list| parse_header_list(&list))
                .unwrap_or_default(),
        };
        Ok(Some(TracingSpec {
            enabled,
            endpoint,
            protocol,
            service_name,
            sample_rate,
            headers,
        }))
    }

    /// `observability.langfuse`; `None` when absent.
    pub(super) fn langfuse(
        &mut self,
        raw: Option<&RawLangfuse>,
    ) -> Result<Option<LangfuseSpec>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        let base = KeyPath::root().key("observability").key("langfuse");
        let enabled = raw.enabled.unwrap_or(true);
        let key = |this: &Self, name: &str, written: &Option<String>, var: &str| {
            let path = base.key(name);
            match written {
                Some(v) => this.text(&path, v, true),
                None => match this.env_var(var) {
                    Some(v) if !v.is_empty() => Ok(MaybeSecret::new(v, true)),
                    _ if !enabled => Ok(MaybeSecret::new(String::new(), true)),
                    _ => Err(this.invalid(
                        &base,
                        format!(
                            "Langfuse needs `{name}`: write it (as `${{{var}}}`) or set {var} in \
                             the environment"
                        ),
                    )),
                },
            }
        };
        let keys =
            key(self, "public_key", &raw.public_key, "LANGFUSE_PUBLIC_KEY").and_then(|public| {
                key(self, "secret_key", &raw.secret_key, "LANGFUSE_SECRET_KEY")
                    .map(|secret| (public, secret))
            });
        // Missing credentials turn Langfuse export off, loudly, instead of keeping the hangar
        // (and every provider behind it) from starting: traces are not worth an outage.
        let (public_key, secret_key, enabled) = match keys {
            Ok((public, secret)) => (public, secret, enabled),
            Err(e) => {
                let line = e.line.map(|l| format!("line {l}: ")).unwrap_or_default();
                self.warn(
                    &base,
                    &format!(
                        "Langfuse export is off: {line}{} (or `enabled: false` to silence \
                         this)",
                        e.message
                    ),
                );
                let none = || MaybeSecret::new(String::new(), true);
                (none(), none(), false)
            }
        };
        let host = match &raw.host {
            Some(h) => self.text(&base.key("host"), h, false)?.expose().to_string(),
            None => self
                .env_var("LANGFUSE_HOST")
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| DEFAULT_LANGFUSE_HOST.to_string()),
        };
        if !(host.starts_with("http://") || host.starts_with("https://")) {
            return Err(self.invalid(
                &base.key("host"),
                format!("`{host}` is not an http:// or https:// URL"),
            ));
        }
        let sample_rate = match raw.sample_rate {
            Some(r) => self.rate(&base.key("sample_rate"), r)?,
            None => 1.0,
        };
        Ok(Some(LangfuseSpec {
            enabled,
            public_key,
            secret_key,
            host,
            sample_rate,
            scrub_inputs: raw.scrub_inputs.unwrap_or(false),
            scrub_outputs: raw.scrub_outputs.unwrap_or(false),
        }))
    }

    fn rate(&self, path: &KeyPath, rate: f64) -> Result<f64, ConfigError> {
        if (0.0..=1.0).contains(&rate) {
            Ok(rate)
        } else {
            Err(self.invalid(path, format!("{rate} is not a rate between 0 and 1")))
        }
    }
}

fn protocol(p: &str) -> Option<OtlpProtocol> {
    match p.trim().to_ascii_lowercase().as_str() {
        "grpc" => Some(OtlpProtocol::Grpc),
        "http/protobuf" | "http" | "http-protobuf" => Some(OtlpProtocol::HttpProtobuf),
        _ => None,
    }
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `k1=v1,k2=v2`, values percent-decoded as the spec says.
fn parse_header_list(list: &str) -> Vec<(String, MaybeSecret)> {
    list.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| {
                (
                    k.to_string(),
                    MaybeSecret::new(percent_decode(v.trim()), true),
                )
            })
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_list_of_the_environment_is_split_and_decoded() {
        let h = parse_header_list("Authorization=Basic%20abc, x-team = a=b ,bad");
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].0, "Authorization");
        assert_eq!(h[0].1.expose(), "Basic abc");
        assert_eq!(h[1].1.expose(), "a=b");
        assert!(h[0].1.is_secret());
    }

    #[test]
    fn protocols_are_named_as_otel_names_them() {
        assert_eq!(protocol("grpc"), Some(OtlpProtocol::Grpc));
        assert_eq!(protocol("http/protobuf"), Some(OtlpProtocol::HttpProtobuf));
        assert_eq!(protocol("http/json"), None);
    }
}
