//! Rendering tests by function family. The expected texts are what Helm
//! v4.2 renders for the same templates (checked with helm-python-sdk; the
//! error texts there are Helm's but for the layout of execution errors, and
//! `now`, which Helm renders and this renderer refuses). tests/helm_diff.rs
//! checks whole charts against Helm itself.

use std::path::Path;

use serde_json::json;

use super::{Capabilities, ReleaseInfo, RenderErrorKind, render};
use crate::Chart;

/// Renders `template` (as `t/templates/x.txt`) with `values`, offline.
fn try_render(template: &str, values: serde_json::Value) -> Result<String, super::RenderError> {
    try_render_with(template, values, std::sync::Arc::new(super::Offline))
}

/// [`try_render`] with `lookup` reading a cluster.
fn try_render_with(
    template: &str,
    values: serde_json::Value,
    lookup: std::sync::Arc<dyn super::Lookup>,
) -> Result<String, super::RenderError> {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "Chart.yaml",
        "apiVersion: v2\nname: t\nversion: 1.0.0\nappVersion: \"2.0\"\n",
    );
    write("templates/x.txt", template);
    write(
        "templates/_helpers.tpl",
        "{{ define \"t.greet\" }}hi {{ . }}{{ end }}{{ define \"t.outer\" }}<{{ include \"t.greet\" . }}>{{ end }}",
    );
    write("files/a.conf", "k=v\n");
    let chart = Chart::load(Path::new(dir.path())).unwrap();
    let release = ReleaseInfo {
        name: "rel".into(),
        namespace: "ns".into(),
        revision: 2,
        is_install: false,
        is_upgrade: true,
    };
    let out = render(&chart, &values, &release, &Capabilities::default(), lookup)?;
    Ok(out["t/templates/x.txt"].clone())
}

fn r(template: &str) -> String {
    try_render(template, json!({})).unwrap_or_else(|e| panic!("{template}: {e}"))
}

fn rv(template: &str, values: serde_json::Value) -> String {
    try_render(template, values).unwrap_or_else(|e| panic!("{template}: {e}"))
}

#[test]
fn strings() {
    assert_eq!(
        r(
            r#"{{ trim "  a  " }}|{{ trimAll "!" "!!hi!!" }}|{{ "file.yaml" | trimSuffix ".yaml" }}|{{ upper "ab" }}|{{ title "hello world" }}"#
        ),
        "a|hi|file|AB|Hello World"
    );
    assert_eq!(
        r(
            r#"{{ trunc 5 "abcdefgh" }}|{{ trunc -3 "abcdefgh" }}|{{ substr 1 4 "abcdef" }}|{{ repeat 3 "ab" }}|{{ nospace " a b " }}"#
        ),
        "abcde|fgh|bcd|ababab|ab"
    );
    assert_eq!(
        r(
            r#"{{ quote "a\"b" 1 nil }}|{{ squote "x" }}|{{ cat "a" 1 nil }}|{{ indent 2 "a\nb" }}|{{ replace "a" "-" "banana" }}"#
        ),
        "\"a\\\"b\" \"1\"|'x'|a 1|  a\n  b|b-n-n-"
    );
    assert_eq!(
        r(
            r#"{{ join "," (list "a" 1 2.5) }}|{{ splitList "," "a,,b" }}|{{ split "," "a,b" }}|{{ sortAlpha (list "b" "a") }}"#
        ),
        "a,1,2.5|[a  b]|map[_0:a _1:b]|[a b]"
    );
    assert_eq!(
        r(
            r#"{{ b64enc "hello" }}|{{ b64dec "aGVsbG8=" }}|{{ sha256sum "hello" | trunc 8 }}|{{ contains "ell" "hello" }}"#
        ),
        "aGVsbG8=|hello|2cf24dba|true"
    );
}

#[test]
fn printing_follows_go() {
    assert_eq!(
        rv(
            "{{ .Values.f }} {{ .Values.big }} {{ .Values.small }} {{ .Values.m }} {{ .Values.l }}",
            json!({"f": 1.5, "big": 1000000, "small": 0.00001, "m": {"b": 1, "a": [1, "x"]}, "l": [1, null]})
        ),
        "1.5 1e+06 1e-05 map[a:[1 x] b:1] [1 <nil>]"
    );
    assert_eq!(
        rv(
            r#"{{ printf "%d %s %v %05.1f %q" 3 "s" .Values.f 2.25 "x" }}|{{ printf "%d" .Values.f }}"#,
            json!({"f": 1.0})
        ),
        "3 s 1 002.2 \"x\"|%!d(float64=1)"
    );
    assert_eq!(
        r("{{ .missing }}|{{ print 1 2 \"a\" }}|{{ toString 3 }}"),
        "|1 2a|3"
    );
}

