//! Reading YAML the way Helm does: `sigs.k8s.io/yaml` over go-yaml v2, which
//! resolves plain scalars with YAML 1.1 rules (`yes`, `on`, `0x1F`, `0755`,
//! `1_000` are not strings there) and then converts the document to JSON.
//!
//! libyaml does the syntax ([`super::libyaml`] says why libyaml); this
//! module reads its events as go-yaml v2's `Unmarshal` does: the first
//! document only (what follows it is never parsed, so text after it cannot
//! fail), a `%YAML` directive other than 1.1 refused, anchors, `<<` merge
//! keys, go-yaml's resolution of scalars, and the JSON conversion.

use std::collections::HashMap;

use super::compat;
use super::libyaml::{self, Event, Mark, Parser, Stage, Style};
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

/// A document that cannot be read: go-yaml's message, with the line go-yaml
/// names (`0` when its message names none) and the 1-based column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            return f.write_str(&self.message);
        }
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl From<libyaml::Error> for YamlError {
    /// go-yaml v2's `parser.fail`: the problem's line, counted from 1 for
    /// the scanner's problems but from 0 for the parser's (go-yaml adds one
    /// to the scanner's only); the context's line when the problem is on
    /// the first line; none when both are on the first line.
    fn from(e: libyaml::Error) -> Self {
        let line = if e.problem_mark.line != 0 {
            e.problem_mark.line + u64::from(e.stage == Stage::Scanner)
        } else {
            e.context_mark.line
        };
        Self {
            line: usize::try_from(line).unwrap_or(usize::MAX),
            column: usize::try_from(e.problem_mark.column + 1).unwrap_or(usize::MAX),
            message: e.problem,
        }
    }
}

impl YamlError {
    /// An error of go-yaml's decoder (`failf`), which names no line.
    fn decoding(message: String) -> Self {
        Self {
            line: 0,
            column: 0,
            message,
        }
    }
}

/// One item of the node being built: a collection waiting for its children
/// (with the anchor it will be recorded under).
enum Frame {
    Seq(Vec<Node>, Option<String>),
    Map(Entries, Option<Node>, Option<String>),
}

/// A mapping being built: its entries in document order, and where each
/// string key is (so that a large mapping is built in linear time).
#[derive(Default)]
struct Entries {
    list: Vec<(Node, Node)>,
    strings: HashMap<String, usize>,
}

impl Entries {
    /// Sets `key` to `value`: a repeated key keeps its first place and
    /// takes the last value.
    fn insert(&mut self, key: Node, value: Node) {
        let at = match &key {
            Node::Str(s) => self.strings.get(s).copied(),
            other => self.list.iter().position(|(k, _)| k == other),
        };
        match at {
            Some(i) => self.list[i].1 = value,
            None => {
                if let Node::Str(s) = &key {
                    self.strings.insert(s.clone(), self.list.len());
                }
                self.list.push((key, value));
            }
        }
    }
}

/// The key go-yaml treats as a merge (`<<` written plain).
const MERGE_KEY: &str = "\u{0}<<merge>>";

/// The first document of `text`, or `None` when the text holds none or it
/// is empty, as go-yaml v2's `Unmarshal` reads it: only as far as the end
/// of that document.
pub(crate) fn load_first(text: &str) -> Result<Option<Node>, YamlError> {
    // go-yaml gives libyaml a line break for an empty input.
    let text = if text.is_empty() { "\n" } else { text };
    let text = compat::prepare(text);
    let mut parser = Parser::new(text.as_bytes());
    Ok(next_document(&mut parser, &text)?.filter(|n| *n != Node::Null))
}

/// Every document of `text` (an empty one as [`Node::Null`]).
#[cfg(test)]
pub(crate) fn load_all(text: &str) -> Result<Vec<Node>, YamlError> {
    let text = compat::prepare(text);
    let mut parser = Parser::new(text.as_bytes());
    let mut docs = Vec::new();
    while let Some(doc) = next_document(&mut parser, &text)? {
        docs.push(doc);
    }
    Ok(docs)
}

