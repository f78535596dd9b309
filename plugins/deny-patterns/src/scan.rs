//! One pass over the arguments' JSON text: checks that it is JSON and hands every string value
//! to [`denial`](super::denial), stopping at the first denial.
//!
//! Written by hand rather than with serde_json because this runs on every call: no tree is
//! built, nothing is copied, a string is decoded only when it has escapes (most have none, and
//! such a string is its raw bytes), and the JSON pointer of a string is spelled out only when it
//! is denied. Patterns are first searched for in the whole raw text, once each: a pattern that
//! does not occur there cannot occur in a string without escapes, so most strings are not
//! searched at all.
//!
//! Deliberately not done: numbers are checked for their grammar, not converted; after a denial
//! the rest of the text is not read (it is denied either way).

use super::{Pattern, Root, denial, key_is_pathy};

/// Deeper arguments are refused: serde_json, which parsed them in the hangar, refuses them too
/// (its limit of 128 counts the one it refuses).
const MAX_DEPTH: usize = 127;

/// What is wrong with the text, and at which byte.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Malformed {
    pub(crate) what: &'static str,
    pub(crate) at: usize,
}

/// Buffers a scan needs, kept by the plugin between calls.
#[derive(Default)]
pub(crate) struct Scratch {
    /// The open objects and arrays, outermost first.
    frames: Vec<Frame>,
    /// The decoded text of the string being checked, when it had escapes.
    decoded: String,
    /// Whether each pattern occurs anywhere in this call's raw text.
    in_text: Vec<bool>,
}

/// An open object or array.
#[derive(Clone, Copy)]
enum Frame {
    /// `key` is the byte range (inside the quotes) of the current member's key.
    Object {
        key: (usize, usize),
        key_escaped: bool,
        key_is_pathy: bool,
    },
    /// `key_is_pathy` is inherited from the key above the array.
    Array { index: usize, key_is_pathy: bool },
}

impl Frame {
    fn key_is_pathy(self) -> bool {
        match self {
            Self::Object { key_is_pathy, .. } | Self::Array { key_is_pathy, .. } => key_is_pathy,
        }
    }
}

pub(crate) struct Scanner<'s> {
    text: &'s str,
    bytes: &'s [u8],
    pos: usize,
    patterns: &'s [Pattern],
    root: Option<&'s Root>,
    /// Some pattern occurs in the raw text: unescaped strings must be searched too.
    any_in_text: bool,
    frames: &'s mut Vec<Frame>,
    decoded: &'s mut String,
    in_text: &'s [bool],
}

impl<'s> Scanner<'s> {
    pub(crate) fn new(
        patterns: &'s [Pattern],
        root: Option<&'s Root>,
        scratch: &'s mut Scratch,
        text: &'s str,
    ) -> Self {
        let Scratch {
            frames,
            decoded,
            in_text,
        } = scratch;
        frames.clear();
        in_text.clear();
        in_text.extend(
            patterns
                .iter()
                .map(|p| p.finder.find(text.as_bytes()).is_some()),
        );
        Self {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            patterns,
            root,
            any_in_text: in_text.iter().any(|&hit| hit),
            frames,
            decoded,
            in_text,
        }
    }

