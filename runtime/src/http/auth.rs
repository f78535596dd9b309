//! Who may use the HTTP face (`http.auth`): API keys and bearer JWTs, the 401 challenge that
//! points clients at the OAuth 2.0 Protected Resource Metadata (RFC 9728, as the MCP
//! authorization spec asks), that document itself, and each principal's rate limit.
//!
//! A key is sent as `Authorization: Bearer KEY` or `X-API-Key: KEY`; it is hashed and compared
//! against every configured digest in constant time. A bearer token that is not a known key
//! and looks like a JWT goes to [`JwtVerifier`]. The [`Principal`] found travels to the
//! gateway in the request's extensions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::bounds::{HttpStats, Rejection};
use super::jwt::JwtVerifier;
use crate::access::Principal;
use crate::config::{AuthSpec, KeyDigest, RateLimitSpec};
use crate::registry::RateLimit;

/// The path of the metadata document (RFC 9728 §3); also served with `/mcp` appended.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// JSON-RPC error code of a request refused by a principal's rate limit.
const RATE_LIMITED: i64 = -32029;

/// Subjects a JWT rate limit keeps buckets for before it starts over (a bound on memory
/// whatever the issuer signs).
const MAX_SUBJECTS: usize = 10_000;

struct Key {
    digest: KeyDigest,
    principal: Arc<Principal>,
    limit: Option<RateLimit>,
}

/// Checks credentials and rate limits for the protected paths.
pub struct Authenticator {
    spec: AuthSpec,
    keys: Vec<Key>,
    jwt: Option<JwtVerifier>,
    /// Per JWT subject, when `jwt.rate_limit` is set.
    subjects: Mutex<HashMap<String, Arc<RateLimit>>>,
    stats: Arc<HttpStats>,
}

/// Why a request got no principal.
pub enum Refusal {
    /// No credentials at all.
    Missing,
    /// Credentials that did not check out, and why (no secret in it).
    Invalid(String),
}

impl Authenticator {
    pub fn new(spec: &AuthSpec, stats: Arc<HttpStats>) -> Arc<Self> {
        let keys = spec
            .api_keys
            .iter()
            .map(|k| Key {
                digest: k.digest,
                principal: Principal::new(format!("api_key:{}", k.name), &k.tools),
                limit: k.rate_limit.as_ref().map(RateLimit::new),
            })
            .collect();
        let jwt = spec.jwt.as_ref().map(JwtVerifier::new);
        Arc::new(Self {
            spec: spec.clone(),
            keys,
            jwt,
            subjects: Mutex::new(HashMap::new()),
            stats,
        })
    }

    /// Fetches the JWKS before the first token arrives (a failure is logged; the next token
    /// with an unknown `kid` fetches again).
    pub async fn warm(&self) {
        if let Some(jwt) = &self.jwt {
            jwt.warm().await;
        }
    }

    /// The credentials a request carries: a bearer token, else an `X-API-Key`.
    fn credentials(headers: &HeaderMap) -> Option<&str> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
        bearer.or_else(|| {
            headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
    }

    /// The principal of a request, or why there is none.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Principal>, Refusal> {
        let Some(presented) = Self::credentials(headers).filter(|c| !c.is_empty()) else {
            return Err(Refusal::Missing);
        };
        let digest = KeyDigest::of(presented);
        // Every digest is compared, so the time taken does not say which key came close.
        let mut found = None;
        for (i, key) in self.keys.iter().enumerate() {
            if bool::from(key.digest.0.ct_eq(&digest.0)) {
                found = Some(i);
            }
        }
        if let Some(i) = found {
            return Ok(self.keys[i].principal.clone());
        }
        match &self.jwt {
            Some(jwt) if presented.matches('.').count() == 2 => {
                let subject = jwt.verify(presented).await.map_err(Refusal::Invalid)?;
                let tools = self.spec.jwt.as_ref().map(|j| j.tools.as_slice());
                Ok(Principal::new(
                    format!("jwt:{subject}"),
                    tools.unwrap_or_default(),
                ))
            }
            _ => Err(Refusal::Invalid(
                "the credentials match no API key of this hangar".to_owned(),
            )),
        }
    }

