//! `toYaml` as Helm does it: `sigs.k8s.io/yaml` marshals to JSON, reads the
//! JSON back with go-yaml v2 (so numbers become ints or floats again) and
//! writes it with go-yaml v2's emitter, a port of libyaml's. The output must
//! be byte for byte the same as Helm's (a checksum annotation over a rendered
//! ConfigMap depends on it), so this is a port of the parts of that emitter a
//! JSON document reaches: block mappings and sequences, empty flow
//! collections, and scalar style selection, folding at 80 columns and
//! escaping.

use super::resolve::{Resolved, resolve_plain};
use crate::render::gofmt::format_float;
use crate::render::gojson::JNode;

/// A node as go-yaml holds it after reading the JSON back.
enum Y<'a> {
    Null,
    Bool(bool),
    /// An integer or a big integer, printed as its decimal text.
    Int(String),
    Float(f64),
    Str(&'a str),
    Seq(&'a [JNode]),
    Map(Vec<(&'a str, &'a JNode)>),
}

fn to_y(n: &JNode) -> Y<'_> {
    match n {
        JNode::Null => Y::Null,
        JNode::Bool(b) => Y::Bool(*b),
        JNode::Number(text) => match resolve_plain(text) {
            Resolved::Int(i) => Y::Int(i.to_string()),
            Resolved::Uint(u) => Y::Int(u.to_string()),
            Resolved::Float(f) => Y::Float(f),
            _ => Y::Int(text.clone()),
        },
        JNode::Str(s) => Y::Str(s),
        JNode::Seq(items) => Y::Seq(items),
        JNode::Map(m) => {
            let mut entries: Vec<(&str, &JNode)> = m.iter().map(|(k, v)| (k.as_str(), v)).collect();
            entries.sort_by(|a, b| {
                if key_less(a.0, b.0) {
                    std::cmp::Ordering::Less
                } else if key_less(b.0, a.0) {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            });
            Y::Map(entries)
        }
    }
}

/// go-yaml v2's map key order for string keys: letters after other
/// characters, runs of digits compared as numbers (`a2` before `a10`).
pub(crate) fn key_less(a: &str, b: &str) -> bool {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let digit = |c: char| c.is_ascii_digit();
    let value = |c: char| i64::from(c.to_digit(10).unwrap_or(0) as u8);
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            i += 1;
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return bl;
        }
        let (mut an, mut bn) = (0i64, 0i64);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && digit(ar[j - 1]) {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && digit(ar[ai]) {
            an = an.wrapping_mul(10).wrapping_add(value(ar[ai]));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && digit(br[bi]) {
            bn = bn.wrapping_mul(10).wrapping_add(value(br[bi]));
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

struct Analysis {
    multiline: bool,
    block_plain: bool,
    single: bool,
    block: bool,
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blank(c: Option<char>) -> bool {
    matches!(c, Some(' ' | '\t'))
}

/// libyaml's printable set: newline, ASCII, and the BMP without surrogates,
/// the BOM and non-characters (so astral characters are escaped).
fn is_printable(c: char) -> bool {
    let u = c as u32;
    c == '\n'
        || (0x20..=0x7E).contains(&u)
        || (0xA0..=0xD7FF).contains(&u)
        || ((0xE000..=0xFFFD).contains(&u) && u != 0xFEFF)
}

fn analyze(value: &str) -> Analysis {
    if value.is_empty() {
        return Analysis {
            multiline: false,
            block_plain: true,
            single: true,
            block: false,
        };
    }
    let chars: Vec<char> = value.chars().collect();
    let mut block_ind = false;
    if value.starts_with("---") || value.starts_with("...") {
        block_ind = true;
    }
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break, mut prev_space, mut prev_break) =
        (false, false, false, false);
    let mut preceded_by_ws = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_ws = i + 1 >= chars.len() || is_blank(chars.get(i + 1).copied());
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => {
                    block_ind = true;
                }
                '?' | ':' | '-' if followed_by_ws => block_ind = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_ws => block_ind = true,
                '#' if preceded_by_ws => block_ind = true,
                _ => {}
            }
        }
        if !is_printable(c) {
            special = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if i + 1 == chars.len() {
                trailing_space = true;
            }
            if prev_break {
                break_space = true;
            }
            prev_space = true;
            prev_break = false;
        } else if is_break(c) {
            line_breaks = true;
            if i == 0 {
                leading_break = true;
            }
            if i + 1 == chars.len() {
                trailing_break = true;
            }
            if prev_space {
                space_break = true;
            }
            prev_space = false;
            prev_break = true;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_by_ws = is_blank(Some(c)) || is_break(c);
    }
    let mut a = Analysis {
        multiline: line_breaks,
        block_plain: true,
        single: true,
        block: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain = false;
    }
    if trailing_space {
        a.block = false;
    }
    if break_space {
        a.block_plain = false;
        a.single = false;
    }
    if space_break || special {
        a.block_plain = false;
        a.single = false;
        a.block = false;
    }
    if line_breaks {
        a.block_plain = false;
    }
    if block_ind {
        a.block_plain = false;
    }
    a
}

/// go-yaml's base-60 float check (`1:20`), quoted on output for YAML 1.1 readers.
fn is_base60_float(s: &str) -> bool {
    let b = s.as_bytes();
    let Some(&c) = b.first() else { return false };
    if !(c == b'+' || c == b'-' || c.is_ascii_digit()) || !s.contains(':') {
        return false;
    }
    // ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$
    let mut i = usize::from(c == b'+' || c == b'-');
    if !b.get(i).is_some_and(u8::is_ascii_digit) {
        return false;
    }
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while i < b.len() && b[i] == b':' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 2 {
            i += 1;
        }
        let n = &s[start..i];
        let ok = match n.len() {
            1 => true,
            2 => n.as_bytes()[0] <= b'5',
            _ => false,
        };
        if !ok {
            return false;
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

struct Emitter {
    out: String,
    column: usize,
    indent: i64,
    indents: Vec<i64>,
    whitespace: bool,
    indention: bool,
    mapping_context: bool,
    simple_key_context: bool,
}

const BEST_INDENT: i64 = 2;
const BEST_WIDTH: usize = 80;

impl Emitter {
    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    /// Copies a line break from a scalar: `\n` as the emitter's break, others as is.
    fn write_break(&mut self, c: char) {
        if c == '\n' {
            self.put_break();
        } else {
            self.out.push(c);
            self.column = 0;
        }
    }

    fn write_indent(&mut self) {
        let indent = self.indent.max(0) as usize;
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn write_indicator(&mut self, ind: &str, need_ws: bool, is_ws: bool, is_indention: bool) {
        if need_ws && !self.whitespace {
            self.put(' ');
        }
        for c in ind.chars() {
            self.put(c);
        }
        self.whitespace = is_ws;
        self.indention = self.indention && is_indention;
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        if self.indent < 0 {
            self.indent = if flow { BEST_INDENT } else { 0 };
        } else if !indentless {
            self.indent += BEST_INDENT;
        }
    }

    fn pop_indent(&mut self) {
        self.indent = self.indents.pop().unwrap_or(-1);
    }

    fn node(&mut self, n: &Y<'_>, mapping: bool, simple_key: bool) {
        self.mapping_context = mapping;
        self.simple_key_context = simple_key;
        match n {
            Y::Null => self.scalar("null", Style::Plain),
            Y::Bool(b) => self.scalar(if *b { "true" } else { "false" }, Style::Plain),
            Y::Int(s) => self.scalar(s, Style::Plain),
            Y::Float(f) => {
                let s = match format_float(*f, 'g', None).as_str() {
                    "+Inf" => ".inf".to_owned(),
                    "-Inf" => "-.inf".to_owned(),
                    "NaN" => ".nan".to_owned(),
                    s => s.to_owned(),
                };
                self.scalar(&s, Style::Plain);
            }
            Y::Str(s) => {
                let plain_ok = resolve_plain(s) == Resolved::Str && !is_base60_float(s);
                let style = if s.contains('\n') {
                    Style::Literal
                } else if plain_ok {
                    Style::Plain
                } else {
                    Style::Double
                };
                self.scalar(s, style);
            }
            Y::Seq([]) => self.flow("[", "]"),
            Y::Map(entries) if entries.is_empty() => self.flow("{", "}"),
            Y::Seq(items) => {
                let indentless = self.mapping_context && !self.indention;
                self.increase_indent(false, indentless);
                for item in items.iter() {
                    self.write_indent();
                    self.write_indicator("-", true, false, true);
                    self.node(&to_y(item), false, false);
                }
                self.pop_indent();
            }
            Y::Map(entries) => {
                self.increase_indent(false, false);
                for (k, v) in entries {
                    self.write_indent();
                    let simple = !k.contains(is_break) && k.len() <= 128;
                    if simple {
                        self.node(&Y::Str(k), true, true);
                        self.write_indicator(":", false, false, false);
                    } else {
                        self.write_indicator("?", true, false, true);
                        self.node(&Y::Str(k), true, false);
                        self.write_indent();
                        self.write_indicator(":", true, false, true);
                    }
                    self.node(&to_y(v), true, false);
                }
                self.pop_indent();
            }
        }
    }

    /// An empty collection, the only kind go-yaml writes in flow style here.
    fn flow(&mut self, open: &str, close: &str) {
        self.write_indicator(open, true, true, false);
        self.write_indicator(close, false, false, false);
    }

    fn scalar(&mut self, value: &str, requested: Style) {
        let a = analyze(value);
        let mut style = requested;
        if self.simple_key_context && a.multiline {
            style = Style::Double;
        }
        if style == Style::Plain {
            // Only empty collections are written in flow style, so scalars
            // are always in block context.
            if !a.block_plain {
                style = Style::Single;
            }
            if value.is_empty() && self.simple_key_context {
                style = Style::Single;
            }
        }
        if style == Style::Single && !a.single {
            style = Style::Double;
        }
        if style == Style::Literal && (!a.block || self.simple_key_context) {
            style = Style::Double;
        }
        self.increase_indent(true, false);
        let allow_breaks = !self.simple_key_context;
        match style {
            Style::Plain => self.plain(value, allow_breaks),
            Style::Single => self.single(value, allow_breaks),
            Style::Double => self.double(value, allow_breaks),
            Style::Literal => self.literal(value),
        }
        self.pop_indent();
    }

    fn plain(&mut self, value: &str, allow_breaks: bool) {
        if !self.whitespace {
            self.put(' ');
        }
        let chars: Vec<char> = value.chars().collect();
        let (mut spaces, mut breaks) = (false, false);
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.put(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn single(&mut self, value: &str, allow_breaks: bool) {
        self.write_indicator("'", true, false, false);
        let chars: Vec<char> = value.chars().collect();
        let (mut spaces, mut breaks) = (false, false);
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i != 0
                    && i != chars.len() - 1
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                if c == '\'' {
                    self.put('\'');
                }
                self.put(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.write_indicator("'", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn double(&mut self, value: &str, allow_breaks: bool) {
        self.write_indicator("\"", true, false, false);
        let chars: Vec<char> = value.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !is_printable(c) || c == '\u{FEFF}' || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                let code = c as u32;
                let esc = match code {
                    0x00 => Some('0'),
                    0x07 => Some('a'),
                    0x08 => Some('b'),
                    0x09 => Some('t'),
                    0x0A => Some('n'),
                    0x0B => Some('v'),
                    0x0C => Some('f'),
                    0x0D => Some('r'),
                    0x1B => Some('e'),
                    0x22 => Some('"'),
                    0x5C => Some('\\'),
                    0x85 => Some('N'),
                    0xA0 => Some('_'),
                    0x2028 => Some('L'),
                    0x2029 => Some('P'),
                    _ => None,
                };
                match esc {
                    Some(e) => self.put(e),
                    None => {
                        let (letter, width) = if code <= 0xFF {
                            ('x', 2)
                        } else if code <= 0xFFFF {
                            ('u', 4)
                        } else {
                            ('U', 8)
                        };
                        self.put(letter);
                        for ch in format!("{code:0width$X}").chars() {
                            self.put(ch);
                        }
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i != 0
                    && i != chars.len() - 1
                {
                    self.write_indent();
                    if chars.get(i + 1) == Some(&' ') {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.write_indicator("\"", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn literal(&mut self, value: &str) {
        self.write_indicator("|", true, false, false);
        let chars: Vec<char> = value.chars().collect();
        if chars.first().is_some_and(|&c| c == ' ' || is_break(c)) {
            self.write_indicator(&BEST_INDENT.to_string(), false, false, false);
        }
        let chomp = match chars.len() {
            0 => Some("-"),
            n if !is_break(chars[n - 1]) => Some("-"),
            1 => Some("+"),
            n if is_break(chars[n - 2]) => Some("+"),
            _ => None,
        };
        if let Some(ch) = chomp {
            self.write_indicator(ch, false, false, false);
        }
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        for &c in &chars {
            if is_break(c) {
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.put(c);
                self.indention = false;
                breaks = false;
            }
        }
    }
}

/// Helm's `toYaml` of a JSON tree: go-yaml's document text without its final
/// line break.
pub(crate) fn to_yaml(tree: &JNode) -> String {
    let mut e = Emitter {
        out: String::new(),
        column: 0,
        indent: -1,
        indents: Vec::new(),
        whitespace: true,
        indention: true,
        mapping_context: false,
        simple_key_context: false,
    };
    e.node(&to_y(tree), false, false);
    // The implicit document end moves to a new line.
    e.write_indent();
    let mut out = e.out;
    if out.ends_with('\n') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> JNode {
        JNode::Str(v.into())
    }

    fn map(entries: &[(&str, JNode)]) -> JNode {
        JNode::Map(
            entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn key_order_is_go_yaml_natural_order() {
        let mut keys = vec![
            "item10", "item9", "aB", "a_", "a-b", "ab", "A", "a", "1", "10", "2", "b2c", "b10c",
            "x01", "x1", "",
        ];
        keys.sort_by(|a, b| {
            if key_less(a, b) {
                std::cmp::Ordering::Less
            } else if key_less(b, a) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
        assert_eq!(
            keys,
            [
                "", "1", "2", "10", "A", "a", "a-b", "a_", "aB", "ab", "b2c", "b10c", "item9",
                "item10", "x1", "x01"
            ]
        );
    }

    #[test]
    fn scalar_styles_match_helm() {
        let doc = map(&[
            ("yes", s("yes")),
            ("empty", s("")),
            ("colon", s("a: b")),
            ("q", s("'x'")),
            ("multi", s("line1\nline2\n")),
            ("keep", s("a\n\n")),
            ("trail", s("a  \nb")),
            ("emoji", s("😀")),
            ("num", JNode::Number("1e+21".into())),
            ("small", JNode::Number("0.00001".into())),
            (
                "list",
                JNode::Seq(vec![
                    JNode::Number("1".into()),
                    JNode::Seq(vec![]),
                    map(&[("k", JNode::Null)]),
                ]),
            ),
        ]);
        assert_eq!(
            to_yaml(&doc),
            "colon: 'a: b'\nemoji: \"\\U0001F600\"\nempty: \"\"\nkeep: |+\n  a\n\nlist:\n- 1\n- []\n- k: null\nmulti: |\n  line1\n  line2\nnum: 1e+21\nq: '''x'''\nsmall: 1e-05\ntrail: \"a  \\nb\"\n\"yes\": \"yes\""
        );
    }

    #[test]
    fn long_plain_strings_fold_at_80_columns() {
        let long = "aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo pppp qqqq rrrr ssss tttt";
        assert_eq!(
            to_yaml(&s(long)),
            "aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo pppp qqqq\n  rrrr ssss tttt"
        );
        assert_eq!(to_yaml(&s("  lead\nx")), "|2-\n    lead\n  x");
    }
}
