//! go-yaml v2's `resolve`: what a plain (unquoted) scalar means. The loader
//! uses it to type values; the emitter uses it to decide when a string must be
//! quoted so that it reads back as a string.

/// The meaning of a plain scalar.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resolved {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    /// An integer too large for 64 bits (go-yaml makes it a `big.Int`).
    BigInt,
    Float(f64),
    /// A date or date-time (kept as text when decoded into `interface{}`).
    Timestamp,
    Str,
}

/// Resolves `s` as go-yaml does for an untagged plain scalar.
pub(crate) fn resolve_plain(s: &str) -> Resolved {
    let Some(&first) = s.as_bytes().first() else {
        return Resolved::Null;
    };
    // go-yaml only looks further at scalars starting with one of these.
    let hint = match first {
        b'+' | b'-' => 'S',
        b'0'..=b'9' => 'D',
        b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~' => 'M',
        b'.' => '.',
        _ => return Resolved::Str,
    };
    if let Some(r) = table(s) {
        return r;
    }
    match hint {
        'M' => Resolved::Str,
        '.' => match go_parse_float(s) {
            Some(f) => Resolved::Float(f),
            None => Resolved::Str,
        },
        _ => {
            if is_timestamp(s) {
                return Resolved::Timestamp;
            }
            let plain = s.replace('_', "");
            match go_parse_int(&plain) {
                IntParse::Int(i) => return Resolved::Int(i),
                IntParse::Uint(u) => return Resolved::Uint(u),
                IntParse::Range => {
                    if is_yaml_float(&plain)
                        && let Some(f) = go_parse_float(&plain)
                    {
                        return Resolved::Float(f);
                    }
                    return Resolved::BigInt;
                }
                IntParse::Invalid => {}
            }
            if is_yaml_float(&plain)
                && let Some(f) = go_parse_float(&plain)
            {
                return Resolved::Float(f);
            }
            if let Some(bits) = plain.strip_prefix("0b") {
                if let Ok(i) = i64::from_str_radix(bits, 2) {
                    return Resolved::Int(i);
                }
                if let Ok(u) = u64::from_str_radix(bits, 2) {
                    return Resolved::Uint(u);
                }
            } else if let Some(bits) = plain.strip_prefix("-0b")
                && let Ok(i) = i64::from_str_radix(&format!("-{bits}"), 2)
            {
                return Resolved::Int(i);
            }
            Resolved::Str
        }
    }
}

fn table(s: &str) -> Option<Resolved> {
    Some(match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Resolved::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Resolved::Bool(false)
        }
        "~" | "null" | "Null" | "NULL" => Resolved::Null,
        ".nan" | ".NaN" | ".NAN" => Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Resolved::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Resolved::Float(f64::NEG_INFINITY),
        _ => return None,
    })
}

enum IntParse {
    Int(i64),
    Uint(u64),
    /// Syntactically an integer, but out of range of 64 bits.
    Range,
    Invalid,
}

/// Go's `strconv.ParseInt(s, 0, 64)` then `ParseUint(s, 0, 64)`: base from
/// the prefix (`0x`, `0o`, `0b`, a leading `0` for octal), optional sign.
fn go_parse_int(s: &str) -> IntParse {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) =
        if let Some(d) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (16, d)
        } else if let Some(d) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
            (8, d)
        } else if let Some(d) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
            (2, d)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, &body[1..])
        } else {
            (10, body)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return IntParse::Invalid;
    }
    match u128::from_str_radix(digits, radix) {
        Ok(m) if neg => {
            if m <= i64::MAX as u128 + 1 {
                IntParse::Int((m as i128).wrapping_neg() as i64)
            } else {
                IntParse::Range
            }
        }
        Ok(m) if m <= i64::MAX as u128 => IntParse::Int(m as i64),
        Ok(m) if m <= u64::MAX as u128 => {
            // ParseUint does not accept a sign.
            if s.starts_with('+') {
                IntParse::Range
            } else {
                IntParse::Uint(m as u64)
            }
        }
        _ => IntParse::Range,
    }
}

