//! A chart in Helm's layout, read as Helm's loader reads it: `Chart.yaml`,
//! `values.yaml`, `values.schema.json`, `templates/`, every other file for
//! `.Files`, `.helmignore`, and the subcharts under `charts/` (unpacked
//! directories and packaged `.tgz` archives, recursively).
//!
//! As Helm: the top chart's `.helmignore` applies to every file under its
//! directory, subcharts' directories included (a subchart's own
//! `.helmignore` is one of its files; a packaged subchart was filtered when
//! it was packaged); entries of `charts/` whose name starts with `_` or `.`
//! are skipped, and `*.prov` files there are files of the parent;
//! `Chart.lock` and `requirements.lock` are not read; `requirements.yaml`
//! (Helm 2's) declares dependencies as `Chart.yaml` does.

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
    /// A file parses but breaks Helm's rules (a missing field, a bad type, a
    /// dependency missing from `charts/`, a library chart installed).
    #[error("{path}: {message}")]
    Invalid {
        /// The file (for a file inside a packaged subchart, the archive's
        /// path followed by the file's path in the chart).
        path: PathBuf,
        /// What is wrong.
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

/// One entry of `dependencies` in `Chart.yaml` (or `requirements.yaml`),
/// with Helm's field names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// `name`: the subchart's chart name (after processing, its alias).
    pub name: String,
    /// `version`: a semantic-version range the subchart's version must meet.
    #[serde(default)]
    pub version: String,
    /// `repository`: where `helm dependency build` fetches it (not used to
    /// render).
    #[serde(default)]
    pub repository: String,
    /// `condition`: comma-separated paths in the values; the first that
    /// holds a boolean enables or disables the subchart.
    #[serde(default)]
    pub condition: String,
    /// `tags`: the subchart is enabled by any of these keys of the values'
    /// `tags` that is `true`, disabled when all that are set are `false`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `enabled`: set by dependency processing.
    #[serde(default)]
    pub enabled: bool,
    /// `import-values`: strings (`exports.<name>` of the subchart, imported
    /// at the parent's top) or `{child, parent}` paths.
    #[serde(default, rename = "import-values")]
    pub import_values: Vec<serde_json::Value>,
    /// `alias`: the name the subchart is installed under.
    #[serde(default)]
    pub alias: String,
}

/// `Chart.yaml`, with Helm's field names. Unknown fields are ignored, as
/// Helm ignores them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartMetadata {
    /// `v2` (or `v1`, the Helm 2 format).
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
    /// `application`, `library` (templates for other charts, no manifests),
    /// or empty (an application).
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
    /// `condition` (Helm 2's, unused; `.Chart.Condition`).
    #[serde(default)]
    pub condition: String,
    /// `tags` (Helm 2's, unused; `.Chart.Tags`).
    #[serde(default)]
    pub tags: String,
    /// `dependencies`: `None` when the chart declares none (Helm then does
    /// not process its subcharts' declarations either).
    #[serde(default)]
    pub dependencies: Option<Vec<Dependency>>,
}

/// A template file: `name` is its path in the chart (`templates/...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateFile {
    pub name: String,
    pub source: String,
}

/// A loaded chart, and its subcharts.
#[derive(Debug)]
pub struct Chart {
    /// Where it was loaded from: the chart's directory; for a subchart, its
    /// directory or archive under the parent's `charts/`.
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
    schema_source: Option<Arc<[u8]>>,
    pub(crate) templates: Arc<[TemplateFile]>,
    /// Every other file (not ignored by `.helmignore`), for `.Files`.
    pub(crate) files: Arc<BTreeMap<String, Vec<u8>>>,
    /// The subcharts: as loaded from `charts/` (in name order), or, after
    /// [`crate::process_dependencies`], those a release installs.
    pub(crate) dependencies: Vec<Chart>,
    /// [`Chart::record`], built on first use: every release record holds it.
    record: OnceLock<serde_json::Value>,
}

impl Clone for Chart {
    /// An identical copy (its cached record too).
    fn clone(&self) -> Chart {
        Chart {
            dependencies: self.dependencies.clone(),
            record: self.record.clone(),
            ..self.without_dependencies()
        }
    }
}

impl Chart {
    /// The compiled `values.schema.json`, when the chart has one.
    pub fn values_validator(&self) -> Option<&jsonschema::Validator> {
        self.validator.as_deref()
    }

