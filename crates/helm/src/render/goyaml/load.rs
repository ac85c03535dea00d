//! Reading YAML the way Helm does: `sigs.k8s.io/yaml` over go-yaml v2, which
//! resolves plain scalars with YAML 1.1 rules (`yes`, `on`, `0x1F`, `0755`,
//! `1_000` are not strings there) and then converts the document to JSON.
//!
//! `granit-parser` does the syntax (it reports the scalar style, so quoted
//! `"yes"` stays a string); this module does go-yaml's resolution, anchors and
//! `<<` merge keys, and the JSON conversion.

use granit_parser::{Event, Options, Parser, ScalarStyle, ScanError};

use super::resolve::{Resolved, resolve_plain};

/// A YAML node after go-yaml's resolution.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order; a repeated key keeps its last value.
    Map(Vec<(Node, Node)>),
}

/// A document that cannot be read, with the 1-based position of the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl From<ScanError> for YamlError {
    fn from(e: ScanError) -> Self {
        Self {
            line: e.marker().line().max(1),
            column: e.marker().col() + 1,
            message: e.info(),
        }
    }
}

/// One item of the node being built: a collection waiting for its children.
enum Frame {
    Seq(Vec<Node>, usize),
    Map(Vec<(Node, Node)>, Option<Node>, usize),
}

/// The key go-yaml treats as a merge (`<<` written plain).
const MERGE_KEY: &str = "\u{0}<<merge>>";

/// Parses every document of `text`. An empty stream gives no document; an
/// empty document (`---` alone) gives [`Node::Null`].
pub(crate) fn load_all(text: &str) -> Result<Vec<Node>, YamlError> {
    let mut options = Options::default();
    options.emit_comments = false;
    // libyaml (and so go-yaml) adds no line feed after a block scalar that
    // ends the input without one.
    options.block_scalar_eof_without_line_feed = true;
    let mut parser = Parser::new_from_str_with_options(text, options);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: Vec<(usize, Node)> = Vec::new();
    let mut root: Option<Node> = None;
    while let Some(item) = parser.next_event() {
        let (event, span) = item?;
        let at = |message: String| YamlError {
            line: span.start.line().max(1),
            column: span.start.col() + 1,
            message,
        };
        let done: Option<(Node, usize)> = match event {
            // Comments (off in the options), anchor metadata (off) and
            // stream markers carry no data.
            Event::StreamStart | Event::StreamEnd | Event::Anchor(..) | Event::Comment(..) => None,
            Event::DocumentStart(..) => {
                anchors.clear();
                root = None;
                None
            }
            Event::DocumentEnd => {
                docs.push(root.take().unwrap_or(Node::Null));
                None
            }
            Event::Alias(id) => {
                let node = anchors
                    .iter()
                    .rev()
                    .find(|(a, _)| *a == id)
                    .map(|(_, n)| n.clone())
                    .ok_or_else(|| at("unknown anchor".into()))?;
                Some((node, 0))
            }
            Event::UnresolvedAlias(name) => {
                return Err(at(format!("unknown anchor '{name}' referenced")));
            }
            Event::Scalar(value, style, anchor, tag) => {
                let tag = tag.as_ref().map(|t| match t.core_suffix() {
                    Some(s) => format!("!!{s}"),
                    None => t.original(),
                });
                let node = scalar(&value, style, tag.as_deref()).map_err(at)?;
                Some((node, anchor))
            }
            Event::SequenceStart(_, anchor, _) => {
                stack.push(Frame::Seq(Vec::new(), anchor));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, anchor)) => Some((Node::Seq(items), anchor)),
                _ => return Err(at("unbalanced sequence".into())),
            },
            Event::MappingStart(_, anchor, _) => {
                stack.push(Frame::Map(Vec::new(), None, anchor));
                None
            }
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(entries, _, anchor)) => Some((Node::Map(entries), anchor)),
                _ => return Err(at("unbalanced mapping".into())),
            },
            _ => return Err(at("unexpected YAML event".into())),
        };
        let Some((mut node, anchor)) = done else {
            continue;
        };
        let is_key = matches!(stack.last(), Some(Frame::Map(_, None, _)));
        if !is_key && node == Node::Str(MERGE_KEY.into()) {
            node = Node::Str("<<".into());
        }
        if anchor != 0 {
            anchors.push((anchor, node.clone()));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(items, _)) => items.push(node),
            Some(Frame::Map(entries, pending, _)) => match pending.take() {
                None => *pending = Some(node),
                Some(Node::Str(k)) if k == MERGE_KEY => merge_into(entries, node).map_err(at)?,
                Some(key) => insert(entries, key, node),
            },
        }
    }
    Ok(docs)
}

