//! A chart directory in Helm's layout, read as Helm's loader reads it:
//! `Chart.yaml`, `values.yaml`, `values.schema.json`, `templates/`, every
//! other file for `.Files`, and `.helmignore`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use super::render::goyaml::load;
use super::render::semver;

/// A chart that cannot be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A YAML file does not parse.
    #[error("{path}: line {line}, column {column}: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A file parses but breaks Helm's rules (a missing field, a bad type).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A chart feature this renderer does not support (dependencies).
    #[error("{path}: {message}: tenant-worker renders charts without dependencies")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is not supported.
        message: String,
    },
}

/// A chart maintainer (`maintainers` in `Chart.yaml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintainer {
    /// `name`.
    #[serde(default)]
    pub name: String,
    /// `email`.
    #[serde(default)]
    pub email: String,
    /// `url`.
    #[serde(default)]
    pub url: String,
}

/// `Chart.yaml`, with Helm's field names. Unknown fields are ignored, as
/// Helm ignores them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartMetadata {
    /// `v2` (or `v1`, the Helm 2 format without dependencies).
    pub api_version: String,
    /// `name`: the chart's name (`.Chart.Name`).
    pub name: String,
    /// The chart's semantic version.
    pub version: String,
    /// `appVersion`: the application's version.
    #[serde(default)]
    pub app_version: String,
    /// `description`.
    #[serde(default)]
    pub description: String,
    /// `application` (or empty, which means the same).
    #[serde(default, rename = "type")]
    pub chart_type: String,
    /// `kubeVersion`: a semantic-version constraint on the cluster's
    /// version (see [`crate::check_kube_version`]); empty for any.
    #[serde(default)]
    pub kube_version: String,
    /// `keywords`.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// `home`: the project's home page.
    #[serde(default)]
    pub home: String,
    /// `sources`: where the chart's sources are.
    #[serde(default)]
    pub sources: Vec<String>,
    /// `maintainers`.
    #[serde(default)]
    pub maintainers: Vec<Maintainer>,
    /// `icon`: an image URL.
    #[serde(default)]
    pub icon: String,
    /// `deprecated`.
    #[serde(default)]
    pub deprecated: bool,
    /// `annotations`.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Always empty in a loaded chart: dependencies are refused.
    #[serde(default)]
    pub dependencies: Vec<serde_json::Value>,
}

/// A template file: `name` is `<chart>/templates/<path>`, Helm's
/// `.Template.Name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateFile {
    pub name: String,
    pub source: String,
}

/// A loaded chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// The directory it was loaded from.
    pub dir: PathBuf,
    /// `Chart.yaml`.
    pub metadata: ChartMetadata,
    /// `values.yaml` (an object; `{}` when the file is empty or missing).
    pub values: serde_json::Value,
    /// `values.schema.json`, when the chart has one (a valid JSON Schema).
    pub schema: Option<serde_json::Value>,
    /// `schema`, compiled once: every release checks its values against it.
    validator: Option<Arc<jsonschema::Validator>>,
    /// `values.schema.json` as written, for the release record.
    schema_source: Option<Vec<u8>>,
    pub(crate) templates: Vec<TemplateFile>,
    /// Every other file (not ignored by `.helmignore`), for `.Files`.
    pub(crate) files: BTreeMap<String, Vec<u8>>,
    /// [`Chart::record`], built on first use: every release record holds it.
    record: OnceLock<serde_json::Value>,
}

impl Chart {
    /// The compiled `values.schema.json`, when the chart has one.
    pub fn values_validator(&self) -> Option<&jsonschema::Validator> {
        self.validator.as_deref()
    }

