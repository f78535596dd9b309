//! The HTTP side both remote transports share: one reqwest client per provider built from its
//! `RemoteSpec` (auth, TLS, timeouts, headers, connection reuse), the retry of requests that
//! never reached the server, and the words for what went wrong on the wire.
//!
//! Deliberately absent: retries of requests the server may have seen. Only a failed connect is
//! retried (`http.max_retries`), because a POST that reached the server may have run its tool.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Certificate, Identity, StatusCode, Url};

use super::super::{ExitSender, StartError};
use crate::config::{MaybeSecret, ProviderSpec, RemoteAuth, RemoteSpec, key_looks_secret};

/// What went wrong talking to a remote provider, worded for the person who configured it.
/// Never carries a credential or a URL's secret parts: `endpoint` is the shown form.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum RemoteError {
    #[error(
        "cannot connect to {endpoint}: {detail}; check that the server is running and that `endpoint` is right"
    )]
    Unreachable { endpoint: String, detail: String },
    #[error("TLS with {endpoint} failed: {detail}; {hint}")]
    Tls {
        endpoint: String,
        detail: String,
        hint: &'static str,
    },
    #[error("{endpoint} sent no answer within {secs}s (`http.read_timeout`)")]
    Timeout { endpoint: String, secs: f64 },
    #[error(
        "{endpoint} refused the request with HTTP {status}; the hangar sent {sent}; check the credentials under `auth:` and the variables they come from"
    )]
    Auth {
        endpoint: String,
        status: u16,
        sent: String,
    },
    #[error(
        "{endpoint} did not answer as an MCP server: {detail}; check that `endpoint` is the server's MCP URL (often …/mcp, or …/sse for `transport: sse`) and that `transport` matches it"
    )]
    NotMcp { endpoint: String, detail: String },
    #[error("{endpoint} no longer knows this MCP session (HTTP 404)")]
    SessionLost { endpoint: String },
    #[error("{0}")]
    Other(String),
}

/// One remote provider's HTTP client and what every request to it must honour.
pub(crate) struct Wire {
    pub client: reqwest::Client,
    /// The endpoint in clear, for requests only.
    pub endpoint: Url,
    /// The endpoint as it may be shown: no userinfo, no secret query.
    pub shown: String,
    /// Which credentials go with each request, for error messages (never the values).
    pub auth_sent: String,
    /// Longest wait for a server to start answering one request.
    pub read_timeout: Duration,
    max_retries: u32,
    backoff_factor: f64,
    exit: ExitSender,
    /// The first failure worth telling a person, kept for a start that fails.
    diagnosis: Mutex<Option<RemoteError>>,
    /// A request came back "session expired"; the next `initialize` re-creates the session.
    expired: AtomicBool,
}

