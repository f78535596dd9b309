//! The SDK as an author uses it: plugins written against the traits, exported with the macros
//! (so the expansions compile and link natively too), run through the harness.

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::bindings::wit;
use crate::testing::{DiscoveryHarness, LbPolicyHarness, LogLine, ValidatorHarness};
use crate::{
    Config, Container, DiscoverySource, Invocation, LbPolicy, Level, Member, Pod, ProviderSpec,
    Validator, Verdict, docker, kubernetes, log, member_key, now_ms,
};

/// Denies a tool by name, rewrites `path` arguments to lower case, and counts its calls.
#[derive(Default)]
struct Guard {
    forbidden: String,
    calls: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GuardConfig {
    forbidden: String,
}

impl Validator for Guard {
    fn configure(&mut self, config: &Config) -> Result<(), String> {
        let config: GuardConfig = config.parse()?;
        if config.forbidden.is_empty() {
            return Err("`forbidden` must name a tool".into());
        }
        self.forbidden = config.forbidden;
        Ok(())
    }

    fn validate(&mut self, call: &Invocation) -> Verdict {
        self.calls += 1;
        if call.tool() == self.forbidden {
            log(
                Level::Warn,
                &format!("denied {} (call {})", call.tool(), self.calls),
            );
            return Verdict::deny(format!("`{}` is forbidden", call.tool()));
        }
        if call.tool() == "panic" {
            log(Level::Error, "about to panic");
            panic!("guard panics on purpose");
        }
        let Ok(Value::Object(mut arguments)) = call.arguments() else {
            return Verdict::deny("arguments are not a JSON object");
        };
        match arguments.get("path").and_then(Value::as_str) {
            Some(path) if path != path.to_lowercase() => {
                let lower = path.to_lowercase();
                arguments.insert("path".into(), Value::String(lower));
                Verdict::Rewrite(arguments)
            }
            _ => Verdict::Allow,
        }
    }
}

crate::export_validator!(Guard);

/// Round robin over healthy members, by a counter kept in the instance.
#[derive(Default)]
struct Rotate {
    next: usize,
}

impl LbPolicy for Rotate {
    fn pick(&mut self, _call: &Invocation, members: &[Member]) -> Option<usize> {
        let healthy: Vec<usize> = (0..members.len()).filter(|&i| members[i].healthy).collect();
        let pick = *healthy.get(self.next % healthy.len().max(1))?;
        self.next += 1;
        Some(pick)
    }
}

crate::export_lb_policy!(Rotate);

/// The member whose id is the session (by `member_id`), else none.
#[derive(Default)]
struct Named;

impl LbPolicy for Named {
    fn pick(&mut self, call: &Invocation, members: &[Member]) -> Option<usize> {
        let session = call.session()?;
        // Reads one id past the end too: it must be `None`, not a trap or a wrong id.
        (0..=members.len()).find(|&i| call.member_id(i) == Some(session))
    }
}

/// Reads the tool (twice) and nothing else.
#[derive(Default)]
struct ToolOnly;

impl Validator for ToolOnly {
    fn validate(&mut self, call: &Invocation) -> Verdict {
        let first = call.tool().len();
        if call.tool() == "t" && first == 1 && call.member_id(0).is_none() {
            Verdict::deny("tool t")
        } else {
            Verdict::Allow
        }
    }
}

/// One remote provider per running container labelled `mcp.port`, and one per ready pod.
#[derive(Default)]
struct Finder {
    namespace: Option<String>,
}

impl DiscoverySource for Finder {
    fn configure(&mut self, config: &Config) -> Result<(), String> {
        self.namespace = config
            .parse::<Value>()?
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(())
    }

