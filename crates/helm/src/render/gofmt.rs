//! Go's `fmt` and `strconv` formatting of template values: `{{ x }}`,
//! `print`, `printf`, `toString` and friends must print numbers, lists and
//! maps exactly as Go does (`1e+06`, `[a b]`, `map[k:v]`, `%!d(string=x)`),
//! which gotmpl's `Display` does not do for floats.

use std::fmt::Write as _;

use gotmpl::Value;

use super::objects::{Kind, Objects, go_type};

/// Shortest decimal digits of a finite, non-zero `f` and the position of the
/// decimal point: `f = 0.d1d2d3... × 10^dp`.
fn shortest_digits(f: f64) -> (String, i32) {
    digits_of(&format!("{:e}", f.abs()))
}

fn digits_of(sci: &str) -> (String, i32) {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let trimmed = digits.trim_end_matches('0');
    if trimmed.is_empty() {
        ("0".into(), 1)
    } else {
        (trimmed.to_owned(), exp + 1)
    }
}

/// Digits of `f` rounded to `n` significant digits (trailing zeros dropped).
fn rounded_digits(f: f64, n: usize) -> (String, i32) {
    digits_of(&format!("{:.*e}", n.saturating_sub(1), f.abs()))
}

fn fmt_e(neg: bool, digits: &str, dp: i32, prec: usize, upper: bool) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let mut chars = digits.chars();
    out.push(chars.next().unwrap_or('0'));
    if prec > 0 {
        out.push('.');
        let rest: String = chars.collect();
        out.push_str(&rest);
        for _ in rest.len()..prec {
            out.push('0');
        }
    }
    let exp = if digits == "0" { 0 } else { dp - 1 };
    out.push(if upper { 'E' } else { 'e' });
    out.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(out, "{:02}", exp.abs());
    out
}

fn fmt_f(neg: bool, digits: &str, dp: i32, prec: usize) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let d = digits.as_bytes();
    if dp > 0 {
        for i in 0..dp as usize {
            out.push(d.get(i).map_or('0', |c| *c as char));
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 0..prec as i32 {
            let j = dp + i;
            out.push(if j >= 0 {
                d.get(j as usize).map_or('0', |c| *c as char)
            } else {
                '0'
            });
        }
    }
    out
}

/// Go's `strconv.FormatFloat(f, verb, prec, 64)` for `e`, `E`, `f`, `g`, `G`
/// (`prec` `None` is `-1`, the shortest representation).
pub(crate) fn format_float(f: f64, verb: char, prec: Option<usize>) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let neg = f.is_sign_negative();
    match verb {
        'e' | 'E' => {
            let (d, dp) = match prec {
                None => shortest_digits(f),
                Some(p) => rounded_digits(f, p + 1),
            };
            let p = prec.unwrap_or(d.len().saturating_sub(1));
            let d = if f == 0.0 { "0".to_owned() } else { d };
            fmt_e(neg, &d, dp, p, verb == 'E')
        }
        'f' | 'F' => match prec {
            Some(p) => format!("{:.*}", p, f),
            None => {
                if f == 0.0 {
                    return if neg { "-0".into() } else { "0".into() };
                }
                let (d, dp) = shortest_digits(f);
                let p = (d.len() as i32 - dp).max(0) as usize;
                fmt_f(neg, &d, dp, p)
            }
        },
        _ => {
            let upper = verb == 'G';
            let shortest = prec.is_none();
            let (d, dp) = if f == 0.0 {
                ("0".to_owned(), 1)
            } else {
                match prec {
                    None => shortest_digits(f),
                    Some(p) => rounded_digits(f, p.max(1)),
                }
            };
            let mut p = match prec {
                None => d.len(),
                Some(p) => p.max(1),
            };
            let mut eprec = p as i32;
            if eprec > d.len() as i32 && d.len() as i32 >= dp {
                eprec = d.len() as i32;
            }
            if shortest {
                eprec = 6;
            }
            let exp = dp - 1;
            if exp < -4 || exp >= eprec {
                if p > d.len() {
                    p = d.len();
                }
                return fmt_e(neg, &d, dp, p - 1, upper);
            }
            if p as i32 > dp {
                p = d.len();
            }
            fmt_f(neg, &d, dp, (p as i32 - dp).max(0) as usize)
        }
    }
}

/// How go-yaml prints a float map key (`strconv.FormatFloat(f, 'g', -1, 32)`).
pub(crate) fn format_float32_key(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        };
    }
    let g = f as f32;
    let (d, dp) = if g == 0.0 {
        ("0".to_owned(), 1)
    } else {
        digits_of(&format!("{:e}", g.abs()))
    };
    let exp = dp - 1;
    if !(-4..21).contains(&exp) {
        fmt_e(g < 0.0, &d, dp, d.len() - 1, false)
    } else {
        fmt_f(g < 0.0, &d, dp, (d.len() as i32 - dp).max(0) as usize)
    }
}