impl Wire {
    /// Builds the client `remote` asks for. Reads the TLS files it names.
    pub fn new(
        spec: &ProviderSpec,
        remote: &RemoteSpec,
        exit: ExitSender,
    ) -> Result<Self, StartError> {
        let fail = |what: String| StartError::new(format!("provider `{}`: {what}", spec.id));
        let endpoint = Url::parse(remote.endpoint.expose()).map_err(|e| {
            fail(format!(
                "`endpoint` {} is not a URL: {e}",
                shown_endpoint(&remote.endpoint)
            ))
        })?;
        let mut headers = HeaderMap::new();
        for (name, value) in &remote.http.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| fail(format!("`http.headers.{name}` is not a header name: {e}")))?;
            let value = header_value(value, key_looks_secret(name.as_str()))
                .map_err(|e| fail(format!("`http.headers.{name}` {e}")))?;
            headers.insert(name, value);
        }
        // Credentials go on every request as default headers, so both transports and every
        // request rmcp makes (POST, GET stream, DELETE) carry them the same way.
        let auth_sent = match &remote.auth {
            RemoteAuth::None => "no credentials (`auth` is not set)".to_owned(),
            RemoteAuth::Bearer { token } => {
                let value = MaybeSecret::secret(format!("Bearer {}", token.expose()));
                headers.insert(
                    AUTHORIZATION,
                    header_value(&value, true).map_err(|e| fail(format!("`auth.token` {e}")))?,
                );
                "a bearer token in `Authorization`".to_owned()
            }
            RemoteAuth::Basic { username, password } => {
                let value = MaybeSecret::secret(format!(
                    "Basic {}",
                    base64(format!("{}:{}", username.expose(), password.expose()).as_bytes())
                ));
                headers.insert(
                    AUTHORIZATION,
                    header_value(&value, true)
                        .map_err(|e| fail(format!("`auth.username`/`auth.password` {e}")))?,
                );
                format!("basic auth for user `{}`", username.redacted())
            }
            RemoteAuth::ApiKey { header, key } => {
                let name = HeaderName::from_bytes(header.expose().as_bytes())
                    .map_err(|e| fail(format!("`auth.header` is not a header name: {e}")))?;
                headers.insert(
                    name,
                    header_value(key, true).map_err(|e| fail(format!("`auth.key` {e}")))?,
                );
                format!("an API key in `{}`", header.redacted())
            }
        };

        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(remote.http.connect_timeout)
            .user_agent(concat!("mcp-hangar/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry the credentials to wherever the server points.
            .redirect(reqwest::redirect::Policy::none());
        if !remote.http.keep_alive {
            builder = builder.pool_max_idle_per_host(0);
        }
        if !remote.tls.verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some(path) = &remote.tls.ca_cert {
            let pem = read_tls_file(path, "tls.ca_cert_path").map_err(fail)?;
            let certs = Certificate::from_pem_bundle(&pem).map_err(|e| {
                fail(format!(
                    "`tls.ca_cert_path` {} holds no PEM certificate: {e}",
                    path.redacted()
                ))
            })?;
            // As in the original: the named CA is the only trust anchor, so a private CA
            // cannot be bypassed by a public one.
            builder = builder.tls_certs_only(certs);
        }
        if let (Some(cert), Some(key)) = (&remote.tls.client_cert, &remote.tls.client_key) {
            let mut pem = read_tls_file(cert, "tls.client_cert").map_err(fail)?;
            pem.push(b'\n');
            pem.extend(read_tls_file(key, "tls.client_key").map_err(fail)?);
            let identity = Identity::from_pem(&pem).map_err(|e| {
                fail(format!(
                    "`tls.client_cert` {} and `tls.client_key` {} are not a PEM certificate and key: {e}",
                    cert.redacted(),
                    key.redacted()
                ))
            })?;
            builder = builder.identity(identity);
        }
        let client = builder
            .build()
            .map_err(|e| fail(format!("cannot build its HTTP client: {}", chain(&e))))?;
        Ok(Self {
            client,
            shown: shown_endpoint(&remote.endpoint),
            endpoint,
            auth_sent,
            read_timeout: remote.http.timeout,
            max_retries: remote.http.max_retries,
            backoff_factor: remote.http.retry_backoff_factor,
            exit,
            diagnosis: Mutex::new(None),
            expired: AtomicBool::new(false),
        })
    }

    /// Runs `send` (one request, up to its response head) within `http.read_timeout`, again
    /// after a backoff while it fails to connect, up to `http.max_retries` times: urllib3's
    /// `backoff_factor * 2^n` seconds, as the original's `retry_backoff_factor` meant.
    pub async fn attempt<T, E, F, Fut>(
        &self,
        mut send: F,
        unreached: impl Fn(&E) -> bool,
    ) -> Result<Result<T, E>, RemoteError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut retry = 0;
        loop {
            let outcome = match tokio::time::timeout(self.read_timeout, send()).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    return Err(RemoteError::Timeout {
                        endpoint: self.shown.clone(),
                        secs: self.read_timeout.as_secs_f64(),
                    });
                }
            };
            match outcome {
                Err(e) if unreached(&e) && retry < self.max_retries => {
                    let delay = self.backoff_factor * 2f64.powi(retry as i32);
                    tracing::debug!(endpoint = %self.shown, retry, "connect failed; retrying in {delay:.2}s");
                    tokio::time::sleep(Duration::try_from_secs_f64(delay).unwrap_or_default())
                        .await;
                    retry += 1;
                }
                outcome => return Ok(outcome),
            }
        }
    }

    /// Words a reqwest failure; a response status of 401/403 becomes [`RemoteError::Auth`].
    pub fn describe(&self, e: &reqwest::Error) -> RemoteError {
        let endpoint = self.shown.clone();
        if let Some(status) = e.status() {
            return self.status_error(status, String::new());
        }
        if e.is_timeout() {
            return RemoteError::Timeout {
                endpoint,
                secs: self.read_timeout.as_secs_f64(),
            };
        }
        let detail = chain(e);
        if let Some(tls) = tls_failure(e) {
            return RemoteError::Tls {
                endpoint,
                detail,
                hint: tls_hint(tls),
            };
        }
        if e.is_connect() {
            return RemoteError::Unreachable { endpoint, detail };
        }
        if e.is_decode() || e.is_body() {
            return RemoteError::NotMcp { endpoint, detail };
        }
        RemoteError::Other(format!("{endpoint}: {detail}"))
    }

    /// Words an HTTP status the transport cannot use; `body` is a short preview, if any.
    pub fn status_error(&self, status: StatusCode, body: String) -> RemoteError {
        let endpoint = self.shown.clone();
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RemoteError::Auth {
                endpoint,
                status: status.as_u16(),
                sent: self.auth_sent.clone(),
            },
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => RemoteError::NotMcp {
                endpoint,
                detail: format!("HTTP {status}"),
            },
            _ if body.is_empty() => {
                RemoteError::Other(format!("{endpoint} answered HTTP {status}"))
            }
            _ => RemoteError::Other(format!("{endpoint} answered HTTP {status}: {body}")),
        }
    }

    /// Keeps the first failure a person should read if the start fails, and the provider's end
    /// once it is unreachable for good.
    pub fn note(&self, error: &RemoteError) {
        let mut diagnosis = self.diagnosis.lock().unwrap_or_else(|e| e.into_inner());
        if diagnosis.is_none() {
            *diagnosis = Some(error.clone());
        }
        drop(diagnosis);
        if matches!(
            error,
            RemoteError::Unreachable { .. } | RemoteError::Tls { .. }
        ) {
            self.gone(error.to_string());
        }
    }

    /// What to tell a person about a start that failed, if the wire saw why.
    pub fn diagnosis(&self) -> Option<RemoteError> {
        self.diagnosis
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The provider is gone: resolves its [`super::super::Exit`] with `how`, once.
    pub fn gone(&self, how: String) {
        self.exit.send_if_modified(|end| {
            if end.is_some() {
                return false;
            }
            tracing::info!(endpoint = %self.shown, "remote session ended: {how}");
            *end = Some(how);
            true
        });
    }

    pub fn has_ended(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// A request came back "session expired" (HTTP 404 with our session id).
    pub fn mark_expired(&self) {
        if !self.expired.swap(true, Ordering::SeqCst) {
            tracing::info!(endpoint = %self.shown, "session expired (HTTP 404); re-initializing once");
        }
    }

    /// Whether an `initialize` now is the re-initialization after an expired session; clears
    /// the mark.
    pub fn take_expired(&self) -> bool {
        self.expired.swap(false, Ordering::SeqCst)
    }
}

/// The endpoint as it may be shown: without userinfo, without query parameters whose name looks
/// secret, and without any query at all when the whole endpoint came from a variable.
pub(crate) fn shown_endpoint(endpoint: &MaybeSecret) -> String {
    let Ok(mut url) = Url::parse(endpoint.expose()) else {
        return endpoint.redacted().to_owned();
    };
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_fragment(None);
    if endpoint.is_secret() {
        url.set_query(None);
    } else if url.query().is_some() {
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !key_looks_secret(k))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    url.to_string()
}

fn header_value(value: &MaybeSecret, sensitive: bool) -> Result<HeaderValue, String> {
    let mut header = HeaderValue::from_str(value.expose()).map_err(|_| {
        format!(
            "is not a valid header value ({}): it holds a control character or a line break",
            value.redacted()
        )
    })?;
    // Keeps it out of reqwest's and hyper's debug output.
    header.set_sensitive(sensitive || value.is_secret());
    Ok(header)
}

fn read_tls_file(path: &MaybeSecret, key: &str) -> Result<Vec<u8>, String> {
    std::fs::read(Path::new(path.expose()))
        .map_err(|e| format!("cannot read `{key}` {}: {e}", path.redacted()))
}

/// A failure and its causes, without the URL reqwest puts in its own text (it may hold a
/// secret query).
pub(crate) fn chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    // The innermost cause says most ("Connection refused", "invalid peer certificate: …");
    // the outer ones ("client error (Connect)") add little.
    parts.reverse();
    parts.truncate(2);
    parts.join(" (") + &")".repeat(parts.len().saturating_sub(1))
}