    fn discover(&mut self) -> Result<Vec<ProviderSpec>, String> {
        let mut found = Vec::new();
        for container in docker::list_containers(&["mcp.port"])? {
            if container.state != "running" {
                continue;
            }
            let port = container
                .labels
                .iter()
                .find(|(k, _)| k == "mcp.port")
                .map_or("", |(_, v)| v.as_str());
            let ip = container.networks.first().map_or("", |(_, ip)| ip.as_str());
            let name = container.names.first().cloned().unwrap_or(container.id);
            found.push(ProviderSpec::remote(
                name,
                format!("http://{ip}:{port}/mcp"),
            ));
        }
        let namespaces: Vec<&str> = self.namespace.iter().map(String::as_str).collect();
        for pod in kubernetes::list_pods(&namespaces, Some("app=mcp"))? {
            if pod.ready {
                let ip = pod.pod_ip.unwrap_or_default();
                found.push(ProviderSpec {
                    group: Some(pod.namespace),
                    ..ProviderSpec::remote(pod.name, format!("http://{ip}:8080/mcp"))
                });
            }
        }
        log(
            Level::Info,
            &format!("found {} at {}", found.len(), now_ms()),
        );
        Ok(found)
    }
}

crate::export_discovery_source!(Finder);

/// A plugin that implements nothing: every default.
#[derive(Default)]
struct Defaults;

impl Validator for Defaults {}
impl LbPolicy for Defaults {}
impl DiscoverySource for Defaults {}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn the_sdk_version_is_the_wit_version_its_bindings_are_generated_from() {
    assert_eq!(env!("CARGO_PKG_VERSION"), crate::WIT_VERSION);
    assert_eq!(
        crate::WIT_PACKAGE,
        format!("hangar:plugin@{}", crate::WIT_VERSION)
    );
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../wit/");
    for file in ["types.wit", "interfaces.wit", "worlds.wit"] {
        let path = format!("{dir}{}/{file}", crate::WIT_VERSION);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            text.lines()
                .any(|l| l.trim() == format!("package {};", crate::WIT_PACKAGE)),
            "{path} is not of {}",
            crate::WIT_PACKAGE
        );
    }
}

#[test]
fn a_validator_denies_rewrites_and_allows_through_the_wit_conversions() {
    let mut guard = ValidatorHarness::<Guard>::new();
    guard.configure(json!({"forbidden": "delete"})).unwrap();
    let call = Invocation::new("fs", "write")
        .with_arguments(json!({"path": "/Data/X", "mode": 1}))
        .with_session("s-1")
        .with_meta("correlation-id", "c-9");
    let mut expected = Map::new();
    expected.insert("path".into(), json!("/data/x"));
    expected.insert("mode".into(), json!(1));
    assert_eq!(guard.validate(&call), Verdict::Rewrite(expected));
    assert_eq!(
        guard.validate(&Invocation::new("fs", "write").with_arguments(json!({"path": "/ok"}))),
        Verdict::Allow
    );
    assert_eq!(
        guard.validate(&Invocation::new("fs", "delete")),
        Verdict::Deny("`delete` is forbidden".into())
    );
    // One instance served the three calls, as the hangar reuses a configured one.
    assert_eq!(
        guard.logs(),
        [LogLine {
            level: Level::Warn,
            message: "denied delete (call 3)".into()
        }]
    );
}

#[test]
fn a_refused_config_is_the_plugins_message_and_keeps_the_previous_one() {
    let mut guard = ValidatorHarness::<Guard>::new();
    guard.configure(json!({"forbidden": "rm"})).unwrap();
    let typo = guard.configure(json!({"forbiden": "x"})).unwrap_err();
    assert!(
        typo.starts_with("invalid config: unknown field `forbiden`"),
        "{typo}"
    );
    assert_eq!(
        guard.configure(json!({"forbidden": ""})),
        Err("`forbidden` must name a tool".into())
    );
    assert!(matches!(
        guard.validate(&Invocation::new("fs", "rm")),
        Verdict::Deny(_)
    ));
}