/// go-yaml's `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Go's `strconv.ParseFloat(s, 64)` for the decimal forms YAML produces
/// (Go also accepts `inf`, `nan` and hex floats, which go-yaml never reaches
/// here except through `.`-prefixed text that Rust parses the same way).
fn go_parse_float(s: &str) -> Option<f64> {
    let t = s.replace('_', "");
    let lower = t.trim_start_matches(['+', '-']).to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" || lower == "nan" {
        return t.parse().ok();
    }
    if !t
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    t.parse().ok()
}

/// go-yaml's timestamp check: `YYYY-M-D` with an optional time part in the
/// formats it tries (RFC 3339 with `T`/`t`, or a space and no zone).
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let num = |i: &mut usize, min: usize, max: usize| -> Option<u32> {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() && *i - start < max {
            *i += 1;
        }
        if *i - start < min {
            return None;
        }
        s[start..*i].parse().ok()
    };
    let mut i = 5;
    let Some(month) = num(&mut i, 1, 2) else {
        return false;
    };
    if i >= b.len() || b[i] != b'-' {
        return false;
    }
    i += 1;
    let Some(day) = num(&mut i, 1, 2) else {
        return false;
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    if i == b.len() {
        return true;
    }
    let zoned = match b[i] {
        b'T' | b't' => true,
        b' ' => false,
        _ => return false,
    };
    i += 1;
    let Some(h) = num(&mut i, 1, 2) else {
        return false;
    };
    if i >= b.len() || b[i] != b':' {
        return false;
    }
    i += 1;
    let Some(m) = num(&mut i, 1, 2) else {
        return false;
    };
    if i >= b.len() || b[i] != b':' {
        return false;
    }
    i += 1;
    let Some(sec) = num(&mut i, 1, 2) else {
        return false;
    };
    if h > 23 || m > 59 || sec > 59 {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if num(&mut i, 1, 9).is_none() {
            return false;
        }
    }
    if !zoned {
        return i == b.len();
    }
    match b.get(i) {
        Some(b'Z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            let rest = &s[i + 1..];
            rest.len() == 5
                && rest.as_bytes()[2] == b':'
                && rest[..2]
                    .bytes()
                    .chain(rest[3..].bytes())
                    .all(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_table() {
        assert_eq!(resolve_plain(""), Resolved::Null);
        assert_eq!(resolve_plain("Yes"), Resolved::Bool(true));
        assert_eq!(resolve_plain("OFF"), Resolved::Bool(false));
        assert_eq!(resolve_plain("<<"), Resolved::Str);
        assert_eq!(resolve_plain("0x10"), Resolved::Int(16));
        assert_eq!(resolve_plain("010"), Resolved::Int(8));
        assert_eq!(resolve_plain("-0b11"), Resolved::Int(-3));
        assert_eq!(resolve_plain("1e3"), Resolved::Float(1000.0));
        assert_eq!(resolve_plain(".5"), Resolved::Float(0.5));
        assert_eq!(
            resolve_plain("18446744073709551615"),
            Resolved::Uint(u64::MAX)
        );
        assert_eq!(
            resolve_plain("100000000000000000000"),
            Resolved::Float(1e20)
        );
        assert_eq!(resolve_plain("123456789012345678901234x"), Resolved::Str);
        assert_eq!(
            resolve_plain("2001-12-14t21:59:43.10Z"),
            Resolved::Timestamp
        );
        assert_eq!(resolve_plain("2001-12-14 21:59:43"), Resolved::Timestamp);
        assert_eq!(resolve_plain("1.2.3"), Resolved::Str);
        assert_eq!(resolve_plain("v1"), Resolved::Str);
        assert_eq!(resolve_plain("-"), Resolved::Str);
    }
}