/// The first document of `text`, or `None` when there is none or it is empty
/// (go-yaml's `Unmarshal` reads only the first document).
pub(crate) fn load_first(text: &str) -> Result<Option<Node>, YamlError> {
    Ok(load_all(text)?
        .into_iter()
        .next()
        .filter(|n| *n != Node::Null))
}

fn insert(entries: &mut Vec<(Node, Node)>, key: Node, value: Node) {
    match entries.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => entries.push((key, value)),
    }
}

/// go-yaml's `<<`: the entries of a mapping (or of each mapping of a
/// sequence, last first) are set into the mapping being built.
fn merge_into(entries: &mut Vec<(Node, Node)>, value: Node) -> Result<(), String> {
    match value {
        Node::Map(from) => {
            for (k, v) in from {
                insert(entries, k, v);
            }
            Ok(())
        }
        Node::Seq(items) => {
            for item in items.into_iter().rev() {
                match item {
                    Node::Map(from) => {
                        for (k, v) in from {
                            insert(entries, k, v);
                        }
                    }
                    _ => {
                        return Err(
                            "map merge requires map or sequence of maps as the value".into()
                        );
                    }
                }
            }
            Ok(())
        }
        _ => Err("map merge requires map or sequence of maps as the value".into()),
    }
}

fn scalar(value: &str, style: ScalarStyle, tag: Option<&str>) -> Result<Node, String> {
    let plain = style == ScalarStyle::Plain;
    match tag {
        // go-yaml treats a plain `<<` as a merge key whatever it resolves to.
        None if plain && value == "<<" => Ok(Node::Str(MERGE_KEY.into())),
        None if plain => Ok(resolved_node(resolve_plain(value), value)),
        None | Some("!!str") => Ok(Node::Str(value.to_owned())),
        Some("!!binary") => {
            use base64::Engine as _;
            let clean: String = value.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(clean)
                .map_err(|e| format!("!!binary value contains invalid base64 data: {e}"))?;
            Ok(Node::Str(String::from_utf8_lossy(&bytes).into_owned()))
        }
        Some(t @ ("!!int" | "!!float" | "!!bool" | "!!null" | "!!timestamp")) => {
            let r = resolve_plain(value);
            let node = resolved_node(r.clone(), value);
            let ok = matches!(
                (t, &r),
                (
                    "!!int",
                    Resolved::Int(_) | Resolved::Uint(_) | Resolved::BigInt
                ) | (
                    "!!float",
                    Resolved::Float(_) | Resolved::Int(_) | Resolved::Uint(_)
                ) | ("!!bool", Resolved::Bool(_))
                    | ("!!null", Resolved::Null)
                    | ("!!timestamp", Resolved::Timestamp)
            );
            if !ok {
                return Err(format!("cannot decode `{value}` as a {t}"));
            }
            Ok(match (t, node) {
                ("!!float", Node::Int(i)) => Node::Float(i as f64),
                ("!!float", Node::Uint(u)) => Node::Float(u as f64),
                (_, n) => n,
            })
        }
        // go-yaml keeps the text of scalars with tags it does not know.
        Some(_) => Ok(Node::Str(value.to_owned())),
    }
}

