//! Semantic versions and constraints as Sprig's `semver` and `semverCompare`
//! see them (Masterminds/semver v3): a lenient version syntax (`v1.2`, `1`),
//! constraints with `||`, commas or spaces, hyphen ranges, `x`/`*`
//! wildcards, `~` and `^`, and pre-releases that only match constraints that
//! name one.

use std::cmp::Ordering;

/// A parsed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: String,
    pub meta: String,
    pub original: String,
}

/// The error Masterminds/semver gives for text that is not a version.
pub(crate) const INVALID_VERSION: &str = "Invalid Semantic Version";

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

fn valid_identifiers(s: &str, prerelease: bool) -> bool {
    s.split('.').all(|id| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !(prerelease
                && id.len() > 1
                && id.starts_with('0')
                && id.bytes().all(|b| b.is_ascii_digit()))
    })
}

impl Version {
    /// Masterminds' `NewVersion`: `v` prefix, minor and patch optional.
    pub(crate) fn parse(text: &str) -> Result<Version, String> {
        let s = text.strip_prefix('v').unwrap_or(text);
        let (rest, meta) = match s.split_once('+') {
            Some((r, m)) => (r, m.to_owned()),
            None => (s, String::new()),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((c, p)) => (c, p.to_owned()),
            None => (rest, String::new()),
        };
        if (!pre.is_empty() || rest.ends_with('-')) && !valid_identifiers(&pre, true)
            || (!meta.is_empty() || s.ends_with('+')) && !valid_identifiers(&meta, false)
        {
            return Err(INVALID_VERSION.into());
        }
        let mut parts = core.split('.');
        let major = parts.next().and_then(number).ok_or(INVALID_VERSION)?;
        let minor = match parts.next() {
            Some(p) => number(p).ok_or(INVALID_VERSION)?,
            None => 0,
        };
        let patch = match parts.next() {
            Some(p) => number(p).ok_or(INVALID_VERSION)?,
            None => 0,
        };
        if parts.next().is_some() {
            return Err(INVALID_VERSION.into());
        }
        Ok(Version {
            major,
            minor,
            patch,
            pre,
            meta,
            original: text.to_owned(),
        })
    }

    /// Semantic-version precedence (build metadata ignored).
    pub(crate) fn compare(&self, other: &Version) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| compare_prerelease(&self.pre, &other.pre))
    }
}

fn compare_prerelease(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let (mut x, mut y) = (a.split('.'), b.split('.'));
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) => {
                let o = match (p.parse::<u64>(), q.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => p.cmp(q),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Tilde,
    Caret,
}

#[derive(Debug, Clone)]
struct Constraint {
    op: Op,
    con: Version,
    dirty: bool,
    minor_dirty: bool,
    patch_dirty: bool,
}

fn is_x(s: &str) -> bool {
    matches!(s, "x" | "X" | "*")
}

const OPS: [(&str, Op); 11] = [
    (">=", Op::Ge),
    ("=>", Op::Ge),
    ("<=", Op::Le),
    ("=<", Op::Le),
    ("!=", Op::Ne),
    ("~>", Op::Tilde),
    (">", Op::Gt),
    ("<", Op::Lt),
    ("=", Op::Eq),
    ("~", Op::Tilde),
    ("^", Op::Caret),
];

fn is_version_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '*')
}

fn parse_one(text: &str, whole: &str) -> Result<(Constraint, usize), String> {
    let improper = || format!("improper constraint: {whole}");
    let mut rest = text;
    let mut op = Op::Eq;
    for (sym, o) in OPS {
        if let Some(r) = rest.strip_prefix(sym) {
            op = o;
            rest = r;
            break;
        }
    }
    let trimmed = rest.trim_start();
    let end = trimmed
        .find(|c: char| !is_version_char(c))
        .unwrap_or(trimmed.len());
    let token = &trimmed[..end];
    if token.is_empty() {
        return Err(improper());
    }
    let consumed = text.len() - trimmed.len() + end;
    let body = token.strip_prefix('v').unwrap_or(token);
    let (core, suffix) = match body.find(['-', '+']) {
        Some(i) => body.split_at(i),
        None => (body, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !(is_x(p) || p.bytes().all(|b| b.is_ascii_digit())))
    {
        return Err(improper());
    }
    // A missing minor or patch is a wildcard too (`~1` is `~1.x`, `>1.2` is `>1.2.x`).
    let (mut dirty, mut minor_dirty, mut patch_dirty) = (false, false, false);
    let version = if is_x(parts[0]) {
        dirty = true;
        format!("0.0.0{suffix}")
    } else if parts.get(1).is_none_or(|p| is_x(p)) {
        dirty = true;
        minor_dirty = true;
        format!("{}.0.0{suffix}", parts[0])
    } else if parts.get(2).is_none_or(|p| is_x(p)) {
        dirty = true;
        patch_dirty = true;
        format!("{}.{}.0{suffix}", parts[0], parts[1])
    } else {
        body.to_owned()
    };
    let con = Version::parse(&version).map_err(|_| improper())?;
    Ok((
        Constraint {
            op,
            con,
            dirty,
            minor_dirty,
            patch_dirty,
        },
        consumed,
    ))
}

/// Rewrites hyphen ranges (`1.2 - 1.4`) to `>= 1.2, <= 1.4`.
fn rewrite_ranges(group: &str) -> String {
    let tokens: Vec<&str> = group.split_whitespace().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if i + 2 < tokens.len()
            && tokens[i + 1] == "-"
            && tokens[i].starts_with(|c: char| c.is_ascii_digit() || c == 'v')
        {
            out.push(format!(">= {}, <= {}", tokens[i], tokens[i + 2]));
            i += 3;
        } else {
            out.push(tokens[i].to_owned());
            i += 1;
        }
    }
    out.join(" ")
}