/// Go's `%v` of a template value.
pub(crate) fn sprint_v(objects: &Objects, v: &Value, out: &mut String) {
    format_verb(objects, v, &Spec::default(), 'v', out);
}

/// Go's `fmt.Sprint(v)`.
pub(crate) fn to_v(objects: &Objects, v: &Value) -> String {
    let mut out = String::new();
    sprint_v(objects, v, &mut out);
    out
}

/// Go's `fmt.Sprint(args...)`: a space between two operands when neither is
/// a string.
pub(crate) fn sprint(objects: &Objects, args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::String(_)) && !matches!(args[i - 1], Value::String(_)) {
            out.push(' ');
        }
        sprint_v(objects, a, &mut out);
    }
    out
}

/// Go's `fmt.Sprintln(args...)`: spaces between all operands, then a newline.
pub(crate) fn sprintln(objects: &Objects, args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        sprint_v(objects, a, &mut out);
    }
    out.push('\n');
    out
}

#[derive(Default, Clone)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Go's `fmt.Sprintf(format, args...)`.
pub(crate) fn sprintf(objects: &Objects, format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut argi = 0usize;
    let mut reordered = false;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                _ => break,
            }
            chars.next();
        }
        let mut index = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, argi: &mut usize| {
            if chars.peek() == Some(&'[') {
                chars.next();
                let mut n = String::new();
                while let Some(&d) = chars.peek() {
                    chars.next();
                    if d == ']' {
                        break;
                    }
                    n.push(d);
                }
                if let Ok(i) = n.parse::<usize>()
                    && i >= 1
                {
                    *argi = i - 1;
                    reordered = true;
                }
            }
        };
        index(&mut chars, &mut argi);
        if chars.peek() == Some(&'*') {
            chars.next();
            match args.get(argi) {
                Some(Value::Int(n)) => {
                    if *n < 0 {
                        spec.minus = true;
                    }
                    spec.width = Some(n.unsigned_abs() as usize);
                }
                _ => out.push_str("%!(BADWIDTH)"),
            }
            argi += 1;
        } else {
            let mut w = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                w.push(d);
                chars.next();
            }
            spec.width = w.parse().ok();
        }
        if chars.peek() == Some(&'.') {
            chars.next();
            index(&mut chars, &mut argi);
            if chars.peek() == Some(&'*') {
                chars.next();
                match args.get(argi) {
                    Some(Value::Int(n)) if *n >= 0 => spec.prec = Some(*n as usize),
                    _ => out.push_str("%!(BADPREC)"),
                }
                argi += 1;
            } else {
                let mut p = String::new();
                while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    p.push(d);
                    chars.next();
                }
                spec.prec = Some(p.parse().unwrap_or(0));
            }
        }
        index(&mut chars, &mut argi);
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        argi += 1;
        format_verb(objects, arg, &spec, verb, &mut out);
    }
    if !reordered && argi < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[argi..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            if matches!(a, Value::Nil) {
                out.push_str("<nil>");
            } else {
                let _ = write!(out, "{}=", go_type(objects, a));
                sprint_v(objects, a, &mut out);
            }
        }
        out.push(')');
    }
    out
}

fn pad(out: &mut String, s: &str, spec: &Spec, numeric: bool) {
    let len = s.chars().count();
    let width = spec.width.unwrap_or(0);
    if len >= width {
        out.push_str(s);
        return;
    }
    let fill = width - len;
    if spec.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if spec.zero && numeric {
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'-' | b'+' | b' ') => s.split_at(1),
            _ => ("", s),
        };
        out.push_str(sign);
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(rest);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(s);
    }
}

fn bad_verb(objects: &Objects, out: &mut String, verb: char, v: &Value) {
    let _ = write!(out, "%!{verb}(");
    if matches!(v, Value::Nil) {
        out.push_str("<nil>");
    } else {
        let _ = write!(out, "{}=", go_type(objects, v));
        sprint_v(objects, v, out);
    }
    out.push(')');
}

fn signed(s: String, neg: bool, spec: &Spec) -> String {
    if neg {
        s
    } else if spec.plus {
        format!("+{s}")
    } else if spec.space {
        format!(" {s}")
    } else {
        s
    }
}