    /// The reason of the first denial, in document order; none when every string passes.
    pub(crate) fn run(mut self) -> Result<Option<String>, Malformed> {
        loop {
            self.skip_whitespace();
            match self.peek() {
                Some(b'{') => {
                    self.check_depth()?;
                    self.pos += 1;
                    self.skip_whitespace();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                    } else {
                        self.frames.push(Frame::Object {
                            key: (0, 0),
                            key_escaped: false,
                            key_is_pathy: false,
                        });
                        self.key()?;
                        continue;
                    }
                }
                Some(b'[') => {
                    self.check_depth()?;
                    self.pos += 1;
                    self.skip_whitespace();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                    } else {
                        let key_is_pathy = self.frames.last().is_some_and(|f| f.key_is_pathy());
                        self.frames.push(Frame::Array {
                            index: 0,
                            key_is_pathy,
                        });
                        continue;
                    }
                }
                Some(b'"') => {
                    if let Some(reason) = self.string_value()? {
                        return Ok(Some(reason));
                    }
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(_) => return Err(self.malformed("expected a value")),
                None => return Err(self.malformed("the text ends where a value should be")),
            }
            // A value ended: close the containers it ends, then go on to the next value.
            loop {
                self.skip_whitespace();
                let next = self.peek();
                let Some(frame) = self.frames.last_mut() else {
                    return match next {
                        None => Ok(None),
                        Some(_) => Err(self.malformed("more text after the arguments")),
                    };
                };
                match (frame, next) {
                    (Frame::Object { .. }, Some(b',')) => {
                        self.pos += 1;
                        self.skip_whitespace();
                        self.key()?;
                        break;
                    }
                    (Frame::Array { index, .. }, Some(b',')) => {
                        *index += 1;
                        self.pos += 1;
                        break;
                    }
                    (Frame::Object { .. }, Some(b'}')) | (Frame::Array { .. }, Some(b']')) => {
                        self.pos += 1;
                        self.frames.pop();
                    }
                    (Frame::Object { .. }, _) => {
                        return Err(self.malformed("expected `,` or `}` in an object"));
                    }
                    (Frame::Array { .. }, _) => {
                        return Err(self.malformed("expected `,` or `]` in an array"));
                    }
                }
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn malformed(&self, what: &'static str) -> Malformed {
        Malformed { what, at: self.pos }
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Before an object or an array is opened (empty ones count too).
    fn check_depth(&self) -> Result<(), Malformed> {
        if self.frames.len() == MAX_DEPTH {
            return Err(self.malformed("nested deeper than 127 levels"));
        }
        Ok(())
    }

    /// An object member's key and its `:`, as the current key of the innermost object.
    fn key(&mut self) -> Result<(), Malformed> {
        if self.peek() != Some(b'"') {
            return Err(self.malformed("expected a key (a string) in an object"));
        }
        let (start, end, escaped) = self.string()?;
        let pathy = if escaped {
            // Decoded even without a root: a bad escape in a key is malformed too.
            decode(&self.text[start..end], self.decoded)
                .map_err(|what| Malformed { what, at: start })?;
            self.root.is_some() && key_is_pathy(self.decoded)
        } else {
            self.root.is_some() && key_is_pathy(&self.text[start..end])
        };
        if let Some(Frame::Object {
            key,
            key_escaped,
            key_is_pathy,
        }) = self.frames.last_mut()
        {
            *key = (start, end);
            *key_escaped = escaped;
            *key_is_pathy = pathy;
        }
        self.skip_whitespace();
        if self.peek() != Some(b':') {
            return Err(self.malformed("expected `:` after a key"));
        }
        self.pos += 1;
        Ok(())
    }

    /// A string value, checked; the reason when it is denied.
    fn string_value(&mut self) -> Result<Option<String>, Malformed> {
        let (start, end, escaped) = self.string()?;
        let key_is_pathy = self.frames.last().is_some_and(|f| f.key_is_pathy());
        let text = if escaped {
            decode(&self.text[start..end], self.decoded)
                .map_err(|what| Malformed { what, at: start })?;
            self.decoded.as_str()
        } else if self.any_in_text || self.root.is_some() {
            &self.text[start..end]
        } else {
            // No pattern in the raw text, no root: nothing this string can be denied for.
            return Ok(None);
        };
        let what = denial(
            self.patterns,
            self.in_text,
            escaped,
            self.root,
            key_is_pathy,
            text,
        );
        Ok(what.map(|what| format!("argument `{}` {what}", self.pointer())))
    }

    /// Skips a string (at its opening quote): the byte range inside the quotes, and whether it
    /// has escapes (checked when the string is decoded).
    fn string(&mut self) -> Result<(usize, usize, bool), Malformed> {
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        loop {
            let Some(at) = find_special(self.bytes, self.pos) else {
                self.pos = self.bytes.len();
                return Err(self.malformed("a string is not closed"));
            };
            self.pos = at;
            match self.bytes[at] {
                b'"' => {
                    self.pos = at + 1;
                    return Ok((start, at, escaped));
                }
                b'\\' => {
                    escaped = true;
                    // The escaped byte is skipped whatever it is (an escaped quote does not end
                    // the string); `decode` refuses a bad one.
                    self.pos = at + 2;
                }
                _ => return Err(self.malformed("a control character in a string (not escaped)")),
            }
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), Malformed> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.malformed("expected a value (`true`, `false` or `null`?)"))
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Result<(), Malformed> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.malformed("a number without digits")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.malformed("a number without digits after `.`"));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.malformed("a number without digits in its exponent"));
            }
            self.digits();
        }
        Ok(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    /// The JSON pointer (RFC 6901) of the value being read; `/` for the arguments themselves.
    fn pointer(&self) -> String {
        if self.frames.is_empty() {
            return "/".to_owned();
        }
        let mut pointer = String::new();
        let mut key = String::new();
        for frame in self.frames.iter() {
            pointer.push('/');
            match *frame {
                Frame::Object {
                    key: (start, end),
                    key_escaped,
                    ..
                } => {
                    let raw = &self.text[start..end];
                    let text = if key_escaped && decode(raw, &mut key).is_ok() {
                        key.as_str()
                    } else {
                        raw
                    };
                    for c in text.chars() {
                        match c {
                            '~' => pointer.push_str("~0"),
                            '/' => pointer.push_str("~1"),
                            c => pointer.push(c),
                        }
                    }
                }
                Frame::Array { index, .. } => pointer.push_str(&index.to_string()),
            }
        }
        pointer
    }
}

