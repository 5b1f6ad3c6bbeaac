//! The pipeline file: one source, steps, sinks. See docs/pipeline.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use imgtool_archive::{ContentsLayer, FileContents, Owner, PathLayer};
use imgtool_core::{Compression, ConfigEdit, Flavor};
use serde::Deserialize;
use toml::Spanned;

/// A whole pipeline file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Where the image comes from: a `[source]` table, or `source = "IMAGE"`.
    #[serde(deserialize_with = "source_spec")]
    pub source: SourceSpec,
    /// What is done to it, in order.
    #[serde(default, rename = "step")]
    pub steps: Vec<Spanned<Step>>,
    /// Where it goes.
    #[serde(default, rename = "sink")]
    pub sinks: Vec<SinkSpec>,
    /// How new layers are written.
    #[serde(default)]
    pub options: Options,
}

/// `source = "IMAGE"`, as written, is `[source] image = "IMAGE"`.
fn source_spec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SourceSpec, D::Error> {
    enum Raw {
        Image(String),
        Table(Box<SourceSpec>),
    }
    struct Visit;
    impl<'de> serde::de::Visitor<'de> for Visit {
        type Value = Raw;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a [source] table, or an image as a string (source = \"scratch\")")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Raw, E> {
            Ok(Raw::Image(s.to_string()))
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<Raw, A::Error> {
            SourceSpec::deserialize(serde::de::value::MapAccessDeserializer::new(m)).map(|t| Raw::Table(Box::new(t)))
        }
    }
    impl<'de> Deserialize<'de> for Raw {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(Visit)
        }
    }
    let raw = Spanned::<Raw>::deserialize(d)?;
    let span = raw.span();
    Ok(match raw.into_inner() {
        Raw::Image(s) => SourceSpec { image: Some(Spanned::new(span, s)), ..SourceSpec::default() },
        Raw::Table(t) => *t,
    })
}

/// The `[source]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// A transport string, or `scratch`.
    #[serde(default)]
    pub image: Option<Spanned<String>>,
    /// Or a Dockerfile to build (its own `FROM` is the base).
    #[serde(default)]
    pub dockerfile: Option<Spanned<DockerfileSpec>>,
    /// The platform to pick from an index, or to declare for `scratch`.
    #[serde(default)]
    pub platform: Option<Spanned<String>>,
    /// Media types for a `scratch` image: `oci` (default) or `docker`.
    #[serde(default)]
    pub media_types: Option<Flavor>,
    /// Take a single image of another platform than `platform` names instead of refusing it.
    #[serde(default)]
    pub any_platform: bool,
}

/// The `[options]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// `gzip` (default), `zstd` or `none` for new layers.
    #[serde(default)]
    pub compression: Compression,
}

/// One `[[step]]`: a table with exactly one of these keys.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Drop the top N layers.
    RemoveLayers(usize),
    /// Drop the layer at an index (0 is the base, -1 the top).
    RemoveLayer(isize),
    /// A layer from a host path.
    AddPath(AddPath),
    /// A layer from inline contents: image path -> text, or a table.
    AddContents(BTreeMap<String, Contents>),
    /// Config edits.
    Config(ConfigEdit),
    /// Flatten every layer so far into one (`squash = true`).
    Squash(bool),
    /// A conda environment, one layer per package.
    Conda(imgtool_conda::CondaSpec),
    /// Dockerfile instructions (no `FROM`) applied to the image so far.
    Dockerfile(DockerfileSpec),
}

/// A Dockerfile to build: the `dockerfile` source or step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerfileSpec {
    /// The Dockerfile, relative to the pipeline file.
    pub file: PathBuf,
    /// The build context (default: the Dockerfile's directory).
    #[serde(default)]
    pub context: Option<PathBuf>,
    /// Build arguments.
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    /// The stage to build (sources only; default the last).
    #[serde(default)]
    pub target: Option<String>,
    /// The step cache directory (default ~/.cache/imgtool/build).
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Run every step afresh.
    #[serde(default)]
    pub no_cache: bool,
    /// `host` gives RUN the host's network.
    #[serde(default)]
    pub network: Option<String>,
    /// A registry repository sharing step results between builders.
    #[serde(default)]
    pub cache_repo: Option<String>,
}