/// A parsed constraint string (`>=1.20.0-0`, `^1.2 || ~2.0`).
pub(crate) struct Constraints(Vec<Vec<Constraint>>);

impl Constraints {
    pub(crate) fn parse(text: &str) -> Result<Constraints, String> {
        let mut groups = Vec::new();
        for group in text.split("||") {
            let group = rewrite_ranges(group);
            let mut cs = Vec::new();
            let mut rest = group.trim();
            if rest.is_empty() {
                cs.push(Constraint {
                    op: Op::Eq,
                    con: Version::parse("0.0.0").map_err(|e| e.to_string())?,
                    dirty: true,
                    minor_dirty: false,
                    patch_dirty: false,
                });
            }
            while !rest.is_empty() {
                let (c, used) = parse_one(rest, text)?;
                cs.push(c);
                rest = rest[used..].trim_start_matches(|ch: char| ch.is_whitespace() || ch == ',');
            }
            groups.push(cs);
        }
        Ok(Constraints(groups))
    }

    /// Whether `v` satisfies one of the `||` groups.
    pub(crate) fn check(&self, v: &Version) -> bool {
        self.0.iter().any(|group| group.iter().all(|c| c.check(v)))
    }
}

impl Constraint {
    fn check(&self, v: &Version) -> bool {
        let c = &self.con;
        let pre_blocked = !v.pre.is_empty() && c.pre.is_empty();
        match self.op {
            Op::Ne => {
                if self.dirty {
                    if pre_blocked {
                        return false;
                    }
                    if c.major != v.major {
                        return true;
                    }
                    if c.minor != v.minor && !self.minor_dirty {
                        return true;
                    } else if self.minor_dirty {
                        return false;
                    } else if c.patch != v.patch && !self.patch_dirty {
                        return true;
                    } else if self.patch_dirty {
                        if !v.pre.is_empty() || !c.pre.is_empty() {
                            return compare_prerelease(&v.pre, &c.pre) != Ordering::Equal;
                        }
                        return false;
                    }
                }
                v.compare(c) != Ordering::Equal
            }
            _ if pre_blocked => false,
            Op::Eq => {
                if self.dirty {
                    self.tilde(v)
                } else {
                    v.compare(c) == Ordering::Equal
                }
            }
            Op::Gt => {
                if !self.dirty {
                    return v.compare(c) == Ordering::Greater;
                }
                if v.major != c.major {
                    return v.major > c.major;
                }
                if self.minor_dirty {
                    return false;
                }
                if self.patch_dirty {
                    return v.minor > c.minor;
                }
                v.compare(c) == Ordering::Greater
            }
            Op::Lt => v.compare(c) == Ordering::Less,
            Op::Ge => v.compare(c) != Ordering::Less,
            Op::Le => {
                if !self.dirty {
                    return v.compare(c) != Ordering::Greater;
                }
                if v.major > c.major {
                    return false;
                }
                !(v.major == c.major && v.minor > c.minor && !self.minor_dirty)
            }
            Op::Tilde => self.tilde(v),
            Op::Caret => {
                if v.compare(c) == Ordering::Less {
                    return false;
                }
                if c.major > 0 || self.minor_dirty {
                    return v.major == c.major;
                }
                if v.major > 0 {
                    return false;
                }
                if c.minor > 0 || self.patch_dirty {
                    return v.minor == c.minor;
                }
                if v.minor > 0 {
                    return false;
                }
                c.patch == v.patch
            }
        }
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.con;
        if v.compare(c) == Ordering::Less {
            return false;
        }
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        if v.major != c.major {
            return false;
        }
        v.minor == c.minor || self.minor_dirty
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(c: &str, v: &str) -> bool {
        Constraints::parse(c)
            .unwrap()
            .check(&Version::parse(v).unwrap())
    }

    #[test]
    fn versions_parse_leniently() {
        let v = Version::parse("v1.36.0").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 36, 0));
        let v = Version::parse("1.2-beta.1+build").unwrap();
        assert_eq!(
            (v.minor, v.patch, v.pre.as_str(), v.meta.as_str()),
            (2, 0, "beta.1", "build")
        );
        assert!(Version::parse("1.2.3.4").is_err());
        assert!(Version::parse("x").is_err());
    }

    #[test]
    fn constraints() {
        assert!(ok(">=1.20.0-0", "v1.36.0"));
        assert!(!ok(">=1.20.0", "1.36.0-rc.1"));
        assert!(ok(">=1.20.0-0", "1.36.0-rc.1"));
        assert!(ok("^1.2.3", "1.9.0") && !ok("^1.2.3", "2.0.0"));
        assert!(ok("~1.2.3", "1.2.9") && !ok("~1.2.3", "1.3.0"));
        assert!(ok("1.2.x", "1.2.7") && !ok("1.2.x", "1.3.0"));
        assert!(ok("<1.0 || >=2.0, <3", "2.5.0") && !ok("<1.0 || >=2.0, <3", "1.5.0"));
        assert!(ok("1.0 - 2.0", "1.5.0") && ok("1.0 - 2.0", "2.0.1") && !ok("1.0 - 2.0", "2.1.0"));
        assert!(ok("!=1.2.3", "1.2.4") && !ok("!=1.2.3", "1.2.3"));
        assert!(ok(">1.x", "2.0.0") && !ok(">1.x", "1.5.0"));
        assert!(
            ok("~1", "1.5.0") && ok("1.2", "1.2.7") && !ok(">1.2", "1.2.5") && ok("<=1.2", "1.2.9")
        );
        assert!(Constraints::parse(">=abc").is_err());
    }
}
