//! Property: a chart whose templates change maps in place (`set`, `unset`,
//! `merge`, `mergeOverwrite`) and share them (variables, `dict`, `list`,
//! `include`, `tpl`, `.Values` across templates, copies by `deepCopy`)
//! renders the same text every time, in any number of threads at once, and
//! the same text as Helm.
//!
//! The charts are generated from seeds: each template is a random program
//! over *leaf* maps (`$l0`..`$l3`, holding scalars only) and *box* maps
//! (`$c0`..`$c2`, holding leaves under `l*` keys, scalars under `s*` keys
//! and fresh dicts of leaves under `d*` keys). Keeping each kind of key for
//! one kind of value is what keeps every program acyclic (Go's encoders and
//! mergo recurse forever on a map that holds itself) and type-correct,
//! without a model of the semantics under test. Programs print what
//! they built after every few statements.

use std::fmt::Write as _;
use std::path::Path;

/// One generated program: its statements, as template text.
struct Program {
    rng: fastrand::Rng,
    out: String,
}

const LEAVES: usize = 4;
const BOXES: usize = 3;

impl Program {
    fn leaf(&mut self) -> String {
        format!("$l{}", self.rng.usize(..LEAVES))
    }

    fn boxed(&mut self) -> String {
        format!("$c{}", self.rng.usize(..BOXES))
    }

    /// Two leaves or two boxes: what may merge into or copy over the other.
    fn pair(&mut self) -> (String, String) {
        if self.rng.bool() {
            (self.leaf(), self.leaf())
        } else {
            (self.boxed(), self.boxed())
        }
    }

    fn scalar(&mut self) -> String {
        match self.rng.u8(..4) {
            0 => self.rng.i64(-3..20).to_string(),
            1 => format!("\"s{}\"", self.rng.u8(..5)),
            2 => ["true", "false", "\"\"", "0"][self.rng.usize(..4)].to_owned(),
            _ => format!("(len {})", self.leaf()),
        }
    }

    fn leaf_key(&mut self) -> &'static str {
        ["a", "b", "c"][self.rng.usize(..3)]
    }

    fn fresh_dict(&mut self) -> String {
        format!(
            "(dict \"l{}\" {} \"s0\" {})",
            self.rng.usize(..LEAVES),
            self.leaf(),
            self.scalar()
        )
    }

    fn statement(&mut self) {
        let s = match self.rng.u8(..20) {
            0 => {
                let (l, k, v) = (self.leaf(), self.leaf_key(), self.scalar());
                format!("{{{{- $_ := set {l} \"{k}\" {v} }}}}")
            }
            1 => {
                let (l, k) = (self.leaf(), self.leaf_key());
                format!("{{{{- $_ := unset {l} \"{k}\" }}}}")
            }
            2 => {
                let (c, n, l) = (self.boxed(), self.rng.usize(..LEAVES), self.leaf());
                format!("{{{{- $_ := set {c} \"l{n}\" {l} }}}}")
            }
            3 => {
                let (c, n, d) = (self.boxed(), self.rng.u8(..2), self.fresh_dict());
                format!("{{{{- $_ := set {c} \"d{n}\" {d} }}}}")
            }
            4 => {
                let (c, n, v) = (self.boxed(), self.rng.u8(..2), self.scalar());
                format!("{{{{- $_ := set {c} \"s{n}\" {v} }}}}")
            }
            5 => {
                let c = self.boxed();
                let k = match self.rng.u8(..3) {
                    0 => format!("l{}", self.rng.usize(..LEAVES)),
                    1 => format!("d{}", self.rng.u8(..2)),
                    _ => format!("s{}", self.rng.u8(..2)),
                };
                format!("{{{{- $_ := unset {c} \"{k}\" }}}}")
            }
            6 | 7 => {
                let f = ["merge", "mergeOverwrite"][self.rng.usize(..2)];
                let (a, b) = self.pair();
                format!("{{{{- $_ := {f} {a} {b} }}}}")
            }
            8 => {
                let (a, b) = self.pair();
                format!("{{{{- {a} = deepCopy {b} }}}}")
            }
            9 => {
                let (l, k, v) = (self.leaf(), self.leaf_key(), self.scalar());
                format!(
                    "{{{{- $_ := include \"mut.set\" (dict \"t\" {l} \"k\" \"{k}\" \"v\" {v}) }}}}"
                )
            }
            10 => {
                let (a, b, over) = (self.boxed(), self.boxed(), self.rng.bool());
                format!(
                    "{{{{- $_ := include \"mut.merge\" (dict \"dst\" {a} \"src\" {b} \"over\" {over}) }}}}"
                )
            }
            11 => {
                let (l, k, v) = (self.leaf(), self.leaf_key(), self.scalar());
                format!(
                    "{{{{- $_ := tpl \"{{{{ $_ := set .t \\\"{k}\\\" .v }}}}\" (dict \"t\" {l} \"v\" {v}) }}}}"
                )
            }
            12 => {
                // A box held only by a temporary list, then kept.
                let (c, d) = (self.boxed(), self.fresh_dict());
                format!("{{{{- {c} = first (list {d}) }}}}")
            }
            13 => {
                let (l, v) = (self.leaf(), self.scalar());
                format!("{{{{- {l} = dict \"a\" {v} }}}}")
            }
            14 => {
                // Alias a leaf that a box holds.
                let (l, c, n) = (self.leaf(), self.boxed(), self.rng.usize(..LEAVES));
                format!(
                    "{{{{- $x := index {c} \"l{n}\" }}}}{{{{- if kindIs \"map\" $x }}}}{{{{- {l} = $x }}}}{{{{- end }}}}"
                )
            }
            15 => {
                // Alias a leaf inside a dict that a box holds.
                let (l, c, d, n) = (
                    self.leaf(),
                    self.boxed(),
                    self.rng.u8(..2),
                    self.rng.usize(..LEAVES),
                );
                format!(
                    "{{{{- with index {c} \"d{d}\" }}}}{{{{- $x := index . \"l{n}\" }}}}{{{{- if kindIs \"map\" $x }}}}{{{{- {l} = $x }}}}{{{{- end }}}}{{{{- end }}}}"
                )
            }
            16 => {
                let c = self.boxed();
                format!("{{{{- $_ := include \"mut.show\" (dict \"held\" {c}) }}}}")
            }
            _ => {
                self.print();
                return;
            }
        };
        self.out.push_str(&s);
        self.out.push('\n');
    }

    fn print(&mut self) {
        let p = match self.rng.u8(..8) {
            0 => format!("{{{{ toJson {} }}}}", self.boxed()),
            1 => format!("{{{{ toJson {} }}}}", self.leaf()),
            2 => format!("{{{{ include \"mut.show\" {} }}}}", self.boxed()),
            3 => format!("{{{{ keys {} | sortAlpha | join \",\" }}}}", self.boxed()),
            4 => format!(
                "{{{{ if and {} true }}}}t{{{{ else }}}}f{{{{ end }}}}",
                self.leaf()
            ),
            5 => format!(
                "{{{{ range $k, $v := {} }}}}{{{{ $k }}}}={{{{ kindOf $v }}}};{{{{ end }}}}",
                self.boxed()
            ),
            6 => format!(
                "{{{{ {}.l{} | toJson }}}}",
                self.boxed(),
                self.rng.usize(..LEAVES)
            ),
            _ => format!("{{{{ {} }}}}", self.leaf()),
        };
        let _ = writeln!(self.out, "{p}");
    }
}

