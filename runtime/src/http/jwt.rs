//! Bearer JWTs: the signing keys from the configured JWKS URL (cached; fetched again when a
//! token names a `kid` the cache lacks, at most once per `jwks_min_refresh_s`, and when the
//! cache is older than an hour), then signature, expiry, issuer and audience checked by
//! `jsonwebtoken`.
//!
//! Deliberately absent: a lock held while the JWKS is fetched. The set is swapped whole
//! (`ArcSwap`); the fetch is claimed by moving the last-fetch time forward, so concurrent
//! requests with the same unknown `kid` cause one fetch, and those that lose the race are
//! answered from the set as it is.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::JwtSpec;

/// A cache older than this is refreshed on the next token, whatever its `kid`.
const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);
/// How long one JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The claims the hangar reads; the rest are `jsonwebtoken`'s checks.
#[derive(Deserialize)]
struct Claims {
    sub: String,
}

pub struct JwtVerifier {
    spec: JwtSpec,
    algorithms: Vec<Algorithm>,
    keys: ArcSwap<JwkSet>,
    /// Milliseconds since `epoch` of the last fetch attempt; 0: never.
    fetched_at_ms: AtomicU64,
    epoch: Instant,
    http: reqwest::Client,
}

impl JwtVerifier {
    pub fn new(spec: &JwtSpec) -> Self {
        let algorithms = spec
            .algorithms
            .iter()
            .filter_map(|a| Algorithm::from_str(a).ok())
            .collect();
        Self {
            spec: spec.clone(),
            algorithms,
            keys: ArcSwap::from_pointee(JwkSet { keys: Vec::new() }),
            fetched_at_ms: AtomicU64::new(0),
            // Far enough back that the first fetch is never "too soon".
            epoch: Instant::now()
                .checked_sub(Duration::from_secs(86_400))
                .unwrap_or_else(Instant::now),
            http: reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .build()
                .unwrap_or_default(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Fetches the JWKS if the last attempt is at least `floor` old and no other request
    /// claimed this fetch; `true` when the set was replaced.
    async fn refresh(&self, floor: Duration) -> bool {
        let now = self.now_ms();
        let last = self.fetched_at_ms.load(Ordering::Acquire);
        let floor_ms = u64::try_from(floor.as_millis()).unwrap_or(u64::MAX);
        if last != 0 && now.saturating_sub(last) < floor_ms {
            return false;
        }
        if self
            .fetched_at_ms
            .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        match self.fetch().await {
            Ok(set) => {
                tracing::info!(
                    "fetched {} signing key(s) from {}",
                    set.keys.len(),
                    self.spec.jwks_url
                );
                self.keys.store(Arc::new(set));
                true
            }
            Err(e) => {
                tracing::warn!("could not fetch the JWKS from {}: {e}", self.spec.jwks_url);
                false
            }
        }
    }

    async fn fetch(&self) -> Result<JwkSet, String> {
        let response = self
            .http
            .get(&self.spec.jwks_url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        response
            .json::<JwkSet>()
            .await
            .map_err(|e| format!("not a JWKS: {e}"))
    }

    /// Fetches the keys ahead of the first token (errors are logged; tokens fetch again).
    pub async fn warm(&self) {
        self.refresh(Duration::ZERO).await;
    }

    /// The token's subject when it is valid; otherwise why not, in words a client can act on
    /// (never the token).
    pub async fn verify(&self, token: &str) -> Result<String, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("not a JWT: {e}"))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(format!(
                "algorithm {:?} is not accepted here (accepted: {})",
                header.alg,
                self.spec.algorithms.join(", ")
            ));
        }
        let age = self
            .now_ms()
            .saturating_sub(self.fetched_at_ms.load(Ordering::Acquire));
        if age > u64::try_from(JWKS_MAX_AGE.as_millis()).unwrap_or(u64::MAX) {
            self.refresh(self.spec.jwks_min_refresh).await;
        }
        let key = match self.key(header.kid.as_deref()) {
            Some(key) => key,
            None => {
                self.refresh(self.spec.jwks_min_refresh).await;
                self.key(header.kid.as_deref()).ok_or_else(|| {
                    format!(
                        "no signing key `{}` at the issuer's JWKS",
                        header.kid.as_deref().unwrap_or("(no kid)")
                    )
                })?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.algorithms = self.algorithms.clone();
        validation.set_issuer(&[self.spec.issuer.as_str()]);
        validation.set_audience(&self.spec.audience);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| format!("token refused: {e}"))?;
        Ok(data.claims.sub)
    }

    /// The key for `kid` (or the only key, for a token without one).
    fn key(&self, kid: Option<&str>) -> Option<DecodingKey> {
        let set = self.keys.load();
        let jwk = match kid {
            Some(kid) => set.find(kid)?,
            None if set.keys.len() == 1 => set.keys.first()?,
            None => return None,
        };
        DecodingKey::from_jwk(jwk).ok()
    }
}