fn format_int(out: &mut String, objects: &Objects, n: i128, v: &Value, spec: &Spec, verb: char) {
    let neg = n < 0;
    let m = n.unsigned_abs();
    let body = match verb {
        'v' | 'd' => m.to_string(),
        'b' => format!("{m:b}"),
        'o' | 'O' => {
            let digits = format!("{m:o}");
            if verb == 'O' {
                format!("0o{digits}")
            } else if spec.sharp {
                format!("0{digits}")
            } else {
                digits
            }
        }
        'x' => {
            if spec.sharp {
                format!("0x{m:x}")
            } else {
                format!("{m:x}")
            }
        }
        'X' => {
            if spec.sharp {
                format!("0X{m:X}")
            } else {
                format!("{m:X}")
            }
        }
        'c' => {
            let c = u32::try_from(n)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            return pad(out, &c.to_string(), spec, false);
        }
        'q' => {
            let c = u32::try_from(n)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            return pad(out, &quote_rune(c), spec, false);
        }
        'U' => {
            let s = format!("U+{:04X}", n);
            return pad(out, &s, spec, false);
        }
        _ => {
            return bad_verb(objects, out, verb, v);
        }
    };
    let body = match spec.prec {
        Some(p) if body.len() < p => format!("{}{body}", "0".repeat(p - body.len())),
        _ => body,
    };
    let s = signed(if neg { format!("-{body}") } else { body }, neg, spec);
    pad(out, &s, spec, spec.prec.is_none());
}

fn format_float_verb(
    out: &mut String,
    objects: &Objects,
    f: f64,
    v: &Value,
    spec: &Spec,
    verb: char,
) {
    let s = match verb {
        'v' => format_float(f, 'g', spec.prec),
        'e' | 'E' => format_float(f, verb, Some(spec.prec.unwrap_or(6))),
        'f' | 'F' => format_float(f, 'f', Some(spec.prec.unwrap_or(6))),
        'g' | 'G' => format_float(f, verb, spec.prec),
        _ => return bad_verb(objects, out, verb, v),
    };
    let s = if f.is_infinite() && !spec.plus {
        s.trim_start_matches('+').to_owned()
    } else {
        s
    };
    let neg = s.starts_with('-');
    let s = if s.starts_with('+') {
        s
    } else {
        signed(s, neg, spec)
    };
    pad(out, &s, spec, f.is_finite());
}

fn format_string(out: &mut String, s: &str, spec: &Spec, verb: char) {
    let truncated: String = match spec.prec {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_owned(),
    };
    let text = match verb {
        'q' => {
            if spec.sharp
                && !truncated.contains('`')
                && truncated.chars().all(|c| c == '\t' || !c.is_control())
            {
                format!("`{truncated}`")
            } else {
                go_quote(&truncated)
            }
        }
        'x' | 'X' => {
            let mut h = String::new();
            for (i, b) in truncated.bytes().enumerate() {
                if spec.space && i > 0 {
                    h.push(' ');
                }
                if verb == 'x' {
                    let _ = write!(h, "{b:02x}");
                } else {
                    let _ = write!(h, "{b:02X}");
                }
            }
            h
        }
        _ => truncated,
    };
    pad(out, &text, spec, false);
}

fn format_verb(objects: &Objects, v: &Value, spec: &Spec, verb: char, out: &mut String) {
    if verb == 'T' {
        let t = go_type(objects, v);
        return pad(out, &t, spec, false);
    }
    let kind = objects.kind(v);
    if let Some(s) = objects.stringer(v)
        && matches!(verb, 'v' | 's' | 'q' | 'x' | 'X')
    {
        return format_string(out, &s, spec, if verb == 'v' { 's' } else { verb });
    }
    if kind == Some(Kind::Bytes)
        && matches!(verb, 's' | 'q' | 'x' | 'X')
        && let Some(text) = objects.bytes_text(v)
    {
        return format_string(out, &text, spec, verb);
    }
    if let (Some(fields), Value::Map(m)) = (kind.and_then(Kind::struct_fields), v) {
        if kind == Some(Kind::Capabilities) {
            out.push('&');
        }
        out.push('{');
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            if spec.plus {
                let _ = write!(out, "{f}:");
            }
            if let Some(x) = m.get(*f) {
                format_verb(objects, x, spec, verb, out);
            }
        }
        out.push('}');
        return;
    }
    match v {
        Value::Nil => match verb {
            'v' => pad(out, "<nil>", spec, false),
            _ => bad_verb(objects, out, verb, v),
        },
        Value::Bool(b) => match verb {
            'v' | 't' => pad(out, if *b { "true" } else { "false" }, spec, false),
            _ => bad_verb(objects, out, verb, v),
        },
        Value::Int(n) => format_int(out, objects, i128::from(*n), v, spec, verb),
        Value::Uint(n) => format_int(out, objects, i128::from(*n), v, spec, verb),
        Value::Float(f) => format_float_verb(out, objects, *f, v, spec, verb),
        Value::String(s) => match verb {
            'v' | 's' | 'q' | 'x' | 'X' => format_string(out, s, spec, verb),
            _ => bad_verb(objects, out, verb, v),
        },
        Value::List(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_verb(objects, x, spec, verb, out);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_string(
                    out,
                    k,
                    &Spec::default(),
                    if verb == 'v' { 's' } else { verb },
                );
                out.push(':');
                format_verb(objects, x, spec, verb, out);
            }
            out.push(']');
        }
        Value::Function(_) => pad(out, "<func>", spec, false),
    }
}