#[test]
fn lists() {
    assert_eq!(
        r(
            r#"{{ first (list 1 2) }}|{{ last (list 1 2) }}|{{ rest (list 1 2 3) }}|{{ initial (list 1 2 3) }}|{{ append (list 1) 2 }}|{{ prepend (list 1) 0 }}"#
        ),
        "1|2|[2 3]|[1 2]|[1 2]|[0 1]"
    );
    assert_eq!(
        r(
            r#"{{ uniq (list 1 1 2) }}|{{ without (list 1 2 3) 2 }}|{{ has 2 (list 1 2) }}|{{ compact (list "" 0 "x") }}|{{ concat (list 1) (list 2) }}|{{ reverse (list 1 2) }}"#
        ),
        "[1 2]|[1 3]|true|[x]|[1 2]|[2 1]"
    );
    assert_eq!(
        r(
            r#"{{ until 3 }}|{{ untilStep 0 10 4 }}|{{ seq 3 }}|{{ slice (list 1 2 3) 1 }}|{{ chunk 2 (list 1 2 3) }}"#
        ),
        "[0 1 2]|[0 4 8]|1 2 3|[2 3]|[[1 2] [3]]"
    );
    assert_eq!(
        rv(r#"{{ has 1 .Values.l }}"#, json!({"l": [1]})),
        "false",
        "a float64 is not an int, as in Go"
    );
}

#[test]
fn dicts_are_shared_references() {
    assert_eq!(
        r(
            r#"{{ $d := dict "a" 1 }}{{ $_ := set $d "b" 2 }}{{ $d }}|{{ $_ := unset $d "a" }}{{ $d }}|{{ hasKey $d "b" }}|{{ get $d "zz" }}|{{ keys (dict "y" 1 "x" 2) | sortAlpha }}"#
        ),
        "map[a:1 b:2]|map[b:2]|true||[x y]"
    );
    assert_eq!(
        r(
            r#"{{ $o := dict "i" (dict) }}{{ $i := $o.i }}{{ $_ := set $i "k" "v" }}{{ toJson $o }}"#
        ),
        r#"{"i":{"k":"v"}}"#
    );
    assert_eq!(
        r(
            r#"{{ $m := dict "a" (dict "x" 1 "y" "") "k" "" }}{{ $_ := merge $m (dict "a" (dict "y" "f" "z" 3) "k" "s") }}{{ toJson $m }}"#
        ),
        r#"{"a":{"x":1,"y":"f","z":3},"k":"s"}"#
    );
    assert_eq!(
        r(
            r#"{{ $o := dict "a" 1 }}{{ $_ := mergeOverwrite $o (dict "a" 2) }}{{ $o.a }}|{{ pluck "a" (dict "a" 1) (dict "b" 2) }}|{{ dig "a" "b" "d" (dict "a" (dict "b" "x")) }}"#
        ),
        "2|[1]|x"
    );
}

#[test]
fn math() {
    assert_eq!(
        r(
            r#"{{ add 1 2 "3" }}|{{ sub 5 7 }}|{{ mul 2 3 }}|{{ div 7 2 }}|{{ mod 7 2 }}|{{ max 1 5 }}|{{ min 4 2 }}|{{ add1 1.9 }}"#
        ),
        "6|-2|6|3|1|5|2|2"
    );
    assert_eq!(
        r(
            r#"{{ addf 0.1 0.2 }}|{{ divf 10 4 }}|{{ floor 1.7 }}|{{ ceil 1.2 }}|{{ round 2.345 2 }}|{{ int "12" }}|{{ int "3.7" }}|{{ float64 "1.5" }}|{{ atoi "x" }}"#
        ),
        "0.3|2.5|1|2|2.35|12|0|1.5|0"
    );
}

#[test]
fn regex_and_semver() {
    assert_eq!(
        r(
            r#"{{ regexMatch "^a" "abc" }}|{{ regexFind "[0-9]+" "a12b3" }}|{{ regexFindAll "[0-9]" "a1b2" -1 }}|{{ regexReplaceAll "a(x*)b" "-axxb-" "${1}W" }}|{{ regexSplit "," "a,b" -1 }}"#
        ),
        "true|12|[1 2]|-xxW-|[a b]"
    );
    assert_eq!(
        r(
            r#"{{ semverCompare ">=1.20.0-0" .Capabilities.KubeVersion.Version }}|{{ semverCompare "^1.2" "2.0.0" }}|{{ (semver "1.2.3-rc.1").Prerelease }}|{{ semver "v2" }}"#
        ),
        "true|false|rc.1|2.0.0"
    );
}

#[test]
fn types_and_defaults() {
    assert_eq!(
        rv(
            r#"{{ default "d" .Values.e }}|{{ .Values.missing | default "p" }}|{{ empty 0 }}|{{ coalesce "" 0 "x" }}|{{ ternary "y" "n" false }}"#,
            json!({"e": ""})
        ),
        "d|p|true|x|n"
    );
    assert_eq!(
        rv(
            r#"{{ typeOf .Values.f }}|{{ kindOf .Values.m }}|{{ typeOf (splitList "," "a") }}|{{ kindIs "slice" (list) }}|{{ deepEqual 1 1.0 }}"#,
            json!({"f": 1, "m": {}})
        ),
        "float64|map|[]string|true|false"
    );
}

#[test]
fn encodings() {
    assert_eq!(
        rv(
            "{{ toJson .Values }}|{{ toRawJson (dict \"h\" \"<b>\") }}",
            json!({"b": [1, 2.5], "a": "<x>"})
        ),
        r#"{"a":"\u003cx\u003e","b":[1,2.5]}|{"h":"<b>"}"#
    );
    assert_eq!(
        rv(
            "{{ toYaml .Values }}",
            json!({"b": {"c": ["x", ""]}, "a": "yes", "n": 1e21, "s": "a: b"})
        ),
        "a: \"yes\"\nb:\n  c:\n  - x\n  - \"\"\n\"n\": 1e+21\ns: 'a: b'"
    );
    assert_eq!(
        r(
            r#"{{ (fromYaml "a: yes\nb: 1").a }}|{{ (fromYaml "b: 1").b | typeOf }}|{{ fromYaml "- 1" }}|{{ (fromJson "{\"a\": 1}").a }}"#
        ),
        "true|float64|map[Error:error unmarshaling JSON: while decoding JSON: json: cannot unmarshal array into Go value of type map[string]interface {}]|1"
    );
}

#[test]
fn include_tpl_and_objects() {
    assert_eq!(
        r(
            r#"{{ include "t.outer" "x" }}|{{ template "t.greet" "y" }}|{{ tpl "{{ .Release.Name }}-{{ .Values.n }}" . }}|{{ tpl "{{ include \"t.greet\" 1 }}" . }}"#
        ),
        "<hi x>|hi y|rel-|hi 1"
    );
    assert_eq!(
        r(
            "{{ .Release.Revision }} {{ .Release.IsUpgrade }} {{ .Chart.AppVersion }} {{ .Template.Name }} {{ .Template.BasePath }}"
        ),
        "2 true 2.0 t/templates/x.txt t/templates"
    );
    assert_eq!(
        r(
            r#"{{ .Capabilities.KubeVersion }} {{ .Capabilities.KubeVersion.Minor }} {{ .Capabilities.APIVersions.Has "apps/v1" }} {{ .Files.Get "files/a.conf" | trim }} {{ range $k, $_ := .Files.Glob "files/*" }}{{ $k }}{{ end }}"#
        ),
        "v1.36.0 36 true k=v files/a.conf"
    );
}

#[test]
fn control_flow() {
    assert_eq!(
        rv(
            "{{ range $k, $v := .Values.m }}{{ $k }}={{ $v }};{{ end }}{{ range 2 }}{{ . }}{{ end }}{{ range .Values.none }}x{{ else }}empty{{ end }}",
            json!({"m": {"b": 2, "a": 1}})
        ),
        "a=1;b=2;01empty"
    );
    assert_eq!(
        r(
            "{{ $x := 1 }}{{ range list 1 2 }}{{ $x = . }}{{ end }}{{ $x }}|{{ and 0 .no.such }}|{{ or 1 .no.such }}|  {{- \"t\" -}}  |"
        ),
        "2|0|1|t|"
    );
}

#[test]
fn errors_name_file_line_and_column() {
    let e = try_render(
        "line1\n  b: {{ required \"x is required\" .Values.x }}",
        json!({}),
    )
    .unwrap_err();
    assert_eq!(
        (e.template.as_str(), e.line, e.column, e.kind),
        ("t/templates/x.txt", Some(2), Some(8), RenderErrorKind::Fail)
    );
    assert_eq!(
        e.to_string(),
        "execution error at (t/templates/x.txt:2:8): x is required"
    );

    let e = try_render("{{ .Values.a.b }}", json!({})).unwrap_err();
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (Some(1), Some(10), "nil pointer evaluating interface {}.b")
    );

    let e = try_render("a\n{{ nosuch 1 }}", json!({})).unwrap_err();
    assert_eq!((e.kind, e.line), (RenderErrorKind::Parse, Some(2)));
    assert_eq!(
        e.to_string(),
        "parse error at (t/templates/x.txt:2): function \"nosuch\" not defined"
    );

    let e = try_render("{{ upper 1 }}", json!({})).unwrap_err();
    assert_eq!(e.message, "expected string; found 1");

    let e = try_render("{{ now }}", json!({})).unwrap_err();
    assert!(e.message.contains("\"now\" is not supported"), "{e}");

    let e = try_render(
        "x\n{{ include \"t.loop\" . }}{{ define \"t.loop\" }}{{ include \"t.loop\" . }}{{ end }}",
        json!({}),
    )
    .unwrap_err();
    assert_eq!(e.line, Some(2));
    assert!(e.message.contains("nested reference name: t.loop"), "{e}");
}

