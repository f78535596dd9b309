use std::io;

use serde_json::{Map, Value};

use super::error::ValidationError;

/// Bounds on a call's arguments, checked before anything else looks at them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest serialized (compact JSON) size of the arguments object, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of objects and arrays; the arguments object alone is depth 1.
    ///
    /// This also bounds the recursion of the serializer and of the schema validator, so the
    /// config should not accept values far above the default (serde_json's own parser stops at
    /// 128 levels).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 1024 * 1024,
            max_depth: 32,
        }
    }
}

/// Rejects arguments that are nested too deeply or too large when serialized.
///
/// Depth is checked first: it is measured without recursion, while serializing a value (to count
/// its bytes) recurses once per level, so a deep value must be stopped before it is serialized.
pub fn check_limits(
    arguments: &Map<String, Value>,
    limits: &Limits,
) -> Result<(), ValidationError> {
    let depth = nesting_depth(arguments);
    if depth > limits.max_depth {
        return Err(ValidationError::TooDeep {
            depth,
            limit: limits.max_depth,
        });
    }
    let mut sink = CountingSink {
        written: 0,
        limit: limits.max_bytes,
    };
    // A `Value` fails to serialize only when the sink refuses a write, so the count alone tells
    // whether the limit was passed; the error itself carries nothing more.
    let _ = serde_json::to_writer(&mut sink, arguments);
    if sink.written > limits.max_bytes {
        return Err(ValidationError::TooLarge {
            bytes: sink.written,
            limit: limits.max_bytes,
        });
    }
    Ok(())
}

/// Counts the bytes written to it, and refuses the write that passes `limit` so that
/// serialization stops there instead of running through the rest of an oversized value.
struct CountingSink {
    written: usize,
    limit: usize,
}

