//! The JSON path of the value at a position in a document, so type errors from serde_json (which
//! only report line and column) name the field like validation errors do.
//!
//! A small scanner instead of a path-tracking deserializer: it runs only when a document was
//! already rejected, and keeps the filter's wasm module free of a second copy of every visitor.

/// The path (`routes[2].rules[0].weight`) of the innermost value open at `line`/`column` (1-based,
/// as serde_json reports them). Tolerates malformed documents: it stops where the scan stops.
pub(crate) fn path_at(json: &[u8], line: usize, column: usize) -> String {
    path_at_offset(json, offset_of(json, line, column))
}

/// [`path_at`] for a byte offset (where a document stops being UTF-8, say).
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

/// The 1-based line and column of a byte offset, as serde_json counts them.
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

/// Byte offset of a 1-based line and column.
fn offset_of(json: &[u8], line: usize, column: usize) -> usize {
    let mut current_line = 1;
    let mut line_start = 0;
    for (i, &b) in json.iter().enumerate() {
        if current_line == line {
            break;
        }
        if b == b'\n' {
            current_line += 1;
            line_start = i + 1;
        }
    }
    (line_start + column).min(json.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(json: &str, needle: &str) -> String {
        let pos = json.find(needle).unwrap() + needle.len();
        path_at(json.as_bytes(), 1, pos)
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
        // line 5, after the string "bad"
        assert_eq!(path_at(doc.as_bytes(), 5, 11), "a\\\"b.c[1]");
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
            for col in 0..8 {
                let _ = path_at(doc.as_bytes(), 1, col);
                let _ = path_at(doc.as_bytes(), 3, col);
            }
        }
    }
}
