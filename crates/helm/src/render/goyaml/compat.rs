//! Where go-yaml v2's scanner and libyaml 0.2.5's differ, and how the
//! loader reads as go-yaml does.
//!
//! go-yaml v2 was ported from an older libyaml; three of libyaml's later
//! changes show in manifests, all inside flow collections or tags:
//! - a `:` followed by `,` `?` `[` `]` `{` `}` inside a plain scalar of a
//!   flow collection (`[x:, y]`): go-yaml keeps it in the scalar (`x:`),
//!   libyaml 0.2.5 refuses it ("found unexpected ':'");
//! - a `?` inside a plain scalar of a flow collection
//!   (`[http://h/?q=1]`): go-yaml ends the scalar there and then refuses
//!   the `?` as a key indicator where a `,` is expected, libyaml 0.2.5
//!   keeps it in the scalar;
//! - `,` `[` `]` in a tag (`!a,b`): go-yaml keeps them in the tag, libyaml
//!   0.2.5 ends the tag before them;
//! - escapes in double-quoted scalars: go-yaml reads `\'` as `'` and
//!   refuses `\/`, libyaml 0.2.5 refuses `\'` and reads `\/` as `/`.
//!
//! What go-yaml accepts is made libyaml's by rewriting the text before it
//! is parsed ([`prepare`]); what it refuses is checked on the parsed
//! scalars ([`question_in_flow_scalar`], [`escaped_slash`]).

use std::borrow::Cow;

use super::libyaml::Parser;

/// Stands in the text for a `:` that go-yaml keeps inside a flow plain
/// scalar; the loader turns it back into `:` in scalars.
pub(crate) const FLOW_COLON: char = '\u{E000}';

/// What replaces a `,` `[` or `]` of a tag: the tag stays one that go-yaml
/// does not know (it knows none with those characters), which is all that
/// matters when reading into JSON.
const TAG_CHAR: &str = "~";

/// At most this many rewrites; past them the text is read as libyaml reads
/// it (each rewrite scans the text again).
const MAX_REWRITES: usize = 64;

/// `text` rewritten so that libyaml 0.2.5 reads it as go-yaml v2 does (see
/// the module's documentation), or as it is when nothing needs it.
pub(crate) fn prepare(text: &str) -> Cow<'_, str> {
    let flow_colon = |t: &str| {
        t.as_bytes()
            .windows(2)
            .any(|w| w[0] == b':' && b",?[]{}".contains(&w[1]))
    };
    // The common case, and a text that has the stand-in already.
    if !(text.contains('!') || text.contains("\\'") || flow_colon(text))
        || text.contains(FLOW_COLON)
    {
        return Cow::Borrowed(text);
    }
    // libyaml's marks count the bytes it decoded, after a byte order mark.
    let base = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let mut out = text.to_owned();
    for _ in 0..MAX_REWRITES {
        let (tag_ends, error) = Parser::new(out.as_bytes()).tag_ends();
        let at = |index: u64| usize::try_from(index).ok().map(|i| i + base);
        let byte = |i: usize| out.as_bytes().get(i).copied();
        // A tag that go-yaml would have read on.
        if let Some(i) = tag_ends
            .iter()
            .filter_map(|m| at(m.index))
            .find(|&i| matches!(byte(i), Some(b',' | b'[' | b']')))
        {
            out.replace_range(i..=i, TAG_CHAR);
            continue;
        }
        let Some(e) = error else { break };
        let Some(i) = at(e.problem_mark.index) else {
            break;
        };
        match (e.problem.as_str(), byte(i)) {
            ("found unexpected ':'", Some(b':')) => {
                out.replace_range(i..=i, FLOW_COLON.encode_utf8(&mut [0; 4]));
            }
            // go-yaml reads `\'` as `'` in a double-quoted scalar; libyaml
            // 0.2.5 knows no such escape.
            ("found unknown escape character", Some(b'\\')) if byte(i + 1) == Some(b'\'') => {
                out.replace_range(i..i + 2, "\\x27");
            }
            ("did not find expected whitespace or line break", Some(b',' | b'[' | b']'))
                if e.context.as_deref() == Some("while scanning a tag") =>
            {
                out.replace_range(i..=i, TAG_CHAR);
            }
            _ => break,
        }
    }
    if out == text {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(out)
    }
}

/// For a double-quoted scalar written at `source` (quotes included): the
/// byte offset in `source` of a `\/`, an escape libyaml 0.2.5 reads as `/`
/// and go-yaml v2 refuses.
pub(crate) fn escaped_slash(source: &str) -> Option<usize> {
    let bytes = source.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if bytes.get(i + 1) == Some(&b'/') => return Some(i),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// For a plain scalar inside a flow collection, written at `source`: the
/// byte offset in `source` of a `?` that go-yaml v2 reads as a key
/// indicator (any but the first character), which fails its parse.
pub(crate) fn question_in_flow_scalar(source: &str) -> Option<usize> {
    source
        .char_indices()
        .skip(1)
        .find(|&(_, c)| c == '?')
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_what_go_yaml_reads_differently() {
        assert!(matches!(prepare("a: [x, y]\n"), Cow::Borrowed(_)));
        assert!(matches!(prepare("a: \"[x:]\"\n"), Cow::Borrowed(_)));
        assert_eq!(prepare("a: [x:, y:]\n"), "a: [x\u{E000}, y\u{E000}]\n");
        assert_eq!(prepare("a: !x,y 1\n"), "a: !x~y 1\n");
        assert_eq!(prepare("a: [!x, y]\n"), "a: [!x~ y]\n");
        assert_eq!(prepare("\u{feff}a: [x:]\n"), "\u{feff}a: [x\u{E000}]\n");
        assert!(matches!(prepare("a: [x:]\u{E000}\n"), Cow::Borrowed(_)));
        assert_eq!(prepare("a: \"it\\'s\"\n"), "a: \"it\\x27s\"\n");
    }

    #[test]
    fn escaped_slashes() {
        assert_eq!(escaped_slash(r#""a\/b""#), Some(2));
        assert_eq!(escaped_slash(r#""a\\/b""#), None);
        assert_eq!(escaped_slash(r#""a/b""#), None);
    }

    #[test]
    fn question_marks_after_the_first_character() {
        assert_eq!(question_in_flow_scalar("http://h/?q=1"), Some(9));
        assert_eq!(question_in_flow_scalar("?"), None);
        assert_eq!(question_in_flow_scalar("plain"), None);
    }
}
