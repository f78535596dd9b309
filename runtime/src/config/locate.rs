//! Where a key path sits in the YAML text.
//!
//! Errors found while deserialising already carry a line and column (yaml_serde puts the mark
//! of the offending event on the error). Errors found afterwards — a missing `${VAR}`, an
//! unsupported mode, a duplicate id across groups — and the warnings need the position of a
//! key path too, but `yaml_serde::Value` keeps no spans.
//!
//! How positions are obtained, and why this way: one extra pass of the same YAML parser over
//! the text walks every mapping and sequence. For each *scalar* (every key, and every scalar
//! value) the walker's visitor deliberately returns an error; yaml_serde attaches the mark of
//! that scalar to the error, the walker reads the position back out of it and carries on. A
//! scalar event is already consumed when its visitor runs, so the parser state is intact and
//! the walk continues. Using the real parser means flow style, quoting, block scalars, anchors
//! and comments are handled exactly as the loader sees them; a hand-written line scanner would
//! get those wrong. The one fragile point — reading the position back out of the error's
//! `Display` ("… at line L column C"), because a generic deserializer error offers no
//! `location()` — is covered by the tests below, which fail if yaml_serde changes that format.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A 1-based line and column in the config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceLocation {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One step of a key path: a mapping key or a sequence index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path of keys and indexes from the document root, shown as `mcp_servers.db.command[1]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeyPath(Vec<Seg>);

impl KeyPath {
    pub fn root() -> Self {
        Self(Vec::new())
    }

    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.into()));
        Self(segs)
    }

    pub fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        Self(segs)
    }

    pub fn parent(&self) -> Option<Self> {
        let (_, rest) = self.0.split_last()?;
        Some(Self(rest.to_vec()))
    }

    pub fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Seg::Key(key)) => Some(key),
            _ => None,
        }
    }

    pub fn segments(&self) -> &[Seg] {
        &self.0
    }

    pub fn from_segments(segs: Vec<Seg>) -> Self {
        Self(segs)
    }

    fn starts_with(&self, prefix: &KeyPath) -> bool {
        self.0.starts_with(&prefix.0)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.0 {
            match seg {
                Seg::Key(key) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                Seg::Index(index) => write!(f, "[{index}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// One key (or sequence element) seen in the document, in document order.
#[derive(Debug)]
struct Entry {
    path: KeyPath,
    /// Position of the key scalar; `None` for sequence elements, which have no key.
    key: Option<SourceLocation>,
    /// Position of the value when it is a scalar.
    value: Option<SourceLocation>,
}

/// Positions of every key and scalar value in one YAML document.
#[derive(Debug, Default)]
pub struct SourceMap {
    entries: Vec<Entry>,
}

impl SourceMap {
    /// Walks `text` once. A document that does not parse gives an empty map (its syntax error
    /// is reported by the loader, with the parser's own position).
    pub fn build(text: &str) -> Self {
        let mut entries = Vec::new();
        let de = yaml_serde::Deserializer::from_str(text);
        let walked = Walk {
            path: KeyPath::root(),
            entries: &mut entries,
        }
        .deserialize(de);
        if walked.is_err() {
            entries.clear();
        }
        Self { entries }
    }

    /// Where the `occurrence`-th (0-based) appearance of the key at `path` is written.
    pub fn key(&self, path: &KeyPath, occurrence: usize) -> Option<SourceLocation> {
        self.entries
            .iter()
            .filter(|entry| &entry.path == path)
            .nth(occurrence)
            // A sequence element has no key: its own position stands in for one.
            .and_then(|entry| {
                entry
                    .key
                    .or(entry.value)
                    .or_else(|| self.first_inside(entry))
            })
    }

    /// Where the value at `path` starts: the scalar itself, or the first key or element of a
    /// mapping or sequence; the key when the value is empty.
    pub fn value(&self, path: &KeyPath) -> Option<SourceLocation> {
        let entry = self.entries.iter().find(|entry| &entry.path == path)?;
        entry
            .value
            .or_else(|| self.first_inside(entry))
            .or(entry.key)
    }

    /// The value position of `path`, or of its nearest ancestor that is in the file, so an
    /// error always points somewhere useful (at worst the top of the file).
    pub fn nearest_value(&self, path: &KeyPath) -> SourceLocation {
        self.nearest(path, |map, p| map.value(p))
    }

    /// The key position of `path`, or of its nearest ancestor that is in the file.
    pub fn nearest_key(&self, path: &KeyPath) -> SourceLocation {
        self.nearest(path, |map, p| map.key(p, 0))
    }

    fn nearest(
        &self,
        path: &KeyPath,
        find: impl Fn(&Self, &KeyPath) -> Option<SourceLocation>,
    ) -> SourceLocation {
        let mut current = Some(path.clone());
        while let Some(p) = current {
            if let Some(found) = find(self, &p) {
                return found;
            }
            current = p.parent();
        }
        SourceLocation { line: 1, column: 1 }
    }

    /// The first position recorded below `entry` (its first key or element).
    fn first_inside(&self, entry: &Entry) -> Option<SourceLocation> {
        let index = self.entries.iter().position(|e| std::ptr::eq(e, entry))?;
        let next = self.entries.get(index + 1)?;
        if next.path.starts_with(&entry.path) && next.path != entry.path {
            next.key.or(next.value).or_else(|| self.first_inside(next))
        } else {
            None
        }
    }
}

/// Marks the deliberate errors the walker raises to learn a scalar's position.
const PROBE: &str = "\u{1}hangar-source-probe\u{1}";

/// Reads the position yaml_serde appended to an error's text ("… at line L column C"). The mark
/// at line 1 column 1 is printed without a position, hence the default.
fn position_from_error(message: &str) -> SourceLocation {
    let parsed = message.rfind(" at line ").and_then(|at| {
        let rest = &message[at + " at line ".len()..];
        let (line, rest) = rest.split_once(" column ")?;
        let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some(SourceLocation {
            line: line.parse().ok()?,
            column: column.parse().ok()?,
        })
    });
    parsed.unwrap_or(SourceLocation { line: 1, column: 1 })
}

/// Deserialises one value with a visitor that fails on any scalar, and turns that failure back
/// into the scalar's position. `Ok(None)` means the value was a mapping or sequence (walked).
fn scalar_position<'de, D, V>(de: D, visitor: V) -> Result<Option<SourceLocation>, D::Error>
where
    D: Deserializer<'de>,
    V: Visitor<'de, Value = ()>,
{
    match de.deserialize_any(visitor) {
        Ok(()) => Ok(None),
        Err(err) => {
            let text = err.to_string();
            if text.contains(PROBE) {
                Ok(Some(position_from_error(&text)))
            } else {
                Err(err)
            }
        }
    }
}

struct Walk<'a> {
    path: KeyPath,
    entries: &'a mut Vec<Entry>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = Option<SourceLocation>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        scalar_position(
            de,
            WalkVisitor {
                path: self.path,
                entries: self.entries,
            },
        )
    }
}

struct WalkVisitor<'a> {
    path: KeyPath,
    entries: &'a mut Vec<Entry>,
}

