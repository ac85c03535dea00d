//! The Kubernetes name rules the contract and the plan catalogue check,
//! written once.

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$` and 1 to `max` characters: a DNS-1123
/// label (Kubernetes allows at most 63; callers may allow fewer).
pub fn is_dns_label(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    let end_ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=max).contains(&b.len())
        && b.iter().all(|c| end_ok(c) || *c == b'-')
        && b.first().is_some_and(end_ok)
        && b.last().is_some_and(end_ok)
}

/// `^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$`: a Kubernetes label value
/// (not empty: an empty label value is valid in Kubernetes, never here).
pub fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_match_the_schema_pattern() {
        for ok in ["a", "pro-2", "0x", &"a".repeat(63)] {
            assert!(is_dns_label(ok, 63), "{ok:?}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", "é", &"a".repeat(64)] {
            assert!(!is_dns_label(bad, 63), "{bad:?}");
        }
        assert!(!is_dns_label("abcd", 3), "the caller's maximum");
    }

    #[test]
    fn label_values_match_the_schema_pattern() {
        for ok in ["1", "v1.2.3", "2.0.0-rc.1", "Release_7", &"x".repeat(63)] {
            assert!(is_label_value(ok), "{ok:?}");
        }
        for bad in ["", ".1", "1.", "-1", "1+2", "a b", "a/b", &"x".repeat(64)] {
            assert!(!is_label_value(bad), "{bad:?}");
        }
    }
}