/// Anchors of the document being read, in the order they were set: a
/// collection's anchor is set (as `None`) when the collection starts, as
/// go-yaml records it, and gets its value when the collection ends.
#[derive(Default)]
struct Anchors {
    set: Vec<(String, Option<Node>)>,
    /// Nodes built so far, and how many of them came from aliases: go-yaml
    /// v2 refuses a document whose nodes come mostly from aliases.
    decoded: usize,
    aliased: usize,
}

impl Anchors {
    /// Records a collection's anchor as it starts.
    fn open(&mut self, name: Option<String>) -> Option<String> {
        if let Some(n) = &name {
            self.set.push((n.clone(), None));
        }
        name
    }

    /// Gives the collection that ends its anchor's value.
    fn close(&mut self, name: Option<String>, node: &Node) {
        let Some(name) = name else { return };
        if let Some(slot) = self
            .set
            .iter_mut()
            .rev()
            .find(|(n, v)| *n == name && v.is_none())
        {
            slot.1 = Some(node.clone());
        }
    }

    /// The node an alias names, as go-yaml v2's decoder refuses it.
    fn alias(&mut self, name: &str) -> Result<Node, YamlError> {
        let node = match self.set.iter().rev().find(|(n, _)| n == name) {
            None => {
                return Err(YamlError::decoding(format!(
                    "unknown anchor '{name}' referenced"
                )));
            }
            Some((_, None)) => {
                return Err(YamlError::decoding(format!(
                    "anchor '{name}' value contains itself"
                )));
            }
            Some((_, Some(node))) => node,
        };
        let size = node_count(node);
        self.decoded += size + 1;
        self.aliased += size;
        if self.aliased > 100
            && self.decoded > 1000
            && self.aliased as f64 / self.decoded as f64 > allowed_alias_ratio(self.decoded)
        {
            return Err(YamlError::decoding(
                "document contains excessive aliasing".into(),
            ));
        }
        Ok(node.clone())
    }
}

/// go-yaml v2's `allowedAliasRatio`: 99% of a small document's nodes may
/// come from aliases, 10% of a very large one's.
fn allowed_alias_ratio(decoded: usize) -> f64 {
    const LOW: f64 = 400_000.0;
    const HIGH: f64 = 4_000_000.0;
    let d = decoded as f64;
    if d <= LOW {
        0.99
    } else if d >= HIGH {
        0.10
    } else {
        0.99 - 0.89 * ((d - LOW) / (HIGH - LOW))
    }
}

