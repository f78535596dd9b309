//! `mcp-hangar plugin …`: write a new plugin project (`new`), and say what a built plugin is and
//! whether this hangar loads it (`inspect`). The wasmtime side of `inspect` is
//! `mcp_hangar::plugin::inspect`; this module is the command line around it.

mod scaffold;

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use mcp_hangar::plugin::inspect;

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Write a Rust plugin project that builds as it is (`cargo build --release --target
    /// wasm32-wasip2`): Cargo.toml, src/lib.rs with a working example and a unit test, README.
    New(NewArgs),
    /// Report a plugin's world, WIT version, imports and exports, and whether this hangar
    /// loads it (and why not). Exits 0 only when it does.
    Inspect(InspectArgs),
}

#[derive(Args, Debug)]
pub struct NewArgs {
    /// What the plugin is for.
    pub kind: Kind,
    /// The plugin's crate name (letters, digits, `-` and `_`, starting with a letter); the
    /// project is written to DIR/NAME.
    pub name: String,
    /// The directory to create the project in.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// The hangar-plugin-sdk crate to depend on (its directory). Defaults to the `sdk/` of the
    /// source tree this binary was built from.
    #[arg(long)]
    pub sdk: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A component file (`.wasm`), or `bundled:NAME` for a plugin built into this binary.
    pub file: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The kinds of plugin, as the SDK names their traits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Checks a call before its provider sees it (trait `Validator`).
    Validator,
    /// Picks which member of a group takes a call (trait `LbPolicy`).
    #[value(alias = "lb_policy")]
    LbPolicy,
    /// Tells the hangar which providers exist (trait `DiscoverySource`).
    Discovery,
}

/// Runs one `plugin` subcommand; the error is the message `main` prints.
pub fn run(command: PluginCommand) -> Result<(), String> {
    match command {
        PluginCommand::New(args) => {
            let sdk = match args.sdk {
                Some(sdk) => sdk,
                None => PathBuf::from(scaffold::BUILT_FROM_SDK),
            };
            let project = scaffold::write(args.kind, &args.name, &args.dir, &sdk)?;
            out(&format!(
                "created {} ({} plugin)\n\nnext:\n  cd {}\n  cargo test\n  cargo build \
                 --release --target wasm32-wasip2\n  mcp-hangar plugin inspect \
                 target/wasm32-wasip2/release/{}.wasm\n",
                project.display(),
                args.kind.as_config(),
                project.display(),
                args.name.replace('-', "_"),
            ))
        }
        PluginCommand::Inspect(args) => {
            let report = inspect::inspect(&args.file).map_err(|err| err.to_string())?;
            if args.json {
                let json = serde_json::to_string_pretty(&report)
                    .map_err(|err| format!("cannot encode the report: {err}"))?;
                out(&format!("{json}\n"))?;
            } else {
                out(&report.human())?;
            }
            if report.loadable {
                Ok(())
            } else {
                Err(format!(
                    "this hangar cannot load `{}`: {}",
                    report.file,
                    report.reason.as_deref().unwrap_or("no reason given")
                ))
            }
        }
    }
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn out(text: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write to stdout: {err}"))
        }
        _ => Ok(()),
    }
}

impl Kind {
    /// The kind as a hangar config writes it (`kind:`).
    fn as_config(self) -> &'static str {
        match self {
            Self::Validator => "validator",
            Self::LbPolicy => "lb_policy",
            Self::Discovery => "discovery",
        }
    }
}
