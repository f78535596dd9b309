//! Reaching the container engine: which socket, and one negotiated client per socket.
//!
//! Docker and Podman both serve the Docker Engine API; bollard speaks it. The client is made
//! once per address and its API version lowered to the engine's (bollard asks for a newer API
//! than, say, Debian's Docker 20.10 serves, and an engine refuses a version it does not know).
//! A failed connection is not cached: the next start tries again, so a daemon started after the
//! hangar is picked up.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use bollard::Docker;

use crate::config::MaybeSecret;

/// How long the engine has to answer the version handshake. A live engine answers in
/// milliseconds; a wedged one must not hold a start (or the orphan sweep) for long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The per-request limit bollard applies to getting response headers. Long streams (attach,
/// wait, build output) are not bounded by it once their headers have arrived.
const REQUEST_TIMEOUT_S: u64 = 120;

const DOCKER_SOCKET: &str = "/var/run/docker.sock";
const PODMAN_ROOTFUL_SOCKET: &str = "/run/podman/podman.sock";

/// Where an engine listens: the URL connected to, and how it may be shown.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Address {
    url: String,
    shown: String,
}

impl Address {
    /// The provider's `socket:`, or the default: `DOCKER_HOST`, else the Docker socket, else
    /// Podman's rootless then rootful socket, else the Docker socket (so the error names it).
    pub(crate) fn of(configured: Option<&MaybeSecret>) -> Self {
        match configured {
            Some(socket) => Self {
                url: normalise(socket.expose()),
                shown: if socket.is_secret() {
                    socket.redacted().to_owned()
                } else {
                    normalise(socket.expose())
                },
            },
            None => Self::plain(default_url(
                std::env::var("DOCKER_HOST").ok().as_deref(),
                std::env::var("XDG_RUNTIME_DIR").ok().as_deref(),
                nix::unistd::geteuid().as_raw(),
                &|p| Path::new(p).exists(),
            )),
        }
    }

    fn plain(url: String) -> Self {
        Self {
            shown: url.clone(),
            url,
        }
    }

    /// The address as logs and errors may show it (`***` when it came from a secret).
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }
}

/// A path becomes a `unix://` URL; a URL stays as written.
fn normalise(socket: &str) -> String {
    if socket.contains("://") {
        socket.to_owned()
    } else {
        format!("unix://{socket}")
    }
}

fn default_url(
    docker_host: Option<&str>,
    xdg_runtime_dir: Option<&str>,
    uid: u32,
    exists: &dyn Fn(&str) -> bool,
) -> String {
    if let Some(host) = docker_host.filter(|h| !h.is_empty()) {
        return normalise(host);
    }
    let podman_rootless = [
        xdg_runtime_dir.map(|dir| format!("{dir}/podman/podman.sock")),
        Some(format!("/run/user/{uid}/podman/podman.sock")),
    ];
    std::iter::once(Some(DOCKER_SOCKET.to_owned()))
        .chain(podman_rootless)
        .chain([Some(PODMAN_ROOTFUL_SOCKET.to_owned())])
        .flatten()
        .find(|path| exists(path))
        .map_or_else(|| normalise(DOCKER_SOCKET), |path| normalise(&path))
}

static CLIENTS: LazyLock<Mutex<HashMap<String, Docker>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// A client for the engine at `address`, its API version agreed with the engine.
///
/// # Errors
///
/// A sentence naming the address, what went wrong and what to do.
pub(crate) async fn connect(address: &Address) -> Result<Docker, String> {
    let cached = CLIENTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&address.url)
        .cloned();
    if let Some(docker) = cached {
        return Ok(docker);
    }
    let docker = open(&address.url).map_err(|e| unreachable(address, &e))?;
    let docker = match tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version()).await {
        Ok(Ok(docker)) => docker,
        Ok(Err(e)) => return Err(unreachable(address, &e)),
        Err(_) => {
            return Err(format!(
                "the container engine at {} did not answer within {}s; check that it is \
                 healthy (`docker info`)",
                address.shown,
                CONNECT_TIMEOUT.as_secs()
            ));
        }
    };
    CLIENTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(address.url.clone(), docker.clone());
    Ok(docker)
}