#[test]
fn deep_recursion_fails_instead_of_overflowing_the_stack() {
    // Two templates including each other, each level deeply nested: Helm's
    // per-name limit (or the stack budget) stops it with an error.
    let nest = "{{ if true }}".repeat(40) + "{{ include \"t.b\" . }}" + &"{{ end }}".repeat(40);
    let template = [
        "{{ define \"t.a\" }}",
        &nest,
        "{{ end }}{{ define \"t.b\" }}{{ include \"t.a\" . }}{{ end }}{{ include \"t.a\" . }}",
    ]
    .concat();
    let e = try_render(&template, json!({})).unwrap_err();
    assert!(e.message.contains("nested reference name"), "{e}");
}

#[test]
fn default_capabilities_offer_the_kinds_charts_use() {
    use k8s_openapi::Resource;
    let caps = Capabilities::default();
    for gv in [
        k8s_openapi::api::apps::v1::Deployment::API_VERSION,
        k8s_openapi::api::core::v1::Service::API_VERSION,
        k8s_openapi::api::networking::v1::Ingress::API_VERSION,
        k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler::API_VERSION,
        k8s_openapi::api::policy::v1::PodDisruptionBudget::API_VERSION,
        k8s_openapi::api::batch::v1::CronJob::API_VERSION,
        k8s_openapi::api::rbac::v1::Role::API_VERSION,
        k8s_openapi::api::storage::v1::StorageClass::API_VERSION,
        k8s_openapi::api::discovery::v1::EndpointSlice::API_VERSION,
    ] {
        assert!(
            caps.api_versions.iter().any(|v| v == gv),
            "{gv} missing from the default capabilities"
        );
    }
    assert_eq!(caps.kube_version.version(), "v1.36.0");
}

