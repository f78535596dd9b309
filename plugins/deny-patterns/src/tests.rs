//! The validator through the SDK's harness, as the hangar calls it (the host's own end-to-end
//! tests of the built component are in `runtime/src/plugin/tests/deny_patterns.rs`).

use hangar_plugin_sdk::testing::ValidatorHarness;
use hangar_plugin_sdk::{Invocation, Level, Verdict};
use serde_json::{Value, json};

use super::{DenyPatterns, normalize};

fn configured(config: Value) -> ValidatorHarness<DenyPatterns> {
    let mut plugin = ValidatorHarness::new();
    plugin.configure(config).expect("the config is accepted");
    plugin
}

/// The config of the host's tests.
fn plugin() -> ValidatorHarness<DenyPatterns> {
    configured(json!({"patterns": ["rm -rf", "DROP TABLE"], "allowed_root": "/data"}))
}

fn call(arguments: Value) -> Invocation<'static> {
    Invocation::new("fs", "run").with_arguments(arguments)
}

fn raw(json: &str) -> Invocation<'static> {
    Invocation::new("fs", "run").with_arguments_json(json)
}

fn reason(verdict: Verdict) -> String {
    match verdict {
        Verdict::Deny(reason) => reason,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn rm_rf_is_denied_with_the_pointer_and_the_pattern_in_the_reason() {
    let mut plugin = plugin();
    let reason = reason(plugin.validate(&call(json!({"command": "rm -rf /"}))));
    assert_eq!(
        reason,
        "argument `/command` contains the denied pattern `rm -rf`"
    );
    assert_eq!(plugin.logs().len(), 1);
    assert_eq!(plugin.logs()[0].level, Level::Info);
    assert_eq!(plugin.logs()[0].message, format!("denied fs/run: {reason}"));
}

#[test]
fn a_clean_call_is_allowed_and_logs_nothing() {
    let mut plugin = plugin();
    let clean = json!({
        "path": "/data/reports/q3.csv",
        "options": {"encoding": "utf-8", "lines": [1, 2], "ratio": -0.5e-3, "on": true, "x": null}
    });
    assert_eq!(plugin.validate(&call(clean)), Verdict::Allow);
    assert_eq!(plugin.validate(&call(json!({}))), Verdict::Allow);
    assert_eq!(plugin.validate(&call(json!([]))), Verdict::Allow);
    assert!(plugin.logs().is_empty());
}

#[test]
fn nested_patterns_and_paths_outside_the_root_are_denied() {
    let mut plugin = plugin();
    let cases = [
        (
            json!({"sql": ["SELECT 1", "DROP TABLE users"]}),
            "argument `/sql/1` contains the denied pattern `DROP TABLE`",
        ),
        (
            json!({"path": "/etc/passwd"}),
            "argument `/path` names the path `/etc/passwd`, which is outside `/data`",
        ),
        (
            json!({"path": "/data/../etc/shadow"}),
            "argument `/path` names the path `/data/../etc/shadow`, which is outside `/data`",
        ),
        (
            json!({"target_file": "../secrets"}),
            "argument `/target_file` names the path `../secrets`, which is outside `/data`",
        ),
        (
            json!({"where": "~/.ssh/id_rsa"}),
            "argument `/where` names the path `~/.ssh/id_rsa`, which is outside `/data`",
        ),
        (
            json!({"p": "/database"}),
            "argument `/p` names the path `/database`, which is outside `/data`",
        ),
        (
            json!({"Dirs": [["reports", "./../../x"]]}),
            "argument `/Dirs/0/1` names the path `./../../x`, which is outside `/data`",
        ),
    ];
    for (arguments, expected) in cases {
        assert_eq!(
            reason(plugin.validate(&call(arguments.clone()))),
            expected,
            "{arguments}"
        );
    }
    for allowed in [
        json!({"path": "/data"}),
        json!({"path": "/data/./a//b/../c"}),
        json!({"dir": "reports/2024"}),
        json!({"file": "~inside"}),
        json!({"n": 5}),
        json!({"note": "relative/but/not/a/path/key"}),
        json!({"list": ["a", "b"], "path": ["/data/x", "y"]}),
    ] {
        assert_eq!(
            plugin.validate(&call(allowed.clone())),
            Verdict::Allow,
            "{allowed}"
        );
    }
}

#[test]
fn pointers_name_the_string_through_nested_arrays_and_objects() {
    let mut plugin = plugin();
    let arguments = json!({
        "a": [0, {"b": [true, null, "ok", {"c~/d": ["x", "rm -rf ~"]}]}],
    });
    assert_eq!(
        reason(plugin.validate(&call(arguments))),
        "argument `/a/1/b/3/c~0~1d/1` contains the denied pattern `rm -rf`"
    );
    // The first denial in document order, here a path before a pattern.
    let arguments = raw(r#"{"x":{"y":[],"z":{}},"file":"/etc/x","cmd":"rm -rf"}"#);
    assert_eq!(
        reason(plugin.validate(&arguments)),
        "argument `/file` names the path `/etc/x`, which is outside `/data`"
    );
    // A pattern wins over the path in one string.
    assert_eq!(
        reason(plugin.validate(&call(json!({"path": "/etc/rm -rf"})))),
        "argument `/path` contains the denied pattern `rm -rf`"
    );
    // A string that is the whole arguments.
    assert_eq!(
        reason(plugin.validate(&call(json!("DROP TABLE t")))),
        "argument `/` contains the denied pattern `DROP TABLE`"
    );
}

#[test]
fn escapes_hide_no_pattern_and_no_path() {
    let mut plugin = plugin();
    let cases = [
        (
            r#"{"c":"rm \u002drf /"}"#,
            "`/c` contains the denied pattern `rm -rf`",
        ),
        (
            r#"{"c":"DROP\u0020TABLE"}"#,
            "`/c` contains the denied pattern `DROP TABLE`",
        ),
        (
            r#"{"c":"rm\t-rf \"x\" r\u006d -rf"}"#,
            "`/c` contains the denied pattern `rm -rf`",
        ),
        (
            r#"{"c":"\ud83d\ude00 rm -rf"}"#,
            "`/c` contains the denied pattern `rm -rf`",
        ),
        (
            r#"{"w":"\/etc\/passwd"}"#,
            "`/w` names the path `/etc/passwd`, which is outside",
        ),
        (
            r#"{"target_fil\u0065":"../x"}"#,
            "`/target_file` names the path `../x`",
        ),
        (
            r#"{"a\/b":["rm -rf"]}"#,
            "`/a~1b/0` contains the denied pattern `rm -rf`",
        ),
        (
            r#"{"k\"":"rm -rf"}"#,
            "`/k\"` contains the denied pattern `rm -rf`",
        ),
    ];
    for (json, expected) in cases {
        let reason = reason(plugin.validate(&raw(json)));
        assert!(reason.contains(expected), "{json}: {reason}");
    }
    // An escaped character that is not part of a pattern changes nothing.
    assert_eq!(
        plugin.validate(&raw(r#"{"c":"rm \u002d rf", "t":"tab\there"}"#)),
        Verdict::Allow
    );
    // serde_json escapes control characters and quotes: decoded before the search.
    let pattern = configured(json!({"patterns": ["a\nb", "\"q\""]}));
    let mut pattern = pattern;
    assert!(matches!(
        pattern.validate(&call(json!({"x": "1 a\nb 2"}))),
        Verdict::Deny(_)
    ));
    assert!(matches!(
        pattern.validate(&call(json!({"x": "say \"q\""}))),
        Verdict::Deny(_)
    ));
}

#[test]
fn a_pattern_in_the_raw_text_but_in_no_string_is_allowed() {
    // Keys are not checked, and a pattern that spans JSON syntax is in no string.
    let mut plugin = configured(json!({"patterns": ["a\":\"b", "secret"]}));
    assert_eq!(plugin.validate(&call(json!({"a": "b"}))), Verdict::Allow);
    assert_eq!(plugin.validate(&call(json!({"secret": 1}))), Verdict::Allow);
    assert!(matches!(
        plugin.validate(&call(json!({"secret": "my secret"}))),
        Verdict::Deny(_)
    ));
}

#[test]
fn the_reason_never_quotes_the_string_that_holds_a_pattern() {
    let mut plugin = configured(json!({"patterns": ["AKIA"]}));
    let reason = reason(plugin.validate(&call(json!({"token": "AKIAIOSFODNN7EXAMPLE"}))));
    assert!(!reason.contains("IOSFODNN7"), "{reason}");
    assert!(!plugin.logs()[0].message.contains("IOSFODNN7"));
}

#[test]
fn malformed_arguments_are_denied_with_what_is_wrong_and_where() {
    let mut plugin = plugin();
    let cases = [
        ("", "the text ends where a value should be at byte 0"),
        ("   ", "the text ends where a value should be at byte 3"),
        (r#"{"a":"x""#, "expected `,` or `}` in an object at byte 8"),
        (r#"{"a" "x"}"#, "expected `:` after a key at byte 5"),
        (
            r#"{"a":tru}"#,
            "expected a value (`true`, `false` or `null`?) at byte 5",
        ),
        (r#"{} x"#, "more text after the arguments at byte 3"),
        (r#"[1,]"#, "expected a value at byte 3"),
        (r#"{"a":01}"#, "expected `,` or `}` in an object at byte 6"),
        (r#"{"a":1.}"#, "a number without digits after `.` at byte 7"),
        (
            r#"{"a":1e+}"#,
            "a number without digits in its exponent at byte 8",
        ),
        (r#"{"a":-}"#, "a number without digits at byte 6"),
        (
            r#"{1:2}"#,
            "expected a key (a string) in an object at byte 1",
        ),
        (r#"[1 2]"#, "expected `,` or `]` in an array at byte 3"),
        (r#"{"a":"x}"#, "a string is not closed at byte 8"),
        (r#"{"a":"x\"#, "a string is not closed at byte 8"),
        (
            "{\"a\":\"x\ny\"}",
            "a control character in a string (not escaped) at byte 7",
        ),
        (r#"{"a":"\x"}"#, "an invalid escape in a string at byte 6"),
        (
            r#"{"a":"\u12"}"#,
            "a \\u escape without 4 hex digits at byte 6",
        ),
        (
            r#"{"a":"\ud800"}"#,
            "a lone surrogate in a \\u escape at byte 6",
        ),
        (
            r#"{"a":"\udc00x"}"#,
            "a lone surrogate in a \\u escape at byte 6",
        ),
        (r#"{"\q":1}"#, "an invalid escape in a string at byte 2"),
        (r#"{"a":[}"#, "expected a value at byte 6"),
    ];
    for (json, expected) in cases {
        assert_eq!(
            reason(plugin.validate(&raw(json))),
            format!("deny-patterns: arguments are not JSON: {expected}"),
            "{json:?}"
        );
    }
    // Without patterns or a root, the text is still checked.
    let mut bare = configured(json!({}));
    assert!(matches!(
        bare.validate(&raw(r#"{"a":"\x"}"#)),
        Verdict::Deny(_)
    ));
    assert_eq!(bare.validate(&raw(r#"{"a":"\n"}"#)), Verdict::Allow);
}

#[test]
fn nesting_is_refused_past_127_levels_as_the_hangar_parses() {
    let mut plugin = plugin();
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    // serde_json (the hangar's parser) draws the line at the same depth.
    assert!(serde_json::from_str::<Value>(&deep(127)).is_ok());
    assert!(serde_json::from_str::<Value>(&deep(128)).is_err());
    assert_eq!(plugin.validate(&raw(&deep(127))), Verdict::Allow);
    assert_eq!(
        reason(plugin.validate(&raw(&deep(128)))),
        "deny-patterns: arguments are not JSON: nested deeper than 127 levels at byte 127"
    );
    let objects = format!("{}1{}", r#"{"a":"#.repeat(128), "}".repeat(128));
    assert!(matches!(plugin.validate(&raw(&objects)), Verdict::Deny(_)));
}

#[test]
fn one_instance_checks_call_after_call_with_its_buffers_reset() {
    let mut plugin = plugin();
    // A denial deep inside, then a clean shallow call, then an escaped key: nothing of an
    // earlier call leaks into the next one's pointer or key.
    assert!(matches!(
        plugin.validate(&call(json!({"a": {"b": {"file": ["rm -rf"]}}}))),
        Verdict::Deny(_)
    ));
    assert_eq!(plugin.validate(&call(json!(["reports"]))), Verdict::Allow);
    assert_eq!(
        reason(plugin.validate(&raw(r#"{"\u0063":"DROP TABLE"}"#))),
        "argument `/c` contains the denied pattern `DROP TABLE`"
    );
}

#[test]
fn a_config_the_plugin_refuses_is_an_error_naming_it() {
    let mut plugin = ValidatorHarness::<DenyPatterns>::new();
    let typo = plugin
        .configure(json!({"patterns": ["x"], "alowed_root": "/data"}))
        .unwrap_err();
    assert!(typo.contains("unknown field `alowed_root`"), "{typo}");
    assert!(typo.starts_with("deny-patterns: "), "{typo}");
    let empty = plugin
        .configure(json!({"patterns": ["x", ""]}))
        .unwrap_err();
    assert!(
        empty.contains("the empty pattern \"\" would deny every call"),
        "{empty}"
    );
    let relative = plugin
        .configure(json!({"allowed_root": "data"}))
        .unwrap_err();
    assert!(
        relative.contains("`allowed_root` must be absolute"),
        "{relative}"
    );
}

#[test]
fn the_root_is_normalised_and_slash_holds_every_path() {
    let mut plugin = configured(json!({"allowed_root": "/data/./x/../"}));
    assert_eq!(
        plugin.validate(&call(json!({"path": "/data/y"}))),
        Verdict::Allow
    );
    assert!(reason(plugin.validate(&call(json!({"path": "/etc"})))).ends_with("outside `/data`"));
    let mut everything = configured(json!({"allowed_root": "/"}));
    assert_eq!(
        everything.validate(&call(json!({"path": "/etc/../../x", "file": "../y"}))),
        Verdict::Allow
    );
}

/// The plugin's verdict, against a reference built on serde_json's parser and the plugin's
/// documented rules, over a few thousand generated arguments full of escapes and nesting.
#[test]
fn it_agrees_with_a_serde_json_reference_on_generated_arguments() {
    let patterns = ["rm -rf", "DROP TABLE", "é\"\n", "~/"];
    let config = json!({"patterns": patterns, "allowed_root": "/data/work"});
    let mut plugin = configured(config);
    let mut random = Random(0x5eed);
    let mut denied = 0;
    for round in 0..3000 {
        let arguments = random.value(0);
        let expected = reference(&patterns, "/data/work", &arguments, "", None);
        let got = match plugin.validate(&call(arguments.clone())) {
            Verdict::Allow => None,
            Verdict::Deny(reason) => Some(reason),
            other => panic!("{other:?}"),
        };
        assert_eq!(got, expected, "round {round}: {arguments}");
        denied += usize::from(got.is_some());
    }
    // Both answers are well represented, or the comparison proves little.
    assert!((300..2700).contains(&denied), "{denied} of 3000 denied");
}

/// The rules of the plugin's docs over a parsed value: the first denial in document order.
fn reference(
    patterns: &[&str],
    root: &str,
    value: &Value,
    pointer: &str,
    key: Option<&str>,
) -> Option<String> {
    let escape = |segment: &str| segment.replace('~', "~0").replace('/', "~1");
    match value {
        Value::String(text) => {
            let at = if pointer.is_empty() { "/" } else { pointer };
            if let Some(p) = patterns.iter().find(|p| text.contains(**p)) {
                return Some(format!("argument `{at}` contains the denied pattern `{p}`"));
            }
            let by_key = key.is_some_and(|k| {
                let k = k.to_ascii_lowercase();
                ["path", "file", "dir"].iter().any(|w| k.contains(w))
            });
            let pathy = by_key || ["/", "~", "./", "../"].iter().any(|p| text.starts_with(p));
            let resolved = normalize(root, text.strip_prefix('~').unwrap_or(text));
            let inside = resolved == root
                || resolved
                    .strip_prefix(root)
                    .is_some_and(|rest| rest.starts_with('/'));
            (pathy && !inside).then(|| {
                format!("argument `{at}` names the path `{text}`, which is outside `{root}`")
            })
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| reference(patterns, root, item, &format!("{pointer}/{i}"), key)),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            let at = format!("{pointer}/{}", escape(k));
            reference(patterns, root, item, &at, Some(k))
        }),
        _ => None,
    }
}

/// A small deterministic generator (xorshift64*), so a failure is reproducible.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn string(&mut self) -> String {
        const PIECES: &[&str] = &[
            "a",
            "rm",
            " -rf",
            "rm -rf",
            "DROP",
            " TABLE",
            "é",
            "\"",
            "\n",
            "\\",
            "/",
            "~",
            "/data",
            "/data/work",
            "..",
            ".",
            "x",
            "\u{1f600}",
            "\t",
            "\u{1}",
            "path",
            "work",
        ];
        (0..self.below(5))
            .map(|_| PIECES[self.below(PIECES.len())])
            .collect()
    }

    fn value(&mut self, depth: usize) -> Value {
        match self.below(if depth > 4 { 4 } else { 7 }) {
            0 => Value::Null,
            1 => json!(self.next() % 1000),
            2 | 3 => Value::String(self.string()),
            4 | 5 => {
                let n = self.below(4);
                (0..n)
                    .map(|_| {
                        let key = match self.below(4) {
                            0 => "file_name".to_owned(),
                            _ => self.string(),
                        };
                        (key, self.value(depth + 1))
                    })
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            }
            _ => Value::Array((0..self.below(4)).map(|_| self.value(depth + 1)).collect()),
        }
    }
}

#[test]
fn the_special_byte_search_finds_the_first_one_at_every_offset() {
    use super::scan::find_special;
    let mut random = Random(7);
    for _ in 0..2000 {
        let len = random.below(40);
        let bytes: Vec<u8> = (0..len)
            .map(|_| match random.below(6) {
                0 => b'"',
                1 => b'\\',
                2 => random.below(0x20) as u8,
                _ => 0x20 + random.below(0xe0) as u8,
            })
            .collect();
        for from in 0..=len {
            let naive = (from..len).find(|&i| {
                let b = bytes[i];
                b == b'"' || b == b'\\' || b < 0x20
            });
            assert_eq!(find_special(&bytes, from), naive, "{bytes:?} from {from}");
        }
    }
}