#[test]
fn an_unconfigured_validator_gets_the_empty_config_as_the_hangar_sends_it() {
    let mut defaults = ValidatorHarness::<Defaults>::new();
    assert_eq!(
        defaults.validate(&Invocation::new("a", "b")),
        Verdict::Allow
    );
    let refused = catch_unwind(AssertUnwindSafe(|| {
        ValidatorHarness::<Guard>::new().validate(&Invocation::new("a", "b"))
    }));
    let message = *refused.unwrap_err().downcast::<String>().unwrap();
    assert!(
        message.contains("the validator refuses `{}`; call `configure` first"),
        "{message}"
    );
}

#[test]
fn the_defaults_accept_any_config_allow_leave_picks_native_and_find_nothing() {
    let config = json!({"anything": [1, 2, 3]});
    let mut validator = ValidatorHarness::<Defaults>::new();
    validator.configure(config.clone()).unwrap();
    let call = Invocation::new("p", "t").with_session("s");
    assert_eq!(validator.validate(&call), Verdict::Allow);
    let mut policy = LbPolicyHarness::<Defaults>::new();
    policy.configure(config.clone()).unwrap();
    assert_eq!(policy.pick(&call, &[("a", Member::new("a"))]), None);
    let mut source = DiscoveryHarness::<Defaults>::new();
    source.configure(config).unwrap();
    assert_eq!(source.discover(), Ok(Vec::new()));
}

#[test]
fn a_policy_keeps_its_state_across_picks_until_configured_again() {
    let mut rotate = LbPolicyHarness::<Rotate>::new();
    let members = [
        ("a", Member::new("a")),
        (
            "b",
            Member {
                healthy: false,
                ..Member::new("b")
            },
        ),
        ("c", Member::new("c")),
    ];
    let call = Invocation::new("pool", "echo");
    let picks: Vec<_> = (0..4).map(|_| rotate.pick(&call, &members)).collect();
    assert_eq!(picks, [Some(0), Some(2), Some(0), Some(2)]);
    rotate.configure(json!({})).unwrap();
    assert_eq!(rotate.pick(&call, &members), Some(0), "a new instance");
    let down = [(
        "a",
        Member {
            healthy: false,
            ..Member::new("a")
        },
    )];
    assert_eq!(rotate.pick(&call, &down), None);
}

#[test]
fn discovery_capabilities_refuse_as_in_the_hangar_until_granted() {
    let mut finder = DiscoveryHarness::<Finder>::new();
    finder.host().set_plugin_name("finder");
    assert_eq!(
        finder.discover(),
        Err(
            "plugin `finder` was not granted `docker`; add `grants: [docker]` to its config".into()
        )
    );
    finder.host().grant_docker(Vec::new());
    assert_eq!(
        finder.discover(),
        Err(
            "plugin `finder` was not granted `kubernetes`; add `grants: [kubernetes]` to its \
             config"
                .into()
        )
    );
    finder.host().revoke_grants();
    assert!(finder.discover().unwrap_err().contains("`docker`"));
}

#[test]
fn discovery_sees_only_what_its_filters_and_namespaces_select() {
    let mut finder = DiscoveryHarness::<Finder>::new();
    finder.configure(json!({"namespace": "tools"})).unwrap();
    let container = |id: &str, state: &str, label: Option<&str>| Container {
        id: id.into(),
        names: vec![format!("{id}-name")],
        image: "img".into(),
        labels: label.map_or_else(Vec::new, |port| labels(&[("mcp.port", port)])),
        state: state.into(),
        networks: labels(&[("bridge", "172.17.0.5")]),
    };
    let pod = |namespace: &str, name: &str, app: &str, ready: bool| Pod {
        namespace: namespace.into(),
        name: name.into(),
        labels: labels(&[("app", app)]),
        phase: "Running".into(),
        pod_ip: Some("10.0.0.7".into()),
        ready,
        ..Pod::default()
    };
    finder
        .host()
        .set_now_ms(1_700_000_000_000)
        .grant_docker(vec![
            container("a", "running", Some("9000")),
            container("b", "exited", Some("9001")),
            container("c", "running", None),
        ])
        .grant_kubernetes(vec![
            pod("tools", "p1", "mcp", true),
            pod("tools", "p2", "mcp", false),
            pod("tools", "p3", "web", true),
            pod("other", "p4", "mcp", true),
        ]);
    let found = finder.discover().unwrap();
    assert_eq!(
        found,
        [
            ProviderSpec::remote("a-name", "http://172.17.0.5:9000/mcp"),
            ProviderSpec {
                group: Some("tools".into()),
                ..ProviderSpec::remote("p1", "http://10.0.0.7:8080/mcp")
            },
        ]
    );
    assert_eq!(finder.logs()[0].message, "found 2 at 1700000000000");
}