/// Renders `template` within `budget`, with a self-recursive define.
fn render_budgeted(
    template: &str,
    budget: super::RenderBudget,
) -> (Result<String, super::RenderError>, std::time::Duration) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Chart.yaml"),
        "apiVersion: v2\nname: t\nversion: 1.0.0\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::fs::write(dir.path().join("templates/x.txt"), template).unwrap();
    std::fs::write(
        dir.path().join("templates/_boom.tpl"),
        "{{ define \"t.boom\" }}{{ if gt (int .) 0 }}{{ include \"t.boom\" (sub (int .) 1) }}{{ include \"t.boom\" (sub (int .) 1) }}{{ end }}{{ end }}",
    )
    .unwrap();
    let chart = Chart::load(dir.path()).unwrap();
    let release = ReleaseInfo {
        name: "rel".into(),
        namespace: "ns".into(),
        revision: 1,
        is_install: true,
        is_upgrade: false,
    };
    let started = std::time::Instant::now();
    let out = super::render_within(
        &chart,
        &json!({}),
        &release,
        &Capabilities::default(),
        std::sync::Arc::new(super::Offline),
        budget,
    )
    .map(|mut m| m.remove("t/templates/x.txt").unwrap_or_default());
    (out, started.elapsed())
}

#[test]
fn a_chart_that_would_render_for_ever_or_explode_is_stopped_where_it_was() {
    let budget = super::RenderBudget {
        timeout: std::time::Duration::from_millis(500),
        max_output_bytes: 1 << 20,
    };
    let cases = [
        // Exponential recursion through include: time.
        (
            "{{ include \"t.boom\" 40 }}",
            "longer than the render budget of 500ms",
            1,
        ),
        // Text alone, printed by nested loops: output.
        (
            "a\n{{ range until 100000 }}{{ range until 100000 }}xxxxxxxxxx{{ end }}{{ end }}",
            "the chart's output grew past the render budget of 1 MiB",
            2,
        ),
        // Printed values: output.
        (
            "{{ range until 2000 }}\n{{ range until 2000 }}{{ . }}{{ end }}{{ end }}",
            "the chart's output grew past the render budget of 1 MiB",
            2,
        ),
        // A string that doubles: one value.
        (
            "{{ $s := \"x\" }}\n\n{{ range until 64 }}{{ $s = cat $s $s }}{{ end }}{{ len $s }}",
            "a value the template built grew past the render budget of 1 MiB",
            3,
        ),
    ];
    for (template, message, line) in cases {
        let (out, took) = render_budgeted(template, budget);
        let e = out.expect_err(template);
        assert!(e.to_string().contains(message), "{template}: {e}");
        assert_eq!(e.template, "t/templates/x.txt", "{template}: {e}");
        if line > 1 {
            assert_eq!(e.line, Some(line), "{template}: {e}");
        }
        assert!(
            took < std::time::Duration::from_secs(5),
            "{template}: took {took:?}"
        );
    }
    // The same templates with less to do render within the same budget.
    let (out, _) = render_budgeted(
        "{{ include \"t.boom\" 5 }}{{ range until 100 }}x{{ end }}",
        budget,
    );
    assert_eq!(out.unwrap(), "x".repeat(100));
}

