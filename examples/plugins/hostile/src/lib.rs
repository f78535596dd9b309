//! `hostile`: a plugin that misbehaves on demand, for the plugin host's containment tests.
//! Never deploy it.
//!
//! It exports both `validator` and `lb-policy` (one export macro of the SDK for each; both
//! worlds import only `host` and `calls`), so the one file loads as either kind (WIT
//! `hangar:plugin@0.2.0`).
//! It behaves well except on the trigger: a `validate` of tool `attack`, or a `pick` for
//! session `attack` (read from the call: `call.tool()`, `call.session()`). Then it does what
//! `mode` says:
//!
//! | mode        | misbehaviour                                            | host must answer       |
//! |-------------|---------------------------------------------------------|------------------------|
//! | `loop`      | spins forever                                           | timeout (epoch)        |
//! | `memory`    | allocates 1 MiB blocks until the allocator fails        | memory limit           |
//! | `trap`      | executes `unreachable`                                  | trap                   |
//! | `panic`     | panics (prints to stderr, then aborts: a trap)          | trap, with the message |
//! | `big`       | denies with a 100 MiB reason (needs `memory_mb` > 100)   | output too large       |
//! | `log-flood` | logs 100 000 lines, then allows                          | log lines dropped      |
//! | `bad-index` | picks member 4 000 000 000                              | invalid answer         |
//! | `slow`      | spins 30 ms (by `host.now-ms`), then denies "slow answer" | nothing: it is in time |
//! | `echo`      | denies with every part of the call in the reason; picks the last member if every member is as `echo_members_ok` expects, else none | what it sent |
//!
//! Config: `{"mode": "loop"}`; any other mode is a `configure` error. `{"mode": "loop",
//! "in_configure": true}` misbehaves in `configure` itself instead.
//!
//! Build: `cargo build --release --target wasm32-wasip2`.

use hangar_plugin_sdk::{
    Config as PluginConfig, Invocation, LbPolicy, Level, Member, Validator, Verdict, log,
    member_key, now_ms,
};
use serde::Deserialize;

#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    Loop,
    Memory,
    Trap,
    Panic,
    Big,
    LogFlood,
    BadIndex,
    Slow,
    Echo,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    mode: Mode,
    #[serde(default)]
    in_configure: bool,
}

const TRIGGER: &str = "attack";

/// `None` until configured.
#[derive(Default)]
struct Hostile {
    mode: Option<Mode>,
}

impl Hostile {
    /// `configure` of both exports.
    fn apply(&mut self, config: &PluginConfig) -> Result<(), String> {
        let config: Config = config.parse().map_err(|err| format!("hostile: {err}"))?;
        if config.in_configure {
            misbehave(config.mode);
        }
        self.mode = Some(config.mode);
        Ok(())
    }
}

/// Does the damage. Returns only for the modes whose damage is in the answer.
fn misbehave(mode: Mode) {
    match mode {
        Mode::Loop => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Mode::Memory => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                let mut block = vec![1u8; 1 << 20];
                block[0] = std::hint::black_box(2);
                hoard.push(block);
                std::hint::black_box(&hoard);
            }
        }
        Mode::Trap => core::arch::wasm32::unreachable(),
        Mode::Panic => panic!("hostile plugin panics on purpose"),
        Mode::LogFlood => {
            for i in 0..100_000 {
                log(Level::Warn, &format!("flood line {i}"));
            }
        }
        Mode::Slow => {
            let until = now_ms() + 30;
            while now_ms() < until {
                std::hint::spin_loop();
            }
        }
        Mode::Big | Mode::BadIndex | Mode::Echo => {}
    }
}

impl Validator for Hostile {
    fn configure(&mut self, config: &PluginConfig) -> Result<(), String> {
        self.apply(config)
    }

    fn validate(&mut self, call: &Invocation) -> Verdict {
        let Some(mode) = self.mode.filter(|_| call.tool() == TRIGGER) else {
            return Verdict::Allow;
        };
        misbehave(mode);
        match mode {
            Mode::Big => Verdict::Deny("x".repeat(100 << 20)),
            Mode::Slow => Verdict::Deny("slow answer".into()),
            Mode::Echo => Verdict::Deny(format!(
                "provider={} tool={} arguments={} session={:?} meta={:?} member0={:?}",
                call.provider(),
                call.tool(),
                call.arguments_json(),
                call.session(),
                call.meta(),
                call.member_id(0),
            )),
            _ => Verdict::Allow,
        }
    }
}

impl LbPolicy for Hostile {
    fn configure(&mut self, config: &PluginConfig) -> Result<(), String> {
        self.apply(config)
    }

    fn pick(&mut self, call: &Invocation, members: &[Member]) -> Option<usize> {
        let Some(mode) = self.mode.filter(|_| call.session() == Some(TRIGGER)) else {
            return (!members.is_empty()).then_some(0);
        };
        misbehave(mode);
        match mode {
            Mode::BadIndex => Some(4_000_000_000),
            Mode::Echo => echo_members_ok(call, members).then(|| members.len() - 1),
            _ => Some(0),
        }
    }
}

hangar_plugin_sdk::export_validator!(Hostile);
hangar_plugin_sdk::export_lb_policy!(Hostile);

/// Whether member `i` arrived as the host test sends it: its key that of its id, weight
/// `i + 1`, priority `100 - i`, `2 i` calls in flight, healthy when `i` is even, latency
/// `1000 i + 7`. Proves every field crosses into the plugin where the WIT says it is.
fn echo_members_ok(call: &Invocation, members: &[Member]) -> bool {
    !members.is_empty()
        && members.iter().enumerate().all(|(i, m)| {
            let n = i as u64;
            call.member_id(i).map(member_key) == Some(m.key)
                && u64::from(m.weight) == n + 1
                && u64::from(m.priority) == 100 - n
                && u64::from(m.in_flight) == 2 * n
                && m.healthy == (i % 2 == 0)
                && m.ewma_latency_us == 1000 * n + 7
        })
        && call.member_id(members.len()).is_none()
}
