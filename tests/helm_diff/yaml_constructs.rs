//! YAML constructs against Helm v4's own YAML reader (`sigs.k8s.io/yaml`
//! over go-yaml v2, which reads rendered manifests, values and
//! `fromYaml`): each named text of the table is read by Helm (`fromYaml`
//! and `fromYamlArray` in a chart made by tests/helm/render.py's `yaml`
//! mode) and by `helm::parse_yaml_document`, and both must accept it with
//! the same JSON or both refuse it.
//!
//! The table holds what template output is made of (RBAC rules and
//! subjects, indentless sequences, whitespace left by `{{- }}`, comments,
//! block scalars, flow collections, documents) and the constructs where a
//! YAML 1.2 parser and go-yaml part ways: text after the first document
//! (go-yaml never reads it), a block scalar on the line below its key,
//! tabs, `%YAML` directives, NEL and U+2028 as line breaks, alias keys,
//! anchor names, collection keys, `:` and `?` inside flow scalars, tags
//! with `,`, and the escapes `\'` and `\/`.
//!
//! The fixture chart `yaml-constructs` has RBAC and ConfigMap templates
//! whose output holds such constructs: it renders as Helm renders it, and
//! each document of Helm's output is the object Helm's reader makes of it.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{case, fixture, helm, normalise_numbers, request, run_cases};

