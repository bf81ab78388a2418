//! Golden files: text compared byte for byte with a checked-in file, or rewritten from the current
//! code under `BLESS=1` (what `cargo xtask bless` sets). A mismatch reads as a line diff.

use std::path::Path;

/// Whether this run rewrites golden files instead of comparing them.
pub fn blessing() -> bool {
    std::env::var_os("BLESS").is_some()
}

/// Compares `actual` with the golden file at `path`. A missing or different file is an error
/// (with a diff) unless blessing, which writes the file when its content changed.
pub fn check(path: &Path, actual: &str) -> Result<(), String> {
    let shown = path
        .strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(path)
        .display();
    let expected = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("{shown}: {e}")),
    };
    if expected.as_deref() == Some(actual) {
        return Ok(());
    }
    if blessing() {
        return std::fs::write(path, actual).map_err(|e| format!("{shown}: {e}"));
    }
    Err(match expected {
        None => format!("{shown} is missing; run `cargo xtask bless` to create it"),
        Some(expected) => format!(
            "{shown} differs (- golden, + now; `cargo xtask bless` accepts the change):\n{}",
            line_diff(&expected, actual)
        ),
    })
}

/// Lines of context shown around each change.
const CONTEXT: usize = 2;
/// Diff lines shown at most; the rest is counted.
const MAX_LINES: usize = 120;

/// A unified-style diff of two texts: changed lines marked `-` (expected) and `+` (actual), with
/// a little context and the 1-based line number of the expected text at each hunk.
pub fn line_diff(expected: &str, actual: &str) -> String {
    let old: Vec<&str> = expected.lines().collect();
    let new: Vec<&str> = actual.lines().collect();
    let ops = edit_script(&old, &new);
    let changed: Vec<bool> = ops.iter().map(|op| !matches!(op, Op::Same(_))).collect();
    let mut out = Vec::new();
    let mut last_shown: Option<usize> = None;
    for (i, op) in ops.iter().enumerate() {
        let near_change = (i.saturating_sub(CONTEXT)..=(i + CONTEXT).min(ops.len() - 1))
            .any(|j| changed.get(j).copied().unwrap_or(false));
        if !near_change {
            continue;
        }
        if last_shown.is_none_or(|l| l + 1 != i) {
            let line = match op {
                Op::Same(o) | Op::Removed(o) => o + 1,
                Op::Added(_, o) => o + 1,
            };
            out.push(format!("@@ golden line {line}"));
        }
        last_shown = Some(i);
        out.push(match *op {
            Op::Same(o) => format!("  {}", old.get(o).copied().unwrap_or_default()),
            Op::Removed(o) => format!("- {}", old.get(o).copied().unwrap_or_default()),
            Op::Added(n, _) => format!("+ {}", new.get(n).copied().unwrap_or_default()),
        });
    }
    if expected.ends_with('\n') != actual.ends_with('\n') {
        out.push("(the files differ in their final newline)".to_owned());
    }
    let total = out.len();
    if total > MAX_LINES {
        out.truncate(MAX_LINES);
        out.push(format!("... {} more diff lines", total - MAX_LINES));
    }
    out.join("\n")
}

/// One step of the edit script: indices into the old and new line lists (`Added` carries the old
/// position it is inserted at, for hunk headers).
#[derive(Debug, Clone, Copy)]
enum Op {
    Same(usize),
    Removed(usize),
    Added(usize, usize),
}

/// A shortest edit script from a longest-common-subsequence table (golden files are small).
fn edit_script(old: &[&str], new: &[&str]) -> Vec<Op> {
    let (n, m) = (old.len(), new.len());
    // lcs[i][j]: length of the LCS of old[i..] and new[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if old[i] == new[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::with_capacity(n.max(m));
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            ops.push(Op::Same(i));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(Op::Removed(i));
            i += 1;
        } else {
            ops.push(Op::Added(j, i));
            j += 1;
        }
    }
    ops
}
