//! Template source that gotmpl's lexer reads differently from Go's, made
//! to read as Go reads it before it is parsed.
//!
//! One construct so far: a comment opened with a trim marker and closed
//! without one, `{{- /* c */}}`. Go trims the white space *before* it and
//! nothing after; gotmpl trims both sides, so `x: y⏎  {{- /* c */}}⏎  z: w`
//! became `x: y  z: w` (a YAML error in two popular charts). The comment is
//! replaced by an action that prints nothing, `{{- ""    }}`, of the same
//! length and with the comment's newlines kept, so every line and column
//! after it is where it was (error positions are Go's).

use std::borrow::Cow;

/// Go's `asciiSpace`, which must follow a trim marker's `-`.
fn is_go_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// `src` with every `{{- /* … */}}` comment made an empty, left-trimming
/// action of the same length (see the module documentation); `src` itself
/// when there is none.
pub(crate) fn as_go_reads_it(src: &str) -> Cow<'_, str> {
    let b = src.as_bytes();
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while let Some(open) = find(b, i, b"{{") {
        let mut at = open + 2;
        let left_trim = b.get(at) == Some(&b'-') && b.get(at + 1).is_some_and(|c| is_go_space(*c));
        if left_trim {
            at += 2;
        }
        if b[at..].starts_with(b"/*") {
            let Some(end) = find(b, at + 2, b"*/").map(|e| e + 2) else {
                break; // unclosed: gotmpl reports it
            };
            let (closes, right_trim) = close_after_comment(b, end);
            if left_trim && !right_trim && closes.is_some() {
                let bytes = out.get_or_insert_with(|| b.to_vec());
                bytes[at] = b'"';
                bytes[at + 1] = b'"';
                for c in &mut bytes[at + 2..end] {
                    if *c != b'\n' {
                        *c = b' ';
                    }
                }
            }
            i = closes.unwrap_or(end);
        } else {
            i = action_end(b, at);
        }
    }
    match out {
        // Only ASCII bytes were replaced, and only inside a comment whose
        // delimiters are ASCII: the text stays UTF-8.
        Some(bytes) => Cow::Owned(String::from_utf8(bytes).unwrap_or_else(|_| src.to_owned())),
        None => Cow::Borrowed(src),
    }
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// After a comment's `*/`: the offset past the closing delimiter, if one
/// follows, and whether it is a trim marker (`-}}`, white space before it).
fn close_after_comment(b: &[u8], end: usize) -> (Option<usize>, bool) {
    let mut j = end;
    while b.get(j).is_some_and(|c| is_go_space(*c)) {
        j += 1;
    }
    if j > end && b[j..].starts_with(b"-}}") {
        (Some(j + 3), true)
    } else if b[j..].starts_with(b"}}") {
        (Some(j + 2), false)
    } else {
        (None, false)
    }
}

/// The offset past the `}}` that closes the action whose body starts at
/// `from`, skipping string, raw string and character literals.
fn action_end(b: &[u8], from: usize) -> usize {
    let mut j = from;
    while j < b.len() {
        match b[j] {
            b'"' | b'\'' => {
                let quote = b[j];
                j += 1;
                while j < b.len() && b[j] != quote && b[j] != b'\n' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                j += 1;
            }
            b'`' => {
                j = find(b, j + 1, b"`").map_or(b.len(), |e| e + 1);
            }
            b'}' if b.get(j + 1) == Some(&b'}') => return j + 2,
            _ => j += 1,
        }
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::as_go_reads_it;

    #[test]
    fn only_a_left_trimmed_comment_closed_without_trim_changes() {
        let cases = [
            ("a {{- /* c */}} b", "a {{- \"\"     }} b"),
            // Newlines inside the comment stay, so later lines do not move.
            ("{{- /* x\ny */}}\nz", "{{- \"\"  \n    }}\nz"),
            ("a {{- /* c */ -}} b", "a {{- /* c */ -}} b"),
            ("a {{/* c */ -}} b", "a {{/* c */ -}} b"),
            ("a {{/* c */}} b", "a {{/* c */}} b"),
            // Inside a string of another action: not a comment.
            (
                "{{ \"{{- /* s */}}\" }} {{ `{{- /* r */}}` }}",
                "{{ \"{{- /* s */}}\" }} {{ `{{- /* r */}}` }}",
            ),
            ("{{ 'x' }}{{- /* é */}}", "{{ 'x' }}{{- \"\"      }}"),
        ];
        for (src, want) in cases {
            let got = as_go_reads_it(src);
            assert_eq!(got, want, "{src:?}");
            assert_eq!(got.len(), src.len());
        }
    }
}
