//! Sprig's random functions against Helm v4: the fixture chart
//! `generated-password` (a password generated unless `lookup` finds the
//! Secret, and one value of each random function) rendered by Helm and by
//! the worker. Random values cannot be compared byte for byte: the documents
//! must have the same structure, every non-random value must be equal, and
//! each random value must have, in both renderings, the length and alphabet
//! its function gives.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};

use super::{Case, case, documents, fixture, helm, ours, request};

/// A generated value's length in characters, and a check of its characters.
type Shape = (usize, fn(&str) -> bool);

/// What the generated value at `key` must look like.
fn expected_shape(key: &str) -> Option<Shape> {
    Some(match key {
        "alnum" => (16, |s| s.chars().all(|c| c.is_ascii_alphanumeric())),
        "alpha" => (8, |s| s.chars().all(|c| c.is_ascii_alphabetic())),
        "numeric" => (6, |s| s.chars().all(|c| c.is_ascii_digit())),
        // randAscii 10, base64-encoded: 16 characters of printable ASCII.
        "ascii" => (16, |s| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .is_ok_and(|b| b.len() == 10 && b.iter().all(|c| (32..=126).contains(c)))
        }),
        // randBytes 12: 12 bytes, base64.
        "bytes" => (16, |s| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .is_ok_and(|b| b.len() == 12)
        }),
        "int" => (2, |s| s.parse::<i64>().is_ok_and(|n| (10..20).contains(&n))),
        "uuid" => (36, |s| {
            let parts: Vec<&str> = s.split('-').collect();
            parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
                && parts[2].starts_with('4')
                && "89ab".contains(&parts[3][..1])
                && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
        }),
        "shuffled" => (6, |s| {
            let mut c: Vec<char> = s.chars().collect();
            c.sort_unstable();
            c.into_iter().collect::<String>() == "abcdef"
        }),
        // The Secret's password: randAlphaNum 24, base64.
        "password" => (32, |s| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .is_ok_and(|b| b.len() == 24 && b.iter().all(u8::is_ascii_alphanumeric))
        }),
        _ => return None,
    })
}

/// The differences between Helm's and our `data` of one document, with
/// generated values compared by shape (`who` says whose value is wrong).
fn compare_data(context: &str, helm: &Value, ours: &Value, diffs: &mut Vec<String>) {
    let (Some(h), Some(o)) = (helm.as_object(), ours.as_object()) else {
        diffs.push(format!("{context}: data is not a map: {helm} / {ours}"));
        return;
    };
    if !h.keys().eq(o.keys()) {
        diffs.push(format!("{context}: keys differ: {h:?} / {o:?}"));
        return;
    }
    for (key, hv) in h {
        let ov = &o[key];
        match expected_shape(key) {
            None if hv != ov => diffs.push(format!("{context}.{key}: helm {hv}, ours {ov}")),
            None => {}
            Some((len, fits)) => {
                for (who, v) in [("helm", hv), ("ours", ov)] {
                    let s = v.as_str().unwrap_or_default();
                    if s.chars().count() != len || !fits(s) {
                        diffs.push(format!(
                            "{context}.{key}: {who}'s {s:?} is not of the shape asked ({len} characters)"
                        ));
                    }
                }
            }
        }
    }
}

#[test]
fn random_functions_render_as_helm_renders_them_in_shape() {
    let chart = fixture("generated-password");
    let mut cases: Vec<Case> = vec![case(
        "generated-password: install",
        &chart,
        json!({"image": {"tag": "1.2.3"}}),
        json!({}),
    )];
    let mut upgrade = case("generated-password: upgrade", &chart, json!({}), json!({}));
    upgrade.release.revision = 4;
    upgrade.release.is_install = false;
    upgrade.release.is_upgrade = true;
    cases.push(upgrade);

    let results = helm(&cases.iter().map(request).collect::<Vec<_>>());
    let mut diffs = Vec::new();
    for (c, r) in cases.iter().zip(&results) {
        let theirs: BTreeMap<String, String> = serde_json::from_value(r["ok"].clone())
            .unwrap_or_else(|_| panic!("{}: Helm failed: {}", c.name, r["error"]));
        let mine = ours(c).unwrap_or_else(|e| panic!("{}: ours failed: {e}", c.name));
        assert_eq!(
            theirs.keys().collect::<Vec<_>>(),
            mine.keys().collect::<Vec<_>>()
        );
        for (template, text) in &theirs {
            let (h, o) = (
                documents(template, text).expect("Helm's parses"),
                documents(template, &mine[template]).expect("ours parses"),
            );
            assert_eq!(h.len(), o.len(), "{}: {template}", c.name);
            for (hd, od) in h.iter().zip(&o) {
                let (mut hm, mut om) = (hd.clone(), od.clone());
                let (hdata, odata) = (hm["data"].take(), om["data"].take());
                if hm != om {
                    diffs.push(format!("{}: {template}: {hm} / {om}", c.name));
                }
                compare_data(
                    &format!("{}: {template}", c.name),
                    &hdata,
                    &odata,
                    &mut diffs,
                );
            }
        }
        // Fresh values at every render, in both.
        let again = ours(c).expect("renders again");
        let cm = "generated-password/templates/configmap.yaml";
        assert_ne!(mine[cm], again[cm], "{}: a new value per render", c.name);
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