#[test]
fn an_answer_of_the_test_is_what_the_plugin_gets() {
    let mut finder = DiscoveryHarness::<Finder>::new();
    finder
        .host()
        .on_docker(|filters| Err(format!("engine down (asked for {filters:?})")));
    assert_eq!(
        finder.discover(),
        Err(r#"engine down (asked for ["mcp.port"])"#.into())
    );
}

#[test]
fn a_panicking_plugin_leaves_the_harness_with_its_logs() {
    let mut guard = ValidatorHarness::<Guard>::new();
    guard.configure(json!({"forbidden": "x"})).unwrap();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        guard.validate(&Invocation::new("fs", "panic"))
    }));
    assert!(outcome.is_err());
    assert_eq!(guard.logs()[0].message, "about to panic");
    guard.host().clear_logs();
    assert_eq!(
        guard.validate(&Invocation::new("fs", "x")),
        Verdict::deny("`x` is forbidden")
    );
    assert_eq!(guard.logs().len(), 1);
}

#[test]
fn outside_a_harness_host_calls_fall_back_to_the_process() {
    log(Level::Info, "goes to stderr");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let now = now_ms();
    assert!(now >= before && now < before + 60_000, "{now} vs {before}");
    let refusal = docker::list_containers(&[]).unwrap_err();
    assert!(refusal.contains("DiscoveryHarness"), "{refusal}");
    assert!(kubernetes::list_pods(&[], None).is_err());
}

#[test]
fn a_clock_can_be_stopped_and_moved() {
    let mut finder = DiscoveryHarness::<Finder>::new();
    finder
        .host()
        .set_now_ms(1_000)
        .advance_ms(500)
        .grant_docker(Vec::new())
        .grant_kubernetes(Vec::new());
    finder.discover().unwrap();
    assert_eq!(finder.logs()[0].message, "found 0 at 1500");
}

#[test]
fn kubernetes_selectors_match_as_the_api_server_does() {
    use crate::testing::selector_matches;
    let pod = labels(&[("app", "mcp"), ("tier", "edge")]);
    for (selector, expected) in [
        ("app=mcp", true),
        ("app==mcp,tier=edge", true),
        ("app=web", false),
        ("app!=web", true),
        ("app!=mcp", false),
        ("tier", true),
        ("!tier", false),
        ("!missing", true),
        ("app=mcp, missing", false),
        ("", true),
    ] {
        assert_eq!(selector_matches(&pod, selector), expected, "{selector}");
    }
}

#[test]
fn invocation_helpers_read_what_the_builder_wrote() {
    let call = Invocation::new("p", "t")
        .with_arguments(json!({"a": 1}))
        .with_meta("client", "cli")
        .with_meta("client", "second");
    assert_eq!(call.arguments().unwrap(), json!({"a": 1}));
    assert_eq!(call.meta_value("client"), Some("cli"));
    assert_eq!(call.meta_value("absent"), None);
    assert_eq!(call.meta().len(), 2);
    assert_eq!((call.provider(), call.tool()), ("p", "t"));
    assert_eq!(call.session(), None);
    assert_eq!(Invocation::new("p", "t").arguments_json(), "{}");
    let raw = Invocation::new("p", "t").with_arguments_json("{not json");
    assert_eq!(raw.arguments_json(), "{not json");
    assert!(raw.arguments().is_err());
}

