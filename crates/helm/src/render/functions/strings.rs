//! Sprig's string functions.

use base64::Engine as _;
use gotmpl::Value;
use sha2::Digest as _;

use super::{Cx, FnResult, P, int_arg, s, spec, str_arg, strval};
use crate::render::gofmt::{self, go_quote};
use crate::render::objects::strings_value;

pub(super) const FUNCS: &[super::FuncSpec] = &[
    spec("trim", &[P::Str], None, |_, a| {
        Ok(s(go_trim_space(str_arg(&a[0]))))
    }),
    spec("trimAll", &[P::Str, P::Str], None, trim_all),
    spec("trimall", &[P::Str, P::Str], None, trim_all),
    spec("trimSuffix", &[P::Str, P::Str], None, |_, a| {
        Ok(s(str_arg(&a[1])
            .strip_suffix(str_arg(&a[0]))
            .unwrap_or(str_arg(&a[1]))))
    }),
    spec("trimPrefix", &[P::Str, P::Str], None, |_, a| {
        Ok(s(str_arg(&a[1])
            .strip_prefix(str_arg(&a[0]))
            .unwrap_or(str_arg(&a[1]))))
    }),
    spec("upper", &[P::Str], None, |_, a| {
        Ok(s(&str_arg(&a[0]).to_uppercase()))
    }),
    spec("lower", &[P::Str], None, |_, a| {
        Ok(s(&str_arg(&a[0]).to_lowercase()))
    }),
    spec("title", &[P::Str], None, |_, a| {
        Ok(s(&title(str_arg(&a[0]))))
    }),
    spec("untitle", &[P::Str], None, |_, a| {
        Ok(s(&untitle(str_arg(&a[0]))))
    }),
    spec("repeat", &[P::Int, P::Str], None, repeat),
    spec("substr", &[P::Int, P::Int, P::Str], None, substr),
    spec("nospace", &[P::Str], None, |_, a| {
        Ok(s(&str_arg(&a[0])
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()))
    }),
    spec("trunc", &[P::Int, P::Str], None, trunc),
    spec("abbrev", &[P::Int, P::Str], None, abbrev),
    spec("initials", &[P::Str], None, |_, a| {
        Ok(s(&str_arg(&a[0])
            .split_whitespace()
            .filter_map(|w| w.chars().next())
            .collect::<String>()))
    }),
    spec("contains", &[P::Str, P::Str], None, |_, a| {
        Ok(Value::Bool(str_arg(&a[1]).contains(str_arg(&a[0]))))
    }),
    spec("hasPrefix", &[P::Str, P::Str], None, |_, a| {
        Ok(Value::Bool(str_arg(&a[1]).starts_with(str_arg(&a[0]))))
    }),
    spec("hasSuffix", &[P::Str, P::Str], None, |_, a| {
        Ok(Value::Bool(str_arg(&a[1]).ends_with(str_arg(&a[0]))))
    }),
    spec("quote", &[], Some(P::Any), quote),
    spec("squote", &[], Some(P::Any), squote),
    spec("cat", &[], Some(P::Any), cat),
    spec("indent", &[P::Int, P::Str], None, |_, a| {
        Ok(s(&indent(int_arg(&a[0]), str_arg(&a[1]))))
    }),
    spec("nindent", &[P::Int, P::Str], None, |_, a| {
        Ok(s(&format!("\n{}", indent(int_arg(&a[0]), str_arg(&a[1])))))
    }),
    spec("replace", &[P::Str, P::Str, P::Str], None, |_, a| {
        Ok(s(&go_replace(
            str_arg(&a[2]),
            str_arg(&a[0]),
            str_arg(&a[1]),
        )))
    }),
    spec("plural", &[P::Str, P::Str, P::Int], None, |_, a| {
        Ok(if int_arg(&a[2]) == 1 {
            a[0].clone()
        } else {
            a[1].clone()
        })
    }),
    spec("snakecase", &[P::Str], None, |_, a| {
        Ok(s(&snake(str_arg(&a[0]), '_')))
    }),
    spec("kebabcase", &[P::Str], None, |_, a| {
        Ok(s(&snake(str_arg(&a[0]), '-')))
    }),
    spec("camelcase", &[P::Str], None, |_, a| {
        Ok(s(&camel(str_arg(&a[0]))))
    }),
    spec("swapcase", &[P::Str], None, |_, a| {
        Ok(s(&str_arg(&a[0])
            .chars()
            .map(|c| {
                if c.is_uppercase() {
                    c.to_lowercase().collect::<String>()
                } else {
                    c.to_uppercase().collect()
                }
            })
            .collect::<String>()))
    }),
    spec("toString", &[P::Any], None, |cx, a| {
        Ok(s(&strval(cx.objects(), &a[0])))
    }),
    spec("toStrings", &[P::Any], None, |cx, a| {
        Ok(strings_value(cx.objects(), strslice(cx, &a[0])))
    }),
    spec("join", &[P::Str, P::Any], None, |cx, a| {
        Ok(s(&strslice(cx, &a[1]).join(str_arg(&a[0]))))
    }),
    spec("split", &[P::Str, P::Str], None, split),
    spec("splitn", &[P::Str, P::Int, P::Str], None, splitn),
    spec("splitList", &[P::Str, P::Str], None, |cx, a| {
        Ok(strings_value(
            cx.objects(),
            go_split(str_arg(&a[1]), str_arg(&a[0]), -1)
                .into_iter()
                .map(str::to_owned)
                .collect(),
        ))
    }),
    spec("sortAlpha", &[P::Any], None, sort_alpha),
    spec("b64enc", &[P::Str], None, |_, a| {
        Ok(s(
            &base64::engine::general_purpose::STANDARD.encode(str_arg(&a[0]))
        ))
    }),
    spec("b64dec", &[P::Str], None, |_, a| {
        Ok(s(
            &match base64::engine::general_purpose::STANDARD.decode(str_arg(&a[0])) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) => base64_error(&e),
            },
        ))
    }),
    spec("sha256sum", &[P::Str], None, |_, a| {
        Ok(s(&hex(&sha2::Sha256::digest(str_arg(&a[0]).as_bytes()))))
    }),
    spec("sha1sum", &[P::Str], None, |_, a| {
        Ok(s(&sha1_smol::Sha1::from(str_arg(&a[0]))
            .digest()
            .to_string()))
    }),
    spec("b32enc", &[P::Str], None, |_, a| {
        Ok(s(&base32_encode(str_arg(&a[0]).as_bytes())))
    }),
    spec("b32dec", &[P::Str], None, |_, a| {
        Ok(s(&match base32_decode(str_arg(&a[0])) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(offset) => format!("illegal base32 data at input byte {offset}"),
        }))
    }),
    spec("adler32sum", &[P::Str], None, |_, a| {
        Ok(s(&adler32(str_arg(&a[0]).as_bytes()).to_string()))
    }),
    spec("base", &[P::Str], None, |_, a| {
        Ok(s(&path_base(str_arg(&a[0]))))
    }),
    spec("dir", &[P::Str], None, |_, a| {
        Ok(s(&path_dir(str_arg(&a[0]))))
    }),
    spec("ext", &[P::Str], None, |_, a| {
        Ok(s(path_ext(str_arg(&a[0]))))
    }),
    spec("clean", &[P::Str], None, |_, a| {
        Ok(s(&path_clean(str_arg(&a[0]))))
    }),
    spec("isAbs", &[P::Str], None, |_, a| {
        Ok(Value::Bool(str_arg(&a[0]).starts_with('/')))
    }),
    // The `os` forms use the OS separator, `/` here.
    spec("osBase", &[P::Str], None, |_, a| {
        Ok(s(&path_base(str_arg(&a[0]))))
    }),
    spec("osDir", &[P::Str], None, |_, a| {
        Ok(s(&path_dir(str_arg(&a[0]))))
    }),
    spec("osExt", &[P::Str], None, |_, a| {
        Ok(s(path_ext(str_arg(&a[0]))))
    }),
    spec("osClean", &[P::Str], None, |_, a| {
        Ok(s(&path_clean(str_arg(&a[0]))))
    }),
    spec("osIsAbs", &[P::Str], None, |_, a| {
        Ok(Value::Bool(str_arg(&a[0]).starts_with('/')))
    }),
];

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Go's `base32.StdEncoding.EncodeToString`.
fn base32_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let bits = buf.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                out.push(B32[((bits >> (35 - i * 5)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Go's `base32.StdEncoding.DecodeString`; the error is the offset of the
/// first bad byte.
fn base32_decode(text: &str) -> Result<Vec<u8>, usize> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(8) {
        return Err(bytes.len() / 8 * 8);
    }
    let mut out = Vec::new();
    for (n, chunk) in bytes.chunks(8).enumerate() {
        let pad = chunk.iter().rev().take_while(|&&b| b == b'=').count();
        let data = &chunk[..8 - pad];
        let mut bits = 0u64;
        for (i, &b) in data.iter().enumerate() {
            let v = B32.iter().position(|&c| c == b).ok_or(n * 8 + i)?;
            bits = (bits << 5) | v as u64;
        }
        bits <<= 5 * pad;
        let len = match pad {
            0 => 5,
            1 => 4,
            3 => 3,
            4 => 2,
            6 => 1,
            _ => return Err(n * 8 + 8 - pad),
        };
        for i in 0..len {
            out.push((bits >> (32 - i * 8)) as u8);
        }
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// Go's base64 error text, which Sprig returns as the decoded value.
fn base64_error(e: &base64::DecodeError) -> String {
    match e {
        base64::DecodeError::InvalidByte(offset, _)
        | base64::DecodeError::InvalidLastSymbol(offset, _) => {
            format!("illegal base64 data at input byte {offset}")
        }
        base64::DecodeError::InvalidLength(len) => {
            format!("illegal base64 data at input byte {len}")
        }
        base64::DecodeError::InvalidPadding => "illegal base64 data at input byte 0".into(),
    }
}

/// Go's `unicode.IsSpace`-based `strings.TrimSpace`.
fn go_trim_space(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace())
}

fn trim_all(_: &Cx<'_>, a: &[Value]) -> FnResult {
    let cut = str_arg(&a[0]);
    Ok(s(str_arg(&a[1]).trim_matches(|c| cut.contains(c))))
}

/// Go's deprecated `strings.Title`: upper-cases letters that follow a
/// separator (anything but a letter, digit, `_` or `'`... as Go decides).
fn title(s: &str) -> String {
    let mut prev_sep = true;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            !(c.is_alphanumeric()) && c.is_whitespace()
        };
    }
    out
}

fn untitle(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn repeat(_: &Cx<'_>, a: &[Value]) -> FnResult {
    let n = int_arg(&a[0]);
    if n < 0 {
        return Err(super::FnError::Call(
            "strings: negative Repeat count".into(),
        ));
    }
    Ok(s(&str_arg(&a[1]).repeat(n as usize)))
}

/// Go slicing of a string by byte offsets; an out-of-range slice panics in
/// Go, which the template engine reports as an error.
fn byte_slice(st: &str, start: usize, end: usize) -> Result<String, super::FnError> {
    if start > end || end > st.len() {
        return Err(super::FnError::Call(format!(
            "runtime error: slice bounds out of range [{start}:{end}]"
        )));
    }
    Ok(String::from_utf8_lossy(&st.as_bytes()[start..end]).into_owned())
}

fn substr(_: &Cx<'_>, a: &[Value]) -> FnResult {
    let (start, end, st) = (int_arg(&a[0]), int_arg(&a[1]), str_arg(&a[2]));
    let len = st.len() as i64;
    if start < 0 {
        return Ok(s(&byte_slice(st, 0, end.max(0) as usize)?));
    }
    if end < 0 || end > len {
        return Ok(s(&byte_slice(st, start as usize, st.len())?));
    }
    Ok(s(&byte_slice(st, start as usize, end as usize)?))
}

fn trunc(_: &Cx<'_>, a: &[Value]) -> FnResult {
    let (c, st) = (int_arg(&a[0]), str_arg(&a[1]));
    let len = st.len() as i64;
    if c < 0 && len + c > 0 {
        return Ok(s(&byte_slice(st, (len + c) as usize, st.len())?));
    }
    if c >= 0 && len > c {
        return Ok(s(&byte_slice(st, 0, c as usize)?));
    }
    Ok(s(st))
}

fn abbrev(_: &Cx<'_>, a: &[Value]) -> FnResult {
    let (w, st) = (int_arg(&a[0]), str_arg(&a[1]));
    if w < 4 || st.chars().count() as i64 <= w {
        return Ok(s(st));
    }
    let keep: String = st.chars().take((w - 3) as usize).collect();
    Ok(s(&format!("{keep}...")))
}

fn quote(cx: &Cx<'_>, a: &[Value]) -> FnResult {
    let parts: Vec<String> = a
        .iter()
        .filter(|v| !matches!(v, Value::Nil))
        .map(|v| go_quote(&strval(cx.objects(), v)))
        .collect();
    Ok(s(&parts.join(" ")))
}

fn squote(cx: &Cx<'_>, a: &[Value]) -> FnResult {
    let parts: Vec<String> = a
        .iter()
        .filter(|v| !matches!(v, Value::Nil))
        .map(|v| format!("'{}'", gofmt::to_v(cx.objects(), v)))
        .collect();
    Ok(s(&parts.join(" ")))
}

fn cat(cx: &Cx<'_>, a: &[Value]) -> FnResult {
    let parts: Vec<String> = a
        .iter()
        .filter(|v| !matches!(v, Value::Nil))
        .map(|v| gofmt::to_v(cx.objects(), v))
        .collect();
    Ok(s(&parts.join(" ")))
}

fn indent(n: i64, v: &str) -> String {
    let pad = " ".repeat(n.max(0) as usize);
    format!("{pad}{}", v.replace('\n', &format!("\n{pad}")))
}

/// Go's `strings.Replace(s, old, new, -1)` (an empty `old` inserts `new`
/// around every character).
fn go_replace(st: &str, old: &str, new: &str) -> String {
    if old.is_empty() {
        let mut out = String::from(new);
        for c in st.chars() {
            out.push(c);
            out.push_str(new);
        }
        return out;
    }
    st.replace(old, new)
}

/// Go's `strings.Split`/`SplitN` (an empty separator splits into characters).
fn go_split<'a>(st: &'a str, sep: &str, n: i64) -> Vec<&'a str> {
    if n == 0 {
        return Vec::new();
    }
    if sep.is_empty() {
        let mut parts: Vec<&str> = Vec::new();
        for (i, c) in st.char_indices() {
            if n > 0 && parts.len() as i64 == n - 1 {
                parts.push(&st[i..]);
                return parts;
            }
            parts.push(&st[i..i + c.len_utf8()]);
        }
        return parts;
    }
    if n < 0 {
        st.split(sep).collect()
    } else {
        st.splitn(n as usize, sep).collect()
    }
}

fn split(_: &Cx<'_>, a: &[Value]) -> FnResult {
    let parts = go_split(str_arg(&a[1]), str_arg(&a[0]), -1);
    Ok(super::map_value(
        parts
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("_{i}").into(), s(p)))
            .collect(),
    ))
}

