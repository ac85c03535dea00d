//! Sprig's key and certificate functions: `genPrivateKey`, `genCA`,
//! `genCAWithKey`, `genSelfSignedCert`, `genSelfSignedCertWithKey`,
//! `genSignedCert` and `genSignedCertWithKey`, as Sprig's `crypto.go` makes
//! them.
//!
//! # Guarantees
//! - Keys are PEM blocks of Go's types: `genPrivateKey "rsa"` (or `""`) a
//!   4096-bit `RSA PRIVATE KEY` (PKCS #1), `"ecdsa"` a P-256 `EC PRIVATE
//!   KEY` (SEC 1, with the curve), `"ed25519"` a `PRIVATE KEY` (PKCS #8).
//!   `"dsa"` is not implemented (an error); any other type gives Sprig's
//!   text `Unknown type <type>`.
//! - The `gen*` certificate functions without a key make a 2048-bit RSA
//!   key; the `WithKey` forms take any key `genPrivateKey` makes (a DSA
//!   key excepted). A certificate is a `CERTIFICATE` PEM block, and the
//!   function returns Sprig's `certificate` (`.Cert`, `.Key`).
//! - Certificates are Sprig's template: a random positive serial below
//!   2^128, the subject's common name only, the IP and DNS subject
//!   alternative names given, valid from now for `daysValid` days, key
//!   usages key encipherment and digital signature (plus certificate
//!   signing for a CA), extended key usages server and client
//!   authentication, basic constraints (CA only for `genCA`).
//!   `genSignedCert` is signed by the CA given (its subject as issuer).
//! - Errors are Sprig's where Sprig has one: an IP that does not parse
//!   (`error parsing ip: x`), a SAN that is not a string, a CA whose
//!   certificate or key does not parse.

use std::sync::Arc;

use gotmpl::Value;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::EncodePrivateKey;

use super::{FnError, FnResult, P, int_arg, map_value, s, spec, str_arg};

pub(super) const FUNCS: &[super::FuncSpec] = &[
    spec("genPrivateKey", &[P::Str], None, |_, a| {
        Ok(s(&generate_private_key(str_arg(&a[0]))))
    }),
    spec("genCA", &[P::Str, P::Int], None, |_, a| {
        let key = new_rsa_key(2048)?;
        certificate_of(
            params(&a[0], &Value::Nil, &Value::Nil, &a[1], true)?,
            key,
            None,
        )
    }),
    spec("genCAWithKey", &[P::Str, P::Int, P::Str], None, |_, a| {
        let key = parse_key(str_arg(&a[2]))?;
        certificate_of(
            params(&a[0], &Value::Nil, &Value::Nil, &a[1], true)?,
            key,
            None,
        )
    }),
    spec(
        "genSelfSignedCert",
        &[P::Str, P::Any, P::Any, P::Int],
        None,
        |_, a| self_signed(a, new_rsa_key(2048)?),
    ),
    spec(
        "genSelfSignedCertWithKey",
        &[P::Str, P::Any, P::Any, P::Int, P::Str],
        None,
        |_, a| self_signed(a, parse_key(str_arg(&a[4]))?),
    ),
    spec(
        "genSignedCert",
        &[P::Str, P::Any, P::Any, P::Int, P::Any],
        None,
        |_, a| signed(a, None),
    ),
    spec(
        "genSignedCertWithKey",
        &[P::Str, P::Any, P::Any, P::Int, P::Any, P::Str],
        None,
        |_, a| signed(a, Some(str_arg(&a[5]))),
    ),
];

/// A private key as Sprig prints it and as rcgen signs with it.
struct Key {
    /// The PEM block Sprig writes (`pemBlockForKey`).
    pem: String,
    pair: KeyPair,
}

fn call_error(e: impl std::fmt::Display) -> FnError {
    FnError::Call(e.to_string())
}

fn pem_block(tag: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// `genPrivateKey`: a key's PEM, or Sprig's text for a failure.
fn generate_private_key(typ: &str) -> String {
    let made = match typ {
        "" | "rsa" => new_rsa_key(4096),
        "ecdsa" => new_key(&rcgen::PKCS_ECDSA_P256_SHA256),
        "ed25519" => new_key(&rcgen::PKCS_ED25519),
        "dsa" => {
            return "failed to generate private key: DSA keys are not supported by tenant-worker's chart renderer".into();
        }
        other => return format!("Unknown type {other}"),
    };
    match made {
        Ok(key) => key.pem,
        Err(FnError::Call(e)) => format!("failed to generate private key: {e}"),
        Err(_) => "failed to generate private key".into(),
    }
}

fn new_rsa_key(bits: usize) -> Result<Key, FnError> {
    let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
        .map_err(|e| FnError::Call(format!("error generating rsa key: {e}")))?;
    rsa_key(&private)
}

fn rsa_key(private: &rsa::RsaPrivateKey) -> Result<Key, FnError> {
    let pkcs1 = private.to_pkcs1_der().map_err(call_error)?;
    let pkcs8 = private.to_pkcs8_der().map_err(call_error)?;
    let pair =
        KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.as_bytes().into(), &rcgen::PKCS_RSA_SHA256)
            .map_err(call_error)?;
    Ok(Key {
        pem: pem_block("RSA PRIVATE KEY", pkcs1.as_bytes()),
        pair,
    })
}

