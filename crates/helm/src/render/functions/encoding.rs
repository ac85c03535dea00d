//! JSON and YAML: Sprig's and Helm's `toJson`, `toYaml`, `fromJson`,
//! `fromYaml` and their variants, with Go's encoders' exact output.

use gotmpl::Value;

use super::{Cx, FnError, P, list, s, spec, str_arg};
use crate::render::gojson::{self, JNode};
use crate::render::goyaml::{emit, load};

pub(super) const FUNCS: &[super::FuncSpec] = &[
    spec("toJson", &[P::Any], None, |cx, a| {
        Ok(s(&json(cx, &a[0], true, None).unwrap_or_default()))
    }),
    spec("mustToJson", &[P::Any], None, |cx, a| {
        Ok(s(&json(cx, &a[0], true, None).map_err(FnError::Call)?))
    }),
    spec("toPrettyJson", &[P::Any], None, |cx, a| {
        Ok(s(&json(cx, &a[0], true, Some("  ")).unwrap_or_default()))
    }),
    spec("mustToPrettyJson", &[P::Any], None, |cx, a| {
        Ok(s(&json(cx, &a[0], true, Some("  ")).map_err(FnError::Call)?))
    }),
    spec("toRawJson", &[P::Any], None, |cx, a| {
        Ok(s(&json(cx, &a[0], false, None).unwrap_or_default()))
    }),
    spec("mustToRawJson", &[P::Any], None, |cx, a| {
        Ok(s(&json(cx, &a[0], false, None).map_err(FnError::Call)?))
    }),
    spec("fromJson", &[P::Str], None, |_, a| {
        Ok(from_json_map(str_arg(&a[0])))
    }),
    spec("mustFromJson", &[P::Str], None, |_, a| {
        serde_json::from_str::<serde_json::Value>(str_arg(&a[0]))
            .map(|v| gojson::from_serde(&v))
            .map_err(|e| FnError::Call(go_json_error(&e)))
    }),
    spec("fromJsonArray", &[P::Str], None, |_, a| {
        Ok(from_json_array(str_arg(&a[0])))
    }),
    spec("toYaml", &[P::Any], None, |cx, a| {
        Ok(s(&yaml(cx, &a[0]).unwrap_or_default()))
    }),
    spec("mustToYaml", &[P::Any], None, |cx, a| {
        Ok(s(&yaml(cx, &a[0]).map_err(FnError::Call)?))
    }),
    spec("fromYaml", &[P::Str], None, |_, a| {
        Ok(from_yaml(str_arg(&a[0]), false))
    }),
    spec("fromYamlArray", &[P::Str], None, |_, a| {
        Ok(from_yaml(str_arg(&a[0]), true))
    }),
];

fn tree(cx: &Cx<'_>, v: &Value) -> Result<JNode, String> {
    gojson::to_tree(cx.objects(), &cx.state.maps.resolve_deep(v))
}

fn json(cx: &Cx<'_>, v: &Value, escape_html: bool, indent: Option<&str>) -> Result<String, String> {
    Ok(gojson::encode(&tree(cx, v)?, escape_html, indent))
}

fn yaml(cx: &Cx<'_>, v: &Value) -> Result<String, String> {
    Ok(emit::to_yaml(&tree(cx, v)?))
}

/// The start of Go's JSON decoder messages for what serde reports.
fn go_json_error(e: &serde_json::Error) -> String {
    if e.is_eof() {
        "unexpected end of JSON input".into()
    } else {
        format!("invalid character in JSON input ({e})")
    }
}

fn error_map(msg: String) -> Value {
    super::map_value([("Error".into(), s(&msg))].into_iter().collect())
}

fn kind_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Null => "null",
    }
}

/// Helm's `fromJson`: a JSON object, or `{"Error": ...}`.
fn from_json_map(text: &str) -> Value {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v @ (serde_json::Value::Object(_) | serde_json::Value::Null)) => match v {
            serde_json::Value::Null => super::map_value(Default::default()),
            v => gojson::from_serde(&v),
        },
        Ok(v) => error_map(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            kind_name(&v)
        )),
        Err(e) => error_map(go_json_error(&e)),
    }
}

/// Helm's `fromJsonArray`: a JSON array, or `[error message]`.
fn from_json_array(text: &str) -> Value {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v @ serde_json::Value::Array(_)) => gojson::from_serde(&v),
        Ok(serde_json::Value::Null) => list(Vec::new()),
        Ok(v) => list(vec![s(&format!(
            "json: cannot unmarshal {} into Go value of type []interface {{}}",
            kind_name(&v)
        ))]),
        Err(e) => list(vec![s(&go_json_error(&e))]),
    }
}

/// Helm's `fromYaml` (a mapping, or `{"Error": ...}`) and `fromYamlArray`
/// (a sequence, or `[error message]`).
fn from_yaml(text: &str, array: bool) -> Value {
    let fail = |msg: String| {
        if array {
            list(vec![s(&msg)])
        } else {
            error_map(msg)
        }
    };
    let node = match load::load_first(text) {
        Ok(n) => n,
        // go-yaml names the line only when it knows one.
        Err(e) if e.line == 0 => {
            return fail(format!(
                "error converting YAML to JSON: yaml: {}",
                e.message
            ));
        }
        Err(e) => {
            return fail(format!(
                "error converting YAML to JSON: yaml: line {}: {}",
                e.line, e.message
            ));
        }
    };
    let Some(node) = node else {
        return if array {
            list(Vec::new())
        } else {
            super::map_value(Default::default())
        };
    };
    let json = match load::to_json(&node) {
        Ok(j) => j,
        Err(e) => return fail(format!("error converting YAML to JSON: {e}")),
    };
    let (ok, want) = if array {
        (json.is_array(), "[]interface {}")
    } else {
        (json.is_object(), "map[string]interface {}")
    };
    if ok {
        gojson::from_serde(&json)
    } else {
        fail(format!(
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type {want}",
            kind_name(&json)
        ))
    }
}