impl io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written = self.written.saturating_add(buf.len());
        if self.written > self.limit {
            // A bare kind: building this error does not allocate.
            return Err(io::ErrorKind::FileTooLarge.into());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The children of one open container during the depth walk.
enum Children<'a> {
    Array(std::slice::Iter<'a, Value>),
    Object(serde_json::map::Values<'a>),
}

/// Depth of the deepest object or array, counting `arguments` itself as 1.
///
/// Walks with an explicit stack (one iterator per open container) so that a value nested a
/// hundred thousand levels deep costs heap, not call stack. The stack never holds more entries than
/// the value has levels, so it is bounded by the value already in memory.
fn nesting_depth(arguments: &Map<String, Value>) -> usize {
    let mut open = vec![Children::Object(arguments.values())];
    let mut deepest = 1;
    while let Some(top) = open.last_mut() {
        let next = match top {
            Children::Array(items) => items.next(),
            Children::Object(values) => values.next(),
        };
        let child = match next {
            None => {
                open.pop();
                continue;
            }
            Some(Value::Array(items)) => Children::Array(items.iter()),
            Some(Value::Object(values)) => Children::Object(values.values()),
            Some(_) => continue,
        };
        open.push(child);
        deepest = deepest.max(open.len());
    }
    deepest
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("test fixture is not an object: {other}"),
        }
    }

    /// `{"s": "xxx…"}` serialized to exactly `bytes` bytes.
    fn arguments_of_size(bytes: usize) -> Map<String, Value> {
        let overhead = r#"{"s":""}"#.len();
        object(json!({ "s": "x".repeat(bytes - overhead) }))
    }

    /// `{"a": [[[…]]]}` with the arguments object at depth 1, so `depth` levels in all.
    /// Built by moving values, not with `json!`, which would copy `inner` by recursing into it.
    fn arguments_of_depth(depth: usize) -> Map<String, Value> {
        let mut inner = Value::Array(Vec::new());
        for _ in 2..depth {
            inner = Value::Array(vec![inner]);
        }
        Map::from_iter([("a".to_owned(), inner)])
    }

    /// serde_json drops a `Value` recursively; take a deep one apart level by level instead.
    fn drop_iteratively(mut value: Value) {
        while let Value::Array(items) = &mut value {
            match items.pop() {
                Some(inner) => value = inner,
                None => break,
            }
        }
    }

    #[test]
    fn depth_counts_the_arguments_object_as_one() {
        assert_eq!(nesting_depth(&Map::new()), 1);
        assert_eq!(nesting_depth(&object(json!({ "a": [1] }))), 2);
        assert_eq!(
            nesting_depth(&object(json!({ "a": 1, "b": { "c": [[]] } }))),
            4
        );
        assert_eq!(nesting_depth(&arguments_of_depth(7)), 7);
    }

    #[test]
    fn arguments_exactly_at_the_size_limit_pass() {
        let limits = Limits {
            max_bytes: 100,
            ..Limits::default()
        };
        let arguments = arguments_of_size(100);
        assert_eq!(
            serde_json::to_vec(&arguments).map(|v| v.len()).ok(),
            Some(100)
        );
        assert_eq!(check_limits(&arguments, &limits), Ok(()));
    }

    #[test]
    fn arguments_one_byte_over_the_size_limit_fail_with_size_and_setting() {
        let limits = Limits {
            max_bytes: 100,
            ..Limits::default()
        };
        let error = check_limits(&arguments_of_size(101), &limits).unwrap_err();
        assert_eq!(
            error,
            ValidationError::TooLarge {
                bytes: 101,
                limit: 100
            }
        );
        let message = error.to_string();
        assert!(message.contains("101 bytes"), "{message}");
        assert!(message.contains("limit of 100 bytes"), "{message}");
        assert!(message.contains("limits.max_argument_bytes"), "{message}");
    }

    #[test]
    fn default_size_limit_is_one_mebibyte() {
        let limits = Limits::default();
        assert_eq!(check_limits(&arguments_of_size(1_048_576), &limits), Ok(()));
        assert!(matches!(
            check_limits(&arguments_of_size(1_048_577), &limits),
            Err(ValidationError::TooLarge {
                limit: 1_048_576,
                ..
            })
        ));
    }

    #[test]
    fn oversized_arguments_stop_the_count_early() {
        let limits = Limits {
            max_bytes: 1000,
            ..Limits::default()
        };
        let many: Vec<Value> = (0..100_000).map(|i| json!({ "n": i })).collect();
        let Err(ValidationError::TooLarge { bytes, .. }) =
            check_limits(&object(json!({ "items": many })), &limits)
        else {
            panic!("expected TooLarge");
        };
        // The whole value is over a megabyte; counting stopped within one write of the limit.
        assert!(bytes > 1000 && bytes < 1100, "counted {bytes} bytes");
    }

    #[test]
    fn arguments_exactly_at_the_depth_limit_pass() {
        let limits = Limits::default();
        assert_eq!(check_limits(&arguments_of_depth(32), &limits), Ok(()));
    }

    #[test]
    fn arguments_one_level_over_the_depth_limit_fail_with_depth_and_setting() {
        let error = check_limits(&arguments_of_depth(33), &Limits::default()).unwrap_err();
        assert_eq!(
            error,
            ValidationError::TooDeep {
                depth: 33,
                limit: 32
            }
        );
        let message = error.to_string();
        assert!(message.contains("33 levels"), "{message}");
        assert!(message.contains("limit of 32"), "{message}");
        assert!(message.contains("limits.max_argument_depth"), "{message}");
    }

    #[test]
    fn hundred_thousand_deep_array_is_rejected_without_stack_overflow() {
        let mut arguments = arguments_of_depth(100_000);
        let result = check_limits(&arguments, &Limits::default());
        assert_eq!(
            result,
            Err(ValidationError::TooDeep {
                depth: 100_000,
                limit: 32
            })
        );
        if let Some(deep) = arguments.remove("a") {
            drop_iteratively(deep);
        }
    }
}