impl<'de> Visitor<'de> for WalkVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every scalar ends up in a default `visit_*`, whose error message quotes this text;
        // that is how `scalar_position` recognises its own errors.
        f.write_str(PROBE)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        loop {
            let mut key_text = None;
            let Some(key_pos) = map.next_key_seed(KeySeed {
                text: &mut key_text,
            })?
            else {
                break;
            };
            let Some(key_text) = key_text else {
                // A mapping or sequence used as a key: nothing can address it, skip its value.
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let path = self.path.key(key_text);
            let at = self.entries.len();
            self.entries.push(Entry {
                path: path.clone(),
                key: key_pos,
                value: None,
            });
            let value = map.next_value_seed(Walk {
                path,
                entries: self.entries,
            })?;
            if let Some(entry) = self.entries.get_mut(at) {
                entry.value = value;
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            let path = self.path.index(index);
            let at = self.entries.len();
            self.entries.push(Entry {
                path: path.clone(),
                key: None,
                value: None,
            });
            match seq.next_element_seed(Walk {
                path,
                entries: self.entries,
            })? {
                Some(value) => {
                    if let Some(entry) = self.entries.get_mut(at) {
                        entry.value = value;
                    }
                }
                None => {
                    self.entries.truncate(at);
                    break;
                }
            }
            index += 1;
        }
        Ok(())
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged value (`!Tag …`): consume it so the walk stays in step, record nothing.
        use de::VariantAccess;
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        variant.newtype_variant::<IgnoredAny>()?;
        Ok(())
    }
}

/// Deserialises a mapping key: returns its position and stores its text.
struct KeySeed<'a> {
    text: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<SourceLocation>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        scalar_position(de, KeyVisitor { text: self.text })
    }
}

struct KeyVisitor<'a> {
    text: &'a mut Option<String>,
}

