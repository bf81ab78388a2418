//! The JSON path of the value at a position in a document, so errors from reading (which know only
//! the offset) name the field like validation errors do.
//!
//! A small scanner instead of tracking the path while reading: it runs only when a document was
//! already rejected, so a document that reads cleanly pays nothing for it.

/// The path (`routes[2].rules[0].weight`) of the innermost value open at a byte offset.
/// Tolerates malformed documents: it stops where the scan stops.
pub(crate) fn path_at_offset(json: &[u8], offset: usize) -> String {
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < offset {
        let Some(&byte) = json.get(i) else { break };
        match byte {
            b'{' => stack.push(Frame::Object {
                key: None,
                expect_key: true,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { key, expect_key }) => {
                    *key = None;
                    *expect_key = true;
                }
                None => {}
            },
            b':' => {
                if let Some(Frame::Object { expect_key, .. }) = stack.last_mut() {
                    *expect_key = false;
                }
            }
            b'"' => {
                let start = i + 1;
                i = start;
                while let Some(&c) = json.get(i) {
                    match c {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
                if let Some(Frame::Object {
                    key,
                    expect_key: true,
                }) = stack.last_mut()
                {
                    *key = Some(
                        String::from_utf8_lossy(
                            json.get(start..i.min(json.len())).unwrap_or_default(),
                        )
                        .into_owned(),
                    );
                }
            }
            _ => {}
        }
        i += 1;
    }
    render(&stack)
}

enum Frame {
    Object {
        key: Option<String>,
        expect_key: bool,
    },
    Array {
        index: usize,
    },
}

fn render(stack: &[Frame]) -> String {
    let mut out = String::new();
    for frame in stack {
        match frame {
            Frame::Object { key: Some(key), .. } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => {
                out.push('[');
                out.push_str(&index.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// The 1-based line and column of a byte offset.
pub(crate) fn line_column(json: &[u8], offset: usize) -> (usize, usize) {
    let offset = offset.min(json.len());
    let before = json.get(..offset).unwrap_or(json);
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |newline| newline + 1);
    (line, offset - line_start + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(json: &str, needle: &str) -> String {
        let pos = json.find(needle).unwrap() + needle.len();
        path_at_offset(json.as_bytes(), pos)
    }

    #[test]
    fn finds_nested_paths() {
        let doc =
            r#"{"routes": [{"a": 1}, {"rules": [{"weight": "heavy", "x": [1, 2, {"y": true}]}]}]}"#;
        assert_eq!(at(doc, r#""heavy""#), "routes[1].rules[0].weight");
        assert_eq!(at(doc, r#""y": true"#), "routes[1].rules[0].x[2].y");
        assert_eq!(at(doc, r#"{"a": 1}"#), "routes[0]");
        assert_eq!(at(doc, "{"), "");
    }

    #[test]
    fn keys_with_escapes_and_multiple_lines() {
        let doc = "{\n  \"a\\\"b\": {\n    \"c\": [\n      0,\n      \"bad\"\n    ]\n  }\n}";
        let after_bad = doc.find("\"bad\"").unwrap() + 5;
        assert_eq!(path_at_offset(doc.as_bytes(), after_bad), "a\\\"b.c[1]");
    }

    #[test]
    fn offsets_have_the_line_and_column_serde_json_would_give() {
        let doc = b"{\n  \"a\": \"x\"\n}";
        let x = doc.iter().position(|&b| b == b'x').unwrap();
        assert_eq!(line_column(doc, x), (2, 9));
        assert_eq!(line_column(doc, 0), (1, 1));
        assert_eq!(line_column(doc, doc.len()), (3, 2));
        assert_eq!(line_column(doc, doc.len() + 5), (3, 2));
        assert_eq!(path_at_offset(doc, x), "a");
    }

    #[test]
    fn malformed_input_does_not_panic() {
        for doc in ["", "{", "[[[", "{\"a", "\"", "{\"a\":\"\\"] {
            for offset in 0..8 {
                let _ = path_at_offset(doc.as_bytes(), offset);
                let _ = line_column(doc.as_bytes(), offset);
            }
        }
    }
}
