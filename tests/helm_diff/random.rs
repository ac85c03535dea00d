//! Sprig's random functions against Helm v4: the fixture chart
//! `generated-password` (a password generated unless `lookup` finds the
//! Secret, and one value of each random function) rendered by Helm and by
//! the worker. Random values cannot be compared byte for byte: the documents
//! must have the same structure, every non-random value must be equal, and
//! each random value must have, in both renderings, the length and alphabet
//! its function gives; the certificates of `genCA` and `genSignedCert`
//! (value `tls.enabled`) parse, name what was asked, and the CA signs the
//! certificate.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};

use super::{Case, case, documents, fixture, helm, ours, request};

/// A generated value's length in characters (any for `None`), and a check
/// of its characters.
type Shape = (Option<usize>, fn(&str) -> bool);

/// What the generated value at `key` must look like.
fn expected_shape(key: &str) -> Option<Shape> {
    Some(match key {
        "alnum" => (Some(16), |s| s.chars().all(|c| c.is_ascii_alphanumeric())),
        "alpha" => (Some(8), |s| s.chars().all(|c| c.is_ascii_alphabetic())),
        "numeric" => (Some(6), |s| s.chars().all(|c| c.is_ascii_digit())),
        // randAscii 10, base64-encoded: 16 characters of printable ASCII.
        "ascii" => (Some(16), |s| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .is_ok_and(|b| b.len() == 10 && b.iter().all(|c| (32..=126).contains(c)))
        }),
        // randBytes 12: 12 bytes, base64.
        "bytes" => (Some(16), |s| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .is_ok_and(|b| b.len() == 12)
        }),
        "int" => (Some(2), |s| {
            s.parse::<i64>().is_ok_and(|n| (10..20).contains(&n))
        }),
        "uuid" => (Some(36), |s| {
            let parts: Vec<&str> = s.split('-').collect();
            parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
                && parts[2].starts_with('4')
                && "89ab".contains(&parts[3][..1])
                && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
        }),
        "shuffled" => (Some(6), |s| {
            let mut c: Vec<char> = s.chars().collect();
            c.sort_unstable();
            c.into_iter().collect::<String>() == "abcdef"
        }),
        // The Secret's password: randAlphaNum 24, base64.
        "password" => (Some(32), |s| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .is_ok_and(|b| b.len() == 24 && b.iter().all(u8::is_ascii_alphanumeric))
        }),
        // PEM, base64-encoded: checked further in `check_tls`.
        "ca.crt" | "tls.crt" => (None, |s| {
            pem_of(s).is_some_and(|p| p.tag() == "CERTIFICATE")
        }),
        "tls.key" => (None, |s| {
            pem_of(s).is_some_and(|p| p.tag() == "RSA PRIVATE KEY")
        }),
        _ => return None,
    })
}

/// The PEM block of a base64-encoded `data` value.
fn pem_of(b64: &str) -> Option<::pem::Pem> {
    let text = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    ::pem::parse(text).ok()
}

/// The TLS Secret's certificates (`who`'s rendering): the CA is a CA named
/// `acme-ca` valid 365 days and signs the certificate, which names the
/// release, its service and IP.
fn check_tls(who: &str, data: &Value, diffs: &mut Vec<String>) {
    use x509_parser::prelude::*;
    let der = |k: &str| {
        pem_of(data[k].as_str().unwrap_or_default())
            .map(|p| p.contents().to_vec())
            .unwrap_or_default()
    };
    let (ca_der, cert_der) = (der("ca.crt"), der("tls.crt"));
    let (Ok((_, ca)), Ok((_, cert))) = (
        X509Certificate::from_der(&ca_der),
        X509Certificate::from_der(&cert_der),
    ) else {
        diffs.push(format!("{who}: the TLS certificates do not parse"));
        return;
    };
    let cn = |c: &X509Certificate<'_>| {
        c.subject()
            .iter_common_name()
            .next()
            .and_then(|n| n.as_str().ok())
            .map(str::to_owned)
    };
    let days = |c: &X509Certificate<'_>| {
        (c.validity().not_after.timestamp() - c.validity().not_before.timestamp()) / 86_400
    };
    let dns: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|s| {
            s.value
                .general_names
                .iter()
                .map(|n| format!("{n}"))
                .collect()
        })
        .unwrap_or_default();
    let facts = (
        cn(&ca).as_deref() == Some("acme-ca"),
        cn(&cert).as_deref() == Some("acme"),
        ca.is_ca() && !cert.is_ca(),
        (days(&ca), days(&cert)) == (365, 90),
        cert.verify_signature(Some(ca.public_key())).is_ok(),
        dns.len() == 3,
    );
    if facts != (true, true, true, true, true, true) {
        diffs.push(format!(
            "{who}: TLS facts (CA name, name, CA flags, days, signed by the CA, 3 SANs) {facts:?}: {dns:?}"
        ));
    }
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
                    if len.is_some_and(|n| s.chars().count() != n) || !fits(s) {
                        diffs.push(format!(
                            "{context}.{key}: {who}'s {s:?} is not of the shape asked ({len:?} characters)"
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
    cases.push(case(
        "generated-password: certificates",
        &chart,
        json!({}),
        json!({"tls": {"enabled": true}}),
    ));

    let results = helm(&cases.iter().map(request).collect::<Vec<_>>());
    let (mut diffs, mut tls_checked) = (Vec::new(), 0);
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
                let context = format!("{}: {template}", c.name);
                compare_data(&context, &hdata, &odata, &mut diffs);
                if hdata.get("tls.crt").is_some() {
                    tls_checked += 1;
                    check_tls(&format!("{context}: helm"), &hdata, &mut diffs);
                    check_tls(&format!("{context}: ours"), &odata, &mut diffs);
                }
            }
        }
        // Fresh values at every render, in both.
        let again = ours(c).expect("renders again");
        let cm = "generated-password/templates/configmap.yaml";
        assert_ne!(mine[cm], again[cm], "{}: a new value per render", c.name);
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    assert_eq!(
        tls_checked, 1,
        "the certificates case rendered its TLS Secret"
    );
}