/// A cluster whose namespace `ns` holds the Secret `db` (password `kept`),
/// and where reading ConfigMaps fails.
struct OneSecret;

impl super::Lookup for OneSecret {
    fn lookup(
        &self,
        q: &super::lookup::Query<'_>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "ns", "generation": 2},
            "data": {"password": "a2VwdA=="}});
        let found = match (q.api_version, q.kind, q.namespace, q.name) {
            (_, "ConfigMap", _, _) => return Err("configmaps is forbidden".into()),
            ("v1", "Secret", "ns", "db") => secret,
            ("v1", "Secret", "ns", "") => json!({"apiVersion": "v1", "kind": "SecretList",
                "metadata": {"resourceVersion": "7"}, "items": [secret]}),
            _ => json!({}),
        };
        Ok(found.as_object().cloned().unwrap_or_default())
    }
}

/// The pattern charts use to keep a generated password across upgrades.
const KEEP_OR_GENERATE: &str = r#"{{- $s := lookup "v1" "Secret" .Release.Namespace "db" -}}
{{- if $s }}{{ index $s.data "password" | b64dec }}{{ else }}{{ randAlphaNum 24 }}{{ end }}"#;

#[test]
fn lookup_reads_what_the_render_is_given() {
    let cluster = || std::sync::Arc::new(OneSecret) as std::sync::Arc<dyn super::Lookup>;
    assert_eq!(
        try_render_with(KEEP_OR_GENERATE, json!({}), cluster()).unwrap(),
        "kept"
    );
    let fresh = try_render(KEEP_OR_GENERATE, json!({})).unwrap();
    assert_eq!(fresh.len(), 24);
    assert!(fresh.chars().all(|c| c.is_ascii_alphanumeric()), "{fresh}");
    assert_ne!(fresh, try_render(KEEP_OR_GENERATE, json!({})).unwrap());

    // A list, numbers, and a lookup elsewhere finding nothing.
    let t = r#"{{ (lookup "v1" "Secret" "ns" "").items | len }} {{ (lookup "v1" "Secret" "ns" "").kind }} {{ (lookup "v1" "Secret" "ns" "db").metadata.generation | add1 }} {{ lookup "v1" "Secret" "other" "db" | len }}"#;
    assert_eq!(
        try_render_with(t, json!({}), cluster()).unwrap(),
        "1 SecretList 3 0"
    );
    // Offline (`helm template`): an empty map, whatever is asked.
    assert_eq!(
        r(
            r#"{{ lookup "v1" "Secret" "ns" "db" | len }} {{ lookup "v1" "Secret" "" "" | kindOf }}"#
        ),
        "0 map"
    );

    let e = try_render_with(
        r#"{{ lookup "v1" "ConfigMap" "ns" "c" }}"#,
        json!({}),
        cluster(),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("error calling lookup: configmaps is forbidden"),
        "{e}"
    );
}