fn splitn(_: &Cx<'_>, a: &[Value]) -> FnResult {
    let parts = go_split(str_arg(&a[2]), str_arg(&a[0]), int_arg(&a[1]));
    Ok(super::map_value(
        parts
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("_{i}").into(), s(p)))
            .collect(),
    ))
}

/// Sprig's `strslice`: a list's non-nil elements as strings, one value as a
/// one-element list, nil as an empty list.
pub(super) fn strslice(cx: &Cx<'_>, v: &Value) -> Vec<String> {
    match v {
        Value::List(items) => items
            .iter()
            .filter(|x| !matches!(x, Value::Nil))
            .map(|x| strval(cx.objects(), x))
            .collect(),
        Value::Nil => Vec::new(),
        other => vec![strval(cx.objects(), other)],
    }
}

fn sort_alpha(cx: &Cx<'_>, a: &[Value]) -> FnResult {
    match &a[0] {
        Value::List(_) => {
            let mut items = strslice(cx, &a[0]);
            items.sort();
            Ok(strings_value(cx.objects(), items))
        }
        other => Ok(strings_value(
            cx.objects(),
            vec![strval(cx.objects(), other)],
        )),
    }
}

fn words(st: &str) -> Vec<String> {
    // Word boundaries as xstrings finds them: separators, and a lower-case
    // letter or digit followed by an upper-case one.
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut prev: Option<char> = None;
    for c in st.chars() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev = None;
            continue;
        }
        if let Some(p) = prev
            && c.is_uppercase()
            && (p.is_lowercase() || p.is_ascii_digit())
            && !cur.is_empty()
        {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
        prev = Some(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn snake(st: &str, sep: char) -> String {
    words(st)
        .iter()
        .map(|w| w.to_lowercase())
        .collect::<Vec<_>>()
        .join(&sep.to_string())
}

fn camel(st: &str) -> String {
    st.split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

/// Go's `path.Clean`.
pub(super) fn path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

/// Go's `path.Base`.
pub(super) fn path_base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_owned()
}

fn path_dir(p: &str) -> String {
    let dir = match p.rfind('/') {
        Some(i) => &p[..=i],
        None => "",
    };
    path_clean(dir)
}

fn path_ext(p: &str) -> &str {
    for (i, c) in p.char_indices().rev() {
        if c == '/' {
            break;
        }
        if c == '.' {
            return &p[i..];
        }
    }
    ""
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_string_helpers() {
        assert_eq!(title("hello world-foo bar_baz"), "Hello World-Foo Bar_baz");
        assert_eq!(indent(2, "a\nb"), "  a\n  b");
        assert_eq!(go_split("a,b,,c", ",", -1), ["a", "b", "", "c"]);
        assert_eq!(go_split("abc", "", -1), ["a", "b", "c"]);
        assert_eq!(go_replace("ab", "", "-"), "-a-b-");
        assert_eq!(snake("HelloWorld fooBar", '_'), "hello_world_foo_bar");
        assert_eq!(camel("hello_world"), "HelloWorld");
        assert_eq!(path_clean("a/../b/./c/"), "b/c");
        assert_eq!(path_base("a/b.txt"), "b.txt");
        assert_eq!(path_dir("a/b.txt"), "a");
        assert_eq!(path_ext("a/b.tar.gz"), ".gz");
        assert_eq!(adler32(b"Wikipedia"), 300286872);
        assert_eq!(base32_encode(b"hello"), "NBSWY3DP");
        assert_eq!(base32_encode(b"hi"), "NBUQ====");
        assert_eq!(base32_decode("NBUQ====").unwrap(), b"hi");
        assert!(base32_decode("N!UQ====").is_err());
    }
}