/// The first `"`, `\` or control character at or after `from`. Eight bytes at a time (SWAR on
/// a u64): strings are most of the text, and wasm32 has no SIMD unless built for it.
pub(crate) fn find_special(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    let mut chunks = rest.chunks_exact(8);
    let mut offset = from;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let mask = special_mask(u64::from_le_bytes(word));
        if mask != 0 {
            return Some(offset + (mask.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|i| offset + i)
}

/// The high bit of each byte of `word` that is `"`, `\` or below 0x20. Bits above the lowest
/// one may be false (a borrow runs upwards), the lowest one never is, which is all
/// `find_special` uses.
fn special_mask(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let quote = word ^ (ONES * b'"' as u64);
    let backslash = word ^ (ONES * b'\\' as u64);
    let is_zero = |x: u64| x.wrapping_sub(ONES) & !x;
    (is_zero(quote) | is_zero(backslash) | (word.wrapping_sub(ONES * 0x20) & !word)) & HIGHS
}

/// Decodes the JSON escapes of `raw` (the inside of a string) into `out`.
fn decode(raw: &str, out: &mut String) -> Result<(), &'static str> {
    out.clear();
    let bytes = raw.as_bytes();
    let mut plain = 0;
    while let Some(found) = memchr::memchr(b'\\', &bytes[plain..]) {
        let at = plain + found;
        // `at` and every `plain` are at ASCII bytes, so these are char boundaries.
        out.push_str(&raw[plain..at]);
        let (c, len) = match bytes.get(at + 1) {
            Some(b'"') => ('"', 2),
            Some(b'\\') => ('\\', 2),
            Some(b'/') => ('/', 2),
            Some(b'b') => ('\u{8}', 2),
            Some(b'f') => ('\u{c}', 2),
            Some(b'n') => ('\n', 2),
            Some(b'r') => ('\r', 2),
            Some(b't') => ('\t', 2),
            Some(b'u') => {
                let high = hex4(bytes, at + 2)?;
                match high {
                    0xd800..=0xdbff => {
                        if bytes.get(at + 6..at + 8) != Some(&b"\\u"[..]) {
                            return Err("a lone surrogate in a \\u escape");
                        }
                        let low = hex4(bytes, at + 8)?;
                        if !(0xdc00..=0xdfff).contains(&low) {
                            return Err("a lone surrogate in a \\u escape");
                        }
                        let code = 0x1_0000 + ((high - 0xd800) << 10) + (low - 0xdc00);
                        (char::from_u32(code).ok_or("an invalid \\u escape")?, 12)
                    }
                    0xdc00..=0xdfff => return Err("a lone surrogate in a \\u escape"),
                    code => (char::from_u32(code).ok_or("an invalid \\u escape")?, 6),
                }
            }
            _ => return Err("an invalid escape in a string"),
        };
        out.push(c);
        plain = at + len;
    }
    out.push_str(&raw[plain..]);
    Ok(())
}

/// The four hex digits at `at`.
fn hex4(bytes: &[u8], at: usize) -> Result<u32, &'static str> {
    let digits = bytes
        .get(at..at + 4)
        .ok_or("a \\u escape without 4 hex digits")?;
    digits.iter().try_fold(0u32, |value, &b| {
        let digit = (b as char)
            .to_digit(16)
            .ok_or("a \\u escape without 4 hex digits")?;
        Ok(value << 4 | digit)
    })
}
