//! Helm's `.Files`: the chart's non-template files, with `Get`, `GetBytes`,
//! `Glob` (gobwas/glob patterns: `*` within a path segment, `**` across),
//! `AsConfig`, `AsSecrets` and `Lines`.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use gotmpl::Value;

use super::gojson::JNode;
use super::goyaml::emit;
use super::objects::{Kind, Objects, bytes_value, strings_value};
use super::state::State;

/// The `.Files` object of a chart: file path -> contents.
pub(crate) fn files_value(objects: &Objects, files: &BTreeMap<String, Vec<u8>>) -> Value {
    let m: BTreeMap<Arc<str>, Value> = files
        .iter()
        .map(|(k, v)| (Arc::from(k.as_str()), bytes_value(objects, v)))
        .collect();
    objects.register(Value::Map(Arc::new(m)), Kind::Files)
}

/// Calls the method `name` of a files object (arity and types checked).
pub(crate) fn call(st: &State, recv: &Value, name: &str, arg: &str) -> Value {
    let Value::Map(files) = recv else {
        return Value::Nil;
    };
    let text = |v: &Value| st.objects.bytes_text(v).unwrap_or_default();
    match name {
        "Get" => Value::String(files.get(arg).map(text).unwrap_or_default().into()),
        "GetBytes" => files
            .get(arg)
            .cloned()
            .unwrap_or_else(|| bytes_value(&st.objects, &[])),
        "Glob" => {
            let pattern = Glob::compile(arg)
                .unwrap_or_else(|| Glob::compile("**").unwrap_or(Glob(Vec::new())));
            let m: BTreeMap<Arc<str>, Value> = files
                .iter()
                .filter(|(k, _)| pattern.matches(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            st.objects.register(Value::Map(Arc::new(m)), Kind::Files)
        }
        "Lines" => match files.get(arg) {
            None => strings_value(&st.objects, Vec::new()),
            Some(v) => {
                let t = text(v);
                let t = t.strip_suffix('\n').unwrap_or(&t);
                strings_value(&st.objects, t.split('\n').map(str::to_owned).collect())
            }
        },
        _ => {
            // AsConfig / AsSecrets: base names to contents (or base64), as YAML.
            let mut m = Vec::new();
            for (k, v) in files.iter() {
                let base = k.rsplit('/').next().unwrap_or(k).to_owned();
                let content = if name == "AsSecrets" {
                    base64::engine::general_purpose::STANDARD.encode(text(v).as_bytes())
                } else {
                    text(v)
                };
                m.push((base, JNode::Str(content)));
            }
            Value::String(emit::to_yaml(&JNode::Map(m)).into())
        }
    }
}

#[derive(Debug, Clone)]
enum Tok {
    Lit(char),
    /// `?`: one character but the separator.
    One,
    /// `*`: any run without the separator.
    Star,
    /// `**`: any run.
    Super,
    Class {
        negate: bool,
        items: Vec<(char, char)>,
    },
    Alt(Vec<Vec<Tok>>),
}

/// A compiled gobwas/glob pattern with `/` as separator.
pub(crate) struct Glob(Vec<Tok>);

impl Glob {
    pub(crate) fn compile(p: &str) -> Option<Glob> {
        let chars: Vec<char> = p.chars().collect();
        let (toks, used) = parse(&chars, 0, false)?;
        (used == chars.len()).then_some(Glob(toks))
    }

    pub(crate) fn matches(&self, s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        match_toks(&self.0, &chars)
    }
}

fn parse(c: &[char], mut i: usize, in_alt: bool) -> Option<(Vec<Tok>, usize)> {
    let mut out = Vec::new();
    while i < c.len() {
        match c[i] {
            ',' | '}' if in_alt => return Some((out, i)),
            '\\' => {
                out.push(Tok::Lit(*c.get(i + 1)?));
                i += 2;
            }
            '?' => {
                out.push(Tok::One);
                i += 1;
            }
            '*' => {
                if c.get(i + 1) == Some(&'*') {
                    out.push(Tok::Super);
                    i += 2;
                } else {
                    out.push(Tok::Star);
                    i += 1;
                }
            }
            '[' => {
                i += 1;
                let negate = c.get(i) == Some(&'!');
                if negate {
                    i += 1;
                }
                let mut items = Vec::new();
                while *c.get(i)? != ']' {
                    let lo = c[i];
                    if c.get(i + 1) == Some(&'-') && c.get(i + 2).is_some_and(|&h| h != ']') {
                        items.push((lo, c[i + 2]));
                        i += 3;
                    } else {
                        items.push((lo, lo));
                        i += 1;
                    }
                }
                i += 1;
                out.push(Tok::Class { negate, items });
            }
            '{' => {
                let mut alts = Vec::new();
                i += 1;
                loop {
                    let (t, j) = parse(c, i, true)?;
                    alts.push(t);
                    match c.get(j)? {
                        ',' => i = j + 1,
                        _ => {
                            i = j + 1;
                            break;
                        }
                    }
                }
                out.push(Tok::Alt(alts));
            }
            ch => {
                out.push(Tok::Lit(ch));
                i += 1;
            }
        }
    }
    if in_alt { None } else { Some((out, i)) }
}

fn match_toks(t: &[Tok], s: &[char]) -> bool {
    let Some((first, rest)) = t.split_first() else {
        return s.is_empty();
    };
    match first {
        Tok::Lit(c) => s.first() == Some(c) && match_toks(rest, &s[1..]),
        Tok::One => s.first().is_some_and(|&c| c != '/') && match_toks(rest, &s[1..]),
        Tok::Class { negate, items } => {
            s.first()
                .is_some_and(|&c| items.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negate)
                && match_toks(rest, &s[1..])
        }
        Tok::Star => {
            for n in 0..=s.len() {
                if match_toks(rest, &s[n..]) {
                    return true;
                }
                if n < s.len() && s[n] == '/' {
                    return false;
                }
            }
            false
        }
        Tok::Super => (0..=s.len()).any(|n| match_toks(rest, &s[n..])),
        Tok::Alt(alts) => alts.iter().any(|a| {
            let mut joined = a.clone();
            joined.extend_from_slice(rest);
            match_toks(&joined, s)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Glob::compile(p).unwrap().matches(s)
    }

    #[test]
    fn glob_semantics() {
        assert!(m("config/*", "config/a.yaml") && !m("config/*", "config/x/a.yaml"));
        assert!(m("**.txt", "sub/deep/c.txt") && m("**/*.txt", "config/b.txt"));
        assert!(m("*", ".helmignore") && !m("*", "config/a.yaml"));
        assert!(
            m("files/{a,b}.conf", "files/b.conf")
                && m("f[0-9].txt", "f3.txt")
                && !m("f[!0-9].txt", "f3.txt")
        );
        assert!(Glob::compile("[abc").is_none());
    }
}