fn quote_rune(c: char) -> String {
    let mut out = String::from("'");
    match c {
        '\'' => out.push_str("\\'"),
        '"' => out.push('"'),
        _ => escape_char(c, &mut out),
    }
    out.push('\'');
    out
}

/// Go's `unicode.IsPrint` for the characters charts contain: control and
/// format characters, separators and private or unassigned code points are
/// not printable.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c as u32,
        0xAD | 0x34F | 0x61C | 0x180E | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F
        | 0xD800..=0xF8FF | 0xFEFF | 0xFFF0..=0xFFFB | 0xFFFE | 0xFFFF | 0xF0000..=0x10FFFF
        | 0xE0000..=0xE007F)
}

fn escape_char(c: char, out: &mut String) {
    match c {
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if is_print(c) => out.push(c),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if (c as u32) <= 0xFFFF => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' {
            out.push_str("\\\"");
        } else {
            escape_char(c, &mut out);
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use gotmpl::tmap;

    fn p(format: &str, args: &[Value]) -> String {
        sprintf(&Objects::default(), format, args)
    }

    #[test]
    fn floats_print_like_go() {
        assert_eq!(format_float(1e6, 'g', None), "1e+06");
        assert_eq!(format_float(123456.0, 'g', None), "123456");
        assert_eq!(format_float(1e-5, 'g', None), "1e-05");
        assert_eq!(format_float(0.0001, 'g', None), "0.0001");
        assert_eq!(format_float(1.5, 'g', None), "1.5");
        assert_eq!(format_float(-2.0, 'g', None), "-2");
        assert_eq!(format_float(0.0, 'g', None), "0");
        assert_eq!(format_float(1.23456, 'f', Some(2)), "1.23");
        assert_eq!(format_float(1.0, 'g', Some(3)), "1");
        assert_eq!(format_float(1234.5678, 'g', Some(3)), "1.23e+03");
        assert_eq!(format_float(1e21, 'e', None), "1e+21");
        assert_eq!(format_float(12.5, 'e', Some(2)), "1.25e+01");
        assert_eq!(format_float32_key(0.1), "0.1");
    }

    #[test]
    fn printf_verbs_and_errors() {
        assert_eq!(
            p("%s-%d", &[Value::String("a".into()), Value::Int(3)]),
            "a-3"
        );
        assert_eq!(p("%d", &[Value::Float(1.0)]), "%!d(float64=1)");
        assert_eq!(p("%s", &[Value::Int(1)]), "%!s(int=1)");
        assert_eq!(p("%v %v", &[Value::Float(1e6)]), "1e+06 %!v(MISSING)");
        assert_eq!(
            p("%v", &[Value::Nil, Value::Int(2)]),
            "<nil>%!(EXTRA int=2)"
        );
        assert_eq!(
            p(
                "%5.1f|%-4d|%04d|%x|%q",
                &[
                    Value::Float(1.23456),
                    Value::Int(7),
                    Value::Int(-7),
                    Value::Int(255),
                    Value::String("a\"b".into())
                ]
            ),
            "  1.2|7   |-007|ff|\"a\\\"b\""
        );
        assert_eq!(
            p(
                "%v",
                &[tmap! { "b" => 1.5f64, "a" => vec!["x".to_owned()] }]
            ),
            "map[a:[x] b:1.5]"
        );
        assert_eq!(
            p("%T %T", &[Value::Float(1.0), Value::List(vec![].into())]),
            "float64 []interface {}"
        );
        assert_eq!(p("100%%", &[]), "100%");
    }

    #[test]
    fn sprint_spacing() {
        let o = Objects::default();
        assert_eq!(
            sprint(
                &o,
                &[
                    Value::Int(1),
                    Value::Int(2),
                    Value::String("a".into()),
                    Value::Int(3)
                ]
            ),
            "1 2a3"
        );
        assert_eq!(
            sprintln(&o, &[Value::String("a".into()), Value::String("b".into())]),
            "a b\n"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(go_quote("é\u{1}\n☃"), "\"é\\x01\\n☃\"");
    }
}
