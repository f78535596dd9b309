//! Shared pieces of the end-to-end tests: locate the real binaries, write configs, start the
//! hangar over stdio or HTTP with a real rmcp client, count processes, install the Python SDK.
//!
//! The binaries are the ones `cargo test --workspace` builds next to the test executables
//! (`target/debug/mcp-hangar`, `target/debug/example-provider`): both packages have
//! integration tests of their own, so cargo builds them fresh before any test runs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
};
use rmcp::service::{NotificationContext, RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ServiceExt};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

pub mod engine;
pub mod latency;
pub mod otlp;

/// `target/<profile>` of the running test executable (`target/<profile>/deps/<test>`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Makes sure the binaries under test are current. Under `cargo test --workspace` they already
/// are and this is a no-op; under `cargo test -p hangar-tests` it rebuilds what changed, with the
/// same features the workspace test build uses, so nothing is compiled twice.
fn ensure_built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["test", "--workspace", "--no-run", "--quiet"])
            .current_dir(workspace_root())
            .status()
            .expect("run cargo to build the binaries under test");
        assert!(status.success(), "building the binaries under test failed");
    });
}

fn built(name: &str) -> PathBuf {
    ensure_built();
    let path = profile_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` so cargo builds it",
        path.display()
    );
    path
}

pub fn hangar_bin() -> PathBuf {
    built("mcp-hangar")
}

pub fn provider_bin() -> PathBuf {
    built("example-provider")
}

/// A scratch directory removed when dropped.
pub struct TestDir(PathBuf);

impl TestDir {
    pub fn new(label: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hangar-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create test dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).expect("write test file");
        p
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `XDG_DATA_HOME` the harness gives a hangar serving `config`: beside the config, so the
/// hangar's event store (by default under the XDG data directory) never lands in the real
/// home and no two tests share one.
pub fn data_home(config: &Path) -> PathBuf {
    config
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("xdg-data")
}

/// The event store a hangar started by the harness with `config` writes by default.
pub fn default_event_db(config: &Path) -> PathBuf {
    data_home(config).join("mcp-hangar/events.db")
}

/// A token unique to this test, put on provider command lines so their processes can be counted.
pub fn unique_token(label: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    // Distinct from TestDir names, which end up on the hangar's own command line.
    format!(
        "tok-{label}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Live processes (zombies excluded) whose command line contains `token`.
pub fn count_processes(token: &str) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // Field 3, after the parenthesised command name, is the state; Z is a zombie.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next());
            if state == Some("Z") || stat.is_empty() {
                return false;
            }
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(token))
                .unwrap_or(false)
        })
        .count()
}

/// Polls an async check every 100 ms until it returns Some or `timeout` passes.
pub async fn wait_until_async<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `check` every 20 ms until it holds or `timeout` passes.
pub async fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A provider whose start is wrapped in `sh`: each start appends a timestamp (seconds since the
/// epoch) to `<dir>/<id>.starts`, and the start fails with status 3 while `<dir>/<id>.down`
/// exists. Lets a test make a provider unstartable and see when the hangar tried.
pub fn flaky_provider_yaml(
    dir: &TestDir,
    id: &str,
    token: &str,
    extra_args: &[&str],
    extra_yaml: &str,
) -> String {
    let base = dir.path().join(id);
    let script = format!(
        "date +%s.%N >> '{b}.starts'; if [ -e '{b}.down' ]; then echo 'down by test' >&2; exit 3; fi; exec '{p}' --name {token} {args}",
        b = base.display(),
        p = provider_bin().display(),
        args = extra_args.join(" ")
    );
    let mut s = format!(
        "  {id}:\n    command: [sh, -c, {}]\n",
        serde_json::to_string(&script).unwrap_or_default()
    );
    for line in extra_yaml.lines().filter(|l| !l.trim().is_empty()) {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// The start times written by a [`flaky_provider_yaml`] provider.
pub fn start_times(dir: &TestDir, id: &str) -> Vec<f64> {
    std::fs::read_to_string(dir.path().join(format!("{id}.starts")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// A provider entry for a config: the example provider with `--name <token>` and extra flags.
pub fn provider_yaml(id: &str, token: &str, extra_args: &[&str], extra_yaml: &str) -> String {
    let mut args = vec![
        format!("\"{}\"", provider_bin().display()),
        "--name".into(),
        format!("\"{token}\""),
    ];
    args.extend(extra_args.iter().map(|a| format!("\"{a}\"")));
    let mut s = format!("  {id}:\n    command: [{}]\n", args.join(", "));
    for line in extra_yaml.lines().filter(|l| !l.trim().is_empty()) {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// Counts `notifications/tools/list_changed` the hangar sends and keeps the progress messages.
#[derive(Clone, Default)]
pub struct TestClient {
    pub list_changed: Arc<AtomicUsize>,
    pub progress: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ClientHandler for TestClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("hangar-e2e", "0"),
        )
        .with_protocol_version(rmcp::model::ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.list_changed.fetch_add(1, Ordering::SeqCst);
    }

    async fn on_progress(
        &self,
        params: rmcp::model::ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(params.message.unwrap_or_default());
    }
}

/// The hangar served over stdio to an rmcp client.
pub struct Hangar {
    pub client: RunningService<RoleClient, TestClient>,
    pub handler: TestClient,
    pub pid: u32,
    pub log: PathBuf,
}

impl Hangar {
    /// Starts `mcp-hangar serve --config <config>`; its log goes to `<config>.log`.
    pub async fn stdio(config: &Path) -> Result<Self> {
        Self::stdio_with_env(config, &[]).await
    }

    /// As [`Hangar::stdio`], with `env` added to the hangar's environment.
    pub async fn stdio_with_env(config: &Path, env: &[(&str, &str)]) -> Result<Self> {
        let log = config.with_extension("log");
        let log_file = std::fs::File::create(&log)?;
        let mut cmd = Command::new(hangar_bin());
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .env("XDG_DATA_HOME", data_home(config))
            .envs(env.iter().copied());
        let (transport, _) = TokioChildProcess::builder(cmd)
            .stderr(Stdio::from(log_file))
            .spawn()
            .context("spawn mcp-hangar")?;
        let pid = transport.id().ok_or_else(|| anyhow!("no pid"))?;
        let handler = TestClient::default();
        let client =
            handler.clone().serve(transport).await.with_context(|| {
                format!("MCP handshake with the hangar; log:\n{}", read_log(&log))
            })?;
        Ok(Self {
            client,
            handler,
            pid,
            log,
        })
    }

    /// A hangar serving one provider `math` (the example provider with `extra_args`, and
    /// `extra_yaml` added to its spec). Keep the directory alive as long as the hangar.
    pub async fn one_provider(
        label: &str,
        extra_args: &[&str],
        extra_yaml: &str,
    ) -> Result<(TestDir, Self)> {
        let dir = TestDir::new(label);
        let token = unique_token(label);
        let cfg = dir.write(
            "h.yaml",
            &format!(
                "providers:\n{}",
                provider_yaml("math", &token, extra_args, extra_yaml)
            ),
        );
        let hangar = Self::stdio(&cfg).await?;
        Ok((dir, hangar))
    }

    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    pub async fn call(&self, name: &str, args: Value) -> Result<CallToolResult> {
        call(&self.client, name, args).await
    }

    /// Calls a tool that must succeed and returns its structured content.
    pub async fn call_ok(&self, name: &str, args: Value) -> Result<Value> {
        let r = self.call(name, args.clone()).await?;
        if r.is_error == Some(true) {
            bail!("{name}({args}) failed: {}", text(&r));
        }
        r.structured_content
            .clone()
            .or_else(|| serde_json::from_str(&text(&r)).ok())
            .ok_or_else(|| anyhow!("{name} returned no JSON: {}", text(&r)))
    }

    pub async fn tool_names(&self) -> Result<Vec<String>> {
        tool_names(&self.client).await
    }

    pub fn list_changed_count(&self) -> usize {
        self.handler.list_changed.load(Ordering::SeqCst)
    }
}

/// Plugin `name` as `registry_plugins` reports it.
pub async fn plugin_status(hangar: &Hangar, name: &str) -> Result<Value> {
    let all = hangar
        .call_ok("registry_plugins", serde_json::json!({}))
        .await?;
    all["plugins"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .cloned()
        .ok_or_else(|| anyhow!("registry_plugins does not list `{name}`: {all}"))
}

pub async fn call(
    client: &RunningService<RoleClient, TestClient>,
    name: &str,
    args: Value,
) -> Result<CallToolResult> {
    let mut params = CallToolRequestParams::new(name.to_string());
    if let Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    Ok(client.peer().call_tool(params).await?)
}

pub async fn tool_names(client: &RunningService<RoleClient, TestClient>) -> Result<Vec<String>> {
    // Fresh from the server: the client's cache is bypassed by listing through a new request.
    let tools = client.peer().list_all_tools().await?;
    Ok(tools.into_iter().map(|t| t.name.to_string()).collect())
}

/// All text content of a result, joined.
pub fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The hangar serving streamable HTTP on a free port.
pub struct HttpHangar {
    pub child: tokio::process::Child,
    pub base: String,
    pub log: PathBuf,
}

impl HttpHangar {
    pub async fn start(config: &Path) -> Result<Self> {
        Self::start_with_args(config, &[]).await
    }

    /// As [`HttpHangar::start`], with `args` added to `serve`'s command line.
    pub async fn start_with_args(config: &Path, args: &[&str]) -> Result<Self> {
        Self::start_with_env(config, args, &[]).await
    }

    /// As [`HttpHangar::start_with_args`], with `env` added to the hangar's environment.
    pub async fn start_with_env(
        config: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let log = config.with_extension("log");
        let mut child = Command::new(hangar_bin())
            .args(["serve", "--http", "--port", "0"])
            .args(args)
            .envs(env.iter().copied())
            .arg("--config")
            .arg(config)
            .env("XDG_DATA_HOME", data_home(config))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = String::new();
        let base = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await? {
                seen.push_str(&line);
                seen.push('\n');
                if let Some(rest) = line.split("streamable HTTP at ").nth(1) {
                    let url = rest.trim().trim_end_matches("/mcp").to_string();
                    return Ok::<_, anyhow::Error>(url);
                }
            }
            bail!("hangar exited before listening:\n{seen}")
        })
        .await
        .map_err(|_| anyhow!("hangar did not listen within 20 s"))??;
        // Keep draining the log so the hangar never blocks on a full pipe.
        let log_path = log.clone();
        tokio::spawn(async move {
            let mut f = std::fs::File::create(&log_path).ok();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(f) = f.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
            }
        });
        Ok(Self { child, base, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    pub async fn client(&self) -> Result<RunningService<RoleClient, TestClient>> {
        let transport =
            rmcp::transport::StreamableHttpClientTransport::from_uri(format!("{}/mcp", self.base));
        Ok(TestClient::default().serve(transport).await?)
    }
}

/// Sends SIGTERM to `pid`.
pub fn sigterm(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
}

/// A Python with the official MCP SDK (`mcp` from PyPI), in a venv under `target/`, created on
/// first use. Returns the interpreter path.
pub fn python_with_mcp() -> Result<PathBuf> {
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PY.get_or_init(|| {
        let venv = profile_dir().join("py-mcp-sdk");
        let py = venv.join("bin/python");
        let req = workspace_root().join("tests/requirements.txt");
        let marker = venv.join(".installed");
        let wanted = std::fs::read_to_string(&req).map_err(|e| e.to_string())?;
        if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
            return Ok(py);
        }
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let run = |cmd: &mut std::process::Command| -> Result<(), String> {
            let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{cmd:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        };
        run(std::process::Command::new(&python)
            .args(["-m", "venv"])
            .arg(&venv))?;
        run(std::process::Command::new(&py)
            .args(["-m", "pip", "install", "-q", "-r"])
            .arg(&req))?;
        std::fs::write(&marker, wanted).map_err(|e| e.to_string())?;
        Ok(py)
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// Builds the release binaries for a benchmark and returns their directory.
pub fn release_binaries() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "mcp-hangar",
            "-p",
            "hangar-example-provider",
        ])
        .current_dir(workspace_root())
        .status()?;
    if !status.success() {
        bail!("release build failed");
    }
    Ok(std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"))
        .join("release"))
}

/// Real MCP peers from npm for the remote backend's tests, installed under `target/` on first
/// use from the versions pinned in `tests/npm/package.json`.
pub struct NpmPackages {
    /// The directory holding `node_modules`: a script placed here imports these packages.
    pub prefix: PathBuf,
    /// Node 22 (the conformance suite needs it; the machine's own Node may be older).
    pub node: PathBuf,
    /// `@modelcontextprotocol/conformance`'s CLI script.
    pub conformance: PathBuf,
    /// `@modelcontextprotocol/server-everything`'s launcher script.
    pub everything: PathBuf,
}

pub fn npm_packages() -> Result<NpmPackages> {
    static NPM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let prefix = NPM
        .get_or_init(|| {
            let prefix = profile_dir().join("npm-remote");
            let wanted = std::fs::read_to_string(workspace_root().join("tests/npm/package.json"))
                .map_err(|e| format!("tests/npm/package.json: {e}"))?;
            let marker = prefix.join(".installed");
            if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
                return Ok(prefix);
            }
            std::fs::create_dir_all(&prefix).map_err(|e| e.to_string())?;
            std::fs::write(prefix.join("package.json"), &wanted).map_err(|e| e.to_string())?;
            let out = std::process::Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&prefix)
                .output()
                .map_err(|e| format!("cannot run npm (Node.js must be installed): {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "npm install in {} failed: {}",
                    prefix.display(),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            std::fs::write(&marker, wanted).map_err(|e| e.to_string())?;
            Ok(prefix)
        })
        .clone()
        .map_err(|e| anyhow!(e))?;
    let modules = prefix.join("node_modules");
    let packages = NpmPackages {
        prefix: prefix.clone(),
        node: modules.join("node/bin/node"),
        conformance: modules.join("@modelcontextprotocol/conformance/dist/index.js"),
        everything: modules.join("@modelcontextprotocol/server-everything/dist/index.js"),
    };
    for path in [&packages.node, &packages.conformance, &packages.everything] {
        if !path.exists() {
            bail!("{} is missing after npm install", path.display());
        }
    }
    Ok(packages)
}