    /// Loads the chart in `dir`.
    ///
    /// # Errors
    /// [`ChartError`] naming the file: unreadable files, YAML or JSON that does
    /// not parse, `Chart.yaml` without `apiVersion`, `name` or a semantic
    /// `version`, a library chart, `values.yaml` that is not a mapping, a schema
    /// that is not a JSON Schema, a template that is not UTF-8, and
    /// dependencies (`charts/`, `dependencies:` or `requirements.yaml`), which
    /// are not supported.
    pub fn load(dir: &Path) -> Result<Chart, ChartError> {
        let chart_yaml = dir.join("Chart.yaml");
        if !chart_yaml.is_file() {
            return Err(ChartError::Invalid {
                path: dir.to_path_buf(),
                message: "not a chart directory: it has no Chart.yaml".into(),
            });
        }
        let ignore_path = dir.join(".helmignore");
        let mut rules = match std::fs::read_to_string(&ignore_path) {
            Ok(text) => Ignore::parse(&text).map_err(|message| ChartError::Invalid {
                path: ignore_path.clone(),
                message,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ignore::default(),
            Err(source) => {
                return Err(ChartError::Read {
                    path: ignore_path,
                    source,
                });
            }
        };
        // Helm's default: hidden files under templates/ are never templates.
        rules
            .add("templates/.?*")
            .map_err(|message| ChartError::Invalid {
                path: ignore_path.clone(),
                message,
            })?;

        let mut found = Vec::new();
        walk(dir, "", &rules, &mut found)?;

        let mut metadata = None;
        let mut values = serde_json::Value::Object(Default::default());
        let mut schema = None;
        let mut validator = None;
        let mut schema_source = None;
        let mut raw_templates = Vec::new();
        let mut files = BTreeMap::new();
        for (rel, data) in found {
            let path = dir.join(&rel);
            match rel.as_str() {
                "Chart.yaml" => metadata = Some(parse_metadata(&path, &data)?),
                "values.yaml" => values = parse_values(&path, &data)?,
                "values.schema.json" => {
                    let (parsed, compiled) = parse_schema(&path, &data)?;
                    schema = Some(parsed);
                    validator = Some(Arc::new(compiled));
                    schema_source = Some(data);
                }
                "requirements.yaml" => {
                    return Err(ChartError::Unsupported {
                        path,
                        message: "requirements.yaml declares dependencies".into(),
                    });
                }
                "Chart.lock" | "requirements.lock" => {}
                r if r.starts_with("templates/") => raw_templates.push((rel.clone(), path, data)),
                r if r.starts_with("charts/") => {
                    return Err(ChartError::Unsupported {
                        path,
                        message: "subcharts under charts/ are not supported".into(),
                    });
                }
                _ => {
                    files.insert(rel, data);
                }
            }
        }
        let metadata = metadata.ok_or_else(|| ChartError::Invalid {
            path: chart_yaml.clone(),
            message: "Chart.yaml is missing".into(),
        })?;
        let mut templates = Vec::new();
        for (rel, path, data) in raw_templates {
            let source = String::from_utf8(data).map_err(|_| ChartError::Invalid {
                path,
                message: "template is not UTF-8 text".into(),
            })?;
            templates.push(TemplateFile {
                name: format!("{}/{rel}", metadata.name),
                source,
            });
        }
        Ok(Chart {
            dir: dir.to_path_buf(),
            metadata,
            values,
            schema,
            validator,
            schema_source,
            templates,
            files,
            record: OnceLock::new(),
        })
    }

    /// The chart as Helm stores it in a release record (`helm.sh/release.v1`):
    /// `metadata` with Helm's JSON names (empty fields omitted), `templates`
    /// and `files` as `{name, data}` with base64 data (template names
    /// relative to the chart, `templates/...`), `values`, `schema` (base64
    /// of `values.schema.json`, or null) and `lock` (null).
    pub fn record(&self) -> serde_json::Value {
        self.record.get_or_init(|| self.build_record()).clone()
    }

    fn build_record(&self) -> serde_json::Value {
        use base64::Engine as _;
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        let prefix = format!("{}/", self.metadata.name);
        let m = &self.metadata;
        let mut md = serde_json::Map::new();
        md.insert("name".into(), m.name.clone().into());
        md.insert("version".into(), m.version.clone().into());
        md.insert("apiVersion".into(), m.api_version.clone().into());
        let optional = [
            ("home", &m.home),
            ("description", &m.description),
            ("icon", &m.icon),
            ("appVersion", &m.app_version),
            ("kubeVersion", &m.kube_version),
            ("type", &m.chart_type),
        ];
        for (k, v) in optional {
            if !v.is_empty() {
                md.insert(k.into(), v.clone().into());
            }
        }
        if !m.sources.is_empty() {
            md.insert("sources".into(), serde_json::json!(m.sources));
        }
        if !m.keywords.is_empty() {
            md.insert("keywords".into(), serde_json::json!(m.keywords));
        }
        if !m.maintainers.is_empty() {
            md.insert(
                "maintainers".into(),
                serde_json::to_value(&m.maintainers).unwrap_or_default(),
            );
        }
        if m.deprecated {
            md.insert("deprecated".into(), true.into());
        }
        if !m.annotations.is_empty() {
            md.insert("annotations".into(), serde_json::json!(m.annotations));
        }
        serde_json::json!({
            "metadata": md,
            "lock": null,
            "templates": self.templates.iter().map(|t| serde_json::json!({
                "name": t.name.strip_prefix(&prefix).unwrap_or(&t.name),
                "data": b64(t.source.as_bytes()),
            })).collect::<Vec<_>>(),
            "values": self.values,
            "schema": self.schema_source.as_deref().map(b64),
            "files": self.files.iter().map(|(name, data)| serde_json::json!({"name": name, "data": b64(data)})).collect::<Vec<_>>(),
        })
    }

    /// The template names (`<chart>/templates/<path>`), partials included.
    pub fn template_names(&self) -> impl Iterator<Item = &str> {
        self.templates.iter().map(|t| t.name.as_str())
    }
}

fn yaml_error(path: &Path, e: load::YamlError) -> ChartError {
    ChartError::Yaml {
        path: path.to_path_buf(),
        line: e.line,
        column: e.column,
        message: e.message,
    }
}

fn yaml_document(path: &Path, data: &[u8]) -> Result<Option<serde_json::Value>, ChartError> {
    let text = std::str::from_utf8(data).map_err(|_| ChartError::Invalid {
        path: path.to_path_buf(),
        message: "not UTF-8 text".into(),
    })?;
    match load::load_first(text).map_err(|e| yaml_error(path, e))? {
        None => Ok(None),
        Some(node) => load::to_json(&node)
            .map(Some)
            .map_err(|message| ChartError::Invalid {
                path: path.to_path_buf(),
                message,
            }),
    }
}

fn parse_metadata(path: &Path, data: &[u8]) -> Result<ChartMetadata, ChartError> {
    let invalid = |message: String| ChartError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let json = yaml_document(path, data)?.ok_or_else(|| invalid("Chart.yaml is empty".into()))?;
    let md: ChartMetadata = serde_path_to_error::deserialize(&json)
        .map_err(|e| invalid(format!("{}: {}", e.path(), e.inner())))?;
    if md.api_version.is_empty() {
        return Err(invalid("apiVersion is required".into()));
    }
    if md.api_version != "v2" && md.api_version != "v1" {
        return Err(invalid(format!(
            "apiVersion {:?} is not supported (v2, or v1)",
            md.api_version
        )));
    }
    if md.name.is_empty() {
        return Err(invalid("name is required".into()));
    }
    if md.name.contains(['/', '\\']) || md.name == "." || md.name == ".." {
        return Err(invalid(format!(
            "chart name {:?} must not be a path",
            md.name
        )));
    }
    if md.version.is_empty() {
        return Err(invalid("version is required".into()));
    }
    if semver::Version::parse(&md.version).is_err() {
        return Err(invalid(format!(
            "version {:?} is not a semantic version",
            md.version
        )));
    }
    match md.chart_type.as_str() {
        "" | "application" => {}
        "library" => return Err(invalid("library charts are not installable".into())),
        other => {
            return Err(invalid(format!(
                "type {other:?} must be application or library"
            )));
        }
    }
    if !md.dependencies.is_empty() {
        return Err(ChartError::Unsupported {
            path: path.to_path_buf(),
            message: "Chart.yaml declares dependencies".into(),
        });
    }
    Ok(md)
}

fn parse_values(path: &Path, data: &[u8]) -> Result<serde_json::Value, ChartError> {
    match yaml_document(path, data)? {
        None => Ok(serde_json::Value::Object(Default::default())),
        Some(v @ serde_json::Value::Object(_)) => Ok(v),
        Some(_) => Err(ChartError::Invalid {
            path: path.to_path_buf(),
            message: "values.yaml must be a mapping".into(),
        }),
    }
}

fn parse_schema(
    path: &Path,
    data: &[u8],
) -> Result<(serde_json::Value, jsonschema::Validator), ChartError> {
    let invalid = |message: String| ChartError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let schema: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
    let validator = jsonschema::validator_for(&schema)
        .map_err(|e| invalid(format!("not a valid JSON Schema: {e}")))?;
    Ok((schema, validator))
}

/// Reads every file under `dir` (paths relative, `/`-separated, in order),
/// skipping what `.helmignore` ignores, as Helm's directory loader does.
fn walk(
    root: &Path,
    rel: &str,
    rules: &Ignore,
    out: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), ChartError> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let read = |path: &Path, e| ChartError::Read {
        path: path.to_path_buf(),
        source: e,
    };
    let mut entries: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .map_err(|e| read(&dir, e))?
        .map(|e| e.map(|e| (e.file_name().to_string_lossy().into_owned(), e.path())))
        .collect::<Result<_, _>>()
        .map_err(|e| read(&dir, e))?;
    entries.sort();
    for (name, path) in entries {
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let meta = std::fs::metadata(&path).map_err(|e| read(&path, e))?;
        if rules.ignores(&child, meta.is_dir()) {
            continue;
        }
        if meta.is_dir() {
            walk(root, &child, rules, out)?;
        } else if meta.is_file() {
            let mut data = std::fs::read(&path).map_err(|e| read(&path, e))?;
            if data.starts_with(&[0xEF, 0xBB, 0xBF]) {
                data.drain(..3);
            }
            out.push((child, data));
        } else {
            return Err(ChartError::Invalid {
                path,
                message: "cannot load an irregular file (device, socket...)".into(),
            });
        }
    }
    Ok(())
}

/// `.helmignore` rules, with Helm's semantics: a pattern without `/` matches
/// the base name, one with `/` the whole path, `!` negates, a trailing `/`
/// matches directories only; `**` is refused.
#[derive(Default)]
struct Ignore {
    rules: Vec<Rule>,
}

struct Rule {
    pattern: String,
    negate: bool,
    dir_only: bool,
    whole_path: bool,
}

impl Ignore {
    fn parse(text: &str) -> Result<Ignore, String> {
        let mut ig = Ignore::default();
        for line in text.lines() {
            ig.add(line)?;
        }
        Ok(ig)
    }

