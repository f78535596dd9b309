//! `http:` — the HTTP face's security and bounds: which browser origins and `Host` names it
//! accepts, who may call it (API keys, bearer JWTs) and what each caller may do, and how much
//! of the machine it may take (sessions, connections, slow clients).
//!
//! ```yaml
//! http:
//!   allowed_origins: ["https://app.example.com"]   # default: pages on loopback only
//!   allowed_hosts: ["hangar.internal"]             # besides loopback names and the bound address
//!   max_sessions: 1000
//!   session_idle_timeout_s: 600
//!   max_connections: 1024
//!   header_read_timeout_s: 10
//!   auth:
//!     resource: https://hangar.example.com/mcp     # default: from the request's Host
//!     authorization_servers: ["https://auth.example.com"]
//!     scopes_supported: ["mcp"]
//!     protect_metrics: true                        # /metrics on the HTTP face needs credentials
//!     api_keys:
//!       - {name: ci, env: HANGAR_KEY_CI, tools: ["math__*"], rate_limit: {requests_per_second: 5}}
//!     jwt:
//!       jwks_url: https://auth.example.com/.well-known/jwks.json
//!       issuer: https://auth.example.com
//!       audience: https://hangar.example.com/mcp
//! ```
//!
//! The key list lives in the serde types below and nowhere else: `deny_unknown_fields` gives
//! the unknown-key error (with a suggestion), and every field is read by `resolve`.
//!
//! Deliberately absent: an API key written in the file. A key comes from the environment
//! variable `env` names, is hashed at load (SHA-256) and only the digest is kept; the original's
//! top-level `auth:` (keys in a database, roles) stays an ignored section with a warning.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use yaml_serde::{Mapping, Value};

use super::error::{ConfigError, ConfigErrorKind};
use super::locate::KeyPath;
use super::normalize::put;
use super::resolve::{Resolver, rate_limit};
use super::schema::{Flag, Positive, RawRateLimit, Secs};
use super::spec::{RateLimitSpec, tool_glob};

/// Sessions open at once unless `max_sessions` says otherwise.
pub const DEFAULT_MAX_SESSIONS: u32 = 1000;
/// A session with no request for this long is closed (rmcp's own default is 5 minutes).
pub const DEFAULT_SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Connections open at once.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;
/// How long a client gets to send a request's headers.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Least time between two JWKS fetches caused by an unknown `kid`.
pub const DEFAULT_JWKS_MIN_REFRESH: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Effective values
// ---------------------------------------------------------------------------------------------

/// `http:` as the hangar acts on it.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpServeSpec {
    /// Browser origins allowed on /mcp; empty: pages served from loopback only.
    pub allowed_origins: Vec<String>,
    /// `Host` names accepted besides loopback names and the bound address.
    pub allowed_hosts: Vec<String>,
    pub max_sessions: u32,
    pub session_idle_timeout: Duration,
    pub max_connections: u32,
    pub header_read_timeout: Duration,
    /// `None`: no authentication (then only a loopback bind is allowed without the CLI's
    /// `--allow-unauthenticated-remote`).
    pub auth: Option<AuthSpec>,
}

impl Default for HttpServeSpec {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            max_sessions: DEFAULT_MAX_SESSIONS,
            session_idle_timeout: DEFAULT_SESSION_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            auth: None,
        }
    }
}

/// `http.auth`.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthSpec {
    /// The protected resource's identifier (RFC 9728 `resource`); `None`: `http(s)://HOST/mcp`
    /// from the request.
    pub resource: Option<String>,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
    /// `/metrics` on the HTTP face needs credentials (the listener of its own never does).
    pub protect_metrics: bool,
    pub api_keys: Vec<ApiKeySpec>,
    pub jwt: Option<JwtSpec>,
}

/// One entry of `http.auth.api_keys`.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiKeySpec {
    pub name: String,
    /// The variable the key was read from (shown by `check`; the key itself never is).
    pub env: String,
    pub digest: KeyDigest,
    /// Tool name patterns this key may list and call; empty: every tool.
    pub tools: Vec<String>,
    pub rate_limit: Option<RateLimitSpec>,
}

/// The SHA-256 of an API key. `Debug` does not print it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDigest(***)")
    }
}

/// `http.auth.jwt`.
#[derive(Clone, Debug, PartialEq)]
pub struct JwtSpec {
    pub jwks_url: String,
    pub issuer: String,
    pub audience: Vec<String>,
    /// Signature algorithms accepted (`RS256`, `ES256`, …).
    pub algorithms: Vec<String>,
    pub jwks_min_refresh: Duration,
    /// Tool name patterns every token's subject may list and call; empty: every tool.
    pub tools: Vec<String>,
    /// Per subject (`sub`).
    pub rate_limit: Option<RateLimitSpec>,
}