#[test]
fn random_functions_render_sprig_shapes() {
    let t = "{{ randAlphaNum 12 | len }} {{ randAlpha 3 | len }} {{ randNumeric 0 }}|{{ randAscii 5 | len }} {{ randInt 3 4 }} {{ uuidv4 | len }} {{ randBytes 6 | len }} {{ shuffle \"aab\" | len }}";
    assert_eq!(r(t), "12 3 |5 3 36 8 3");
    let digits = r("{{ randNumeric 40 }}");
    assert!(digits.len() == 40 && digits.bytes().all(|b| b.is_ascii_digit()));
    let letters = r("{{ randAlpha 40 }}");
    assert!(letters.len() == 40 && letters.bytes().all(|b| b.is_ascii_alphabetic()));
    let mut sorted: Vec<char> = r("{{ shuffle \"hello\" }}").chars().collect();
    sorted.sort_unstable();
    assert_eq!(sorted.into_iter().collect::<String>(), "ehllo");
    // Go's panics, as template errors.
    let e = try_render("{{ randInt 5 5 }}", json!({})).unwrap_err();
    assert!(e.message.contains("invalid argument to Intn"), "{e}");
    // Go's types: a float is not an int.
    let e = try_render("{{ randAlphaNum 2.5 }}", json!({})).unwrap_err();
    assert_eq!(e.message, "expected integer; found 2.5");
}

/// A PEM certificate, parsed (its DER kept alive by the caller).
fn cert_der(pem_text: &str) -> Vec<u8> {
    let block = ::pem::parse(pem_text).unwrap();
    assert_eq!(block.tag(), "CERTIFICATE");
    block.contents().to_vec()
}

