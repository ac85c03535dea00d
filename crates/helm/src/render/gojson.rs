//! Go's `encoding/json` view of template values: `toJson`, and the first half
//! of `toYaml` (Helm marshals to JSON, then converts the JSON to YAML).

use std::fmt::Write as _;

use base64::Engine as _;
use gotmpl::Value;

use super::gofmt::format_float;
use super::objects::{Kind, Objects, semver_string};

/// A value as Go's JSON encoder sees it. Numbers keep the exact text Go
/// writes for them; objects keep Go's order (sorted keys for maps, field
/// order for structs).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JNode {
    Null,
    Bool(bool),
    Number(String),
    Str(String),
    Seq(Vec<JNode>),
    Map(Vec<(String, JNode)>),
}

/// How Go's JSON encoder writes a float64.
pub(crate) fn json_float(f: f64) -> Result<String, String> {
    if !f.is_finite() {
        return Err(format!(
            "json: unsupported value: {}",
            format_float(f, 'g', None)
        ));
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let mut s = format_float(f, 'e', None);
        // Go cleans up e-09 to e-9.
        let n = s.len();
        if n >= 4 && &s[n - 4..n - 2] == "e-" && s.as_bytes()[n - 2] == b'0' {
            s.remove(n - 2);
        }
        Ok(s)
    } else {
        Ok(format_float(f, 'f', None))
    }
}

fn b64(data: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(data.as_bytes())
}

/// The JSON tree of `v`, with Helm's types marshalled as Go marshals them.
///
/// # Errors
/// NaN or infinite floats, and functions, as Go's encoder refuses them.
/// A JSON value as the tree Go's encoders walk (numbers as Go's JSON
/// encoder writes them).
pub(crate) fn from_json(v: &serde_json::Value) -> JNode {
    match v {
        serde_json::Value::Null => JNode::Null,
        serde_json::Value::Bool(b) => JNode::Bool(*b),
        serde_json::Value::Number(n) => JNode::Number(match n.as_f64() {
            Some(f) if n.is_f64() => json_float(f).unwrap_or_else(|_| n.to_string()),
            _ => n.to_string(),
        }),
        serde_json::Value::String(s) => JNode::Str(s.clone()),
        serde_json::Value::Array(items) => JNode::Seq(items.iter().map(from_json).collect()),
        serde_json::Value::Object(m) => {
            JNode::Map(m.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
        }
    }
}

pub(crate) fn to_tree(objects: &Objects, v: &Value) -> Result<JNode, String> {
    match objects.kind(v) {
        Some(Kind::Bytes) => {
            return Ok(JNode::Str(b64(&objects.bytes_text(v).unwrap_or_default())));
        }
        Some(Kind::Semver) => return Ok(JNode::Str(semver_string(v))),
        Some(Kind::Files) => {
            if let Value::Map(m) = v {
                let out = m
                    .iter()
                    .map(|(k, x)| {
                        (
                            k.to_string(),
                            JNode::Str(b64(&objects.bytes_text(x).unwrap_or_default())),
                        )
                    })
                    .collect();
                return Ok(JNode::Map(out));
            }
        }
        Some(Kind::HelmVersion) => {
            // BuildInfo has JSON tags, with the git fields omitted when empty.
            let mut out = Vec::new();
            for (field, name, omit_empty) in [
                ("Version", "version", false),
                ("GitCommit", "git_commit", true),
                ("GitTreeState", "git_tree_state", true),
                ("GoVersion", "go_version", false),
                ("KubeClientVersion", "kube_client_version", false),
            ] {
                let s = v.field(field).and_then(Value::as_str).unwrap_or("");
                if !(omit_empty && s.is_empty()) {
                    out.push((name.to_owned(), JNode::Str(s.to_owned())));
                }
            }
            return Ok(JNode::Map(out));
        }
        Some(kind) => {
            // A struct: its fields in declaration order.
            if let (Some(fields), Value::Map(m)) = (kind.struct_fields(), v) {
                let mut out = Vec::new();
                for f in fields {
                    if let Some(x) = m.get(*f) {
                        out.push(((*f).to_owned(), to_tree(objects, x)?));
                    }
                }
                return Ok(JNode::Map(out));
            }
        }
        None => {}
    }
    Ok(match v {
        Value::Nil => JNode::Null,
        Value::Bool(b) => JNode::Bool(*b),
        Value::Int(i) => JNode::Number(i.to_string()),
        Value::Uint(u) => JNode::Number(u.to_string()),
        Value::Float(f) => JNode::Number(json_float(*f)?),
        Value::String(s) => JNode::Str(s.to_string()),
        Value::List(items) => JNode::Seq(
            items
                .iter()
                .map(|x| to_tree(objects, x))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(m) => JNode::Map(
            m.iter()
                .map(|(k, x)| Ok((k.to_string(), to_tree(objects, x)?)))
                .collect::<Result<_, String>>()?,
        ),
        Value::Function(_) => return Err("json: unsupported type: func".into()),
    })
}

/// Writes a JSON string as Go does (`escape_html`: `<`, `>`, `&` as `\u003c`...).
fn write_string(out: &mut String, s: &str, escape_html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' if escape_html => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_node(out: &mut String, n: &JNode, escape_html: bool, indent: Option<&str>, depth: usize) {
    let newline = |out: &mut String, depth: usize| {
        if let Some(ind) = indent {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(ind);
            }
        }
    };
    match n {
        JNode::Null => out.push_str("null"),
        JNode::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        JNode::Number(s) => out.push_str(s),
        JNode::Str(s) => write_string(out, s, escape_html),
        JNode::Seq(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                write_node(out, x, escape_html, indent, depth + 1);
            }
            if !items.is_empty() {
                newline(out, depth);
            }
            out.push(']');
        }
        JNode::Map(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                write_string(out, k, escape_html);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_node(out, x, escape_html, indent, depth + 1);
            }
            if !m.is_empty() {
                newline(out, depth);
            }
            out.push('}');
        }
    }
}