/// Algorithms `jwt.algorithms` may name: asymmetric ones only, since the keys come from a
/// JWKS (an HMAC secret published in a JWKS would be no secret).
pub const JWT_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

// ---------------------------------------------------------------------------------------------
// The file format
// ---------------------------------------------------------------------------------------------

/// `http:` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub allowed_origins: Option<Vec<String>>,
    pub allowed_hosts: Option<Vec<String>>,
    pub max_sessions: Option<Positive>,
    pub session_idle_timeout_s: Option<Secs>,
    pub max_connections: Option<Positive>,
    pub header_read_timeout_s: Option<Secs>,
    pub auth: Option<RawAuth>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub resource: Option<String>,
    pub authorization_servers: Option<Vec<String>>,
    pub scopes_supported: Option<Vec<String>>,
    pub protect_metrics: Option<Flag>,
    pub api_keys: Option<Vec<RawApiKey>>,
    pub jwt: Option<RawJwt>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiKey {
    pub name: String,
    pub env: String,
    pub tools: Option<Vec<String>>,
    pub rate_limit: Option<RawRateLimit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwt {
    pub jwks_url: String,
    pub issuer: String,
    pub audience: OneOrMany,
    pub algorithms: Option<Vec<String>>,
    pub jwks_min_refresh_s: Option<Secs>,
    pub tools: Option<Vec<String>>,
    pub rate_limit: Option<RawRateLimit>,
}

/// `audience: x` or `audience: [x, y]`.
pub struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OneOrMany;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_owned()]))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(OneOrMany(out))
            }
        }
        de.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------------------
// From the file to the effective values
// ---------------------------------------------------------------------------------------------

fn plain(r: &Resolver<'_>, path: &KeyPath, raw: &str) -> Result<String, ConfigError> {
    r.text(path, raw, false).map(|t| t.expose().to_owned())
}

fn plains(r: &Resolver<'_>, path: &KeyPath, raw: &[String]) -> Result<Vec<String>, ConfigError> {
    raw.iter()
        .enumerate()
        .map(|(i, s)| plain(r, &path.index(i), s))
        .collect()
}

fn url(r: &Resolver<'_>, path: &KeyPath, raw: &str) -> Result<String, ConfigError> {
    let value = plain(r, path, raw)?;
    if !(value.starts_with("https://") || value.starts_with("http://")) || value.len() < 9 {
        return Err(r.invalid(
            path,
            format!("`{value}` is not an http(s) URL; write one such as https://auth.example.com"),
        ));
    }
    Ok(value)
}

fn patterns(r: &Resolver<'_>, path: &KeyPath, raw: &[String]) -> Result<Vec<String>, ConfigError> {
    let out = plains(r, path, raw)?;
    for (i, p) in out.iter().enumerate() {
        tool_glob(p).map_err(|e| {
            r.invalid(
                &path.index(i),
                format!("`{p}` is not a tool name pattern: {e}"),
            )
        })?;
    }
    Ok(out)
}

fn origin(r: &Resolver<'_>, path: &KeyPath, value: &str) -> Result<(), ConfigError> {
    if value == "null" || value.starts_with("http://") || value.starts_with("https://") {
        Ok(())
    } else {
        Err(r.invalid(
            path,
            format!(
                "`{value}` is not a browser origin; write scheme, host and port, e.g. \
                 https://app.example.com or http://localhost:*"
            ),
        ))
    }
}

