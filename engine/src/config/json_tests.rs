use super::*;

use crate::config::read_value as read;

fn list_of_u32(text: &str) -> Result<Vec<u32>, String> {
    read(text, |r| r.list(Reader::u32))
}

#[test]
fn arrays_and_the_empty_object_are_lists() {
    assert_eq!(list_of_u32("[1, 2]"), Ok(vec![1, 2]));
    assert_eq!(list_of_u32(" [ ] "), Ok(vec![]));
    assert_eq!(list_of_u32("{}"), Ok(vec![]));
    assert_eq!(list_of_u32("{ \n }"), Ok(vec![]));
}

#[test]
fn lists_keep_no_spare_room() {
    let one = list_of_u32("[7]").unwrap_or_default();
    assert_eq!((one.len(), one.capacity()), (1, 1));
    let five = list_of_u32("[1, 2, 3, 4, 5]").unwrap_or_default();
    assert_eq!((five.len(), five.capacity()), (5, 5));
}

#[test]
fn other_shapes_are_not_lists() {
    let object = list_of_u32(r#"{"a": 1}"#).unwrap_err();
    assert!(
        object.contains("only {} stands for an empty list"),
        "{object}"
    );
    assert_eq!(
        list_of_u32(r#""1""#),
        Err(r#"invalid type: string "1", expected a list (or {} for an empty one)"#.to_owned())
    );
    assert_eq!(
        list_of_u32("null"),
        Err("invalid type: null, expected a list (or {} for an empty one)".to_owned())
    );
    assert_eq!(
        list_of_u32(r#"["x"]"#),
        Err(r#"invalid type: string "x", expected u32"#.to_owned())
    );
    assert_eq!(list_of_u32("[1,]"), Err("trailing comma".to_owned()));
    assert_eq!(list_of_u32("[,1]"), Err("expected value".to_owned()));
    assert_eq!(list_of_u32("[1 2]"), Err("expected `,` or `]`".to_owned()));
    assert_eq!(
        list_of_u32("[1,"),
        Err("EOF while parsing a value".to_owned())
    );
}

#[test]
fn unsigned_integers_are_range_checked_and_never_fractional() {
    let u32_of = |text: &str| read(text, Reader::u32);
    let u16_of = |text: &str| read(text, Reader::u16);
    assert_eq!(u32_of("0"), Ok(0));
    assert_eq!(u32_of("4294967295"), Ok(u32::MAX));
    assert_eq!(u32_of("-0"), Ok(0));
    assert_eq!(
        u32_of("4294967296"),
        Err("invalid value: integer `4294967296`, expected u32".to_owned())
    );
    assert_eq!(
        u32_of("99999999999999999999999"),
        Err("invalid value: integer `99999999999999999999999`, expected u32".to_owned())
    );
    assert_eq!(
        u32_of("-1"),
        Err("invalid value: integer `-1`, expected u32".to_owned())
    );
    assert_eq!(
        u16_of("70000"),
        Err("invalid value: integer `70000`, expected u16".to_owned())
    );
    assert_eq!(
        u32_of("1.5"),
        Err("invalid type: floating point `1.5`, expected u32".to_owned())
    );
    assert_eq!(
        u32_of("1e2"),
        Err("invalid type: floating point `1e2`, expected u32".to_owned())
    );
    for bad in ["01", "-", "1.", "1e", "1e+", "--1", ".5"] {
        assert!(u32_of(bad).is_err(), "{bad} was read as a number");
    }
    assert_eq!(
        u32_of("true"),
        Err("invalid type: boolean `true`, expected u32".to_owned())
    );
}

#[test]
fn strings_are_borrowed_unless_escaped() {
    let mut reader = Reader::new(r#""plain" "a\"b""#);
    assert!(matches!(reader.str(), Ok(Cow::Borrowed("plain"))));
    assert!(matches!(reader.str(), Ok(Cow::Owned(text)) if text == "a\"b"));
}

#[test]
fn escapes_read_as_json_defines_them() {
    let string = |text: &str| read(text, Reader::string);
    assert_eq!(
        string(r#""\"\\\/\b\f\n\r\t""#),
        Ok("\"\\/\u{8}\u{c}\n\r\t".to_owned())
    );
    assert_eq!(string(r#""\u00e9t\u00E9""#), Ok("été".to_owned()));
    assert_eq!(string(r#""\ud83d\ude80 x""#), Ok("🚀 x".to_owned()));
    assert_eq!(string(r#""é, 漢字""#), Ok("é, 漢字".to_owned()));
    assert_eq!(
        string(r#""\ud83d""#),
        Err("lone leading surrogate in hex escape".to_owned())
    );
    assert_eq!(
        string(r#""\ud83d\u0041""#),
        Err("lone leading surrogate in hex escape".to_owned())
    );
    assert_eq!(
        string(r#""\ude80""#),
        Err("lone trailing surrogate in hex escape".to_owned())
    );
    assert_eq!(string(r#""\x""#), Err("invalid escape".to_owned()));
    assert_eq!(string(r#""\u12""#), Err("invalid escape".to_owned()));
    assert_eq!(
        string("\"a\nb\""),
        Err("control character (\\u0000-\\u001F) found while parsing a string".to_owned())
    );
    assert_eq!(
        string(r#""open"#),
        Err("EOF while parsing a string".to_owned())
    );
    assert_eq!(
        string(r#""a\"#),
        Err("EOF while parsing a string".to_owned())
    );
    assert_eq!(
        string("7"),
        Err("invalid type: integer `7`, expected a string".to_owned())
    );
    assert_eq!(
        string("{}"),
        Err("invalid type: map, expected a string".to_owned())
    );
    assert_eq!(
        string("[]"),
        Err("invalid type: sequence, expected a string".to_owned())
    );
}

/// A two-member object read as the config types are: (`name` required, `port` optional).
fn pair(r: &mut Reader<'_>) -> Read<(String, Option<u16>)> {
    let (mut name, mut port) = (None, None);
    let open = r.object("struct Pair", &["name", "port"], |r, field| {
        match field {
            "name" => name = Some(r.string()?),
            _ => port = r.nullable(Reader::u16)?,
        }
        Ok(())
    })?;
    Ok((r.required(name, open, "name")?, port))
}

#[test]
fn objects_take_their_members_in_any_order() {
    let expected = Ok(("a".to_owned(), Some(80)));
    assert_eq!(read(r#"{"name": "a", "port": 80}"#, pair), expected);
    assert_eq!(read(r#"{"port":80,"name":"a"}"#, pair), expected);
    assert_eq!(
        read(r#"{"name": "a", "port": null}"#, pair),
        Ok(("a".to_owned(), None))
    );
    assert_eq!(
        read(r#"{"n\u0061me": "a"}"#, pair),
        Ok(("a".to_owned(), None))
    );
}

#[test]
fn unknown_repeated_and_missing_members_are_refused_with_serde_wording() {
    assert_eq!(
        read(r#"{"name": "a", "prot": 1}"#, pair),
        Err("unknown field `prot`, expected `name` or `port`".to_owned())
    );
    assert_eq!(
        read(r#"{"name": "a", "name": "b"}"#, pair),
        Err("duplicate field `name`".to_owned())
    );
    assert_eq!(
        read(r#"{"port": 1}"#, pair),
        Err("missing field `name`".to_owned())
    );
    assert_eq!(
        read(r#"{"name": "a",}"#, pair),
        Err("trailing comma".to_owned())
    );
    assert_eq!(
        read(r#"{"name": "a", 7: 1}"#, pair),
        Err("key must be a string".to_owned())
    );
    assert_eq!(read(r#"{,}"#, pair), Err("key must be a string".to_owned()));
    assert_eq!(
        read(r#"{"name" "a"}"#, pair),
        Err("expected `:`".to_owned())
    );
    assert_eq!(
        read(r#"{"name": "a" "port": 1}"#, pair),
        Err("expected `,` or `}`".to_owned())
    );
    assert_eq!(
        read(r#"{"name": "a""#, pair),
        Err("EOF while parsing an object".to_owned())
    );
    assert_eq!(
        read(r#"["a"]"#, pair),
        Err("invalid type: sequence, expected struct Pair".to_owned())
    );
    assert_eq!(
        read(r#"{"name": "a"} x"#, pair),
        Err("trailing characters".to_owned())
    );
}

#[test]
fn unknown_names_list_what_is_expected() {
    assert_eq!(
        unknown("field", "x", &["a"]),
        "unknown field `x`, expected `a`"
    );
    assert_eq!(
        unknown("variant", "x", &["a", "b", "c"]),
        "unknown variant `x`, expected one of `a`, `b`, `c`"
    );
    assert_eq!(
        read(r#""Prefix""#, |r| r.variant(&["Exact", "PathPrefix"])),
        Err("unknown variant `Prefix`, expected `Exact` or `PathPrefix`".to_owned())
    );
    assert_eq!(
        read(r#""PathPrefix""#, |r| r.variant(&["Exact", "PathPrefix"])),
        Ok(1)
    );
}

#[test]
fn entries_come_in_document_order_with_their_keys() {
    let entries = read(r#"{"b": 2, "a": 1, "b": 3}"#, |r| {
        r.entries("a map", |r, key, _| Ok((key.into_owned(), r.u32()?)))
    });
    let expected = [("b", 2), ("a", 1), ("b", 3)].map(|(k, v)| (k.to_owned(), v));
    assert_eq!(entries, Ok(expected.to_vec()));
}

#[test]
fn booleans_and_null() {
    assert_eq!(read("true", Reader::boolean), Ok(true));
    assert_eq!(read(" false ", Reader::boolean), Ok(false));
    assert_eq!(
        read("tru", Reader::boolean),
        Err("expected value".to_owned())
    );
    assert_eq!(
        read("null", Reader::boolean),
        Err("invalid type: null, expected a boolean".to_owned())
    );
    assert_eq!(read("null", |r| r.nullable(Reader::boolean)), Ok(None));
    assert_eq!(
        read("nul", |r| r.nullable(Reader::boolean)),
        Err("expected value".to_owned())
    );
}

#[test]
fn errors_carry_the_offset_of_what_is_wrong() {
    let mut reader = Reader::new(r#"{"name": "a", "port": "x"}"#);
    let error = pair(&mut reader).unwrap_err();
    assert_eq!(error.offset, 22);
    let mut reader = Reader::new(r#"  {"port": 1}"#);
    let error = pair(&mut reader).unwrap_err();
    assert_eq!(
        (error.offset, error.message.as_str()),
        (2, "missing field `name`")
    );
}