fn resolved_node(r: Resolved, text: &str) -> Node {
    match r {
        Resolved::Null => Node::Null,
        Resolved::Bool(b) => Node::Bool(b),
        Resolved::Int(i) => Node::Int(i),
        Resolved::Uint(u) => Node::Uint(u),
        // A big integer goes through JSON as a number and comes back a float.
        Resolved::BigInt => Node::Float(text.replace('_', "").parse::<f64>().unwrap_or(f64::NAN)),
        Resolved::Float(f) => Node::Float(f),
        // go-yaml keeps timestamps as strings when decoding into interface{}.
        Resolved::Timestamp | Resolved::Str => Node::Str(text.to_owned()),
    }
}

/// Converts a node to JSON as `sigs.k8s.io/yaml` does: map keys become strings
/// (numbers and booleans printed as go-yaml prints them).
///
/// # Errors
/// A key that is null or a collection, or a float that JSON cannot hold.
pub(crate) fn to_json(node: &Node) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match node {
        Node::Null => J::Null,
        Node::Bool(b) => J::Bool(*b),
        Node::Int(i) => J::from(*i),
        Node::Uint(u) => J::from(*u),
        Node::Float(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .ok_or_else(|| {
                format!(
                    "json: unsupported value: {}",
                    super::super::gofmt::format_float(*f, 'g', None)
                )
            })?,
        Node::Str(s) => J::String(s.clone()),
        Node::Seq(items) => J::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Node::Map(entries) => {
            let mut out = serde_json::Map::new();
            for (k, v) in entries {
                let key = match k {
                    Node::Str(s) => s.clone(),
                    Node::Int(i) => i.to_string(),
                    Node::Uint(u) => u.to_string(),
                    Node::Float(f) => super::super::gofmt::format_float32_key(*f),
                    Node::Bool(b) => b.to_string(),
                    other => return Err(format!("unsupported map key: {other:?}")),
                };
                out.insert(key, to_json(v)?);
            }
            J::Object(out)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(text: &str) -> serde_json::Value {
        to_json(&load_first(text).unwrap().unwrap()).unwrap()
    }

    #[test]
    fn yaml_1_1_scalars_resolve_like_go_yaml() {
        let v = first(
            "a: yes\nb: \"yes\"\nc: on\nd: 0x1F\ne: 0755\nf: 1_000\ng: ~\nh: 2001-12-14\ni: 1.5\nj: .inf_x\nk: 1:20\n",
        );
        assert_eq!(v["a"], true);
        assert_eq!(v["b"], "yes");
        assert_eq!(v["c"], true);
        assert_eq!(v["d"], 31);
        assert_eq!(v["e"], 493);
        assert_eq!(v["f"], 1000);
        assert!(v["g"].is_null());
        assert_eq!(v["h"], "2001-12-14");
        assert_eq!(v["i"], 1.5);
        assert_eq!(v["j"], ".inf_x");
        assert_eq!(v["k"], "1:20");
    }

    #[test]
    fn anchors_merges_and_keys() {
        let v = first("base: &b {a: 1, b: 2}\nd:\n  <<: *b\n  b: 3\n1: one\ntrue: t\ny: yes-key\n");
        assert_eq!(v["d"], serde_json::json!({"a": 1, "b": 3}));
        assert_eq!(
            v["true"], "yes-key",
            "YAML 1.1: the key y is the boolean true"
        );
        assert_eq!(v["1"], "one");
    }

    #[test]
    fn block_scalars_and_documents() {
        let docs = load_all("a: |\n  x\n  y\n---\n---\nb: >-\n  p\n  q").unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(to_json(&docs[0]).unwrap()["a"], "x\ny\n");
        assert_eq!(docs[1], Node::Null);
        assert_eq!(to_json(&docs[2]).unwrap()["b"], "p q");
        assert!(load_first("").unwrap().is_none());
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let e = load_all("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.line >= 1 && !e.message.is_empty(), "{e}");
    }
}