impl KeyVisitor<'_> {
    fn found<E: de::Error>(self, text: String) -> Result<(), E> {
        *self.text = Some(text);
        Err(E::custom(PROBE))
    }
}

impl<'de> Visitor<'de> for KeyVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PROBE)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.found(v.to_owned())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.found(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.found(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.found(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.found(v.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.found("null".to_owned())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> KeyPath {
        let mut p = KeyPath::root();
        for part in text.split('.') {
            if let Some((key, index)) = part.split_once('[') {
                p = p.key(key);
                let index = index.trim_end_matches(']').parse().unwrap_or(usize::MAX);
                p = p.index(index);
            } else {
                p = p.key(part);
            }
        }
        p
    }

    fn at(line: usize, column: usize) -> Option<SourceLocation> {
        Some(SourceLocation { line, column })
    }

    const DOC: &str = "\
# comment
mcp_servers:
  math:
    mode: subprocess
    command: [python, -m, \"server\"]
    env:
      TOKEN: ${T}
  db:
    members:
      - id: one
        weight: 2
      - two
logging: {level: INFO}
";

    #[test]
    fn keys_and_scalar_values_are_found_with_their_line_and_column() {
        let map = SourceMap::build(DOC);
        assert_eq!(map.key(&path("mcp_servers"), 0), at(2, 1));
        assert_eq!(map.key(&path("mcp_servers.math.mode"), 0), at(4, 5));
        assert_eq!(map.value(&path("mcp_servers.math.mode")), at(4, 11));
        assert_eq!(map.value(&path("mcp_servers.math.command[2]")), at(5, 27));
        assert_eq!(map.value(&path("mcp_servers.math.env.TOKEN")), at(7, 14));
        assert_eq!(
            map.key(&path("mcp_servers.db.members[0].weight"), 0),
            at(11, 9)
        );
        assert_eq!(map.value(&path("mcp_servers.db.members[1]")), at(12, 9));
        assert_eq!(map.key(&path("mcp_servers.db.members[1]"), 0), at(12, 9));
        assert_eq!(map.key(&path("mcp_servers.db.members[0]"), 0), at(10, 9));
        assert_eq!(map.key(&path("logging.level"), 0), at(13, 11));
    }

    #[test]
    fn a_mapping_value_points_at_its_first_key_and_a_missing_path_at_its_parent() {
        let map = SourceMap::build(DOC);
        assert_eq!(map.value(&path("mcp_servers.db.members[0]")), at(10, 9));
        assert_eq!(
            map.nearest_value(&path("mcp_servers.math.env.MISSING")),
            SourceLocation { line: 7, column: 7 }
        );
        assert_eq!(
            map.nearest_key(&path("nothing.here")),
            SourceLocation { line: 1, column: 1 }
        );
    }

    #[test]
    fn repeated_keys_are_told_apart_by_occurrence() {
        let map = SourceMap::build("a:\n  x: 1\n  x: 2\n");
        assert_eq!(map.key(&path("a.x"), 0), at(2, 3));
        assert_eq!(map.key(&path("a.x"), 1), at(3, 3));
        assert_eq!(map.key(&path("a.x"), 2), None);
    }

    #[test]
    fn position_in_the_first_column_of_the_file_is_recovered() {
        // yaml_serde prints no position for line 1 column 1; the walker must still say 1:1.
        let map = SourceMap::build("top: 1\n");
        assert_eq!(map.key(&path("top"), 0), at(1, 1));
        assert_eq!(map.value(&path("top")), at(1, 6));
    }

    #[test]
    fn anchors_tags_and_block_scalars_do_not_derail_the_walk() {
        let doc = "a: &x {k: v}\nb: *x\nc: !Tag {z: 1}\nd: |\n  text\n  more\ne: last\n";
        let map = SourceMap::build(doc);
        assert_eq!(map.key(&path("e"), 0), at(7, 1));
        assert_eq!(map.value(&path("d")), at(4, 4));
    }

    #[test]
    fn unparsable_text_gives_an_empty_map() {
        let map = SourceMap::build("a: [1, 2\n");
        assert_eq!(map.key(&path("a"), 0), None);
    }

    #[test]
    fn key_paths_print_like_the_file_reads() {
        assert_eq!(
            path("mcp_servers.g.members[0].command[1]").to_string(),
            "mcp_servers.g.members[0].command[1]"
        );
        assert_eq!(KeyPath::root().to_string(), "");
    }
}