/// rustls' error somewhere under `e`, if TLS is what failed. The connector nests it in
/// `io::Error`s, whose `source()` skips the error they wrap, so each of those is opened by hand.
fn tls_failure(e: &reqwest::Error) -> Option<&rustls::Error> {
    fn within<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = within(inner)
        {
            return Some(tls);
        }
        error.source().and_then(within)
    }
    std::error::Error::source(e).and_then(within)
}

/// What to change for a TLS failure: the server's certificate is not trusted, or the server
/// wants ours.
fn tls_hint(error: &rustls::Error) -> &'static str {
    use rustls::AlertDescription as Alert;
    match error {
        rustls::Error::InvalidCertificate(_) => {
            "if its certificate comes from a private CA, set `tls.ca_cert_path` to that CA's PEM file (or `tls.verify_ssl: false` to skip the check, never in production)"
        }
        rustls::Error::AlertReceived(
            Alert::CertificateRequired
            | Alert::BadCertificate
            | Alert::UnknownCA
            | Alert::CertificateUnknown
            | Alert::CertificateExpired
            | Alert::CertificateRevoked
            | Alert::AccessDenied,
        ) => {
            "the server wants a client certificate it trusts: set `tls.client_cert` and `tls.client_key`"
        }
        _ => {
            "check the server's TLS setup, and `tls.verify_ssl`, `tls.ca_cert_path`, `tls.client_cert` in the config"
        }
    }
}

/// Standard base64 with padding, for the `Authorization: Basic` value (RFC 7617).
fn base64(input: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            assert_eq!(base64(input.as_bytes()), expected, "{input}");
        }
    }

    #[test]
    fn shown_endpoint_drops_userinfo_and_secret_query_parameters() {
        let plain =
            MaybeSecret::plain("https://alice:pw@api.example.com:8443/mcp?api_key=k&region=eu#x");
        assert_eq!(
            shown_endpoint(&plain),
            "https://api.example.com:8443/mcp?region=eu"
        );
        let only_secret = MaybeSecret::plain("http://h/mcp?token=abc");
        assert_eq!(shown_endpoint(&only_secret), "http://h/mcp");
        // From a variable: the query may be anything, so none of it is shown.
        let from_env = MaybeSecret::secret("http://u:p@h:1/sse?session=s");
        assert_eq!(shown_endpoint(&from_env), "http://h:1/sse");
    }
}