/// The OID of the P-256 curve, as DER (`06 08 ...`).
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// An ECDSA P-256 or Ed25519 key, made by ring (through rcgen).
fn new_key(alg: &'static rcgen::SignatureAlgorithm) -> Result<Key, FnError> {
    let pair = KeyPair::generate_for(alg).map_err(call_error)?;
    let pkcs8 = pair.serialize_der();
    let pem = if alg == &rcgen::PKCS_ED25519 {
        // Go's PKCS #8 for Ed25519 is version 1: the seed, no public key.
        let seed = ed25519_seed(&pkcs8)?;
        pem_block("PRIVATE KEY", &ed25519_pkcs8_v1(seed))
    } else {
        let (d, public) = ec_parts(&pkcs8)?;
        pem_block("EC PRIVATE KEY", &sec1_p256(d, public))
    };
    Ok(Key { pem, pair })
}

/// DER `tag len content` with a short or one/two-byte long length.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        n @ 0..=127 => out.push(n as u8),
        n @ 128..=255 => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
    out
}

/// SEC 1 `ECPrivateKey` as Go's `MarshalECPrivateKey` writes it: version 1,
/// the private scalar, the curve, the public point.
fn sec1_p256(d: &[u8], public: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x01];
    body.extend(der(0x04, d));
    body.extend(der(0xa0, P256_OID));
    let mut bits = vec![0x00];
    bits.extend_from_slice(public);
    body.extend(der(0xa1, &der(0x03, &bits)));
    der(0x30, &body)
}

/// PKCS #8 version 1 of an Ed25519 seed (RFC 8410), as Go writes it.
fn ed25519_pkcs8_v1(seed: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
    body.extend(der(0x04, &der(0x04, seed)));
    der(0x30, &body)
}

/// The seed of an Ed25519 PKCS #8 key: the octet string in the private key's
/// octet string (`04 22 04 20 <seed>`).
fn ed25519_seed(pkcs8: &[u8]) -> Result<&[u8], FnError> {
    find_after(pkcs8, &[0x04, 0x22, 0x04, 0x20], 32)
        .ok_or_else(|| FnError::Call("unexpected Ed25519 key encoding".into()))
}

/// The private scalar and the public point of a P-256 key, in PKCS #8 or
/// SEC 1 (`04 20 <d>` and `03 42 00 <point>`).
fn ec_parts(der: &[u8]) -> Result<(&[u8], &[u8]), FnError> {
    let d = find_after(der, &[0x02, 0x01, 0x01, 0x04, 0x20], 32);
    let public = find_after(der, &[0x03, 0x42, 0x00], 65);
    d.zip(public)
        .ok_or_else(|| FnError::Call("parsing EC private key from PEM: not a P-256 key".into()))
}

fn find_after<'a>(haystack: &'a [u8], marker: &[u8], len: usize) -> Option<&'a [u8]> {
    let at = haystack.windows(marker.len()).position(|w| w == marker)? + marker.len();
    haystack.get(at..at + len)
}

/// The PKCS #8 form ring reads of a P-256 key: `ECPrivateKey` without the
/// curve, which the algorithm identifier names.
fn p256_pkcs8(d: &[u8], public: &[u8]) -> Vec<u8> {
    let mut inner = vec![0x02, 0x01, 0x01];
    inner.extend(der(0x04, d));
    let mut bits = vec![0x00];
    bits.extend_from_slice(public);
    inner.extend(der(0xa1, &der(0x03, &bits)));
    let mut alg = der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]);
    alg.extend_from_slice(P256_OID);
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend(der(0x30, &alg));
    body.extend(der(0x04, &der(0x30, &inner)));
    der(0x30, &body)
}