    /// The subcharts (see the field's meaning above: loaded, or processed).
    pub fn dependencies(&self) -> &[Chart] {
        &self.dependencies
    }

    /// Whether this is a library chart (`type: library`): its templates
    /// define what other charts include, and it renders no manifest.
    pub fn is_library(&self) -> bool {
        self.metadata.chart_type.eq_ignore_ascii_case("library")
    }

    /// A copy of the chart without its subcharts (and without the cached
    /// record, which a copy may change).
    pub(crate) fn without_dependencies(&self) -> Chart {
        Chart {
            dir: self.dir.clone(),
            metadata: self.metadata.clone(),
            values: self.values.clone(),
            schema: self.schema.clone(),
            validator: self.validator.clone(),
            schema_source: self.schema_source.clone(),
            templates: self.templates.clone(),
            files: self.files.clone(),
            dependencies: Vec::new(),
            record: OnceLock::new(),
        }
    }

    /// Loads the chart in `dir`, and its subcharts, as `helm install` does.
    ///
    /// # Errors
    /// [`ChartError`] naming the file: unreadable files, YAML or JSON that does
    /// not parse, `Chart.yaml` without `apiVersion`, `name` or a semantic
    /// `version`, a bad `type`, a dependency `alias` with characters Helm
    /// refuses or two dependencies of one name or alias, `values.yaml` that is
    /// not a mapping, a schema that is not a JSON Schema, a template that is
    /// not UTF-8, an entry of `charts/` that is not a chart or a broken
    /// archive; for the chart itself (as `helm install` checks it), a library
    /// chart, and a declared dependency with no chart of its name under
    /// `charts/` (Helm: `found in Chart.yaml, but missing in charts/
    /// directory`).
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
        let chart = Chart::from_files(dir, found)?;
        chart.check_installable()?;
        Ok(chart)
    }

    /// What `helm install` checks of the chart it is given: not a library
    /// chart, and every declared dependency present under `charts/` (by
    /// name; its version range is matched when it is processed).
    fn check_installable(&self) -> Result<(), ChartError> {
        let invalid = |message: String| ChartError::Invalid {
            path: self.dir.join("Chart.yaml"),
            message,
        };
        if self.is_library() {
            return Err(invalid("library charts are not installable".into()));
        }
        let missing: Vec<&str> = self
            .metadata
            .dependencies
            .iter()
            .flatten()
            .filter(|d| !self.dependencies.iter().any(|c| c.metadata.name == d.name))
            .map(|d| d.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(invalid(format!(
                "found in Chart.yaml, but missing in charts/ directory: {} (`helm dependency build` fetches them)",
                missing.join(", ")
            )));
        }
        Ok(())
    }

    /// Helm's `LoadFiles`: the chart made of `files` (paths relative to the
    /// chart), which came from `origin` (a directory or an archive).
    fn from_files(origin: &Path, files: Vec<(String, Vec<u8>)>) -> Result<Chart, ChartError> {
        let chart_yaml = origin.join("Chart.yaml");
        let mut metadata_json = None;
        let mut requirements = None;
        let mut values = serde_json::Value::Object(Default::default());
        let mut schema = None;
        let mut validator = None;
        let mut schema_source = None;
        let mut raw_templates = Vec::new();
        let mut other = BTreeMap::new();
        let mut subcharts: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
        for (rel, data) in files {
            let path = origin.join(&rel);
            match rel.as_str() {
                "Chart.yaml" => {
                    metadata_json = Some(
                        yaml_document(&path, &data)?
                            .unwrap_or(serde_json::Value::Object(Default::default())),
                    );
                }
                "values.yaml" => values = parse_values(&path, &data)?,
                "values.schema.json" => {
                    let (parsed, compiled) = parse_schema(&path, &data)?;
                    schema = Some(parsed);
                    validator = Some(Arc::new(compiled));
                    schema_source = Some(Arc::from(data));
                }
                "requirements.yaml" => requirements = Some((path, data)),
                "Chart.lock" | "requirements.lock" => {}
                r if r.starts_with("templates/") => raw_templates.push((rel.clone(), path, data)),
                r if r.starts_with("charts/") => {
                    if r.ends_with(".prov") {
                        other.insert(rel, data);
                        continue;
                    }
                    let inner = &r["charts/".len()..];
                    let entry = inner.split('/').next().unwrap_or(inner).to_owned();
                    subcharts
                        .entry(entry)
                        .or_default()
                        .push((inner.to_owned(), data));
                }
                _ => {
                    other.insert(rel, data);
                }
            }
        }
        let mut metadata_json = metadata_json.ok_or_else(|| ChartError::Invalid {
            path: origin.to_path_buf(),
            message: "Chart.yaml file is missing (every directory or archive under charts/ must be a chart)"
                .into(),
        })?;
        if let Some((path, data)) = requirements {
            // Helm reads requirements.yaml into the chart's metadata: its
            // keys replace Chart.yaml's.
            if let Some(serde_json::Value::Object(req)) = yaml_document(&path, &data)?
                && let serde_json::Value::Object(md) = &mut metadata_json
            {
                md.extend(req);
            }
            let is_v1 = metadata_json.get("apiVersion").and_then(|v| v.as_str()) == Some("v1");
            if is_v1 {
                other.insert("requirements.yaml".into(), data);
            }
        }
        let metadata = parse_metadata(&chart_yaml, metadata_json)?;
        let mut templates = Vec::new();
        for (rel, path, data) in raw_templates {
            let source = String::from_utf8(data).map_err(|_| ChartError::Invalid {
                path,
                message: "template is not UTF-8 text".into(),
            })?;
            templates.push(TemplateFile { name: rel, source });
        }
        templates.sort_by(|a, b| a.name.cmp(&b.name));
        let mut dependencies = Vec::new();
        for (entry, files) in subcharts {
            if entry.starts_with(['_', '.']) {
                continue;
            }
            let at = origin.join("charts").join(&entry);
            let sub = if entry.ends_with(".tgz") {
                let [(name, data)] = files.as_slice() else {
                    return Err(ChartError::Invalid {
                        path: at,
                        message: "a directory named .tgz under charts/ (expected a packaged chart)"
                            .into(),
                    });
                };
                if *name != entry {
                    return Err(ChartError::Invalid {
                        path: at,
                        message: "a directory named .tgz under charts/ (expected a packaged chart)"
                            .into(),
                    });
                }
                let files = crate::archive::files(data).map_err(|message| ChartError::Invalid {
                    path: at.clone(),
                    message: format!("cannot unpack the packaged subchart: {message}"),
                })?;
                Chart::from_files(&at, files)?
            } else {
                let files = files
                    .into_iter()
                    .filter_map(|(name, data)| {
                        name.split_once('/')
                            .map(|(_, rest)| (rest.to_owned(), data))
                    })
                    .collect();
                Chart::from_files(&at, files)?
            };
            dependencies.push(sub);
        }
        Ok(Chart {
            dir: origin.to_path_buf(),
            metadata,
            values,
            schema,
            validator,
            schema_source,
            templates: templates.into(),
            files: Arc::new(other),
            dependencies,
            record: OnceLock::new(),
        })
    }

    /// The chart as Helm stores it in a release record (`helm.sh/release.v1`):
    /// `metadata` with Helm's JSON names (empty fields omitted), `templates`
    /// and `files` as `{name, data}` with base64 data (template names
    /// relative to the chart, `templates/...`), `values`, `schema` (base64
    /// of `values.schema.json`, or null) and `lock` (null). Subcharts are not
    /// in it (Helm keeps them out of its JSON); for a chart with
    /// dependencies, record the chart [`crate::process_dependencies`] made
    /// for the release, as Helm records that one: its `dependencies` are the
    /// enabled ones, and its `values` hold its subcharts' defaults.
    pub fn record(&self) -> serde_json::Value {
        self.record.get_or_init(|| self.build_record()).clone()
    }

    fn build_record(&self) -> serde_json::Value {
        use base64::Engine as _;
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
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
            ("condition", &m.condition),
            ("tags", &m.tags),
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
        if let Some(deps) = m.dependencies.as_ref().filter(|d| !d.is_empty()) {
            md.insert(
                "dependencies".into(),
                deps.iter().map(dependency_record).collect(),
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
                "name": t.name,
                "data": b64(t.source.as_bytes()),
            })).collect::<Vec<_>>(),
            "values": self.values,
            "schema": self.schema_source.as_deref().map(b64),
            "files": self.files.iter().map(|(name, data)| serde_json::json!({"name": name, "data": b64(data)})).collect::<Vec<_>>(),
        })
    }

    /// The template names (`<chart>/templates/<path>`), partials included,
    /// of this chart (not its subcharts').
    pub fn template_names(&self) -> impl Iterator<Item = String> + '_ {
        self.templates
            .iter()
            .map(|t| format!("{}/{}", self.metadata.name, t.name))
    }
}