fn node_count(node: &Node) -> usize {
    match node {
        Node::Seq(items) => 1 + items.iter().map(node_count).sum::<usize>(),
        Node::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| node_count(k) + node_count(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

/// Reads the parser's next document: `None` at the end of the stream.
/// `text` is what the parser reads.
fn next_document(parser: &mut Parser<'_>, text: &str) -> Result<Option<Node>, YamlError> {
    loop {
        match parser.next()?.0 {
            Event::StreamStart => continue,
            Event::StreamEnd => return Ok(None),
            Event::DocumentStart { version } => {
                // go-yaml v2 knows YAML 1.1 only (libyaml 0.2.5 also
                // takes 1.2).
                if version.is_some_and(|v| v != (1, 1)) {
                    return Err(YamlError::decoding(
                        "found incompatible YAML document".into(),
                    ));
                }
                break;
            }
            other => {
                return Err(YamlError::decoding(format!(
                    "unexpected YAML event {other:?}"
                )));
            }
        }
    }
    let root = document_root(parser, text)?;
    match parser.next()?.0 {
        Event::DocumentEnd => Ok(Some(root)),
        other => Err(YamlError::decoding(format!(
            "expected the end of the document, got {other:?}"
        ))),
    }
}

/// The root node of the document just started in `text`.
fn document_root(parser: &mut Parser<'_>, text: &str) -> Result<Node, YamlError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors = Anchors::default();
    // For each collection being built: the bracket that closes it when it
    // is a flow collection (`]` for a single pair inside `[...]`).
    let mut closers: Vec<Option<char>> = Vec::new();
    let base = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let source = |start: Mark, end: Mark| {
        let at = |m: Mark| usize::try_from(m.index).map_or(usize::MAX, |i| i + base);
        text.get(at(start)..at(end)).unwrap_or("")
    };
    loop {
        let (event, mark, end) = parser.next()?;
        let line = usize::try_from(mark.line + 1).unwrap_or(usize::MAX);
        let at = |message: String| YamlError {
            line,
            column: usize::try_from(mark.column + 1).unwrap_or(usize::MAX),
            message,
        };
        let (mut node, anchor) = match event {
            Event::Alias(name) => (anchors.alias(&name)?, None),
            Event::Scalar {
                value,
                style,
                anchor,
                tag,
            } => {
                anchors.decoded += 1;
                if let (Style::Plain, Some(Some(closer))) = (style, closers.last()) {
                    let written = source(mark, end);
                    if let Some(q) = compat::question_in_flow_scalar(written) {
                        let before = &written[..q];
                        let line = mark.line + before.matches('\n').count() as u64;
                        return Err(YamlError {
                            line: usize::try_from(line).unwrap_or(usize::MAX),
                            column: 0,
                            message: format!("did not find expected ',' or '{closer}'"),
                        });
                    }
                }
                if style == Style::DoubleQuoted {
                    let written = source(mark, end);
                    if let Some(b) = compat::escaped_slash(written) {
                        // A scanner's problem: its line counted from 1.
                        let line = mark.line + 1 + written[..b].matches('\n').count() as u64;
                        return Err(YamlError {
                            line: usize::try_from(line).unwrap_or(usize::MAX),
                            column: 0,
                            message: "found unknown escape character".into(),
                        });
                    }
                }
                let value = if value.contains(compat::FLOW_COLON) {
                    value.replace(compat::FLOW_COLON, ":")
                } else {
                    value
                };
                let tag = tag.map(|t| match t.strip_prefix("tag:yaml.org,2002:") {
                    Some(s) => format!("!!{s}"),
                    None => t,
                });
                let node = scalar(&value, style, tag.as_deref()).map_err(YamlError::decoding)?;
                if let Some(name) = anchor {
                    anchors.set.push((name, Some(node.clone())));
                }
                (node, None)
            }
            Event::SequenceStart { anchor, flow } => {
                closers.push(flow.then_some(']'));
                anchors.decoded += 1;
                let anchor = anchors.open(anchor);
                stack.push(Frame::Seq(Vec::new(), anchor));
                continue;
            }
            Event::MappingStart { anchor, flow } => {
                // A flow mapping that does not start with `{` is a single
                // pair inside `[...]`.
                let explicit = source(mark, end).ends_with('{');
                closers.push(flow.then_some(if explicit { '}' } else { ']' }));
                anchors.decoded += 1;
                let anchor = anchors.open(anchor);
                stack.push(Frame::Map(Entries::default(), None, anchor));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd if closers.pop().is_none() => {
                return Err(at("unbalanced collection".into()));
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, anchor)) => (Node::Seq(items), anchor),
                _ => return Err(at("unbalanced sequence".into())),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(entries, _, anchor)) => (Node::Map(entries.list), anchor),
                _ => return Err(at("unbalanced mapping".into())),
            },
            other => return Err(at(format!("unexpected YAML event {other:?}"))),
        };
        let is_key = matches!(stack.last(), Some(Frame::Map(_, None, _)));
        if !is_key && node == Node::Str(MERGE_KEY.into()) {
            node = Node::Str("<<".into());
        }
        anchors.close(anchor, &node);
        match stack.last_mut() {
            None => return Ok(node),
            Some(Frame::Seq(items, _)) => items.push(node),
            Some(Frame::Map(entries, pending, _)) => match pending.take() {
                None => *pending = Some(node),
                Some(Node::Str(k)) if k == MERGE_KEY => {
                    merge_into(entries, node).map_err(YamlError::decoding)?;
                }
                // go-yaml refuses a collection as a key when it reads it,
                // even if a later key of the same name drops it.
                Some(key @ (Node::Seq(_) | Node::Map(_))) => {
                    return Err(YamlError::decoding(format!(
                        "invalid map key: {}",
                        go_syntax(&key)
                    )));
                }
                Some(key) => entries.insert(key, node),
            },
        }
    }
}

/// A node as Go's `%#v` prints what go-yaml decoded it to (for its
/// "invalid map key" message); map entries in Go's sorted order.
fn go_syntax(node: &Node) -> String {
    match node {
        Node::Null => "interface {}(nil)".into(),
        Node::Bool(b) => b.to_string(),
        Node::Int(i) => i.to_string(),
        Node::Uint(u) => format!("0x{u:x}"),
        Node::Float(f) => super::super::gofmt::format_float(*f, 'g', None),
        Node::Str(s) => format!("{s:?}"),
        Node::Seq(items) => {
            let items: Vec<String> = items.iter().map(go_syntax).collect();
            format!("[]interface {{}}{{{}}}", items.join(", "))
        }
        Node::Map(entries) => {
            let mut entries: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}:{}", go_syntax(k), go_syntax(v)))
                .collect();
            entries.sort();
            format!(
                "map[interface {{}}]interface {{}}{{{}}}",
                entries.join(", ")
            )
        }
    }
}

