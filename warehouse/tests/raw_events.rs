//! Raw events: golden records round-trip byte for byte, every kind of bad record gets
//! its reason code, and the reader agrees with serde_json on what is JSON at all.

// Test helpers panic on purpose: a panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use EventKind::{Auth as AuthKind, Listen, PageView};
use RejectReason::*;
use proptest::prelude::*;
use warehouse::raw::{Auth, EventKind, Level, RawEvent, RejectReason};

fn golden(kind: EventKind) -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/events")
        .join(format!("{}.jsonl", kind.topic()));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(str::to_owned).collect()
}

fn write(event: &RawEvent<'_>) -> String {
    let mut out = Vec::new();
    event.write_json(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn golden_records_round_trip_byte_for_byte() {
    for kind in EventKind::ALL {
        let lines = golden(kind);
        assert!(!lines.is_empty(), "{}", kind.topic());
        for line in lines {
            let event = RawEvent::parse(kind, line.as_bytes())
                .unwrap_or_else(|r| panic!("{}: {r}\n{line}", kind.topic()));
            assert_eq!(event.kind(), kind);
            assert_eq!(write(&event), line);
        }
    }
}

#[test]
fn listen_record_parses_to_its_values() {
    let lines = golden(Listen);
    let RawEvent::Listen(e) = RawEvent::parse(Listen, lines[0].as_bytes()).unwrap() else {
        panic!("not a listen")
    };
    assert_eq!(
        (&*e.song.artist, &*e.song.song, e.song.duration),
        ("Kings Of Leon", "Use Somebody", 230.47791)
    );
    assert_eq!(
        (
            e.context.ts,
            e.context.session_id,
            e.context.item_in_session
        ),
        (1_700_000_012_345, 1234, 7)
    );
    assert_eq!((e.auth, e.context.level), (Auth::LoggedIn, Level::Paid));
    assert_eq!(
        (
            &*e.context.location.zip,
            e.context.location.lon,
            e.context.location.lat
        ),
        ("33602", -82.45843, 27.9506)
    );
    assert!(e.context.user_agent.starts_with("\"Mozilla/5.0 (Windows"));
    assert_eq!(
        (e.user.user_id, &*e.user.first_name, e.user.registration),
        (77, "Lily", 1_699_000_000_000)
    );
}

#[test]
fn hidden_users_and_songless_pages_parse_to_none() {
    let lines = golden(PageView);
    let RawEvent::PageView(guest) = RawEvent::parse(PageView, lines[2].as_bytes()).unwrap() else {
        panic!("not a page view")
    };
    assert_eq!(
        (guest.auth, guest.user.is_none(), guest.song.is_none()),
        (Auth::Guest, true, true)
    );
    let RawEvent::PageView(song) = RawEvent::parse(PageView, lines[1].as_bytes()).unwrap() else {
        panic!("not a page view")
    };
    assert_eq!(song.song.map(|s| s.duration), Some(230.47791));
    let failed = &golden(AuthKind)[1];
    let RawEvent::Auth(attempt) = RawEvent::parse(EventKind::Auth, failed.as_bytes()).unwrap()
    else {
        panic!("not an auth event")
    };
    assert_eq!((attempt.success, attempt.user), (false, None));
}

#[test]
fn other_spellings_of_the_same_values_parse_equal() {
    let canonical = golden(Listen)[3].clone();
    let spelled = canonical
        .replace("🎹", "\\ud83c\\udfb9")
        .replace("\"duration\":3.5", "\"duration\":35e-1")
        .replace("\"Anchorage\"", "\"\\u0041nchorage\"")
        .replace(",\"sessionId\"", " ,\r\n\t\"sessionId\"");
    assert_ne!(spelled, canonical);
    let a = RawEvent::parse(Listen, canonical.as_bytes()).unwrap();
    let b = RawEvent::parse(Listen, spelled.as_bytes()).unwrap();
    assert_eq!(a, b);
    assert_eq!(write(&b), canonical);
}

#[test]
fn null_counts_as_absent_for_hidden_groups() {
    let guest = &golden(PageView)[2];
    let with_nulls = guest.replace("}", ",\"userId\":null,\"artist\":null}");
    let a = RawEvent::parse(PageView, guest.as_bytes()).unwrap();
    let b = RawEvent::parse(PageView, with_nulls.as_bytes()).unwrap();
    assert_eq!(a, b);
}

fn check(kind: EventKind, record: &[u8], reason: RejectReason, field: Option<&str>) {
    let rejection = RawEvent::parse(kind, record).expect_err("record was accepted");
    let shown = String::from_utf8_lossy(&record[..record.len().min(300)]).into_owned();
    assert_eq!(
        (rejection.reason, rejection.field.as_deref()),
        (reason, field),
        "{rejection}\n{shown}"
    );
}

fn listen() -> String {
    golden(Listen)[0].clone()
}

fn listen_with(from: &str, to: &str) -> Vec<u8> {
    let record = listen();
    assert!(record.contains(from), "{from}");
    record.replacen(from, to, 1).into_bytes()
}

#[test]
fn empty_and_blank_records() {
    check(Listen, b"", Empty, None);
    check(Listen, b"  \r\n", Empty, None);
}

#[test]
fn ten_megabyte_record_is_too_large() {
    let mut record = listen().into_bytes();
    record.splice(10..10, std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    check(Listen, &record, TooLarge, None);
}

#[test]
fn invalid_utf8_anywhere() {
    let mut record = listen().into_bytes();
    record[15] = 0xff;
    check(Listen, &record, InvalidUtf8, None);
    check(
        Listen,
        &listen_with("Use Somebody", "\\ud800 alone"),
        InvalidUtf8,
        None,
    );
    check(
        Listen,
        &listen_with("Use Somebody", "\\udc00\\ud800"),
        InvalidUtf8,
        None,
    );
}

#[test]
fn truncated_and_malformed_json() {
    let record = listen();
    for cut in [1, 2, 20, record.len() / 2, record.len() - 1] {
        check(Listen, &record.as_bytes()[..cut], InvalidJson, None);
    }
    check(
        Listen,
        &listen_with("\"sessionId\":1234,", "\"sessionId\":1234,,"),
        InvalidJson,
        None,
    );
    check(Listen, &listen_with("}", ",}"), InvalidJson, None);
    check(
        Listen,
        format!("{record} {record}").as_bytes(),
        InvalidJson,
        None,
    );
    check(Listen, format!("{record}x").as_bytes(), InvalidJson, None);
    check(
        Listen,
        &listen_with("Use Somebody", "tab\there"),
        InvalidJson,
        None,
    );
    check(
        Listen,
        &listen_with("Use Somebody", "bad \\x escape"),
        InvalidJson,
        None,
    );
    check(Listen, &listen_with("\"ts\":", "ts:"), InvalidJson, None);
    check(Listen, &listen_with(":1234,", ":01234,"), InvalidJson, None);
    check(Listen, &listen_with(":1234,", ":+1234,"), InvalidJson, None);
    check(Listen, &listen_with(":1234,", ":1234.,"), InvalidJson, None);
    check(Listen, &listen_with(":1234,", ":True,"), InvalidJson, None);
    check(Listen, b"{'ts':1}", InvalidJson, None);
}

#[test]
fn nan_and_infinity_are_not_json() {
    check(Listen, &listen_with("230.47791", "NaN"), InvalidJson, None);
    check(
        Listen,
        &listen_with("230.47791", "Infinity"),
        InvalidJson,
        None,
    );
    check(
        Listen,
        &listen_with("230.47791", "-Infinity"),
        InvalidJson,
        None,
    );
}

#[test]
fn huge_numbers_are_out_of_range() {
    check(
        Listen,
        &listen_with("230.47791", "1e400"),
        OutOfRange,
        Some("duration"),
    );
    check(
        Listen,
        &listen_with("1700000012345", "99999999999999999999"),
        OutOfRange,
        Some("ts"),
    );
    check(
        Listen,
        &listen_with("1700000012345", "-1"),
        OutOfRange,
        Some("ts"),
    );
    check(
        Listen,
        &listen_with("1700000012345", "253402300800000"),
        OutOfRange,
        Some("ts"),
    );
    check(
        Listen,
        &listen_with("27.9506", "91"),
        OutOfRange,
        Some("lat"),
    );
    check(
        Listen,
        &listen_with("-82.45843", "-180.5"),
        OutOfRange,
        Some("lon"),
    );
    check(
        Listen,
        &listen_with("230.47791", "0"),
        OutOfRange,
        Some("duration"),
    );
    check(
        Listen,
        &listen_with("230.47791", "-3"),
        OutOfRange,
        Some("duration"),
    );
    check(
        Listen,
        &listen_with("\"userId\":77", "\"userId\":-77"),
        OutOfRange,
        Some("userId"),
    );
}

#[test]
fn values_of_the_wrong_type() {
    check(
        Listen,
        &listen_with("1700000012345", "\"1700000012345\""),
        WrongType,
        Some("ts"),
    );
    check(
        Listen,
        &listen_with("1700000012345", "1.7e12"),
        WrongType,
        Some("ts"),
    );
    check(
        Listen,
        &listen_with("\"itemInSession\":7", "\"itemInSession\":7.0"),
        WrongType,
        Some("itemInSession"),
    );
    check(
        Listen,
        &listen_with("\"33602\"", "33602"),
        WrongType,
        Some("zip"),
    );
    check(
        Listen,
        &listen_with("230.47791", "\"230.47791\""),
        WrongType,
        Some("duration"),
    );
    check(
        Listen,
        &listen_with(
            "\"Tampa-St. Petersburg-Clearwater\"",
            "{\"name\":\"Tampa\"}",
        ),
        WrongType,
        Some("city"),
    );
    check(
        Listen,
        &listen_with("\"F\"", "[\"F\"]"),
        WrongType,
        Some("gender"),
    );
    check(
        Listen,
        &listen_with("\"paid\"", "true"),
        WrongType,
        Some("level"),
    );
    let failed = golden(AuthKind)[1].replace("false", "\"false\"");
    check(AuthKind, failed.as_bytes(), WrongType, Some("success"));
}

#[test]
fn values_outside_their_sets() {
    check(
        Listen,
        &listen_with("\"paid\"", "\"gold\""),
        InvalidValue,
        Some("level"),
    );
    check(
        Listen,
        &listen_with("\"Logged In\"", "\"LoggedIn\""),
        InvalidValue,
        Some("auth"),
    );
    let page = golden(PageView)[0].replace("\"status\":200", "\"status\":700");
    check(PageView, page.as_bytes(), OutOfRange, Some("status"));
}

#[test]
fn missing_null_unknown_and_duplicate_keys() {
    check(
        Listen,
        &listen_with("\"sessionId\":1234,", ""),
        MissingField,
        Some("sessionId"),
    );
    check(
        Listen,
        &listen_with("1700000012345", "null"),
        MissingField,
        Some("ts"),
    );
    check(
        Listen,
        &listen_with(
            "\"sessionId\":1234,",
            "\"page\":\"Home\",\"sessionId\":1234,",
        ),
        UnknownField,
        Some("page"),
    );
    check(
        Listen,
        &listen_with("\"sessionId\":1234,", "\"sessionid\":1234,"),
        UnknownField,
        Some("sessionid"),
    );
    check(
        Listen,
        &listen_with(
            "\"sessionId\":1234,",
            "\"sessionId\":1234,\"sessionId\":1234,",
        ),
        DuplicateField,
        Some("sessionId"),
    );
    check(Listen, b"{}", MissingField, Some("artist"));
}

#[test]
fn partial_groups_name_their_first_missing_key() {
    let page = &golden(PageView)[0];
    check(
        PageView,
        page.replacen(",\"lastName\":\"Reed\"", "", 1).as_bytes(),
        MissingField,
        Some("lastName"),
    );
    let song = &golden(PageView)[1];
    check(
        PageView,
        song.replacen(",\"song\":\"Use Somebody\"", "", 1)
            .as_bytes(),
        MissingField,
        Some("song"),
    );
    let guest = &golden(PageView)[2];
    check(
        PageView,
        guest.replacen('}', ",\"duration\":12.5}", 1).as_bytes(),
        MissingField,
        Some("artist"),
    );
}

#[test]
fn records_that_are_not_objects() {
    check(Listen, b"[1,2,3]", NotAnObject, None);
    check(Listen, b"\"listen\"", NotAnObject, None);
    check(Listen, b"42", NotAnObject, None);
    check(Listen, b"null", NotAnObject, None);
}

#[test]
fn syntax_errors_take_precedence_over_field_problems() {
    check(
        Listen,
        &listen_with("\"sessionId\":1234,", "\"bogus\":1,\"sessionId\":1234,,"),
        InvalidJson,
        None,
    );
    check(
        Listen,
        &listen_with("1700000012345", "\"x\",]"),
        InvalidJson,
        None,
    );
}

#[test]
fn deep_nesting_is_refused_without_exhausting_the_stack() {
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    check(Listen, deep.as_bytes(), InvalidJson, None);
    let nested_value = format!("{{\"city\":{}1{}}}", "[".repeat(1000), "]".repeat(1000));
    check(Listen, nested_value.as_bytes(), InvalidJson, None);
}

/// Byte strings that are likely to break a JSON reader when spliced into a record.
const SPLICES: &[&[u8]] = &[
    b"\\",
    b"\"",
    b"\\u",
    b"\\ud800",
    b"\\u00e9",
    b"\\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"1e999",
    b"-",
    b"0",
    b".",
    b"e",
    b"\xff",
    b"\xc3",
    b"\x00",
    b"\x1f",
    b" ",
    b"\n",
    b"\"x\":1,",
    b"true",
    b"\"ts\":1,",
    b"\xf0\x9f\x8e\xb9",
];

fn mutated_record() -> impl Strategy<Value = (EventKind, Vec<u8>)> {
    let kinds = prop::sample::select(EventKind::ALL.to_vec());
    (
        kinds,
        any::<prop::sample::Index>(),
        prop::collection::vec((any::<prop::sample::Index>(), 0..SPLICES.len() + 1), 0..4),
    )
        .prop_map(|(kind, line, edits)| {
            let lines = golden(kind);
            let mut record = line.get(&lines).clone().into_bytes();
            for (at, splice) in edits {
                let at = at.index(record.len() + 1);
                match SPLICES.get(splice) {
                    Some(bytes) => drop(record.splice(at..at, bytes.iter().copied())),
                    None if at < record.len() => drop(record.remove(at)),
                    None => {}
                }
            }
            (kind, record)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// serde_json is the oracle for what is JSON: the reader calls a record malformed
    /// exactly when serde_json does, and agrees with it on every value it accepts.
    #[test]
    fn reader_agrees_with_serde_json((kind, record) in mutated_record()) {
        let ours = RawEvent::parse(kind, &record);
        let theirs = serde_json::from_slice::<serde_json::Value>(&record);
        let syntax = |r: RejectReason| matches!(r, InvalidJson | InvalidUtf8 | Empty);
        match (&ours, &theirs) {
            (Err(rejection), Err(error)) => {
                // JSON allows numbers serde_json cannot hold, such as 1e999; the reader
                // judges those by their field instead.
                let overflow = error.to_string().contains("number out of range");
                prop_assert!(syntax(rejection.reason) || overflow, "{rejection} but serde_json says {error}");
            }
            (Err(rejection), Ok(_)) => prop_assert!(!syntax(rejection.reason), "{rejection}"),
            (Ok(_), Err(error)) => prop_assert!(false, "accepted, but serde_json says {error}"),
            (Ok(event), Ok(value)) => {
                let written = write(event);
                let ours: serde_json::Value = serde_json::from_str(&written).unwrap();
                for (key, expected) in value.as_object().unwrap() {
                    let got = &ours[key.as_str()];
                    if expected.is_null() {
                        prop_assert!(got.is_null(), "{key}");
                    } else if expected.is_number() {
                        prop_assert_eq!(got.as_f64(), expected.as_f64(), "{}", key);
                    } else {
                        prop_assert_eq!(got, expected, "{}", key);
                    }
                }
                let reread = RawEvent::parse(kind, written.as_bytes());
                prop_assert_eq!(reread.as_ref(), Ok(event));
            }
        }
    }
}
