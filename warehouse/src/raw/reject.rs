//! Typed rejections of raw event records, with stable reason codes for dead letters.

use std::borrow::Cow;
use std::fmt;

use crate::error::{Classify, ErrorClass};

/// Why a record was rejected. The codes returned by [`RejectReason::code`] are a stable
/// contract: dead-letter topics, the `dead_letters` table and metrics carry them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// The record is empty or only white space.
    Empty,
    /// The record is longer than [`MAX_RECORD_BYTES`](super::MAX_RECORD_BYTES).
    TooLarge,
    /// The record is not UTF-8, or a `\u` escape names a lone surrogate.
    InvalidUtf8,
    /// The record is not one well-formed JSON value.
    InvalidJson,
    /// The record is JSON but not an object.
    NotAnObject,
    /// A key that this event kind does not have.
    UnknownField,
    /// The same key twice in one object.
    DuplicateField,
    /// A required key is absent or `null`.
    MissingField,
    /// A value of the wrong JSON type, such as a string where a number belongs.
    WrongType,
    /// A number outside the range its field allows, or too large to represent.
    OutOfRange,
    /// A string outside the set of values its field allows, such as an unknown `level`.
    InvalidValue,
}

impl RejectReason {
    /// Every reason, in declaration order.
    pub const ALL: [RejectReason; 11] = [
        RejectReason::Empty,
        RejectReason::TooLarge,
        RejectReason::InvalidUtf8,
        RejectReason::InvalidJson,
        RejectReason::NotAnObject,
        RejectReason::UnknownField,
        RejectReason::DuplicateField,
        RejectReason::MissingField,
        RejectReason::WrongType,
        RejectReason::OutOfRange,
        RejectReason::InvalidValue,
    ];

    /// The stable snake_case code of this reason.
    pub const fn code(self) -> &'static str {
        match self {
            RejectReason::Empty => "empty",
            RejectReason::TooLarge => "too_large",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::UnknownField => "unknown_field",
            RejectReason::DuplicateField => "duplicate_field",
            RejectReason::MissingField => "missing_field",
            RejectReason::WrongType => "wrong_type",
            RejectReason::OutOfRange => "out_of_range",
            RejectReason::InvalidValue => "invalid_value",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A record that cannot become an event: the reason, the field it concerns when there is
/// one, the byte offset where it was found, and a short human explanation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Rejection {
    /// The stable reason.
    pub reason: RejectReason,
    /// The JSON key concerned, as written in the record.
    pub field: Option<Cow<'static, str>>,
    /// The byte offset in the record where the problem was found.
    pub offset: Option<usize>,
    /// A short explanation for people reading dead letters.
    pub detail: &'static str,
}

impl Rejection {
    pub(crate) fn new(reason: RejectReason, detail: &'static str) -> Rejection {
        Rejection {
            reason,
            field: None,
            offset: None,
            detail,
        }
    }

    pub(crate) fn at(mut self, offset: usize) -> Rejection {
        self.offset = Some(offset);
        self
    }

    pub(crate) fn field(mut self, field: impl Into<Cow<'static, str>>) -> Rejection {
        self.field = Some(field.into());
        self
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reason)?;
        if let Some(field) = &self.field {
            write!(f, " in field `{field}`")?;
        }
        if let Some(offset) = self.offset {
            write!(f, " at byte {offset}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

impl Classify for Rejection {
    fn class(&self) -> ErrorClass {
        ErrorClass::BadData
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_are_unique_snake_case() {
        let mut codes: Vec<_> = RejectReason::ALL.iter().map(|r| r.code()).collect();
        assert!(codes.iter().all(|c| {
            c.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
        }));
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), RejectReason::ALL.len());
    }

    #[test]
    fn display_names_reason_field_offset_and_detail() {
        let r = Rejection::new(RejectReason::WrongType, "expected a number")
            .field("ts")
            .at(6);
        assert_eq!(
            r.to_string(),
            "wrong_type in field `ts` at byte 6: expected a number"
        );
    }
}