/// A dependency as Helm's JSON writes it (`omitempty` fields left out).
fn dependency_record(d: &Dependency) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    out.insert("name".into(), d.name.clone().into());
    if !d.version.is_empty() {
        out.insert("version".into(), d.version.clone().into());
    }
    out.insert("repository".into(), d.repository.clone().into());
    if !d.condition.is_empty() {
        out.insert("condition".into(), d.condition.clone().into());
    }
    if !d.tags.is_empty() {
        out.insert("tags".into(), serde_json::json!(d.tags));
    }
    if d.enabled {
        out.insert("enabled".into(), true.into());
    }
    if !d.import_values.is_empty() {
        out.insert("import-values".into(), d.import_values.clone().into());
    }
    if !d.alias.is_empty() {
        out.insert("alias".into(), d.alias.clone().into());
    }
    serde_json::Value::Object(out)
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

/// Whether `alias` is made of the characters Helm allows (`[a-zA-Z0-9_-]+`).
fn valid_alias(alias: &str) -> bool {
    !alias.is_empty()
        && alias
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn parse_metadata(path: &Path, json: serde_json::Value) -> Result<ChartMetadata, ChartError> {
    let invalid = |message: String| ChartError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    if json.as_object().is_some_and(|m| m.is_empty()) {
        return Err(invalid("Chart.yaml is empty".into()));
    }
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
        "" | "application" | "library" => {}
        other => {
            return Err(invalid(format!(
                "type {other:?} must be application or library"
            )));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for d in md.dependencies.iter().flatten() {
        if !d.alias.is_empty() && !valid_alias(&d.alias) {
            return Err(invalid(format!(
                "dependency {:?} has disallowed characters in the alias",
                d.name
            )));
        }
        let key = if d.alias.is_empty() {
            &d.name
        } else {
            &d.alias
        };
        if !seen.insert(key.clone()) {
            return Err(invalid(format!(
                "more than one dependency with name or alias {key:?}"
            )));
        }
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
        let names: Vec<String> = c.template_names().collect();
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
    fn refuses_bad_metadata_and_missing_dependencies() {
        // A declared dependency with no chart of its name under charts/.
        let d = chart_dir();
        write(
            d.path(),
            "Chart.yaml",
            "apiVersion: v2\nname: demo\nversion: 1.0.0\ndependencies:\n- name: x\n  version: 1.0.0\n- name: web\n",
        );
        let e = Chart::load(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("Chart.yaml")
                && e.contains("found in Chart.yaml, but missing in charts/ directory: x, web"),
            "{e}"
        );

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
        write(d.path(), "values.yaml", "a: [1\n");
        let e = Chart::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("values.yaml") && e.contains("line"), "{e}");

        let e = Chart::load(Path::new("/nonexistent/chart"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no Chart.yaml"), "{e}");

        // Helm's rules on declarations: aliases, one name or alias each.
        for (deps, want) in [
            (
                "- name: x\n  alias: a.b\n",
                "dependency \"x\" has disallowed characters in the alias",
            ),
            (
                "- name: x\n- name: other\n  alias: x\n",
                "more than one dependency with name or alias \"x\"",
            ),
        ] {
            let d = chart_dir();
            write(
                d.path(),
                "Chart.yaml",
                &format!("apiVersion: v2\nname: demo\nversion: 1.0.0\ndependencies:\n{deps}"),
            );
            let e = Chart::load(d.path()).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    fn sub_chart(dir: &Path, at: &str, name: &str, version: &str) {
        write(
            dir,
            &format!("{at}/Chart.yaml"),
            &format!("apiVersion: v2\nname: {name}\nversion: {version}\n"),
        );
        write(dir, &format!("{at}/templates/t.yaml"), "k: v\n");
    }

    #[test]
    fn loads_subcharts_unpacked_packaged_and_nested() {
        let d = chart_dir();
        write(
            d.path(),
            "Chart.yaml",
            "apiVersion: v2\nname: demo\nversion: 1.0.0\ndependencies:\n- name: db\n  version: ~1.2.0\n  import-values: [conn, {child: a, parent: b}]\n",
        );
        sub_chart(d.path(), "charts/db", "db", "1.2.3");
        sub_chart(d.path(), "charts/db/charts/inner", "inner", "0.1.0");
        write(d.path(), "charts/db/values.yaml", "port: 5432\n");
        write(
            d.path(),
            "charts/db/notes.bak",
            "ignored by the top .helmignore",
        );
        write(d.path(), "charts/db/.helmignore", "*.txt\n");
        write(
            d.path(),
            "charts/db/keep.txt",
            "the subchart's .helmignore is a file",
        );
        write(d.path(), "charts/db/templates/.hidden.yaml", "h: 1\n");
        write(d.path(), "charts/_skipped/Chart.yaml", "not: read\n");
        write(d.path(), "charts/db-1.2.3.tgz.prov", "signature");
        let tgz = crate::archive::tests::tgz(&[
            (
                "cache/Chart.yaml",
                b"apiVersion: v2\nname: cache\nversion: 0.2.0\ntype: library\n",
            ),
            ("cache/templates/_h.tpl", b"{{ define \"c\" }}c{{ end }}"),
        ]);
        std::fs::write(d.path().join("charts/cache-0.2.0.tgz"), tgz).unwrap();

        let c = Chart::load(d.path()).unwrap();
        let subs: Vec<&str> = c
            .dependencies()
            .iter()
            .map(|s| s.metadata.name.as_str())
            .collect();
        assert_eq!(subs, ["cache", "db"], "charts/ entries in name order");
        let cache = &c.dependencies()[0];
        assert!(cache.is_library());
        assert!(cache.dir.ends_with("charts/cache-0.2.0.tgz"));
        let db = &c.dependencies()[1];
        assert_eq!(db.values["port"], 5432);
        assert_eq!(
            db.files.keys().collect::<Vec<_>>(),
            [".helmignore", "keep.txt"],
            "the top chart's .helmignore applies, the subchart's does not"
        );
        assert_eq!(
            db.template_names().collect::<Vec<_>>(),
            ["db/templates/.hidden.yaml", "db/templates/t.yaml"],
            "Helm's hidden-template rule is the top chart's"
        );
        assert_eq!(db.dependencies()[0].metadata.name, "inner");
        assert!(c.files.contains_key("charts/db-1.2.3.tgz.prov"));
        let deps = c.metadata.dependencies.as_ref().unwrap();
        assert_eq!(deps[0].version, "~1.2.0");
        assert_eq!(deps[0].import_values.len(), 2);

        // Not a chart under charts/: named in the error.
        write(d.path(), "charts/README.md", "hello");
        let e = Chart::load(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("charts/README.md") && e.contains("Chart.yaml file is missing"),
            "{e}"
        );
        std::fs::remove_file(d.path().join("charts/README.md")).unwrap();
        std::fs::write(d.path().join("charts/bad-1.0.0.tgz"), b"not gzip").unwrap();
        let e = Chart::load(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("charts/bad-1.0.0.tgz") && e.contains("cannot unpack"),
            "{e}"
        );
        std::fs::remove_file(d.path().join("charts/bad-1.0.0.tgz")).unwrap();
        write(d.path(), "charts/db/values.yaml", "port: [1\n");
        let e = Chart::load(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("charts/db/values.yaml") && e.contains("line"),
            "{e}"
        );
    }

    #[test]
    fn library_charts_are_subcharts_not_releases() {
        let d = chart_dir();
        write(
            d.path(),
            "Chart.yaml",
            "apiVersion: v2\nname: demo\nversion: 1.0.0\ntype: library\n",
        );
        let e = Chart::load(d.path()).unwrap_err().to_string();
        assert!(e.ends_with("library charts are not installable"), "{e}");
    }

    #[test]
    fn requirements_yaml_declares_dependencies() {
        let d = chart_dir();
        write(
            d.path(),
            "Chart.yaml",
            "apiVersion: v1\nname: demo\nversion: 1.0.0\n",
        );
        write(
            d.path(),
            "requirements.yaml",
            "dependencies:\n- name: sub\n  version: 1.x\n",
        );
        sub_chart(d.path(), "charts/sub", "sub", "1.0.0");
        let c = Chart::load(d.path()).unwrap();
        assert_eq!(c.metadata.dependencies.as_ref().unwrap()[0].name, "sub");
        assert!(
            c.files.contains_key("requirements.yaml"),
            "kept for a v1 chart"
        );
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
