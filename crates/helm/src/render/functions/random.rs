//! Sprig's random functions: `randAlphaNum`, `randAlpha`, `randNumeric`,
//! `randAscii`, `randBytes`, `randInt`, `shuffle` and `uuidv4`.
//!
//! # Guarantees
//! - Every value comes from the operating system's CSPRNG (`getrandom`),
//!   also where Sprig uses Go's `math/rand` (`randInt`, `shuffle`): a chart
//!   cannot tell, and a generated password is never predictable.
//! - Characters are uniform over Sprig's alphabets (goutils'
//!   `CryptoRandom*`): `[A-Za-z0-9]`, `[A-Za-z]`, `[0-9]`, and the printable
//!   ASCII range 32..=126.
//! - Go's edge cases: a count of 0 or less gives `""` for the strings,
//!   `randBytes` of a negative count and `randInt` with `max <= min` fail
//!   with Go's panic text.
//!
//! Each call gives a new value, as in Helm: the worker renders a revision
//! once and installs what it stored, so a resumed saga does not render again.

use base64::Engine as _;
use gotmpl::Value;

use super::{FnError, FnResult, P, int_arg, s, spec, str_arg};

pub(super) const FUNCS: &[super::FuncSpec] = &[
    spec("randAlphaNum", &[P::Int], None, |_, a| {
        random_string(int_arg(&a[0]), ALPHANUMERIC)
    }),
    spec("randAlpha", &[P::Int], None, |_, a| {
        random_string(int_arg(&a[0]), &ALPHANUMERIC[..52])
    }),
    spec("randNumeric", &[P::Int], None, |_, a| {
        random_string(int_arg(&a[0]), &ALPHANUMERIC[52..])
    }),
    spec("randAscii", &[P::Int], None, |_, a| {
        random_string(int_arg(&a[0]), ASCII)
    }),
    spec("randBytes", &[P::Int], None, |_, a| {
        let n = usize::try_from(int_arg(&a[0]))
            .map_err(|_| FnError::Call("runtime error: makeslice: len out of range".into()))?;
        let mut buf = vec![0u8; n];
        fill(&mut buf)?;
        Ok(s(&base64::engine::general_purpose::STANDARD.encode(buf)))
    }),
    spec("randInt", &[P::Int, P::Int], None, |_, a| {
        let (min, max) = (int_arg(&a[0]), int_arg(&a[1]));
        let span = max
            .checked_sub(min)
            .filter(|n| *n > 0)
            .ok_or_else(|| FnError::Call("invalid argument to Intn".into()))?;
        Ok(Value::Int(min + below(span as u64)? as i64))
    }),
    spec("shuffle", &[P::Str], None, |_, a| {
        let mut chars: Vec<char> = str_arg(&a[0]).chars().collect();
        // Fisher-Yates.
        for i in (1..chars.len()).rev() {
            let j = below(i as u64 + 1)? as usize;
            chars.swap(i, j);
        }
        Ok(s(&chars.into_iter().collect::<String>()))
    }),
    spec("uuidv4", &[], None, |_, _| Ok(s(&uuid_v4()?))),
];

/// Letters first, then digits: `randAlpha` and `randNumeric` are its halves.
const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// goutils' `CryptoRandomAscii`: code points 32 (space) to 126 (`~`).
const ASCII: &[u8] = b" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";

fn fill(buf: &mut [u8]) -> Result<(), FnError> {
    getrandom::fill(buf)
        .map_err(|e| FnError::Call(format!("cannot read the system's random source: {e}")))
}

/// A uniform random number in `0..n` (`n > 0`), by rejection.
fn below(n: u64) -> Result<u64, FnError> {
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let mut b = [0u8; 8];
        fill(&mut b)?;
        let v = u64::from_le_bytes(b);
        if v < zone {
            return Ok(v % n);
        }
    }
}

/// `count` characters uniform over `alphabet` (at most 256 symbols).
fn random_string(count: i64, alphabet: &[u8]) -> FnResult {
    let Ok(count) = usize::try_from(count) else {
        return Ok(s(""));
    };
    // Bytes below the largest multiple of the alphabet's size map uniformly.
    let zone = 256 - (256 % alphabet.len());
    let mut out = String::with_capacity(count);
    let mut buf = [0u8; 64];
    while out.len() < count {
        fill(&mut buf)?;
        for &b in &buf {
            if usize::from(b) < zone && out.len() < count {
                out.push(char::from(alphabet[usize::from(b) % alphabet.len()]));
            }
        }
    }
    Ok(s(&out))
}

/// A random (version 4, RFC 9562 variant) UUID in its hyphenated lower-case
/// form, as google/uuid's `New().String()`.
fn uuid_v4() -> Result<String, FnError> {
    let mut b = [0u8; 16];
    fill(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: FnResult) -> String {
        match v {
            Ok(Value::String(s)) => s.to_string(),
            other => panic!("a string, got {other:?}"),
        }
    }

    #[test]
    fn strings_have_the_length_and_alphabet_asked() {
        for (alphabet, check) in [
            (
                ALPHANUMERIC,
                (|c: char| c.is_ascii_alphanumeric()) as fn(char) -> bool,
            ),
            (&ALPHANUMERIC[..52], |c: char| c.is_ascii_alphabetic()),
            (&ALPHANUMERIC[52..], |c: char| c.is_ascii_digit()),
            (ASCII, |c: char| (' '..='~').contains(&c)),
        ] {
            let t = text(random_string(300, alphabet));
            assert_eq!(t.len(), 300);
            assert!(t.chars().all(check), "{t}");
            // 300 draws from 10 or more symbols: all equal is (almost) impossible.
            assert!(t.chars().any(|c| !t.starts_with(c)));
        }
        assert_eq!(text(random_string(0, ALPHANUMERIC)), "");
        assert_eq!(text(random_string(-3, ALPHANUMERIC)), "");
        assert_ne!(
            text(random_string(24, ALPHANUMERIC)),
            text(random_string(24, ALPHANUMERIC))
        );
    }

    #[test]
    fn every_symbol_of_an_alphabet_is_drawn() {
        let t = text(random_string(4000, ALPHANUMERIC));
        for c in ALPHANUMERIC {
            assert!(t.as_bytes().contains(c), "{} never drawn", char::from(*c));
        }
    }

    #[test]
    fn numbers_stay_in_range() {
        for _ in 0..200 {
            assert!(below(7).unwrap() < 7);
        }
        assert_eq!(below(1).unwrap(), 0);
    }

    #[test]
    fn uuids_are_version_4() {
        let u = uuid_v4().unwrap();
        let parts: Vec<&str> = u.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!("89ab".contains(&parts[3][..1]));
        assert!(
            u.chars()
                .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
        assert_ne!(u, uuid_v4().unwrap());
    }
}