/// (name, text): one construct each.
const CONSTRUCTS: &[(&str, &str)] = &[
    // RBAC as charts write it.
    (
        "rbac rules, indentless",
        "rules:\n- apiGroups: [\"\"]\n  resources: [\"pods\"]\n  verbs: [\"get\"]\n",
    ),
    (
        "rbac rules, indented",
        "rules:\n  - apiGroups:\n      - \"\"\n    resources:\n      - pods\n    verbs:\n      - get\n",
    ),
    (
        "rbac rules, nested indentless lists",
        "rules:\n- apiGroups:\n  - \"\"\n  resources:\n  - pods\n  verbs:\n  - get\n  - list\n",
    ),
    (
        "rbac subjects and roleRef",
        "subjects:\n- kind: ServiceAccount\n  name: x\n  namespace: y\nroleRef:\n  kind: ClusterRole\n  name: z\n",
    ),
    (
        "rbac rules with trailing comments",
        "rules:\n- apiGroups: [\"\"] # core\n  resources: [pods] # the pods\n  verbs: [get]\n",
    ),
    (
        "sequence items indented more, 4 spaces",
        "rules:\n    - apiGroups: [\"\"]\n      verbs: [\"get\"]\n    - apiGroups: [\"apps\"]\n      verbs: [\"list\"]\n",
    ),
    (
        "sequence item indented less than the first",
        "rules:\n    - apiGroups: [\"\"]\n      verbs: [\"get\"]\n  - apiGroups: [\"apps\"]\n    verbs: [\"list\"]\n",
    ),
    (
        "sequence item indented more than the first",
        "rules:\n  - apiGroups: [\"\"]\n    verbs: [\"get\"]\n    - apiGroups: [\"apps\"]\n",
    ),
    (
        "sequence less indented than its key",
        "x:\n    rules:\n  - a\n",
    ),
    ("sequence entry after a value, deeper", "a: b\n  - c\n"),
    ("sequence entry after a value, same column", "a: b\n- c\n"),
    ("sequence on the key's line", "rules: - a\n"),
    ("sequence after an explicit value", "? a\n: - b\n"),
    ("sequence under an anchor", "rules: &r\n- a\nother: *r\n"),
    ("sequence under a tag", "rules: !!seq\n- a\n"),
    ("empty entries", "a:\n-\n- \n-\n"),
    // What `{{- }}` and `nindent` leave.
    (
        "blank lines between entries",
        "rules:\n\n\n- apiGroups: [\"\"]\n\n  verbs: [\"get\"]\n\n\n",
    ),
    ("trailing spaces", "a: 1   \nb:    \n  - x   \n  - y \n"),
    ("entry joined to the key", "rules:  - apiGroups: [\"\"]\n"),
    (
        "flow sequence on the line below its key",
        "rules:\n- verbs:\n  [\"get\", \"list\"]\n",
    ),
    (
        "block scalar on the line below its key",
        "data:\n  script.sh:\n  |-\n    echo hi\n  other: x\n",
    ),
    (
        "folded scalar on the line below its key",
        "data:\n  a:\n  >\n    x\n",
    ),
    (
        "quoted scalar on the line below its key",
        "metadata:\n  name:\n  \"x\"\n",
    ),
    ("document indented", "  a: 1\n  b: 2\n"),
    // Text after the first document: go-yaml never reads it.
    (
        "indented document then less indented text",
        "  a: 1\nb: 2\n",
    ),
    ("content after a document end marker", "a: 1\n... x\n"),
    ("broken second document", "a: 1\n---\nb: [\n"),
    ("garbage after a document end", "a: 1\n...\n]\n"),
    (
        "plain scalar, comment, more text",
        " get # c\n     rules: ]\n",
    ),
    // Comments.
    ("comment at an odd column", "a:\n  b: 1\n # c\n  c: 2\n"),
    ("comment right after a block scalar header", "a: |#c\n  x\n"),
    ("hash inside plain scalars", "a: b#c\nd: e #f\n"),
    ("comment after the key", "a: # c\n- 1\n"),
    // Tabs.
    ("tab after a dash", "a:\n-\tb\n"),
    ("tab alone on a blank line", "a: 1\n\t\nb: 2\n"),
    ("tab indenting a block scalar line", "a: |\n  \tx\n  y\n"),
    ("tab before the first key", "\ta: 1\n"),
    ("tab after a colon", "a:\t1\n"),
    ("tab inside a flow sequence", "a: [1,\t2]\n"),
    // Block scalars.
    ("block scalar, indentation indicator", "a: |2\n   x\n  y\n"),
    (
        "block scalar, first line more indented",
        "a: |\n    x\n  y\n",
    ),
    ("block scalar, keep", "a: |+\n  x\n\n\nb: 1\n"),
    ("block scalar at the end without a line break", "a: |\n  x"),
    ("block scalar at its key's column", "a: |\nx\nb: 1\n"),
    (
        "folded with more indented lines",
        "a: >\n  x\n\n   y\n  z\n",
    ),
    // Keys and scalars.
    ("keys with colons", "a:b: 1\nhttp://x: 2\n\"c:d\": 3\n"),
    ("plain scalar continued on the next line", "a: b\n  - c\n"),
    (
        "YAML 1.1 scalars",
        "a: yes\nb: on\nc: 0x1F\nd: 0755\ne: 1_000\nf: ~\n",
    ),
    ("duplicate keys", "a: 1\na: 2\n"),
    ("alias as a key, no space", "a: &x k\n*x: 1\n"),
    ("anchor name with a dot", "a: &x-y.z 1\nb: *x-y.z\n"),
    ("anchor name ending in a colon", "a: &x: 1\n"),
    (
        "merge keys",
        "a: &x {p: 1}\nb: &y {q: 2}\nc:\n  <<: [*x, *y]\n  p: 3\n",
    ),
    ("unknown tag", "a: !foo 1\n"),
    ("sequence as a key", "[a]: 1\n"),
    (
        "collection key dropped by a later key",
        "k: {[1]: x}\nk: 2\n",
    ),
    // Flow collections.
    ("flow sequence over lines", "a: [1,\n  2,\n  3]\n"),
    ("flow sequence closed at column 0", "x:\n  a: [\n    1\n]\n"),
    ("colon before a comma in a flow scalar", "a: [x:, y]\n"),
    ("colon before a closing bracket", "a: {x:}\n"),
    ("question mark in a flow scalar", "a: [http://x?a=b]\n"),
    (
        "question mark in a flow mapping value",
        "a: {url: http://x?y=1}\n",
    ),
    ("tag with a comma", "a: !x,y 1\n"),
    ("tag followed by a comma in a flow sequence", "a: [!x, y]\n"),
    // Quoted scalars.
    ("escaped single quote in double quotes", "a: \"it\\'s\"\n"),
    ("escaped slash in double quotes", "a: \"x\\/y\"\n"),
    ("double-quoted over lines", "a: \"x\n  y\n\n  z\"\n"),
    // Documents, directives and line breaks.
    ("document start with content", "--- a: 1\n"),
    ("YAML 1.1 directive", "%YAML 1.1\n---\na: 1\n"),
    ("YAML 1.2 directive", "%YAML 1.2\n---\na: 1\n"),
    ("unknown directive", "%FOO bar\n---\na: 1\n"),
    ("byte order mark", "\u{feff}a: 1\n"),
    ("CRLF line breaks", "a: 1\r\nb:\r\n- x\r\n"),
    ("NEL line break", "a: 1\u{85}b: 2\n"),
    ("U+2028 is a line break", "a: x\u{2028}y\n"),
    ("comments only", "# a\n# b\n"),
    ("empty", ""),
];