#[test]
fn certificates_are_sprigs() {
    use x509_parser::prelude::*;
    let out = r(r#"{{- $ca := genCA "tenant-ca" 365 -}}
{{- $cert := genSignedCert "svc" (list "10.0.0.1" "::1") (list "svc.ns.svc" "svc") 30 $ca -}}
{{- $self := genSelfSignedCert "self" nil (list "a.example") 2 -}}
{{- dict "ca" $ca.Cert "caKey" $ca.Key "cert" $cert.Cert "key" $cert.Key "self" $self.Cert | toJson }}"#);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let text = |k: &str| v[k].as_str().unwrap().to_owned();
    assert!(text("caKey").starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
    assert!(text("key").starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
    assert!(text("ca").ends_with("-----END CERTIFICATE-----\n"));

    let (ca_der, cert_der_, self_der) = (
        cert_der(&text("ca")),
        cert_der(&text("cert")),
        cert_der(&text("self")),
    );
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    let (_, cert) = X509Certificate::from_der(&cert_der_).unwrap();
    let (_, own) = X509Certificate::from_der(&self_der).unwrap();
    let cn = |c: &X509Certificate<'_>| {
        c.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(cn(&ca), "tenant-ca");
    assert_eq!(cn(&cert), "svc");
    assert_eq!(cert.issuer(), ca.subject());
    assert!(ca.is_ca() && !cert.is_ca() && !own.is_ca());
    // The CA signs the certificate; the CA and the self-signed one sign themselves.
    cert.verify_signature(Some(ca.public_key())).unwrap();
    ca.verify_signature(None).unwrap();
    own.verify_signature(None).unwrap();
    // Validity: daysValid days from now.
    let days = |c: &X509Certificate<'_>| {
        let v = c.validity();
        (v.not_after.timestamp() - v.not_before.timestamp()) / 86_400
    };
    assert_eq!((days(&ca), days(&cert), days(&own)), (365, 30, 2));
    // The SANs given, IPs and DNS names.
    let sans = cert.subject_alternative_name().unwrap().unwrap();
    let names: Vec<String> = sans
        .value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => d.to_string(),
            GeneralName::IPAddress(ip) => format!("ip:{}", ip.len()),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(names, ["ip:4", "ip:16", "svc.ns.svc", "svc"]);
    let usage = cert.key_usage().unwrap().unwrap().value;
    assert!(usage.digital_signature() && usage.key_encipherment() && !usage.key_cert_sign());
    assert!(ca.key_usage().unwrap().unwrap().value.key_cert_sign());
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    // A serial below 2^128, positive.
    assert!(cert.raw_serial().len() <= 17 && cert.serial.bits() <= 128);
    assert_ne!(cert.raw_serial(), ca.raw_serial());
}

#[test]
fn private_keys_are_sprigs_and_sign_certificates() {
    use x509_parser::prelude::*;
    let ec = r(r#"{{ genPrivateKey "ecdsa" }}"#);
    assert!(ec.starts_with("-----BEGIN EC PRIVATE KEY-----\n"), "{ec}");
    let ec_der = ::pem::parse(&ec).unwrap().contents().to_vec();
    // SEC 1 with the P-256 curve, as Go's MarshalECPrivateKey.
    assert_eq!(ec_der.len(), 121);
    assert!(
        ec_der
            .windows(8)
            .any(|w| w == [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07])
    );
    let ed = r(r#"{{ genPrivateKey "ed25519" }}"#);
    assert!(ed.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{ed}");
    // PKCS #8 version 1: 48 bytes, as Go's MarshalPKCS8PrivateKey.
    assert_eq!(::pem::parse(&ed).unwrap().contents().len(), 48);
    assert_eq!(r(r#"{{ genPrivateKey "nope" }}"#), "Unknown type nope");
    // RSA (the default type): 4096 bits, PKCS #1.
    let rsa = r(r#"{{ genPrivateKey "" }}"#);
    assert!(
        rsa.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"),
        "{rsa}"
    );
    let rsa_der = ::pem::parse(&rsa).unwrap().contents().to_vec();
    assert!((2300..2400).contains(&rsa_der.len()), "{}", rsa_der.len());

    for key in [&ec, &ed, &rsa] {
        let values = json!({ "key": key });
        let out = rv(
            r#"{{- $ca := genCAWithKey "k-ca" 10 .Values.key -}}
{{- $c := genSignedCertWithKey "k" nil nil 5 $ca .Values.key -}}
{{- $s := genSelfSignedCertWithKey "s" nil nil 5 .Values.key -}}
{{- dict "ca" $ca.Cert "caKey" $ca.Key "c" $c.Cert "s" $s.Cert | toJson }}"#,
            values,
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["caKey"],
            key.as_str(),
            "the key given is the key returned"
        );
        let ca_der = cert_der(v["ca"].as_str().unwrap());
        let c_der = cert_der(v["c"].as_str().unwrap());
        let s_der = cert_der(v["s"].as_str().unwrap());
        let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
        let (_, c) = X509Certificate::from_der(&c_der).unwrap();
        let (_, s) = X509Certificate::from_der(&s_der).unwrap();
        ca.verify_signature(None).unwrap();
        c.verify_signature(Some(ca.public_key())).unwrap();
        s.verify_signature(None).unwrap();
        // One key: the certificates share their public key.
        assert_eq!(ca.public_key().raw, c.public_key().raw);
    }

    let e = try_render(
        r#"{{ genSelfSignedCert "x" (list "nope") nil 1 }}"#,
        json!({}),
    )
    .unwrap_err();
    assert!(e.to_string().contains("error parsing ip: nope"), "{e}");
    let e = try_render(r#"{{ genCAWithKey "x" 1 "garbage" }}"#, json!({})).unwrap_err();
    assert!(e.to_string().contains("no PEM data in input"), "{e}");
}
