//! A strict one-pass reader for the flat JSON objects of eventsim records. It allocates
//! only for strings with escapes, never panics, and reports the first problem it meets.
//!
//! Precedence of problems: a record that is not JSON at all is `invalid_json` (or
//! `invalid_utf8`) wherever the syntax breaks; only a well-formed record gets a field-level
//! reason, the first one in key order; `missing_field` is decided last.

use std::borrow::Cow;

use super::field::{Field, FieldSet};
use super::reject::{RejectReason, Rejection};
use super::{Auth, Level, MAX_RECORD_BYTES};

/// Deeper nesting than this is refused, so hostile input cannot exhaust the stack.
const MAX_DEPTH: u32 = 128;

/// The values of one record, by field, before each event kind assembles its type.
#[derive(Debug, Default)]
pub(crate) struct Fields<'a> {
    pub ts: Option<i64>,
    pub session_id: Option<i64>,
    pub page: Option<Cow<'a, str>>,
    pub auth: Option<Auth>,
    pub method: Option<Cow<'a, str>>,
    pub status: Option<i64>,
    pub level: Option<Level>,
    pub item_in_session: Option<i64>,
    pub city: Option<Cow<'a, str>>,
    pub zip: Option<Cow<'a, str>>,
    pub state: Option<Cow<'a, str>>,
    pub user_agent: Option<Cow<'a, str>>,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    pub user_id: Option<i64>,
    pub last_name: Option<Cow<'a, str>>,
    pub first_name: Option<Cow<'a, str>>,
    pub gender: Option<Cow<'a, str>>,
    pub registration: Option<i64>,
    pub artist: Option<Cow<'a, str>>,
    pub song: Option<Cow<'a, str>>,
    pub duration: Option<f64>,
    pub success: Option<bool>,
    /// Keys seen with a non-null value.
    pub present: FieldSet,
}

/// Reads one record whose keys must all be in `allowed`.
pub(crate) fn read_record(record: &[u8], allowed: FieldSet) -> Result<Fields<'_>, Rejection> {
    if record.len() > MAX_RECORD_BYTES {
        return Err(Rejection::new(
            RejectReason::TooLarge,
            "record exceeds 65536 bytes",
        ));
    }
    let text = std::str::from_utf8(record).map_err(|e| {
        Rejection::new(RejectReason::InvalidUtf8, "record is not UTF-8").at(e.valid_up_to())
    })?;
    let mut reader = Reader {
        text,
        bytes: record,
        pos: 0,
        problem: None,
    };
    let fields = reader.record(allowed)?;
    match reader.problem {
        Some(problem) => Err(problem),
        None => Ok(fields),
    }
}