fn open(url: &str) -> Result<Docker, bollard::errors::Error> {
    if url.starts_with("unix://") {
        Docker::connect_with_unix(url, REQUEST_TIMEOUT_S, bollard::API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_http(url, REQUEST_TIMEOUT_S, bollard::API_DEFAULT_VERSION)
    }
}

/// Why the engine at `address` cannot be reached, and what to do about it.
pub(crate) fn unreachable(address: &Address, error: &bollard::errors::Error) -> String {
    let why = match error {
        bollard::errors::Error::SocketNotFoundError(_) => "the socket does not exist".to_owned(),
        // bollard's own words ("Error in the hyper legacy client: client error (Connect)") hide
        // the one a person can act on, at the bottom of the chain ("Connection refused").
        other => deepest_cause(other),
    };
    format!(
        "cannot reach the container engine at {}: {why}; start Docker (`dockerd`) or Podman \
         (`systemctl --user start podman.socket`), or set the provider's `socket:` (or \
         DOCKER_HOST) to where the engine listens",
        address.shown
    )
}

fn deepest_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_wins_then_docker_then_podman_rootless_then_rootful() {
        let only = |present: &'static [&'static str]| move |p: &str| present.contains(&p);
        assert_eq!(
            default_url(
                Some("tcp://10.0.0.1:2375"),
                None,
                0,
                &only(&[DOCKER_SOCKET])
            ),
            "tcp://10.0.0.1:2375"
        );
        assert_eq!(
            default_url(Some("/tmp/d.sock"), None, 0, &only(&[])),
            "unix:///tmp/d.sock"
        );
        let all: &[&str] = &[
            DOCKER_SOCKET,
            "/run/user/1000/podman/podman.sock",
            "/xdg/podman/podman.sock",
            PODMAN_ROOTFUL_SOCKET,
        ];
        assert_eq!(
            default_url(None, Some("/xdg"), 1000, &|p| all.contains(&p)),
            "unix:///var/run/docker.sock"
        );
        assert_eq!(
            default_url(None, Some("/xdg"), 1000, &|p| all[1..].contains(&p)),
            "unix:///xdg/podman/podman.sock"
        );
        assert_eq!(
            default_url(None, None, 1000, &|p| all[1..].contains(&p)),
            "unix:///run/user/1000/podman/podman.sock"
        );
        assert_eq!(
            default_url(None, None, 1000, &|p| all[3..].contains(&p)),
            "unix:///run/podman/podman.sock"
        );
        assert_eq!(
            default_url(None, None, 1000, &only(&[])),
            "unix:///var/run/docker.sock",
            "nothing found: the error names the usual socket"
        );
    }

    #[test]
    fn a_secret_socket_is_connected_to_but_not_shown() {
        let secret = MaybeSecret::new("tcp://user:pw@engine:2375", true);
        let address = Address::of(Some(&secret));
        assert_eq!(address.url, "tcp://user:pw@engine:2375");
        assert_eq!(address.shown(), "***");
        let path = MaybeSecret::plain("/run/podman/podman.sock");
        assert_eq!(
            Address::of(Some(&path)).shown(),
            "unix:///run/podman/podman.sock"
        );
    }

    #[tokio::test]
    async fn a_socket_nobody_listens_on_is_reported_as_refused() {
        let path = std::env::temp_dir().join(format!("hangar-dead-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        // Bound and closed: the file stays, nothing accepts — a daemon that died.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap_or_else(|e| panic!("{e}")));
        let address = Address::plain(format!("unix://{}", path.display()));
        let outcome = connect(&address).await;
        let _ = std::fs::remove_file(&path);
        let Err(e) = outcome else {
            panic!("connected to a socket nobody listens on");
        };
        assert!(
            e.starts_with(&format!(
                "cannot reach the container engine at unix://{}: Connection refused",
                path.display()
            )),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_missing_socket_is_a_clear_error_and_is_not_cached() {
        let address = Address::plain("unix:///nonexistent/hangar-test.sock".into());
        let Err(e) = connect(&address).await else {
            panic!("connected to a socket that does not exist");
        };
        assert!(
            e.starts_with(
                "cannot reach the container engine at unix:///nonexistent/hangar-test.sock: \
                 the socket does not exist; start Docker"
            ),
            "{e}"
        );
        assert!(
            !CLIENTS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&address.url)
        );
    }
}