/// Sprig's `parsePrivateKeyPEM`, for the keys `genPrivateKey` makes.
fn parse_key(text: &str) -> Result<Key, FnError> {
    let block = pem::parse(text)
        .map_err(|_| FnError::Call("parsing private key: no PEM data in input".into()))?;
    let der = block.contents();
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        FnError::Call(format!("parsing private key: {what}: {e}"))
    };
    match block.tag() {
        "RSA PRIVATE KEY" => {
            let private = rsa::RsaPrivateKey::from_pkcs1_der(der)
                .map_err(|e| fail("parsing RSA private key from PEM", &e))?;
            rsa_key(&private)
        }
        "EC PRIVATE KEY" => {
            let (d, public) = ec_parts(der)?;
            let pkcs8 = p256_pkcs8(d, public);
            let pair = KeyPair::from_pkcs8_der_and_sign_algo(
                &pkcs8.as_slice().into(),
                &rcgen::PKCS_ECDSA_P256_SHA256,
            )
            .map_err(|e| fail("parsing EC private key from PEM", &e))?;
            Ok(Key {
                pem: pem_block("EC PRIVATE KEY", &sec1_p256(d, public)),
                pair,
            })
        }
        "PRIVATE KEY" => {
            let pair = KeyPair::try_from(der).map_err(|e| fail("decoding PEM as PKCS#8", &e))?;
            let pem = if pair.algorithm() == &rcgen::PKCS_ED25519 {
                pem_block("PRIVATE KEY", &ed25519_pkcs8_v1(ed25519_seed(der)?))
            } else {
                pem_block("PRIVATE KEY", der)
            };
            Ok(Key { pem, pair })
        }
        other if other.ends_with(" PRIVATE KEY") => Err(FnError::Call(format!(
            "parsing private key: invalid private key type {other}"
        ))),
        other => Err(FnError::Call(format!(
            "parsing private key: no private key data in PEM block of type {other}"
        ))),
    }
}

/// The strings of a `[]interface{}` argument (nil: none).
fn strings_of<'a>(v: &'a Value, what: &str) -> Result<Vec<&'a str>, FnError> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::List(items) => items
            .iter()
            .map(|i| {
                i.as_str().ok_or_else(|| {
                    let shown = crate::render::gofmt::to_v(&Default::default(), i);
                    FnError::Call(format!("{what}: {shown} is not a string"))
                })
            })
            .collect(),
        _ => Err(FnError::Call(format!("{what}: not a list"))),
    }
}

/// Sprig's `getBaseCertTemplate`, with `is_ca` for `genCA`.
fn params(
    cn: &Value,
    ips: &Value,
    dns: &Value,
    days: &Value,
    is_ca: bool,
) -> Result<CertificateParams, FnError> {
    let mut p = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, str_arg(cn));
    p.distinguished_name = name;
    for ip in strings_of(ips, "error parsing ip")? {
        let addr = ip
            .parse::<std::net::IpAddr>()
            .map_err(|_| FnError::Call(format!("error parsing ip: {ip}")))?;
        p.subject_alt_names.push(SanType::IpAddress(addr));
    }
    for name in strings_of(dns, "error processing alternate dns name")? {
        let name = name.try_into().map_err(call_error)?;
        p.subject_alt_names.push(SanType::DnsName(name));
    }
    let mut serial = [0u8; 17];
    getrandom::fill(&mut serial[1..]).map_err(call_error)?;
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now;
    p.not_after = now + time::Duration::days(int_arg(days));
    p.key_usages = vec![
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::DigitalSignature,
    ];
    if is_ca {
        p.key_usages.push(KeyUsagePurpose::KeyCertSign);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    } else {
        p.is_ca = IsCa::ExplicitNoCa;
    }
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    Ok(p)
}

/// Sprig's `certificate{Cert, Key}`.
fn certificate_value(cert: &str, key: &str) -> Value {
    map_value(
        [(Arc::from("Cert"), s(cert)), (Arc::from("Key"), s(key))]
            .into_iter()
            .collect(),
    )
}

/// A certificate for `key` with `params`, self-signed, or signed by `issuer`.
fn certificate_of(
    params: CertificateParams,
    key: Key,
    issuer: Option<&Issuer<'_, KeyPair>>,
) -> FnResult {
    let cert = match issuer {
        None => params.self_signed(&key.pair),
        Some(issuer) => params.signed_by(&key.pair, issuer),
    }
    .map_err(|e| FnError::Call(format!("error creating certificate: {e}")))?;
    Ok(certificate_value(
        &cert.pem().replace("\r\n", "\n"),
        &key.pem,
    ))
}

fn self_signed(a: &[Value], key: Key) -> FnResult {
    certificate_of(params(&a[0], &a[1], &a[2], &a[3], false)?, key, None)
}

/// `genSignedCert` (a new RSA key) and `genSignedCertWithKey`: the CA is
/// Sprig's `certificate` (a map with `Cert` and `Key`).
fn signed(a: &[Value], key: Option<&str>) -> FnResult {
    let field = |name: &str| match &a[4] {
        Value::Map(m) => m.get(name).and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    let (Some(ca_cert), Some(ca_key)) = (field("Cert"), field("Key")) else {
        return Err(FnError::Call("unable to decode certificate".into()));
    };
    let signer = parse_key(&ca_key).map_err(|e| match e {
        FnError::Call(m) => FnError::Call(format!(
            "error parsing private key: {}",
            m.trim_start_matches("parsing private key: ")
        )),
        other => other,
    })?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert, signer.pair).map_err(|e| {
        FnError::Call(format!(
            "error parsing certificate: decodedSignerCert.Bytes: {e}"
        ))
    })?;
    let key = match key {
        Some(text) => parse_key(text)?,
        None => new_rsa_key(2048)?,
    };
    certificate_of(
        params(&a[0], &a[1], &a[2], &a[3], false)?,
        key,
        Some(&issuer),
    )
}