/// A JSON value as far as the reader needs to know it.
enum Value<'a> {
    Null,
    Bool(bool),
    /// The number's text, already checked against the JSON grammar.
    Number(&'a str),
    Str(Cow<'a, str>),
    /// An object or array, skipped after a syntax check.
    Nested,
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// The first field-level problem; syntax errors return at once instead.
    problem: Option<Rejection>,
}

impl<'a> Reader<'a> {
    fn record(&mut self, allowed: FieldSet) -> Result<Fields<'a>, Rejection> {
        self.skip_ws();
        match self.peek() {
            None => return Err(Rejection::new(RejectReason::Empty, "record is empty")),
            Some(b'{') => {}
            Some(_) => {
                self.skip_value(0)?;
                self.end()?;
                return Err(
                    Rejection::new(RejectReason::NotAnObject, "expected a JSON object").at(0),
                );
            }
        }
        self.pos += 1;
        let mut fields = Fields::default();
        let mut seen = FieldSet::EMPTY;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                let key_at = self.pos;
                if self.peek() != Some(b'"') {
                    return Err(self.syntax("expected a string key"));
                }
                let key = self.string()?;
                self.skip_ws();
                self.expect(b':', "expected ':' after an object key")?;
                self.skip_ws();
                let value_at = self.pos;
                let value = self.value(0)?;
                match Field::from_key(&key).filter(|f| allowed.contains(*f)) {
                    None => self.note(
                        Rejection::new(
                            RejectReason::UnknownField,
                            "this event kind has no such key",
                        )
                        .field(key.into_owned())
                        .at(key_at),
                    ),
                    Some(field) if seen.contains(field) => self.note(
                        Rejection::new(RejectReason::DuplicateField, "key appears twice")
                            .field(field.name())
                            .at(key_at),
                    ),
                    Some(field) => {
                        seen.insert(field);
                        if let Err(problem) = store(&mut fields, field, value) {
                            self.note(problem.field(field.name()).at(value_at));
                        }
                    }
                }
                self.skip_ws();
                match self.bump() {
                    Some(b',') => self.skip_ws(),
                    Some(b'}') => break,
                    Some(_) => return Err(self.syntax_at(self.pos - 1, "expected ',' or '}'")),
                    None => return Err(self.eof()),
                }
            }
        }
        self.end()?;
        Ok(fields)
    }

    /// Records a field-level problem unless an earlier one is already known.
    fn note(&mut self, problem: Rejection) {
        if self.problem.is_none() {
            self.problem = Some(problem);
        }
    }

    fn end(&mut self) -> Result<(), Rejection> {
        self.skip_ws();
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.syntax("unexpected characters after the JSON value")),
        }
    }

    fn value(&mut self, depth: u32) -> Result<Value<'a>, Rejection> {
        match self.peek() {
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b'-' | b'0'..=b'9') => Ok(Value::Number(self.number()?)),
            Some(b't') => self.literal("true").map(|()| Value::Bool(true)),
            Some(b'f') => self.literal("false").map(|()| Value::Bool(false)),
            Some(b'n') => self.literal("null").map(|()| Value::Null),
            Some(b'{' | b'[') => self.skip_value(depth).map(|()| Value::Nested),
            Some(_) => Err(self.syntax("expected a JSON value")),
            None => Err(self.eof()),
        }
    }

    /// Checks and passes over any JSON value, nested ones included.
    fn skip_value(&mut self, depth: u32) -> Result<(), Rejection> {
        if depth >= MAX_DEPTH {
            return Err(self.syntax("nested too deeply"));
        }
        let (open, close) = match self.peek() {
            Some(b'{') => (b'{', b'}'),
            Some(b'[') => (b'[', b']'),
            _ => return self.value(depth).map(drop),
        };
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            if open == b'{' {
                if self.peek() != Some(b'"') {
                    return Err(self.syntax("expected a string key"));
                }
                self.string()?;
                self.skip_ws();
                self.expect(b':', "expected ':' after an object key")?;
                self.skip_ws();
            }
            self.skip_value(depth + 1)?;
            self.skip_ws();
            match self.bump() {
                Some(b',') => self.skip_ws(),
                Some(b) if b == close => return Ok(()),
                Some(_) => {
                    return Err(self.syntax_at(self.pos - 1, "expected ',' or a closing bracket"));
                }
                None => return Err(self.eof()),
            }
        }
    }

    /// Reads a string whose opening quote is at the current position.
    fn string(&mut self) -> Result<Cow<'a, str>, Rejection> {
        let start = self.pos + 1;
        let mut i = start;
        loop {
            match self.bytes.get(i) {
                None => return Err(self.eof()),
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok(Cow::Borrowed(&self.text[start..i]));
                }
                Some(b'\\') => return self.escaped_string(start, i).map(Cow::Owned),
                Some(&b) if b < 0x20 => {
                    return Err(self.syntax_at(i, "control character inside a string"));
                }
                Some(_) => i += 1,
            }
        }
    }

    /// The slow path of [`Reader::string`], from the first backslash at `i` on. Slices
    /// of `text` start and end next to ASCII bytes, so they fall on char boundaries.
    fn escaped_string(&mut self, start: usize, mut i: usize) -> Result<String, Rejection> {
        let mut out = String::with_capacity(i - start + 16);
        out.push_str(&self.text[start..i]);
        loop {
            match self.bytes.get(i) {
                None => return Err(self.eof()),
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let escape_at = i;
                    let Some(&kind) = self.bytes.get(i + 1) else {
                        return Err(self.eof());
                    };
                    i += 2;
                    let ch = match kind {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let (ch, used) = self.unicode_escape(i)?;
                            i += used;
                            ch
                        }
                        _ => return Err(self.syntax_at(escape_at, "invalid escape sequence")),
                    };
                    out.push(ch);
                }
                Some(&b) if b < 0x20 => {
                    return Err(self.syntax_at(i, "control character inside a string"));
                }
                Some(_) => {
                    let run = i;
                    while let Some(&b) = self.bytes.get(i) {
                        if b == b'"' || b == b'\\' || b < 0x20 {
                            break;
                        }
                        i += 1;
                    }
                    out.push_str(&self.text[run..i]);
                }
            }
        }
    }

    /// Decodes the hex digits of a `\u` escape starting at `i`, joining surrogate pairs.
    /// Returns the character and how many bytes after `i` it used.
    fn unicode_escape(&self, i: usize) -> Result<(char, usize), Rejection> {
        let high = self.hex4(i)?;
        if !(0xD800..0xE000).contains(&high) {
            // Not a surrogate, so always a valid scalar value.
            return char::from_u32(high)
                .map(|c| (c, 4))
                .ok_or_else(|| self.lone_surrogate(i));
        }
        if high >= 0xDC00 || self.bytes.get(i + 4..i + 6) != Some(b"\\u".as_slice()) {
            return Err(self.lone_surrogate(i));
        }
        let low = self.hex4(i + 6)?;
        if !(0xDC00..0xE000).contains(&low) {
            return Err(self.lone_surrogate(i));
        }
        let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
        char::from_u32(code)
            .map(|c| (c, 10))
            .ok_or_else(|| self.lone_surrogate(i))
    }

    fn hex4(&self, i: usize) -> Result<u32, Rejection> {
        let Some(digits) = self.bytes.get(i..i + 4) else {
            return Err(self.eof());
        };
        digits.iter().try_fold(0u32, |acc, &b| {
            let digit = (b as char)
                .to_digit(16)
                .ok_or_else(|| self.syntax_at(i, "invalid \\u escape"))?;
            Ok(acc * 16 + digit)
        })
    }

    fn lone_surrogate(&self, i: usize) -> Rejection {
        Rejection::new(
            RejectReason::InvalidUtf8,
            "\\u escape names a lone surrogate",
        )
        .at(i)
    }

    /// Reads a number per the JSON grammar and returns its text.
    fn number(&mut self) -> Result<&'a str, Rejection> {
        let start = self.pos;
        let mut i = start;
        if self.bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        match self.bytes.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = self.digits(i),
            Some(_) => return Err(self.syntax_at(i, "invalid number")),
            None => return Err(self.eof()),
        }
        if self.bytes.get(i) == Some(&b'.') {
            i = self.required_digits(i + 1)?;
        }
        if let Some(b'e' | b'E') = self.bytes.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = self.bytes.get(i) {
                i += 1;
            }
            i = self.required_digits(i)?;
        }
        self.pos = i;
        Ok(&self.text[start..i])
    }

    fn digits(&self, mut i: usize) -> usize {
        while self.bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    }

    fn required_digits(&self, i: usize) -> Result<usize, Rejection> {
        match self.bytes.get(i) {
            Some(b) if b.is_ascii_digit() => Ok(self.digits(i)),
            Some(_) => Err(self.syntax_at(i, "invalid number")),
            None => Err(self.eof()),
        }
    }

    fn literal(&mut self, word: &'static str) -> Result<(), Rejection> {
        let end = self.pos + word.len();
        match self.bytes.get(self.pos..end) {
            Some(found) if found == word.as_bytes() => {
                self.pos = end;
                Ok(())
            }
            _ if self.bytes.len() < end && word.as_bytes().starts_with(&self.bytes[self.pos..]) => {
                Err(self.eof())
            }
            _ => Err(self.syntax("expected a JSON value")),
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn expect(&mut self, byte: u8, detail: &'static str) -> Result<(), Rejection> {
        match self.peek() {
            Some(b) if b == byte => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(self.syntax(detail)),
            None => Err(self.eof()),
        }
    }

    fn syntax(&self, detail: &'static str) -> Rejection {
        self.syntax_at(self.pos, detail)
    }

    fn syntax_at(&self, at: usize, detail: &'static str) -> Rejection {
        Rejection::new(RejectReason::InvalidJson, detail).at(at)
    }

    fn eof(&self) -> Rejection {
        self.syntax_at(self.bytes.len(), "unexpected end of record")
    }
}

/// Checks one value against its field's type and range and keeps it. `null` counts as
/// absent, since some producers write hidden fields as `null` instead of leaving them out.
fn store<'a>(fields: &mut Fields<'a>, field: Field, value: Value<'a>) -> Result<(), Rejection> {
    if let Value::Null = value {
        return Ok(());
    }
    fields.present.insert(field);
    match field {
        Field::Ts => fields.ts = Some(epoch_millis(value)?),
        Field::Registration => fields.registration = Some(epoch_millis(value)?),
        Field::SessionId => fields.session_id = Some(int_in(value, 0, i64::MAX)?),
        Field::ItemInSession => fields.item_in_session = Some(int_in(value, 0, i64::MAX)?),
        Field::UserId => fields.user_id = Some(int_in(value, 0, i64::MAX)?),
        Field::Status => fields.status = Some(int_in(value, 100, 599)?),
        Field::Lon => fields.lon = Some(float_in(value, -180.0, 180.0)?),
        Field::Lat => fields.lat = Some(float_in(value, -90.0, 90.0)?),
        Field::Duration => {
            let duration = float_in(value, 0.0, super::MAX_SONG_SECONDS)?;
            if duration == 0.0 {
                return Err(Rejection::new(
                    RejectReason::OutOfRange,
                    "duration must be positive",
                ));
            }
            fields.duration = Some(duration);
        }
        Field::Auth => {
            let text = string(value)?;
            let auth = Auth::from_name(&text).ok_or_else(|| {
                Rejection::new(
                    RejectReason::InvalidValue,
                    "expected one of \"Logged In\", \"Logged Out\", \"Guest\", \"Cancelled\"",
                )
            })?;
            fields.auth = Some(auth);
        }
        Field::Level => {
            let text = string(value)?;
            let level = Level::from_name(&text).ok_or_else(|| {
                Rejection::new(RejectReason::InvalidValue, "expected \"free\" or \"paid\"")
            })?;
            fields.level = Some(level);
        }
        Field::Success => match value {
            Value::Bool(success) => fields.success = Some(success),
            _ => {
                return Err(Rejection::new(
                    RejectReason::WrongType,
                    "expected true or false",
                ));
            }
        },
        Field::Page => fields.page = Some(string(value)?),
        Field::Method => fields.method = Some(string(value)?),
        Field::City => fields.city = Some(string(value)?),
        Field::Zip => fields.zip = Some(string(value)?),
        Field::State => fields.state = Some(string(value)?),
        Field::UserAgent => fields.user_agent = Some(string(value)?),
        Field::LastName => fields.last_name = Some(string(value)?),
        Field::FirstName => fields.first_name = Some(string(value)?),
        Field::Gender => fields.gender = Some(string(value)?),
        Field::Artist => fields.artist = Some(string(value)?),
        Field::Song => fields.song = Some(string(value)?),
    }
    Ok(())
}