/// `http:`.
pub(super) fn resolve(
    raw: Option<&RawHttp>,
    r: &Resolver<'_>,
) -> Result<HttpServeSpec, ConfigError> {
    let Some(raw) = raw else {
        return Ok(HttpServeSpec::default());
    };
    let base = KeyPath::root().key("http");
    let allowed_origins = plains(
        r,
        &base.key("allowed_origins"),
        raw.allowed_origins.as_deref().unwrap_or_default(),
    )?;
    for (i, o) in allowed_origins.iter().enumerate() {
        origin(r, &base.key("allowed_origins").index(i), o)?;
    }
    let allowed_hosts = plains(
        r,
        &base.key("allowed_hosts"),
        raw.allowed_hosts.as_deref().unwrap_or_default(),
    )?;
    let positive_secs =
        |key: &str, value: Option<&Secs>, default: Duration| match value.map(Secs::get) {
            None => Ok(default),
            Some(v) if v > 0.0 => Ok(Duration::from_secs_f64(v)),
            Some(_) => Err(r.invalid(
                &base.key(key),
                format!("`{key}` must be more than 0 seconds"),
            )),
        };
    Ok(HttpServeSpec {
        allowed_origins,
        allowed_hosts,
        max_sessions: raw
            .max_sessions
            .as_ref()
            .map_or(DEFAULT_MAX_SESSIONS, |v| to_u32(v.get())),
        session_idle_timeout: positive_secs(
            "session_idle_timeout_s",
            raw.session_idle_timeout_s.as_ref(),
            DEFAULT_SESSION_IDLE_TIMEOUT,
        )?,
        max_connections: raw
            .max_connections
            .as_ref()
            .map_or(DEFAULT_MAX_CONNECTIONS, |v| to_u32(v.get())),
        header_read_timeout: positive_secs(
            "header_read_timeout_s",
            raw.header_read_timeout_s.as_ref(),
            DEFAULT_HEADER_READ_TIMEOUT,
        )?,
        auth: raw
            .auth
            .as_ref()
            .map(|a| auth(a, &base.key("auth"), r))
            .transpose()?,
    })
}

fn to_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn auth(raw: &RawAuth, base: &KeyPath, r: &Resolver<'_>) -> Result<AuthSpec, ConfigError> {
    let mut api_keys: Vec<ApiKeySpec> = Vec::new();
    for (i, k) in raw.api_keys.iter().flatten().enumerate() {
        let at = base.key("api_keys").index(i);
        if k.name.trim().is_empty() {
            return Err(r.invalid(&at.key("name"), "an API key needs a name (shown in logs)"));
        }
        if api_keys.iter().any(|other| other.name == k.name) {
            return Err(r.error_at_value(
                &at.key("name"),
                ConfigErrorKind::Duplicate,
                format!(
                    "a second API key named `{}`; names tell keys apart in logs and metrics",
                    k.name
                ),
            ));
        }
        let var = k.env.trim().trim_start_matches("${").trim_end_matches('}');
        let key = match r.env_var(var) {
            Some(key) if !key.trim().is_empty() => key,
            Some(_) => {
                return Err(r.error_at_value(
                    &at.key("env"),
                    ConfigErrorKind::Interpolation,
                    format!(
                        "environment variable `{var}` (API key `{}`) is empty; set it to the key",
                        k.name
                    ),
                ));
            }
            None => {
                return Err(r.error_at_value(
                    &at.key("env"),
                    ConfigErrorKind::Interpolation,
                    format!(
                        "environment variable `{var}` (API key `{}`) is not set; export it \
                         before starting the hangar, or remove the key",
                        k.name
                    ),
                ));
            }
        };
        api_keys.push(ApiKeySpec {
            name: k.name.clone(),
            env: var.to_owned(),
            digest: KeyDigest::of(key.trim()),
            tools: patterns(r, &at.key("tools"), k.tools.as_deref().unwrap_or_default())?,
            rate_limit: k.rate_limit.as_ref().map(rate_limit),
        });
    }
    let jwt = raw
        .jwt
        .as_ref()
        .map(|j| jwt(j, &base.key("jwt"), r))
        .transpose()?;
    if api_keys.is_empty() && jwt.is_none() {
        return Err(r.invalid(
            base,
            "`auth:` accepts no credentials: add `api_keys:` or `jwt:` (or remove `auth:`)",
        ));
    }
    Ok(AuthSpec {
        resource: raw
            .resource
            .as_ref()
            .map(|s| url(r, &base.key("resource"), s))
            .transpose()?,
        authorization_servers: raw
            .authorization_servers
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, s)| url(r, &base.key("authorization_servers").index(i), s))
            .collect::<Result<_, _>>()?,
        scopes_supported: plains(
            r,
            &base.key("scopes_supported"),
            raw.scopes_supported.as_deref().unwrap_or_default(),
        )?,
        protect_metrics: raw.protect_metrics.is_none_or(|f| f.0),
        api_keys,
        jwt,
    })
}

