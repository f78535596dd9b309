//! The `mcp-hangar` command line.

mod cli_events;
mod cli_plugin;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use mcp_hangar::serve::{self, Listen, ServeOptions};

#[derive(Parser, Debug)]
#[command(
    name = "mcp-hangar",
    version,
    about = "Registry and gateway for MCP servers: lazy start, health, idle shutdown, one MCP endpoint for all of them",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand, `mcp-hangar` serves, as `serve` does.
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve MCP on stdio (default) or streamable HTTP (--http).
    Serve(ServeArgs),
    /// Validate the config and print it normalised, with secrets redacted.
    Check(ConfigArg),
    /// Show the recorded events (the audit trail): lifecycle, calls, breakers, plugins.
    Events(cli_events::EventsArgs),
    /// Write a new WebAssembly plugin project, or inspect a built plugin.
    #[command(subcommand)]
    Plugin(cli_plugin::PluginCommand),
}

#[derive(Args, Debug)]
struct ConfigArg {
    /// The config file (YAML).
    #[arg(long, short = 'c', env = "MCP_HANGAR_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Serve streamable HTTP at /mcp (plus /health and /ready) instead of stdio.
    #[arg(long)]
    http: bool,
    /// Address to bind with --http. Loopback by default; anything else needs `http.auth` in
    /// the config, or --allow-unauthenticated-remote.
    #[arg(long, default_value = "127.0.0.1", requires = "http")]
    host: IpAddr,
    /// Port to bind with --http (0 picks a free one and logs it).
    #[arg(long, default_value_t = 8000, requires = "http")]
    port: u16,
    /// Allow a non-loopback --host without `http.auth`. Only behind a proxy that
    /// authenticates.
    #[arg(long, requires = "http")]
    allow_unauthenticated_remote: bool,
    /// A browser origin allowed to call /mcp (`https://app.example.com`, `http://localhost:*`);
    /// repeatable, added to the config's `http.allowed_origins`. Requests carrying any other
    /// `Origin` get 403. Default: loopback origins only.
    #[arg(long = "allowed-origin", value_name = "ORIGIN", requires = "http")]
    allowed_origins: Vec<String>,
    /// A `Host` header /mcp accepts besides loopback names and the bound address (the name a
    /// proxy in front forwards); repeatable, added to the config's `http.allowed_hosts`.
    #[arg(long = "allowed-host", value_name = "HOST", requires = "http")]
    allowed_hosts: Vec<String>,
}

fn config_path(arg: ConfigArg) -> Result<PathBuf, String> {
    arg.config.ok_or_else(|| {
        "no config file given: pass --config FILE or set MCP_HANGAR_CONFIG (try examples/hangar.yaml)"
            .to_string()
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` installs its log once its config (and the config's `logging:`) is loaded.
    let result = match cli.command {
        Some(Command::Check(arg)) => {
            serve::init_logging();
            config_path(arg).and_then(|p| serve::check(&p))
        }
        Some(Command::Serve(args)) => run_serve(args),
        Some(Command::Events(args)) => cli_events::run(args),
        Some(Command::Plugin(command)) => {
            serve::init_logging();
            cli_plugin::run(command)
        }
        None => run_serve(cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run_serve(args: ServeArgs) -> Result<(), String> {
    let path = config_path(args.config)?;
    let config = serve::load_for_serving(&path)?;
    let listen = if args.http {
        if !args.host.is_loopback()
            && !args.allow_unauthenticated_remote
            && config.http.auth.is_none()
        {
            return Err(format!(
                "refusing to serve on non-loopback address {} without authentication; configure \
                 `http.auth` (API keys or JWT) in {}, bind 127.0.0.1, or pass \
                 --allow-unauthenticated-remote if a proxy in front authenticates",
                args.host,
                path.display()
            ));
        }
        let mut options =
            mcp_hangar::http::HttpOptions::new(std::net::SocketAddr::new(args.host, args.port));
        // `serve::run` fills in the config's `http:` and `observability.metrics`.
        options.allowed_origins = args.allowed_origins;
        options.allowed_hosts = args.allowed_hosts;
        options.metrics_path = None;
        Listen::Http(Box::new(options))
    } else {
        Listen::Stdio
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("could not start the async runtime: {e}"))?;
    runtime.block_on(serve::run(ServeOptions { config, listen }))
}