fn string(value: Value<'_>) -> Result<Cow<'_, str>, Rejection> {
    match value {
        Value::Str(text) => Ok(text),
        _ => Err(Rejection::new(RejectReason::WrongType, "expected a string")),
    }
}

fn epoch_millis(value: Value<'_>) -> Result<i64, Rejection> {
    int_in(value, 0, super::MAX_EPOCH_MILLIS).map_err(|r| Rejection {
        detail: "expected epoch milliseconds from 1970 to 9999",
        ..r
    })
}

fn int_in(value: Value<'_>, min: i64, max: i64) -> Result<i64, Rejection> {
    let Value::Number(text) = value else {
        return Err(Rejection::new(
            RejectReason::WrongType,
            "expected an integer",
        ));
    };
    if text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        return Err(Rejection::new(
            RejectReason::WrongType,
            "expected an integer",
        ));
    }
    // The grammar is already checked, so the only possible failure is overflow.
    let n: i64 = text
        .parse()
        .map_err(|_| Rejection::new(RejectReason::OutOfRange, "integer does not fit in 64 bits"))?;
    if n < min || n > max {
        return Err(Rejection::new(
            RejectReason::OutOfRange,
            "integer outside the field's range",
        ));
    }
    Ok(n)
}

fn float_in(value: Value<'_>, min: f64, max: f64) -> Result<f64, Rejection> {
    let Value::Number(text) = value else {
        return Err(Rejection::new(RejectReason::WrongType, "expected a number"));
    };
    // Every JSON number is valid Rust float syntax; too large ones come back infinite.
    let x: f64 = text
        .parse()
        .map_err(|_| Rejection::new(RejectReason::WrongType, "expected a number"))?;
    if !x.is_finite() {
        return Err(Rejection::new(
            RejectReason::OutOfRange,
            "number too large for 64-bit float",
        ));
    }
    if !(min..=max).contains(&x) {
        return Err(Rejection::new(
            RejectReason::OutOfRange,
            "number outside the field's range",
        ));
    }
    Ok(x)
}