#[test]
fn a_builder_after_a_read_is_what_the_next_read_sees() {
    let call = Invocation::new("p", "t");
    assert_eq!(call.session(), None);
    let call = call.with_session("s-2");
    assert_eq!(call.session(), Some("s-2"));
}

#[test]
fn each_part_is_copied_once_however_often_it_is_read_and_unread_parts_never() {
    let call = Invocation::new("fs", "read")
        .with_arguments(json!({"path": "/x"}))
        .with_session("s")
        .with_meta("k", "v");
    assert_eq!(call.fetches(), 0, "building reads nothing");
    for _ in 0..3 {
        assert_eq!(call.tool(), "read");
    }
    assert_eq!(call.fetches(), 1);
    for _ in 0..2 {
        assert_eq!(call.arguments_json(), r#"{"path":"/x"}"#);
        assert_eq!(call.session(), Some("s"));
        assert_eq!(call.meta_value("k"), Some("v"));
        assert_eq!(call.provider(), "fs");
    }
    assert_eq!(call.fetches(), 5);

    // Through the harness, as a validator that reads only the tool (twice).
    let call = Invocation::new("fs", "t").with_arguments(json!({"big": "x".repeat(1000)}));
    let mut validator = ValidatorHarness::<ToolOnly>::new();
    assert_eq!(validator.validate(&call), Verdict::deny("tool t"));
    assert_eq!(call.fetches(), 1, "only the tool was copied");
}

#[test]
fn member_ids_are_read_by_index_in_a_pick_and_never_in_a_validate() {
    let mut named = LbPolicyHarness::<Named>::new();
    let members = [
        ("files-eu", Member::new("files-eu")),
        ("files-us", Member::new("files-us")),
    ];
    let call = |session: &str| Invocation::new("pool", "echo").with_session(session);
    assert_eq!(named.pick(&call("files-us"), &members), Some(1));
    assert_eq!(named.pick(&call("files-eu"), &members), Some(0));
    assert_eq!(named.pick(&call("files-xx"), &members), None);
    assert_eq!(named.pick(&call("files-eu"), &members[..0]), None);
    // Ids may be given as `String`s too.
    let owned = [("a".to_owned(), Member::new("a"))];
    assert_eq!(named.pick(&call("a"), &owned), Some(0));

    let plain = Invocation::new("pool", "echo");
    assert_eq!(plain.member_id(0), None, "a validate's call has no members");
}

#[test]
fn the_harness_refuses_a_member_whose_key_is_not_the_hash_of_its_id() {
    let mut named = LbPolicyHarness::<Named>::new();
    let wrong = [("b", Member::new("a"))];
    let refused = catch_unwind(AssertUnwindSafe(|| {
        named.pick(&Invocation::new("pool", "echo"), &wrong)
    }));
    let message = *refused.unwrap_err().downcast::<String>().unwrap();
    assert!(
        message.contains(r#"members[0]: the key is not member_key("b")"#),
        "{message}"
    );
}

#[test]
fn member_keys_are_fnv1a_64_of_the_id() {
    // Known values of FNV-1a 64 (the first three are the reference test vectors; the last two
    // were computed apart, in Python).
    assert_eq!(member_key(""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(member_key("a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(member_key("foobar"), 0x8594_4171_f739_67e8);
    assert_eq!(member_key("member-0"), 0x3fce_5fa5_1baa_0d6e);
    assert_eq!(member_key("files-eu"), 0xaae9_4edd_b478_8969);
    const KEY: u64 = member_key("files-eu");
    assert_eq!(Member::new("files-eu").key, KEY);
}

#[test]
fn members_are_converted_in_place_without_an_allocation() {
    let members: Vec<wit::Member> = (0..8)
        .map(|i| wit::Member::from(&Member::new(format!("m{i}"))))
        .collect();
    let before = members.as_ptr() as usize;
    let converted: Vec<Member> = members.into_iter().map(Member::from).collect();
    assert_eq!(
        converted.as_ptr() as usize,
        before,
        "the allocation was reused"
    );
    assert_eq!(converted[3], Member::new("m3"));
}