    /// Takes a token from the principal's bucket, or says how long until one is free.
    fn check_rate(&self, principal: &Principal) -> Result<(), (Duration, RateLimitSpec)> {
        if let Some(key) = self
            .keys
            .iter()
            .find(|k| std::ptr::eq(Arc::as_ptr(&k.principal), principal))
        {
            return match &key.limit {
                Some(limit) => limit.check().map_err(|wait| (wait, limit.spec())),
                None => Ok(()),
            };
        }
        let Some(spec) = self.spec.jwt.as_ref().and_then(|j| j.rate_limit) else {
            return Ok(());
        };
        let limit = {
            let mut subjects = self.subjects.lock().unwrap_or_else(|e| e.into_inner());
            if subjects.len() >= MAX_SUBJECTS && !subjects.contains_key(principal.name()) {
                subjects.clear();
            }
            subjects
                .entry(principal.name().to_owned())
                .or_insert_with(|| Arc::new(RateLimit::new(&spec)))
                .clone()
        };
        limit.check().map_err(|wait| (wait, spec))
    }

    /// Where the hangar is reached, for the metadata URL: `resource`'s scheme and authority
    /// when configured, else the request's `Host` over plain HTTP.
    fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(resource) = &self.spec.resource {
            let after_scheme = resource.find("://").map_or(0, |i| i + 3);
            let end = resource[after_scheme..]
                .find('/')
                .map_or(resource.len(), |i| after_scheme + i);
            return resource[..end].to_owned();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("localhost");
        format!("http://{host}")
    }

    /// The RFC 9728 document.
    pub fn metadata(&self, headers: &HeaderMap) -> Value {
        let resource = self
            .spec
            .resource
            .clone()
            .unwrap_or_else(|| format!("{}/mcp", self.base_url(headers)));
        let mut doc = json!({
            "resource": resource,
            "authorization_servers": self.spec.authorization_servers,
            "bearer_methods_supported": ["header"],
            "resource_name": "MCP Hangar",
        });
        if !self.spec.scopes_supported.is_empty() {
            doc["scopes_supported"] = json!(self.spec.scopes_supported);
        }
        doc
    }

    /// 401 with the challenge MCP clients follow to the metadata document.
    pub fn unauthorized(&self, headers: &HeaderMap, refusal: &Refusal) -> Response {
        let mut challenge = format!(
            "Bearer resource_metadata=\"{}{METADATA_PATH}\"",
            self.base_url(headers)
        );
        if !self.spec.scopes_supported.is_empty() {
            challenge.push_str(&format!(
                ", scope=\"{}\"",
                self.spec.scopes_supported.join(" ")
            ));
        }
        let (error, description) = match refusal {
            Refusal::Missing => {
                self.stats.reject(Rejection::Unauthenticated);
                (
                    "invalid_request",
                    "this hangar needs credentials: send `Authorization: Bearer <API key or token>`"
                        .to_owned(),
                )
            }
            Refusal::Invalid(why) => {
                self.stats.reject(Rejection::InvalidToken);
                let why: String = why.chars().filter(|c| *c != '"' && *c != '\\').collect();
                challenge.push_str(&format!(
                    ", error=\"invalid_token\", error_description=\"{why}\""
                ));
                ("invalid_token", why)
            }
        };
        let mut response = (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": error, "error_description": description})),
        )
            .into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }

    /// Authenticates `request` (and, for a POST to /mcp, takes from its rate limit); the
    /// principal goes into its extensions. `Err` is the response to send instead.
    pub async fn admit(
        &self,
        request: &mut Request<Body>,
        rate_limited: bool,
    ) -> Result<(), Response> {
        let principal = match self.authenticate(request.headers()).await {
            Ok(p) => p,
            Err(refusal) => {
                tracing::debug!(
                    "refused {} {}: {}",
                    request.method(),
                    request.uri().path(),
                    match &refusal {
                        Refusal::Missing => "no credentials",
                        Refusal::Invalid(why) => why,
                    }
                );
                return Err(self.unauthorized(request.headers(), &refusal));
            }
        };
        if rate_limited
            && request.method() == Method::POST
            && let Err((wait, spec)) = self.check_rate(&principal)
        {
            self.stats.reject(Rejection::RateLimited);
            return Err(too_many_requests(&principal, wait, spec));
        }
        request.extensions_mut().insert(principal);
        Ok(())
    }
}

/// 429 with `Retry-After` and a JSON-RPC error that says when to retry.
fn too_many_requests(principal: &Principal, wait: Duration, spec: RateLimitSpec) -> Response {
    let secs = wait.as_secs_f64();
    let message = format!(
        "rate limited: `{}` may send {} request(s) per second (burst {}); retry in {secs:.2} s",
        principal.name(),
        spec.requests_per_second,
        spec.burst
    );
    let body = json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {
            "code": RATE_LIMITED,
            "message": message,
            "data": {"retry_after_ms": u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)},
        },
    });
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
    response
}