/// The `add_path` step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddPath {
    /// Host path, relative to the pipeline file.
    pub from: Spanned<PathBuf>,
    /// Destination in the image.
    pub to: String,
    /// `.dockerignore`-style patterns to keep.
    #[serde(default)]
    pub include: Vec<String>,
    /// `.dockerignore`-style patterns to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `UID:GID` or `preserve`; default root.
    #[serde(default)]
    pub owner: Option<Spanned<String>>,
    /// An octal mode such as `"0644"` for everything added.
    #[serde(default)]
    pub mode: Option<Spanned<String>>,
    /// Copy extended attributes.
    #[serde(default)]
    pub xattrs: bool,
}

/// One file of an `add_contents` step.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Contents {
    /// Just the text.
    Text(String),
    /// Text or a host file, with a mode.
    Full {
        /// The text.
        #[serde(default)]
        text: Option<String>,
        /// A host file to read instead, relative to the pipeline file.
        #[serde(default)]
        file: Option<PathBuf>,
        /// An octal mode such as `"0755"`.
        #[serde(default)]
        mode: Option<String>,
    },
}

/// One `[[sink]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSpec {
    /// A transport string.
    pub to: Spanned<String>,
    /// More names for the image at this sink, in its syntax.
    #[serde(default)]
    pub additional_tags: Vec<String>,
    /// The media types written: `oci` or `docker` (default: OCI's in an OCI layout or
    /// archive, the image's own elsewhere).
    #[serde(default)]
    pub format: Option<imgtool_core::Flavor>,
}

/// A pipeline file with what is needed to point at places in it.
pub struct PipelineFile {
    /// The parsed file.
    pub pipeline: Pipeline,
    /// Its path.
    pub path: PathBuf,
    /// Its directory, which relative paths are resolved against.
    pub dir: PathBuf,
    text: String,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The patterns of `dir/.dockerignore` (none when there is no such regular file).
fn dockerignore(dir: &Path) -> Result<Vec<String>> {
    let file = dir.join(".dockerignore");
    if !std::fs::symlink_metadata(&file).is_ok_and(|m| m.is_file()) {
        return Ok(Vec::new());
    }
    let text = imgtool_dockerfile::read_context_file(&file).with_context(|| format!("reading {}", file.display()))?.unwrap_or_default();
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect())
}

/// toml's words for a `[[step]]` with two kinds in it, said in ours: which two.
fn two_kinds(text: &str) -> Option<String> {
    let doc: toml::Table = toml::from_str(text).ok()?;
    let steps = doc.get("step")?.as_array()?;
    let both = steps.iter().filter_map(toml::Value::as_table).find(|t| t.len() > 1)?;
    let keys: Vec<String> = both.keys().map(|k| format!("`{k}`")).collect();
    Some(format!("a [[step]] does one thing, and this one has {}: give each its own [[step]]", keys.join(" and ")))
}

pub fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("invalid mode {s:?}: expected octal such as \"0644\""))
}

impl PipelineFile {
    /// Read and parse; syntax and type errors name the line and column.
    pub fn load(path: &Path) -> Result<Self> {
        // Pipelines are written by hand: a bound keeps /dev/zero or a runaway file out of memory.
        const LIMIT: u64 = 1 << 20;
        let mut text = String::new();
        let file = std::fs::File::open(path).with_context(|| format!("reading pipeline {}", path.display()))?;
        std::io::Read::read_to_string(&mut std::io::Read::take(file, LIMIT + 1), &mut text)
            .with_context(|| format!("reading pipeline {}", path.display()))?;
        if text.len() as u64 > LIMIT {
            bail!("{}: larger than {LIMIT} bytes; a pipeline is not that big", path.display());
        }
        let pipeline: Pipeline = toml::from_str(&text).map_err(|e| {
            let at = e.span().map(|s| {
                let (l, c) = line_col(&text, s.start);
                format!(":{l}:{c}")
            });
            let message = match e.message() {
                m if m.contains("wanted exactly 1 element") => two_kinds(&text).unwrap_or_else(|| m.to_string()),
                m => m.to_string(),
            };
            anyhow!("{}{}: {message}", path.display(), at.unwrap_or_default())
        })?;
        let dir = path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        Ok(Self { pipeline, path: path.to_path_buf(), dir, text })
    }

    /// `file:line:col` of a span.
    pub fn at(&self, span: std::ops::Range<usize>) -> String {
        let (l, c) = line_col(&self.text, span.start);
        format!("{}:{l}:{c}", self.path.display())
    }

