//! A JSON reader shaped for the PluginConfig, instead of serde's derived `Deserialize`.
//!
//! serde's derive instantiates its visitor machinery and serde_json's deserializer once per config
//! type: about 225 KB of the filter's 715 KB Wasm module went to reading JSON (`docs/benchmarks.md`,
//! *The lean Wasm path*), and V8 compiles every byte of it in each new VM. Here the grammar, strings,
//! numbers and error wording live in plain functions compiled once; the per-type readers
//! (`config/read.rs`) only say which members a type has and what each holds.
//!
//! Errors keep serde's wording (`invalid type: string "heavy", expected u32`, `unknown field`,
//! `missing field`, `duplicate field`), which operators and tests already know; the caller turns
//! the offset into the JSON path, line and column.

use std::borrow::Cow;

/// Why reading stopped, and where: `offset` is the byte of the offending value, key or object.
#[derive(Debug)]
pub(crate) struct ReadError {
    pub(crate) offset: usize,
    pub(crate) message: String,
}

pub(crate) type Read<T> = Result<T, ReadError>;

/// A cursor over one JSON document. The document is already known to be UTF-8, so every slice cut
/// at an ASCII delimiter is a valid `str`.
pub(crate) struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Reader { text, pos: 0 }
    }

    fn byte_at(&self, at: usize) -> Option<u8> {
        self.text.as_bytes().get(at).copied()
    }

    fn slice(&self, from: usize, to: usize) -> &'a str {
        self.text.get(from..to).unwrap_or_default()
    }

    pub(crate) fn error(&self, offset: usize, message: impl Into<String>) -> ReadError {
        ReadError {
            offset,
            message: message.into(),
        }
    }

    /// Skips whitespace and returns the next byte without consuming it.
    fn peek(&mut self) -> Option<u8> {
        while let Some(byte) = self.byte_at(self.pos) {
            if !matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(byte);
            }
            self.pos += 1;
        }
        None
    }

    /// Only whitespace may follow the document's value.
    pub(crate) fn end(&mut self) -> Read<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error(self.pos, "trailing characters")),
        }
    }

    fn eof(&self, while_reading: &str) -> ReadError {
        self.error(self.pos, format!("EOF while parsing {while_reading}"))
    }

    /// The error for a value of the wrong kind at the cursor, worded as serde words it.
    fn unexpected(&mut self, expected: &str) -> ReadError {
        let at = match self.peek() {
            Some(_) => self.pos,
            None => return self.eof("a value"),
        };
        let found = match self.byte_at(at) {
            Some(b'"') => match self.str() {
                Ok(text) => format!("string {text:?}"),
                Err(error) => return error,
            },
            Some(b'{') => "map".to_owned(),
            Some(b'[') => "sequence".to_owned(),
            Some(b't') => "boolean `true`".to_owned(),
            Some(b'f') => "boolean `false`".to_owned(),
            Some(b'n') => "null".to_owned(),
            Some(b'-' | b'0'..=b'9') => match self.number() {
                Ok((token, true)) => format!("integer `{token}`"),
                Ok((token, false)) => format!("floating point `{token}`"),
                Err(error) => return error,
            },
            _ => return self.error(at, "expected value"),
        };
        self.error(at, format!("invalid type: {found}, expected {expected}"))
    }

    fn literal(&mut self, word: &str) -> Read<()> {
        let at = self.pos;
        match self.text.get(at..at + word.len()) {
            Some(found) if found == word => {
                self.pos += word.len();
                Ok(())
            }
            _ => Err(self.error(at, "expected value")),
        }
    }

    /// `null` reads as `None` (as serde reads an `Option`), anything else through `value`.
    pub(crate) fn nullable<T>(
        &mut self,
        value: impl FnOnce(&mut Self) -> Read<T>,
    ) -> Read<Option<T>> {
        if self.peek() == Some(b'n') {
            self.literal("null")?;
            return Ok(None);
        }
        value(self).map(Some)
    }

    pub(crate) fn boolean(&mut self) -> Read<bool> {
        match self.peek() {
            Some(b't') => self.literal("true").map(|()| true),
            Some(b'f') => self.literal("false").map(|()| false),
            _ => Err(self.unexpected("a boolean")),
        }
    }

    /// A number token checked against JSON's grammar: its text, and whether it is an integer.
    fn number(&mut self) -> Read<(&'a str, bool)> {
        let start = self.pos;
        let digits = |reader: &mut Self| {
            let from = reader.pos;
            while matches!(reader.byte_at(reader.pos), Some(b'0'..=b'9')) {
                reader.pos += 1;
            }
            reader.pos > from
        };
        if self.byte_at(self.pos) == Some(b'-') {
            self.pos += 1;
        }
        let leading_zero = self.byte_at(self.pos) == Some(b'0');
        let int_start = self.pos;
        if !digits(self) || (leading_zero && self.pos - int_start > 1) {
            return Err(self.error(start, "invalid number"));
        }
        let mut integer = true;
        if self.byte_at(self.pos) == Some(b'.') {
            self.pos += 1;
            integer = false;
            if !digits(self) {
                return Err(self.error(start, "invalid number"));
            }
        }
        if matches!(self.byte_at(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            integer = false;
            if matches!(self.byte_at(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !digits(self) {
                return Err(self.error(start, "invalid number"));
            }
        }
        Ok((self.slice(start, self.pos), integer))
    }

    /// An unsigned integer that fits `T`; `expected` names the type as serde did (`u32`).
    fn unsigned<T: TryFrom<u64>>(&mut self, expected: &str) -> Read<T> {
        if !matches!(self.peek(), Some(b'-' | b'0'..=b'9')) {
            return Err(self.unexpected(expected));
        }
        let start = self.pos;
        let (token, integer) = self.number()?;
        if !integer {
            return Err(self.error(
                start,
                format!("invalid type: floating point `{token}`, expected {expected}"),
            ));
        }
        // `-0` is zero, as serde_json read it; any other negative number is out of range.
        let magnitude = match token.strip_prefix('-') {
            Some(digits) if digits.bytes().all(|b| b == b'0') => digits,
            _ => token,
        };
        magnitude
            .parse::<u64>()
            .ok()
            .and_then(|value| T::try_from(value).ok())
            .ok_or_else(|| {
                self.error(
                    start,
                    format!("invalid value: integer `{token}`, expected {expected}"),
                )
            })
    }

    pub(crate) fn u32(&mut self) -> Read<u32> {
        self.unsigned("u32")
    }

    pub(crate) fn u16(&mut self) -> Read<u16> {
        self.unsigned("u16")
    }

    pub(crate) fn string(&mut self) -> Read<String> {
        self.str().map(Cow::into_owned)
    }

    /// A string, borrowed from the document unless it has escapes (object keys almost never do).
    pub(crate) fn str(&mut self) -> Read<Cow<'a, str>> {
        if self.peek() != Some(b'"') {
            return Err(self.unexpected("a string"));
        }
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.byte_at(self.pos) {
                Some(b'"') => {
                    let text = self.slice(start, self.pos);
                    self.pos += 1;
                    return Ok(Cow::Borrowed(text));
                }
                Some(b'\\') => break,
                Some(byte) if byte < 0x20 => return Err(self.control_character()),
                Some(_) => self.pos += 1,
                None => return Err(self.eof("a string")),
            }
        }
        let mut text = String::from(self.slice(start, self.pos));
        loop {
            let run = self.pos;
            loop {
                match self.byte_at(self.pos) {
                    Some(b'"' | b'\\') => break,
                    Some(byte) if byte < 0x20 => return Err(self.control_character()),
                    Some(_) => self.pos += 1,
                    None => return Err(self.eof("a string")),
                }
            }
            text.push_str(self.slice(run, self.pos));
            if self.byte_at(self.pos) == Some(b'"') {
                self.pos += 1;
                return Ok(Cow::Owned(text));
            }
            self.pos += 1;
            text.push(self.escape()?);
        }
    }

    fn control_character(&self) -> ReadError {
        self.error(
            self.pos,
            "control character (\\u0000-\\u001F) found while parsing a string",
        )
    }

    /// The character an escape after `\` stands for.
    fn escape(&mut self) -> Read<char> {
        let at = self.pos;
        let byte = self.byte_at(at).ok_or_else(|| self.eof("a string"))?;
        self.pos += 1;
        Ok(match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                let code = match unit {
                    0xD800..=0xDBFF => {
                        if self.slice(self.pos, self.pos + 2) != "\\u" {
                            return Err(self.error(at, "lone leading surrogate in hex escape"));
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(self.error(at, "lone leading surrogate in hex escape"));
                        }
                        0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    }
                    0xDC00..=0xDFFF => {
                        return Err(self.error(at, "lone trailing surrogate in hex escape"));
                    }
                    other => other,
                };
                char::from_u32(code).ok_or_else(|| self.error(at, "invalid unicode code point"))?
            }
            _ => return Err(self.error(at, "invalid escape")),
        })
    }

    fn hex4(&mut self) -> Read<u32> {
        let digits = self.slice(self.pos, self.pos + 4);
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.error(self.pos, "invalid escape"));
        }
        self.pos += 4;
        u32::from_str_radix(digits, 16).map_err(|_| self.error(self.pos, "invalid escape"))
    }

    /// Steps to the next member of an object whose `{` was consumed: the key and its offset, or
    /// `None` after the closing brace.
    fn next_key(&mut self, first: &mut bool) -> Read<Option<(usize, Cow<'a, str>)>> {
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                return Ok(None);
            }
            Some(b',') if !*first => self.pos += 1,
            Some(_) if *first => {}
            Some(_) => return Err(self.error(self.pos, "expected `,` or `}`")),
            None => return Err(self.eof("an object")),
        }
        let at = match self.peek() {
            Some(b'"') => self.pos,
            Some(b'}') if !*first => return Err(self.error(self.pos, "trailing comma")),
            Some(_) => return Err(self.error(self.pos, "key must be a string")),
            None => return Err(self.eof("an object")),
        };
        *first = false;
        let key = self.str()?;
        match self.peek() {
            Some(b':') => self.pos += 1,
            Some(_) => return Err(self.error(self.pos, "expected `:`")),
            None => return Err(self.eof("an object")),
        }
        Ok(Some((at, key)))
    }

    /// Reads an object whose members must be among `fields` (at most 64), calling `member` with
    /// each one's name; an unknown or repeated member is refused, as serde's `deny_unknown_fields`
    /// did. Returns the object's offset, which [`Reader::required`] reports for a missing member.
    pub(crate) fn object(
        &mut self,
        what: &str,
        fields: &'static [&'static str],
        mut member: impl FnMut(&mut Self, &'static str) -> Read<()>,
    ) -> Read<usize> {
        self.object_members(what, fields, &mut member)
    }

    /// [`Reader::object`]'s work, compiled once: a generic body would be copied into every config
    /// type's reader, which is what made serde's readers large.
    fn object_members(
        &mut self,
        what: &str,
        fields: &'static [&'static str],
        member: &mut dyn FnMut(&mut Self, &'static str) -> Read<()>,
    ) -> Read<usize> {
        if self.peek() != Some(b'{') {
            return Err(self.unexpected(what));
        }
        let open = self.pos;
        self.pos += 1;
        let mut first = true;
        let mut seen = 0_u64;
        while let Some((at, key)) = self.next_key(&mut first)? {
            let Some((index, &field)) = fields.iter().enumerate().find(|(_, f)| **f == key) else {
                return Err(self.error(at, unknown("field", &key, fields)));
            };
            let bit = 1_u64.checked_shl(u32::try_from(index).unwrap_or(u32::MAX));
            let bit = bit.unwrap_or_default();
            if seen & bit != 0 {
                return Err(self.error(at, format!("duplicate field `{key}`")));
            }
            seen |= bit;
            member(self, field)?;
        }
        Ok(open)
    }

    /// A member that has no default must have been present in the object at `open`.
    pub(crate) fn required<T>(&self, value: Option<T>, open: usize, field: &str) -> Read<T> {
        value.ok_or_else(|| self.error(open, format!("missing field `{field}`")))
    }

    /// Reads an object of arbitrary keys, giving `entry` each key (and its offset) with the cursor
    /// on its value; the entries come back in document order.
    pub(crate) fn entries<T>(
        &mut self,
        what: &str,
        mut entry: impl FnMut(&mut Self, Cow<'a, str>, usize) -> Read<T>,
    ) -> Read<Vec<T>> {
        if self.peek() != Some(b'{') {
            return Err(self.unexpected(what));
        }
        self.pos += 1;
        let mut first = true;
        let mut entries = Vec::new();
        while let Some((at, key)) = self.next_key(&mut first)? {
            entries.push(entry(self, key, at)?);
        }
        Ok(entries)
    }

    /// A JSON array, or `{}` for an empty one.
    ///
    /// Kong 3.4–3.9 does not hand a filter the JSON it was given: it decodes a filter's `config`
    /// into Lua tables and encodes it again (`serialize_configuration` in Kong's
    /// `kong/runloop/wasm.lua`, `cjson.encode`), and lua-cjson encodes an empty table as `{}`, so
    /// every empty list the producer wrote reaches the filter as `{}` (`docs/kong.md`, *Empty
    /// lists*). A non-empty object is still an error.
    ///
    /// The list keeps no spare room: most PluginConfig lists hold one or two items and a growing
    /// vector starts with four; trimmed, the parsed 10,000-route config takes 12.6 MB instead of
    /// 22 MB, which a new Wasm VM must first fault in (`docs/benchmarks.md`).
    pub(crate) fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> Read<T>) -> Read<Vec<T>> {
        let mut items = Vec::new();
        self.list_items(&mut |reader| {
            items.push(item(reader)?);
            Ok(())
        })?;
        items.shrink_to_fit();
        Ok(items)
    }

    /// [`Reader::list`]'s grammar, compiled once (see [`Reader::object_members`]).
    fn list_items(&mut self, item: &mut dyn FnMut(&mut Self) -> Read<()>) -> Read<()> {
        match self.peek() {
            Some(b'[') => self.pos += 1,
            Some(b'{') => {
                let at = self.pos;
                self.pos += 1;
                return match self.peek() {
                    Some(b'}') => {
                        self.pos += 1;
                        Ok(())
                    }
                    _ => Err(self.error(
                        at,
                        "expected a list, got an object with members (only {} stands for an empty list)",
                    )),
                };
            }
            _ => return Err(self.unexpected("a list (or {} for an empty one)")),
        }
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            item(self)?;
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    if self.peek() == Some(b']') {
                        return Err(self.error(self.pos, "trailing comma"));
                    }
                }
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(_) => return Err(self.error(self.pos, "expected `,` or `]`")),
                None => return Err(self.eof("a list")),
            }
        }
    }

    /// A string naming one of `variants`; returns its index.
    pub(crate) fn variant(&mut self, variants: &'static [&'static str]) -> Read<usize> {
        if self.peek() != Some(b'"') {
            return Err(self.unexpected("a string naming a variant"));
        }
        let at = self.pos;
        let name = self.str()?;
        variants
            .iter()
            .position(|variant| *variant == name)
            .ok_or_else(|| self.error(at, unknown("variant", &name, variants)))
    }
}

/// serde's wording for a name not in the list: `unknown field `valeu`, expected one of `type`,
/// `name`, `value``.
fn unknown(kind: &str, name: &str, expected: &[&str]) -> String {
    let quoted = |names: &[&str]| {
        names
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
    };
    match expected {
        [] => format!("unknown {kind} `{name}`, there are no {kind}s"),
        [only] => format!("unknown {kind} `{name}`, expected `{only}`"),
        [first, second] => format!("unknown {kind} `{name}`, expected `{first}` or `{second}`"),
        _ => format!(
            "unknown {kind} `{name}`, expected one of {}",
            quoted(expected).join(", ")
        ),
    }
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