fn jwt(raw: &RawJwt, base: &KeyPath, r: &Resolver<'_>) -> Result<JwtSpec, ConfigError> {
    let algorithms = match &raw.algorithms {
        None => vec!["RS256".to_owned()],
        Some(list) => {
            for (i, a) in list.iter().enumerate() {
                if !JWT_ALGORITHMS.contains(&a.as_str()) {
                    return Err(r.invalid(
                        &base.key("algorithms").index(i),
                        format!(
                            "`{a}` is not an accepted algorithm; use one of {}",
                            JWT_ALGORITHMS.join(", ")
                        ),
                    ));
                }
            }
            list.clone()
        }
    };
    let audience = plains(r, &base.key("audience"), &raw.audience.0)?;
    if audience.is_empty() {
        return Err(r.invalid(
            &base.key("audience"),
            "tokens must be checked against an audience: write this hangar's resource URL",
        ));
    }
    Ok(JwtSpec {
        jwks_url: url(r, &base.key("jwks_url"), &raw.jwks_url)?,
        issuer: plain(r, &base.key("issuer"), &raw.issuer)?,
        audience,
        algorithms,
        jwks_min_refresh: raw
            .jwks_min_refresh_s
            .as_ref()
            .map_or(DEFAULT_JWKS_MIN_REFRESH, |s| {
                Duration::from_secs_f64(s.get())
            }),
        tools: patterns(
            r,
            &base.key("tools"),
            raw.tools.as_deref().unwrap_or_default(),
        )?,
        rate_limit: raw.rate_limit.as_ref().map(rate_limit),
    })
}

// ---------------------------------------------------------------------------------------------
// The normalised output
// ---------------------------------------------------------------------------------------------

fn texts(list: &[String]) -> Value {
    Value::Sequence(
        list.iter()
            .map(|s| Value::from(s.replace('$', "$$")))
            .collect(),
    )
}

fn limit(rl: Option<&RateLimitSpec>, map: &mut Mapping) {
    if let Some(rl) = rl {
        let mut m = Mapping::new();
        put(&mut m, "requests_per_second", rl.requests_per_second);
        put(&mut m, "burst", rl.burst);
        put(map, "rate_limit", Value::Mapping(m));
    }
}

/// `http:` with its effective values. API keys show the variable they come from, never the key.
pub(super) fn normalised(spec: &HttpServeSpec) -> Value {
    let mut out = Mapping::new();
    put(&mut out, "allowed_origins", texts(&spec.allowed_origins));
    put(&mut out, "allowed_hosts", texts(&spec.allowed_hosts));
    put(&mut out, "max_sessions", spec.max_sessions);
    put(
        &mut out,
        "session_idle_timeout_s",
        spec.session_idle_timeout.as_secs_f64(),
    );
    put(&mut out, "max_connections", spec.max_connections);
    put(
        &mut out,
        "header_read_timeout_s",
        spec.header_read_timeout.as_secs_f64(),
    );
    if let Some(a) = &spec.auth {
        let mut auth = Mapping::new();
        if let Some(resource) = &a.resource {
            put(&mut auth, "resource", resource.replace('$', "$$"));
        }
        put(
            &mut auth,
            "authorization_servers",
            texts(&a.authorization_servers),
        );
        put(&mut auth, "scopes_supported", texts(&a.scopes_supported));
        put(&mut auth, "protect_metrics", a.protect_metrics);
        let keys = a
            .api_keys
            .iter()
            .map(|k| {
                let mut m = Mapping::new();
                put(&mut m, "name", k.name.as_str());
                put(&mut m, "env", k.env.as_str());
                put(&mut m, "tools", texts(&k.tools));
                limit(k.rate_limit.as_ref(), &mut m);
                Value::Mapping(m)
            })
            .collect();
        put(&mut auth, "api_keys", Value::Sequence(keys));
        if let Some(j) = &a.jwt {
            let mut m = Mapping::new();
            put(&mut m, "jwks_url", j.jwks_url.replace('$', "$$"));
            put(&mut m, "issuer", j.issuer.replace('$', "$$"));
            put(&mut m, "audience", texts(&j.audience));
            put(&mut m, "algorithms", texts(&j.algorithms));
            put(
                &mut m,
                "jwks_min_refresh_s",
                j.jwks_min_refresh.as_secs_f64(),
            );
            put(&mut m, "tools", texts(&j.tools));
            limit(j.rate_limit.as_ref(), &mut m);
            put(&mut auth, "jwt", Value::Mapping(m));
        }
        put(&mut out, "auth", Value::Mapping(auth));
    }
    Value::Mapping(out)
}

#[cfg(test)]
mod tests {
    use super::super::{Config, ConfigError, ConfigErrorKind, testing};
    use super::*;