/// One reading: `Ok(value)` (an empty document as `{}`, a scalar as
/// `"scalar"`) or `Err(())` for a refusal.
type Reading = Result<Value, ()>;

/// Helm's reading from `fromYaml`'s and `fromYamlArray`'s results.
fn helms(result: &Value) -> Reading {
    let map = &result["map"];
    let error = map
        .as_object()
        .filter(|m| m.len() == 1)
        .and_then(|m| m.get("Error"))
        .and_then(Value::as_str);
    let Some(error) = error else {
        return Ok(normalise_numbers(map));
    };
    let array_failed = result["array"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .is_some_and(|s| s.starts_with("error "));
    if error.contains("cannot unmarshal array") && !array_failed {
        return Ok(normalise_numbers(&result["array"]));
    }
    if error.contains("cannot unmarshal") {
        return Ok(json!("scalar"));
    }
    Err(())
}

fn ours(text: &str) -> Reading {
    match helm::parse_yaml_document(text) {
        Ok(None) => Ok(json!({})),
        Ok(Some(v @ (Value::Object(_) | Value::Array(_)))) => Ok(normalise_numbers(&v)),
        Ok(Some(_)) => Ok(json!("scalar")),
        Err(_) => Err(()),
    }
}

#[test]
fn yaml_constructs_read_as_helm_reads_them() {
    let texts: Vec<&str> = CONSTRUCTS.iter().map(|(_, t)| *t).collect();
    let result = helm(&[json!({"mode": "yaml", "snippets": texts})]);
    let readings = result[0]["ok"]
        .as_array()
        .unwrap_or_else(|| panic!("Helm's yaml mode failed: {}", result[0]));
    assert_eq!(readings.len(), CONSTRUCTS.len());
    let mut diffs = Vec::new();
    let mut refused = 0;
    for ((name, text), theirs) in CONSTRUCTS.iter().zip(readings) {
        let (h, o) = (helms(theirs), ours(text));
        refused += usize::from(h.is_err());
        if h != o {
            diffs.push(format!(
                "{name}: {text:?}\n  helm: {h:?} ({theirs})\n  ours: {o:?} ({:?})",
                helm::parse_yaml_document(text)
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} construct(s) read differently from Helm:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    // The table has both kinds, so that a reader that accepts (or refuses)
    // everything cannot pass.
    assert!(
        refused > 5 && refused < CONSTRUCTS.len() - 5,
        "{refused} refused"
    );
}

#[test]
fn chart_output_with_these_constructs_reads_as_helm_reads_it() {
    let c = case(
        "yaml-constructs",
        &fixture("yaml-constructs"),
        json!({}),
        json!({}),
    );
    run_cases(std::slice::from_ref(&c));
    let rendered = &helm(&[request(&c)])[0];
    let rendered: BTreeMap<String, String> = serde_json::from_value(rendered["ok"].clone())
        .unwrap_or_else(|e| panic!("Helm failed to render the fixture: {rendered} ({e})"));
    let documents = helm::manifest::documents(&rendered).expect("Helm's output reads");
    let texts: Vec<&str> = documents.iter().map(|d| d.text.as_str()).collect();
    assert!(texts.len() >= 3, "{texts:?}");
    let result = helm(&[json!({"mode": "yaml", "snippets": texts})]);
    let readings = result[0]["ok"].as_array().expect("Helm's yaml mode");
    for (d, theirs) in documents.iter().zip(readings) {
        let mine = d.manifest.as_ref().map_or(json!({}), |m| m.object.clone());
        assert_eq!(
            Ok(normalise_numbers(&mine)),
            helms(theirs),
            "{}: {}",
            d.template,
            d.text
        );
    }
}