/// go-yaml's `<<`: the entries of a mapping (or of each mapping of a
/// sequence, last first) are set into the mapping being built.
fn merge_into(entries: &mut Entries, value: Node) -> Result<(), String> {
    match value {
        Node::Map(from) => {
            for (k, v) in from {
                entries.insert(k, v);
            }
            Ok(())
        }
        Node::Seq(items) => {
            for item in items.into_iter().rev() {
                match item {
                    Node::Map(from) => {
                        for (k, v) in from {
                            entries.insert(k, v);
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

fn scalar(value: &str, style: Style, tag: Option<&str>) -> Result<Node, String> {
    let plain = style == Style::Plain;
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
                let found = match r {
                    Resolved::Null => "!!null",
                    Resolved::Bool(_) => "!!bool",
                    Resolved::Int(_) | Resolved::Uint(_) | Resolved::BigInt => "!!int",
                    Resolved::Float(_) => "!!float",
                    Resolved::Timestamp => "!!timestamp",
                    Resolved::Str => "!!str",
                };
                return Err(format!("cannot decode {found} `{value}` as a {t}"));
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

    fn refused(text: &str) -> YamlError {
        load_first(text).expect_err(text)
    }

    #[test]
    fn rbac_lists_indented_or_not() {
        let want = serde_json::json!({"rules": [{"apiGroups": [""], "verbs": ["get", "list"]}]});
        assert_eq!(
            first("rules:\n- apiGroups: [\"\"]\n  verbs:\n  - get\n  - list\n"),
            want
        );
        assert_eq!(
            first("rules:\n    - apiGroups:\n        - \"\"\n      verbs: [get, list]\n"),
            want
        );
        assert_eq!(
            first("rules:\n\n- apiGroups: [\"\"]   \n\n  verbs: [get, list] # c\n"),
            want
        );
        assert_eq!(
            refused("rules: - a\n").message,
            "block sequence entries are not allowed in this context"
        );
    }

    #[test]
    fn only_the_first_document_is_read() {
        // go-yaml's Unmarshal stops at the end of the first document.
        assert_eq!(first("  a: 1\nb: 2\n"), serde_json::json!({"a": 1}));
        assert_eq!(first("a: 1\n... x\n"), serde_json::json!({"a": 1}));
        assert_eq!(first("a: 1\n---\nb: [\n"), serde_json::json!({"a": 1}));
        assert_eq!(first("a: 1\n...\n]\n"), serde_json::json!({"a": 1}));
        assert_eq!(load_all("a: 1\n---\nb: 2\n").unwrap().len(), 2);
    }

    #[test]
    fn values_on_the_line_below_their_key() {
        assert_eq!(
            first("data:\n  s:\n  |-\n    echo hi\n  o: x\n"),
            serde_json::json!({"data": {"s": "echo hi", "o": "x"}})
        );
        assert_eq!(first("a:\n>\n  x\n"), serde_json::json!({"a": "x\n"}));
        // A flow or quoted value there is a key without its `:`.
        assert_eq!(
            refused("v:\n[\"get\"]\n").message,
            "could not find expected ':'"
        );
        assert_eq!(refused("m:\n  n:\n  \"x\"\n").line, 4);
    }

    #[test]
    fn comments_tabs_and_line_breaks_as_go_yaml() {
        assert_eq!(first("a: |#c\n  x\n"), serde_json::json!({"a": "x\n"}));
        assert_eq!(
            first("a:\t1\nb: [1,\t2]\n"),
            serde_json::json!({"a": 1, "b": [1, 2]})
        );
        for tab in [
            "a:\n-\tb\n",
            "a: 1\n\t\nb: 2\n",
            "a: |\n  \tx\n",
            "\ta: 1\n",
        ] {
            refused(tab);
        }
        assert_eq!(refused("\ta: 1\n").line, 0, "go-yaml names no line 0");
        assert_eq!(
            first("a: 1\u{85}b: 2\n"),
            serde_json::json!({"a": 1, "b": 2})
        );
        assert_eq!(refused("a: x\u{2028}y\n").line, 3);
    }

    #[test]
    fn directives_anchors_and_aliases() {
        assert_eq!(first("%YAML 1.1\n---\na: 1\n"), serde_json::json!({"a": 1}));
        assert_eq!(
            refused("%YAML 1.2\n---\na: 1\n").message,
            "found incompatible YAML document"
        );
        assert_eq!(
            refused("%FOO x\n---\na: 1\n").message,
            "found unknown directive name"
        );
        assert_eq!(
            first("a: &x k\n*x: 1\n"),
            serde_json::json!({"a": "k", "k": 1})
        );
        refused("a: &x.y 1\n");
        refused("a: &x: 1\n");
        assert_eq!(refused("a: *x\n").message, "unknown anchor 'x' referenced");
        assert_eq!(
            refused("a: &x [*x]\n").message,
            "anchor 'x' value contains itself"
        );
        assert_eq!(first("a: &x 1\nb: &x 2\nc: *x\n")["c"], 2);
    }

    #[test]
    fn flow_scalars_tags_and_escapes_as_go_yaml() {
        assert_eq!(
            first("a: [x:, y:]\n"),
            serde_json::json!({"a": ["x:", "y:"]})
        );
        assert_eq!(first("a: {x:}\n"), serde_json::json!({"a": {"x:": null}}));
        assert_eq!(
            refused("a: [http://h?q=1]\n").message,
            "did not find expected ',' or ']'"
        );
        assert_eq!(
            refused("a: {u: h?q}\n").message,
            "did not find expected ',' or '}'"
        );
        assert_eq!(first("a: h?q\n"), serde_json::json!({"a": "h?q"}));
        assert_eq!(
            first("a: !x,y 1\nb: [!x, y]\n"),
            serde_json::json!({"a": "1", "b": ["y"]})
        );
        assert_eq!(first("a: \"it\\'s\"\n"), serde_json::json!({"a": "it's"}));
        assert_eq!(
            refused("a: \"x\\/y\"\n").message,
            "found unknown escape character"
        );
        assert_eq!(first("a: 'x\\/y'\n"), serde_json::json!({"a": "x\\/y"}));
    }

    #[test]
    fn collection_keys_are_refused_even_when_replaced() {
        assert_eq!(
            refused("k: {[1]: x}\nk: 2\n").message,
            "invalid map key: []interface {}{1}"
        );
        assert_eq!(
            refused("{a: 1}: 2\n").message,
            "invalid map key: map[interface {}]interface {}{\"a\":1}"
        );
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let prev = format!("*a{}", i - 1);
            text.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        assert_eq!(
            refused(&text).message,
            "document contains excessive aliasing"
        );
    }
}