    /// A path from the file, relative to the file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() { p.to_path_buf() } else { self.dir.join(p) }
    }

    /// A `dockerfile` source or step as build settings, paths resolved.
    pub fn dockerfile_settings(&self, d: &DockerfileSpec) -> Result<crate::build_cmd::BuildSettings> {
        let file = self.resolve(&d.file);
        let context = d.context.as_ref().map_or_else(|| file.parent().map(Path::to_path_buf).unwrap_or_default(), |c| self.resolve(c));
        let host_network = crate::build_cmd::host_network(d.network.as_deref())
            .with_context(|| format!("{}: the dockerfile {}", self.path.display(), d.file.display()))?;
        Ok(crate::build_cmd::BuildSettings {
            file: Some(file),
            build_args: d.build_args.clone(),
            target: d.target.clone(),
            no_cache: d.no_cache,
            cache_dir: d.cache_dir.as_ref().map(|c| self.resolve(c)),
            host_network,
            cache_repo: d.cache_repo.clone(),
            ..crate::build_cmd::BuildSettings::for_context(context)
        })
    }

    /// The `add_path` step as a layer producer, checking its inputs.
    /// The sinks' paths inside `dir`, as exclude patterns relative to it.
    fn outputs_under(&self, dir: &Path) -> Vec<String> {
        let Ok(dir) = std::path::absolute(dir) else { return Vec::new() };
        let mut out = Vec::new();
        for s in &self.pipeline.sinks {
            let Ok(t) = crate::transport::Transport::parse(s.to.get_ref(), &self.dir, crate::transport::Role::Sink) else { continue };
            let (crate::transport::Transport::DockerArchive(p, _)
            | crate::transport::Transport::Oci(p, _)
            | crate::transport::Transport::OciArchive(p, _)) = t
            else {
                continue;
            };
            if let Some(rel) = std::path::absolute(&p).ok().and_then(|p| p.strip_prefix(&dir).ok().map(Path::to_path_buf)) {
                let rel = rel.to_string_lossy().into_owned();
                out.extend([rel.clone(), format!("{rel}/**")]);
            }
        }
        out
    }

    pub fn path_layer(&self, a: &AddPath) -> Result<PathLayer> {
        let from = self.resolve(a.from.get_ref());
        if !from.exists() {
            bail!("{}: add_path.from {} does not exist", self.at(a.from.span()), from.display());
        }
        // As `build` reads a context: its .dockerignore first, the step's own excludes after
        // (the last match wins); and never this pipeline's own outputs, which a second run
        // would otherwise pack into the image.
        let mut exclude = dockerignore(&from)?;
        exclude.extend(self.outputs_under(&from));
        exclude.extend(a.exclude.iter().cloned());
        let mut layer = PathLayer::new(from, a.to.clone());
        layer.include = a.include.clone();
        layer.exclude = exclude;
        layer.xattrs = a.xattrs;
        if let Some(o) = &a.owner {
            layer.owner = o.get_ref().parse::<Owner>().map_err(|e| anyhow!("{}: {e}", self.at(o.span())))?;
        }
        if let Some(m) = &a.mode {
            layer.mode = Some(parse_mode(m.get_ref()).map_err(|e| anyhow!("{}: {e}", self.at(m.span())))?);
        }
        Ok(layer)
    }

    /// The `add_contents` step as a layer producer, reading any `file =` inputs.
    pub fn contents_layer(&self, files: &BTreeMap<String, Contents>, span: std::ops::Range<usize>) -> Result<ContentsLayer> {
        let mut out = ContentsLayer::default();
        for (path, c) in files {
            let fc = match c {
                Contents::Text(t) => FileContents { data: t.clone().into_bytes().into(), mode: None },
                Contents::Full { text, file, mode } => {
                    let data = match (text, file) {
                        (Some(t), None) => t.clone().into_bytes(),
                        (None, Some(f)) => {
                            let f = self.resolve(f);
                            std::fs::read(&f)
                                .with_context(|| format!("{}: add_contents {path:?}: reading {}", self.at(span.clone()), f.display()))?
                        }
                        _ => bail!("{}: add_contents {path:?} needs exactly one of text or file", self.at(span.clone())),
                    };
                    let mode = mode.as_deref().map(parse_mode).transpose().map_err(|e| anyhow!("{}: {e}", self.at(span.clone())))?;
                    FileContents { data: data.into(), mode }
                }
            };
            out.files.insert(path.clone(), fc);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("a\nbc\nd", 3), (2, 2));
        assert_eq!(line_col("x", 0), (1, 1));
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0755"), Ok(0o755));
        assert_eq!(parse_mode("0o644"), Ok(0o644));
        assert!(parse_mode("9").is_err());
    }
}