    fn add(&mut self, line: &str) -> Result<(), String> {
        let rule = line.trim();
        if rule.is_empty() || rule.starts_with('#') {
            return Ok(());
        }
        if rule.contains("**") {
            return Err(format!(
                "{rule:?}: double-star (**) syntax is not supported"
            ));
        }
        match_path(rule, "abc").map_err(|e| format!("{rule:?}: {e}"))?;
        let (negate, rest) = match rule.strip_prefix('!') {
            Some(r) => (true, r),
            None => (false, rule),
        };
        let (dir_only, rest) = match rest.strip_suffix('/') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let (whole_path, pattern) = match rest.strip_prefix('/') {
            Some(r) => (true, r),
            None => (rest.contains('/'), rest),
        };
        self.rules.push(Rule {
            pattern: pattern.to_owned(),
            negate,
            dir_only,
            whole_path,
        });
        Ok(())
    }

    fn ignores(&self, path: &str, is_dir: bool) -> bool {
        for r in &self.rules {
            let subject = if r.whole_path {
                path
            } else {
                path.rsplit('/').next().unwrap_or(path)
            };
            let hit = match_path(&r.pattern, subject).unwrap_or(false);
            if r.negate {
                // Helm's quirk: a negated rule ignores what it does not match.
                if r.dir_only && !is_dir {
                    return true;
                }
                if !hit {
                    return true;
                }
                continue;
            }
            if r.dir_only && !is_dir {
                continue;
            }
            if hit {
                return true;
            }
        }
        false
    }
}

/// Go's `filepath.Match` (`*`, `?`, `[...]` with `^`, `\` escapes; `*` and
/// `?` do not match `/`).
fn match_path(pattern: &str, name: &str) -> Result<bool, String> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fn class(p: &[char], mut i: usize, c: char) -> Result<(bool, usize), String> {
        let negate = p.get(i) == Some(&'^');
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        loop {
            let Some(&lo) = p.get(i) else {
                return Err("syntax error in pattern".into());
            };
            if lo == ']' && !first {
                return Ok((matched != negate, i + 1));
            }
            first = false;
            let (lo, next) = if lo == '\\' {
                (*p.get(i + 1).ok_or("syntax error in pattern")?, i + 2)
            } else {
                (lo, i + 1)
            };
            i = next;
            let mut hi = lo;
            if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&c| c != ']') {
                hi = if p[i + 1] == '\\' {
                    *p.get(i + 2).ok_or("syntax error in pattern")?
                } else {
                    p[i + 1]
                };
                i += if p[i + 1] == '\\' { 3 } else { 2 };
            }
            if lo <= c && c <= hi {
                matched = true;
            }
        }
    }
    fn go(p: &[char], n: &[char]) -> Result<bool, String> {
        let Some(&c) = p.first() else {
            return Ok(n.is_empty());
        };
        match c {
            '*' => {
                for k in 0..=n.len() {
                    if go(&p[1..], &n[k..])? {
                        return Ok(true);
                    }
                    if k < n.len() && n[k] == '/' {
                        break;
                    }
                }
                Ok(false)
            }
            '?' => Ok(n.first().is_some_and(|&x| x != '/') && go(&p[1..], &n[1..])?),
            '[' => {
                let Some(&x) = n.first() else {
                    class(p, 1, '\0')?;
                    return Ok(false);
                };
                let (ok, next) = class(p, 1, x)?;
                Ok(ok && x != '/' && go(&p[next..], &n[1..])?)
            }
            '\\' => {
                let lit = *p.get(1).ok_or("syntax error in pattern")?;
                Ok(n.first() == Some(&lit) && go(&p[2..], &n[1..])?)
            }
            lit => Ok(n.first() == Some(&lit) && go(&p[1..], &n[1..])?),
        }
    }
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn chart_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "Chart.yaml",
            "apiVersion: v2\nname: demo\nversion: 0.1.0\nappVersion: \"1.0\"\n",
        );
        write(d.path(), "values.yaml", "replicas: 1\nenabled: yes\n");
        write(d.path(), "templates/a.yaml", "a: {{ .Values.replicas }}\n");
        write(
            d.path(),
            "templates/_helpers.tpl",
            "{{ define \"x\" }}x{{ end }}",
        );
        write(d.path(), "templates/.hidden", "not a template");
        write(d.path(), "config/app.conf", "k=v\n");
        write(d.path(), "notes.bak", "ignored");
        write(d.path(), ".helmignore", "# comment\n*.bak\n");
        d
    }

    #[test]
    fn loads_like_helm() {
        let d = chart_dir();
        let c = Chart::load(d.path()).unwrap();
        assert_eq!(c.metadata.name, "demo");
        assert_eq!(c.metadata.app_version, "1.0");
        assert_eq!(
            c.values["enabled"], true,
            "YAML 1.1 `yes` is a boolean in Helm"
        );
        let names: Vec<&str> = c.template_names().collect();
        assert_eq!(
            names,
            ["demo/templates/_helpers.tpl", "demo/templates/a.yaml"]
        );
        assert_eq!(
            c.files.keys().collect::<Vec<_>>(),
            [".helmignore", "config/app.conf"]
        );
    }

    #[test]
    fn record_is_helms_chart_json() {
        let d = chart_dir();
        let r = Chart::load(d.path()).unwrap().record();
        assert_eq!(
            r["metadata"],
            serde_json::json!({"name": "demo", "version": "0.1.0", "apiVersion": "v2", "appVersion": "1.0"})
        );
        assert_eq!(r["templates"][1]["name"], "templates/a.yaml");
        assert_eq!(
            r["templates"][1]["data"],
            "YToge3sgLlZhbHVlcy5yZXBsaWNhcyB9fQo="
        );
        assert_eq!(r["values"]["replicas"], 1);
        assert!(r["schema"].is_null() && r["lock"].is_null());
        assert_eq!(r["files"][1]["name"], "config/app.conf");
    }

    #[test]
    fn refuses_dependencies_and_bad_metadata() {
        let d = chart_dir();
        write(
            d.path(),
            "charts/sub/Chart.yaml",
            "apiVersion: v2\nname: sub\nversion: 1.0.0\n",
        );
        let e = Chart::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("subcharts") && e.contains("charts/sub"), "{e}");

        let d = chart_dir();
        write(
            d.path(),
            "Chart.yaml",
            "apiVersion: v2\nname: demo\nversion: one\n",
        );
        let e = Chart::load(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("Chart.yaml") && e.contains("semantic version"),
            "{e}"
        );

        let d = chart_dir();
        write(
            d.path(),
            "Chart.yaml",
            "apiVersion: v2\nname: demo\nversion: 1.0.0\ndependencies:\n- name: x\n",
        );
        assert!(matches!(
            Chart::load(d.path()),
            Err(ChartError::Unsupported { .. })
        ));

        let d = chart_dir();
        write(d.path(), "values.yaml", "a: [1\n");
        let e = Chart::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("values.yaml") && e.contains("line"), "{e}");

        let e = Chart::load(Path::new("/nonexistent/chart"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no Chart.yaml"), "{e}");
    }

    #[test]
    fn helmignore_rules() {
        let ig = Ignore::parse("*.tmp\n/secret.txt\nlogs/\ndocs/*.md\n").unwrap();
        assert!(ig.ignores("a/b.tmp", false));
        assert!(ig.ignores("secret.txt", false) && !ig.ignores("x/secret.txt", false));
        assert!(ig.ignores("logs", true) && !ig.ignores("logs", false));
        assert!(ig.ignores("docs/a.md", false) && !ig.ignores("docs/x/a.md", false));
        assert!(Ignore::parse("a/**/b").is_err());
        assert!(
            match_path("[a-c]?.txt", "b1.txt").unwrap() && !match_path("[^a-c]x", "ax").unwrap()
        );
    }
}