    const SERVERS: &str = "mcp_servers:\n  a: {command: [x]}\n";

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY_CI" => Some("s3cret-ci".to_owned()),
            "KEY_OPS" => Some("s3cret-ops".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn ok(text: &str) -> Config {
        testing::ok(text, "/etc/hangar/h.yaml", &env)
    }

    fn err(text: &str) -> ConfigError {
        testing::err(text, "/etc/hangar/h.yaml", &env)
    }

    #[test]
    fn without_the_section_the_face_is_open_on_loopback_with_default_bounds() {
        let c = ok(SERVERS);
        assert_eq!(c.http, HttpServeSpec::default());
        assert!(c.http.auth.is_none());
    }

    #[test]
    fn api_keys_are_read_from_the_environment_and_kept_as_digests() {
        let c = ok(&format!(
            "http:\n  allowed_origins: [\"https://app.example.com\"]\n  auth:\n    api_keys:\n      - {{name: ci, env: KEY_CI, tools: [\"a__*\"], rate_limit: {{requests_per_second: 2}}}}\n      - name: ops\n        env: KEY_OPS\n{SERVERS}"
        ));
        let auth = c.http.auth.as_ref().expect("auth");
        assert_eq!(auth.api_keys.len(), 2);
        assert_eq!(auth.api_keys[0].digest, KeyDigest::of("s3cret-ci"));
        assert_eq!(auth.api_keys[0].tools, ["a__*"]);
        assert_eq!(auth.api_keys[0].rate_limit.map(|r| r.burst), Some(2));
        assert!(auth.api_keys[1].tools.is_empty());
        assert!(auth.protect_metrics);
        let shown = c.to_redacted_yaml();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("env: KEY_CI"), "{shown}");
        let again = ok(&shown);
        assert_eq!(again.http, c.http);
    }

    #[test]
    fn a_missing_key_variable_names_the_variable_the_file_and_the_line() {
        let e = err(&format!(
            "http:\n  auth:\n    api_keys:\n      - name: ci\n        env: NOPE\n{SERVERS}"
        ));
        assert_eq!(
            (e.line, e.kind),
            (Some(5), ConfigErrorKind::Interpolation),
            "{e}"
        );
        let shown = e.to_string();
        assert!(shown.starts_with("/etc/hangar/h.yaml:5:"), "{shown}");
        assert!(shown.contains("`NOPE`"), "{shown}");
        assert!(shown.contains("http.auth.api_keys[0].env"), "{shown}");
        let e = err(&format!(
            "http:\n  auth:\n    api_keys:\n      - {{name: ci, env: EMPTY}}\n{SERVERS}"
        ));
        assert!(e.message.contains("is empty"), "{e}");
    }

    #[test]
    fn unknown_keys_bad_values_and_empty_auth_are_errors_at_their_line() {
        let e = err(&format!("http:\n  max_sesions: 3\n{SERVERS}"));
        assert_eq!(
            (e.line, e.kind),
            (Some(2), ConfigErrorKind::UnknownKey),
            "{e}"
        );
        assert!(e.message.contains("max_sessions"), "{e}");
        let e = err(&format!(
            "http:\n  allowed_origins: [app.example.com]\n{SERVERS}"
        ));
        assert_eq!(e.line, Some(2), "{e}");
        let e = err(&format!("http:\n  auth: {{}}\n{SERVERS}"));
        assert!(e.message.contains("no credentials"), "{e}");
        let e = err(&format!(
            "http:\n  auth:\n    jwt:\n      jwks_url: https://a.example/jwks\n      issuer: https://a.example\n      audience: x\n      algorithms: [HS256]\n{SERVERS}"
        ));
        assert_eq!(e.line, Some(7), "{e}");
        let e = err(&format!(
            "http:\n  auth:\n    api_keys:\n      - {{name: ci, env: KEY_CI, tools: [\"a[\"]}}\n{SERVERS}"
        ));
        assert_eq!(e.line, Some(4), "{e}");
        let e = err(&format!("http:\n  header_read_timeout_s: 0\n{SERVERS}"));
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn jwt_settings_load_with_defaults() {
        let c = ok(&format!(
            "http:\n  session_idle_timeout_s: 2.5\n  auth:\n    authorization_servers: [https://a.example]\n    jwt:\n      jwks_url: https://a.example/jwks\n      issuer: https://a.example\n      audience: [https://h.example/mcp]\n{SERVERS}"
        ));
        assert_eq!(c.http.session_idle_timeout, Duration::from_millis(2500));
        let j = c
            .http
            .auth
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .expect("jwt");
        assert_eq!(j.algorithms, ["RS256"]);
        assert_eq!(j.jwks_min_refresh, DEFAULT_JWKS_MIN_REFRESH);
        let again = ok(&c.to_redacted_yaml());
        assert_eq!(again.http, c.http);
    }
}