/// A template program of `statements` statements from `rng`.
fn program(rng: fastrand::Rng, statements: usize) -> String {
    let mut p = Program {
        rng,
        out: String::new(),
    };
    p.out.push_str(
        "{{- $l0 := dict \"a\" 1 }}\n{{- $l1 := dict \"b\" \"x\" }}\n{{- $l2 := .Values.leaf }}\n{{- $l3 := deepCopy .Values.leaf }}\n\
         {{- $c0 := .Values.box }}\n{{- $c1 := dict \"l0\" $l0 \"s0\" 1 }}\n{{- $c2 := dict }}\n{{- $x := dict }}\n",
    );
    for _ in 0..statements {
        p.statement();
    }
    p.print();
    p.out
}

const HELPERS: &str = r#"{{- define "mut.set" -}}
{{- $_ := set .t .k .v -}}
{{- end }}
{{- define "mut.merge" -}}
{{- if .over }}{{ $_ := mergeOverwrite .dst .src }}{{ else }}{{ $_ := merge .dst .src }}{{ end -}}
{{- end }}
{{- define "mut.show" -}}
{{- toJson (dict "held" .) -}}
{{- end }}
"#;

/// Writes the chart of `seed` into `dir`: two templates whose programs
/// share `.Values`.
pub(crate) fn write_chart(seed: u64, dir: &Path) {
    let rng = fastrand::Rng::with_seed(seed);
    let write = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("creates the chart");
        std::fs::write(p, text).expect("writes the chart");
    };
    write(
        "Chart.yaml",
        &format!("apiVersion: v2\nname: generated-{seed}\nversion: 0.1.0\n"),
    );
    write(
        "values.yaml",
        "leaf:\n  a: 5\n  c: values\nbox:\n  s0: from-values\n  l0:\n    a: 7\n",
    );
    write("templates/_helpers.tpl", HELPERS);
    let mut rng = rng;
    for name in ["a.txt", "b.txt"] {
        let text = program(rng.fork(), 40);
        write(&format!("templates/{name}"), &text);
    }
}