/// Go's `json.Marshal` (`escape_html`) or `MarshalIndent(v, "", indent)`.
pub(crate) fn encode(n: &JNode, escape_html: bool, indent: Option<&str>) -> String {
    let mut out = String::new();
    write_node(&mut out, n, escape_html, indent, 0);
    out
}

/// JSON (from `fromJson`, values, ...) as a template value: numbers are
/// float64, as Go decodes them into `interface{}`.
pub(crate) fn from_serde(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Value::String(s.as_str().into()),
        serde_json::Value::Array(items) => {
            Value::List(items.iter().map(from_serde).collect::<Vec<_>>().into())
        }
        serde_json::Value::Object(m) => Value::Map(std::sync::Arc::new(
            m.iter()
                .map(|(k, x)| (std::sync::Arc::from(k.as_str()), from_serde(x)))
                .collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gotmpl::tmap;

    #[test]
    fn floats_like_go_json() {
        assert_eq!(json_float(1.0).unwrap(), "1");
        assert_eq!(json_float(1e6).unwrap(), "1000000");
        assert_eq!(json_float(1e21).unwrap(), "1e+21");
        assert_eq!(json_float(1.5e-7).unwrap(), "1.5e-7");
        assert_eq!(json_float(0.00001).unwrap(), "0.00001");
        assert!(json_float(f64::NAN).is_err());
    }

    #[test]
    fn encodes_like_go() {
        let o = Objects::default();
        let v = tmap! { "b" => "<&>", "a" => vec![1i64, 2], "c" => tmap! {} };
        let t = to_tree(&o, &v).unwrap();
        assert_eq!(
            encode(&t, true, None),
            r#"{"a":[1,2],"b":"\u003c\u0026\u003e","c":{}}"#
        );
        assert_eq!(encode(&t, false, None), r#"{"a":[1,2],"b":"<&>","c":{}}"#);
        assert_eq!(
            encode(&t, true, Some("  ")),
            "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": \"\\u003c\\u0026\\u003e\",\n  \"c\": {}\n}"
        );
    }
}
