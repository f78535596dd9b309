//! `example-provider`: a deterministic MCP server for the hangar's end-to-end tests, chaos
//! tests and benchmarks. Its command line switches on the misbehaviours those tests need
//! (crashing at start, noise on stdout, hanging, injected failures).
//!
//! Invariant: stdout carries only MCP traffic, except where a flag asks for something else
//! (`--garbage-stdout`, the `--http` address line). Diagnostics go to stderr.

mod provider;
mod transport;

use std::{
    io::Write,
    net::SocketAddr,
    num::{NonZeroU64, NonZeroUsize},
    process::ExitCode,
};

use clap::Parser;
use nix::sys::signal::{SigHandler, Signal};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::provider::{Provider, Settings};

/// Environment variable holding a tracing filter (for example `debug` or `rmcp=trace`).
/// Not `RUST_LOG`: a test run that sets `RUST_LOG` for the hangar would otherwise flood the
/// stderr that tests capture from this provider.
const LOG_ENV: &str = "EXAMPLE_PROVIDER_LOG";

/// A deterministic MCP server for testing and benchmarking MCP gateways.
#[derive(Debug, Parser)]
#[command(name = "example-provider", version)]
struct Cli {
    /// Server name reported in serverInfo.
    #[arg(long, value_name = "NAME", default_value = "example-provider")]
    name: String,

    /// Print N lines `example-provider stderr line <i>` (i = 1..=N) to stderr at start.
    #[arg(long, value_name = "N", default_value_t = 0)]
    stderr_lines: usize,

    /// Print `fatal: exiting at start with code CODE` to stderr and exit with CODE.
    #[arg(long, value_name = "CODE", allow_negative_numbers = true)]
    exit_at_start: Option<i32>,

    /// Write a few lines that are not JSON-RPC to stdout before serving.
    #[arg(long, conflicts_with = "http")]
    garbage_stdout: bool,

    /// Every Nth tools/call (counting all tools) returns isError `injected failure <k>`,
    /// k being the call's ordinal, without running the tool.
    #[arg(long, value_name = "N")]
    fail_every: Option<NonZeroU64>,

    /// Read stdin but never answer anything; exit at EOF.
    #[arg(long, conflicts_with = "http")]
    hang_on_initialize: bool,

    /// Also offer N generated tools `tool_0` .. `tool_{N-1}` that echo their arguments.
    #[arg(long, value_name = "N", default_value_t = 0)]
    extra_tools: usize,

    /// Answer tools/list in pages of N tools (the cursor is the offset of the next page).
    #[arg(long, value_name = "N")]
    page_size: Option<NonZeroUsize>,

    /// Every Nth tools/call (counting all tools) makes the process exit with status 3 without
    /// answering.
    #[arg(long, value_name = "N")]
    crash_every: Option<NonZeroU64>,

    /// Ignore SIGTERM and stay alive after stdin EOF: a provider that only SIGKILL stops, for
    /// testing a gateway's shutdown escalation.
    #[arg(long)]
    stubborn: bool,

    /// Speak only the handshake-era revisions (2024-11-05 … 2025-11-25): a `server/discover`
    /// probe is refused as an unsupported version, so clients fall back to `initialize` (and,
    /// over HTTP, to a session with an id).
    #[arg(long)]
    handshake_only: bool,

    /// Serve streamable HTTP at /mcp on ADDR (e.g. 127.0.0.1:0) instead of stdio; the first
    /// stdout line is `listening on http://HOST:PORT/mcp`.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,

    /// With --http: answer 401 to any request without header NAME set to exactly VALUE
    /// (repeatable; `Authorization: Bearer abc` also gets a `WWW-Authenticate: Bearer`
    /// challenge). Lets a gateway's test check which credentials it sends.
    #[arg(long, value_name = "NAME: VALUE", requires = "http", value_parser = transport::parse_required_header)]
    require_header: Vec<transport::RequiredHeader>,
}

/// Lines written by `--garbage-stdout`; none of them parses as a JSON-RPC message.
const GARBAGE_LINES: [&str; 3] = [
    "example-provider: this line is not JSON-RPC",
    "{\"jsonrpc\": broken",
    "Starting server... done",
];

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();

    for line in 1..=cli.stderr_lines {
        stderr_line(format_args!("example-provider stderr line {line}"));
    }
    if let Some(code) = cli.exit_at_start {
        stderr_line(format_args!("fatal: exiting at start with code {code}"));
        std::process::exit(code);
    }
    if cli.stubborn {
        // SAFETY: setting a signal disposition to SIG_IGN installs no handler code.
        if let Err(error) = unsafe { nix::sys::signal::signal(Signal::SIGTERM, SigHandler::SigIgn) }
        {
            stderr_line(format_args!(
                "example-provider: cannot ignore SIGTERM: {error}"
            ));
            return ExitCode::FAILURE;
        }
    }
    if cli.garbage_stdout
        && let Err(error) = write_garbage()
    {
        stderr_line(format_args!(
            "example-provider: cannot write --garbage-stdout lines: {error}"
        ));
        return ExitCode::FAILURE;
    }

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            stderr_line(format_args!(
                "example-provider: cannot start the tokio runtime: {error}"
            ));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            stderr_line(format_args!("example-provider: {error:#}"));
            ExitCode::FAILURE
        }
    }
}

/// Writes one line to stderr. `eprintln!` panics when stderr is closed; a gateway that
/// stops reading a provider's stderr must not change how the provider behaves.
pub(crate) fn stderr_line(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.hang_on_initialize {
        return transport::hang_until_eof().await;
    }
    let stdin_closed = CancellationToken::new();
    let provider = Provider::new(
        Settings {
            name: cli.name,
            page_size: cli.page_size,
            fail_every: cli.fail_every,
            crash_every: cli.crash_every,
            extra_tools: cli.extra_tools,
            handshake_only: cli.handshake_only,
        },
        stdin_closed.clone(),
    );
    let served = match cli.http {
        Some(addr) => transport::serve_http(provider, addr, cli.require_header).await,
        None => transport::serve_stdio(provider, stdin_closed).await,
    };
    if cli.stubborn {
        stderr_line(format_args!(
            "example-provider: stdin closed, but staying alive (--stubborn)"
        ));
        std::future::pending::<()>().await;
    }
    served
}

fn write_garbage() -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    for line in GARBAGE_LINES {
        writeln!(stdout, "{line}")?;
    }
    // Flushed before the MCP transport takes over stdout, so the lines cannot interleave.
    stdout.flush()
}

fn init_logging() {
    let filter = EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}
