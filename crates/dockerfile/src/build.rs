//! The interpreter: stages, instructions, RUN in the sandbox, the step cache.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use imgtool_archive::{EntryKind, ExtractOptions, FileData, LayerOptions, Origin, Owner, TarEntry, host_entry, write_layer};
use imgtool_core::{Compression, ConfigEdit, Flavor, History, Image, Platform, rfc3339};
use serde_json::{Value, json};

use crate::cache::StepCache;
use crate::context::{FileHashes, Source, Tree, clean};
use crate::error::{Error, Result};
use crate::parse::{Command, Dockerfile, Flag, Instruction, Kind, parse};
use crate::subst::expand;

mod copy;
mod layers;
mod words;

use copy::missing_dirs;
use words::*;

/// Where `FROM` and `COPY --from` images come from: the caller knows the transports
/// (registries, archives, layouts); `scratch` and stage names never reach it.
#[async_trait]
pub trait Images: Send + Sync {
    /// The image `reference` names, for `platform` when it is an index.
    async fn load(&self, reference: &str, platform: Option<&Platform>) -> std::result::Result<Image, String>;
}

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The build context directory.
    pub context: PathBuf,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// The stage to build (default the last).
    pub target: Option<String>,
    /// The platform to build for (default the host's).
    pub platform: Option<Platform>,
    /// The step cache directory; `None` builds everything afresh and keeps nothing.
    pub cache_dir: Option<PathBuf>,
    /// Where layers and stage filesystems are spooled.
    pub spool_dir: PathBuf,
    /// The time stamped on files and history (`SOURCE_DATE_EPOCH`).
    pub epoch: i64,
    /// New layers' compression.
    pub compression: Compression,
    /// Media types of images started from `scratch`.
    pub flavor: Flavor,
    /// Give `RUN` the host's network (otherwise only a loopback interface).
    pub host_network: bool,
    /// Do every step afresh (results are still stored in the cache).
    pub no_cache: bool,
    /// A repository that shares step results between builders (`--cache-repo`).
    pub cache_repo: Option<std::sync::Arc<crate::cache::RepoCache>>,
    /// Seccomp and limits for every `RUN` (like docker's flags, not part of the cache key).
    pub sandbox: imgtool_sandbox::Security,
}

impl BuildOptions {
    /// Defaults for building `context`: no cache, gzip, OCI, epoch 0.
    pub fn new(context: impl Into<PathBuf>, spool_dir: impl Into<PathBuf>) -> Self {
        Self {
            context: context.into(),
            build_args: BTreeMap::new(),
            target: None,
            platform: None,
            cache_dir: None,
            spool_dir: spool_dir.into(),
            epoch: 0,
            compression: Compression::Gzip,
            flavor: Flavor::Oci,
            host_network: false,
            no_cache: false,
            cache_repo: None,
            sandbox: Default::default(),
        }
    }
}

/// A stage being built, or done.
struct Stage {
    name: Option<String>,
    image: Image,
    /// The stage's filesystem, made when first needed, with `applied` of its layers.
    root: Option<tempfile::TempDir>,
    applied: usize,
    args: BTreeMap<String, String>,
    shell: Vec<String>,
    cmd_set: bool,
    /// The cache chain: everything this stage's state was built from.
    key: String,
}

impl Stage {
    /// A stage starting from `image`, its cache chain at `key`.
    fn new(name: Option<String>, image: Image, key: String) -> Self {
        Self { name, image, root: None, applied: 0, args: BTreeMap::new(), shell: default_shell(), cmd_set: false, key }
    }

    /// A string field of the container config (`User`, `WorkingDir`), empty when unset.
    fn config_str(&self, field: &str) -> String {
        self.image.config().container().and_then(|c| c.get(field)).and_then(Value::as_str).unwrap_or("").to_string()
    }
}

/// Build `dockerfile` and return the target stage's image.
pub async fn build(dockerfile: &Dockerfile, images: &dyn Images, opts: &BuildOptions) -> Result<Image> {
    build_from(None, dockerfile, images, opts).await
}

/// Apply a Dockerfile without `FROM` to `base`: its instructions as one stage on top of the
/// image (the pipeline's `dockerfile` step).
pub async fn build_on(base: Image, dockerfile: &Dockerfile, images: &dyn Images, opts: &BuildOptions) -> Result<Image> {
    if let Some(&n) = dockerfile.stage_starts().first() {
        let i = &dockerfile.instructions[n];
        return Err(Error::step(
            i.line,
            "FROM",
            "this Dockerfile is applied to the image built so far, so it cannot have FROM: remove it, or build the file as the source",
        ));
    }
    build_from(Some(base), dockerfile, images, opts).await
}

async fn build_from(base: Option<Image>, dockerfile: &Dockerfile, images: &dyn Images, opts: &BuildOptions) -> Result<Image> {
    // A Dockerfile written with the builder API brings its own context: the files it added.
    let assembled = if dockerfile.files.is_empty() {
        None
    } else {
        let dir = tempfile::Builder::new()
            .prefix("context-")
            .tempdir_in(&opts.spool_dir)
            .map_err(|e| Error::step(0, "context", format!("creating a build context: {e}")))?;
        for (src, name) in &dockerfile.files {
            copy_tree(src, &dir.path().join(name)).map_err(|e| Error::step(0, "context", format!("{}: {e}", src.display())))?;
        }
        Some(dir)
    };
    let root = assembled.as_ref().map_or(opts.context.as_path(), |d| d.path());
    let context = Tree::context(root).map_err(|m| Error::step(0, "context", m))?;
    let cache = match &opts.cache_dir {
        Some(d) => Some(StepCache::open(d)?),
        None => None,
    };
    let hashes = match &cache {
        Some(c) => FileHashes::load(c.hashes_file()),
        None => FileHashes::default(),
    };
    let mut b = Builder {
        df: dockerfile,
        images,
        opts,
        cache,
        hashes,
        context,
        stages: Vec::new(),
        external: HashMap::new(),
        expanded: Default::default(),
    };
    let image = match base {
        None => b.run().await,
        Some(base) => b.run_on(base).await,
    };
    b.hashes.save();
    image
}

struct Builder<'a> {
    df: &'a Dockerfile,
    images: &'a dyn Images,
    opts: &'a BuildOptions,
    cache: Option<StepCache>,
    hashes: FileHashes,
    context: Tree,
    stages: Vec<Stage>,
    /// Images named by `COPY --from`, loaded once.
    external: HashMap<String, Stage>,
    /// Bytes every substitution so far produced: a chain of ARGs that double each other
    /// must stop long before memory does.
    expanded: std::cell::Cell<usize>,
}

/// The most all of a build's substitutions may produce together.
const EXPANSION_BUDGET: usize = 64 << 20;

impl Builder<'_> {
    async fn run_on(&mut self, base: Image) -> Result<Image> {
        let key = format!("image {}", base.digest());
        let header =
            Instruction { line: 0, column: 0, text: String::new(), kind: Kind::From { image: String::new(), name: None, flags: vec![] } };
        let globals = BTreeMap::new();
        let mut stage = self.start(&header, &None, base, key, &globals).await?;
        for i in &self.df.instructions {
            self.step(&mut stage, i, &globals).await.map_err(|e| e.at_column(i.line, i.column))?;
        }
        Ok(stage.image)
    }

    async fn run(&mut self) -> Result<Image> {
        let ins = &self.df.instructions;
        let starts = self.df.stage_starts();
        let Some(&first_from) = starts.first() else {
            return Err(Error::step(1, "FROM", "the Dockerfile has no FROM: start it with FROM IMAGE (or FROM scratch)"));
        };
        // Global ARGs: usable in FROM lines, and as defaults for stages that redeclare them.
        let mut globals: BTreeMap<String, String> = BTreeMap::new();
        for i in &ins[..first_from] {
            match &i.kind {
                Kind::Arg(pairs) => {
                    for (name, default) in pairs {
                        let value = match self.opts.build_args.get(name) {
                            Some(v) => Some(v.clone()),
                            None => match default {
                                Some(d) => Some(self.expand(i, d, &|n| globals.get(n).cloned())?),
                                None => platform_arg(name, &target_platform(self.opts)),
                            },
                        };
                        if let Some(v) = value {
                            globals.insert(name.clone(), v);
                        }
                    }
                }
                _ => return Err(Error::step(i.line, "ARG", "only ARG may come before the first FROM")),
            }
        }
        let target_index = match &self.opts.target {
            None => starts.len() - 1,
            Some(t) => starts
                .iter()
                .position(|&s| matches!(&ins[s].kind, Kind::From { name: Some(n), .. } if n.eq_ignore_ascii_case(t)))
                .ok_or_else(|| Error::step(0, "--target", format!("no stage is named {t:?}")))?,
        };
        let needed = self.needed_stages(&starts, target_index, &globals);
        for (n, &start) in starts.iter().enumerate().take(target_index + 1) {
            let end = starts.get(n + 1).copied().unwrap_or(ins.len());
            if !needed[n] {
                tracing::debug!(stage = n, "not needed for the target, skipped");
                self.stages.push(self.placeholder(&ins[start]));
                continue;
            }
            let mut stage = self.from(&ins[start], &globals).await.map_err(|e| e.at_column(ins[start].line, ins[start].column))?;
            for i in &ins[start + 1..end] {
                self.step(&mut stage, i, &globals).await.map_err(|e| e.at_column(i.line, i.column))?;
            }
            self.stages.push(stage);
        }
        let last = self.stages.pop().ok_or_else(|| Error::step(0, "FROM", "no stage was built"))?;
        Ok(last.image)
    }

    /// Which stages the target needs: itself, and the stages its FROM and `COPY --from`
    /// name, transitively.
    fn needed_stages(&self, starts: &[usize], target: usize, globals: &BTreeMap<String, String>) -> Vec<bool> {
        let ins = &self.df.instructions;
        let lookup = |n: &str| globals.get(n).cloned();
        let names: Vec<Option<String>> =
            starts.iter().map(|&s| if let Kind::From { name, .. } = &ins[s].kind { name.clone() } else { None }).collect();
        let index_of = |word: &str| -> Option<usize> {
            let w = expand(word, self.df.escape, &lookup).unwrap_or_else(|_| word.to_string()).to_ascii_lowercase();
            names.iter().position(|n| n.as_deref() == Some(w.as_str())).or_else(|| w.parse().ok())
        };
        let mut needed = vec![false; starts.len()];
        let mut todo = vec![target];
        while let Some(s) = todo.pop() {
            if needed[s] {
                continue;
            }
            needed[s] = true;
            let end = starts.get(s + 1).copied().unwrap_or(ins.len());
            for i in &ins[starts[s]..end] {
                let deps: Vec<&str> = match &i.kind {
                    Kind::From { image, .. } => vec![image.as_str()],
                    Kind::Copy { flags, .. } => flags.iter().filter(|f| f.name == "from").filter_map(|f| f.value.as_deref()).collect(),
                    _ => vec![],
                };
                for d in deps {
                    if let Some(j) = index_of(d).filter(|&j| j < s) {
                        todo.push(j);
                    }
                }
            }
        }
        needed
    }

    fn placeholder(&self, from: &Instruction) -> Stage {
        let name = if let Kind::From { name, .. } = &from.kind { name.clone() } else { None };
        Stage::new(name, Image::scratch(&target_platform(self.opts), self.opts.flavor), String::new())
    }

    fn expand(&self, i: &Instruction, word: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String> {
        let out =
            expand(word, self.df.escape, lookup).map_err(|m| Error::step(i.line, keyword(&i.kind), format!("{}: {m}", shown(word))))?;
        self.charge(i, out.len())?;
        Ok(out)
    }

    fn charge(&self, i: &Instruction, len: usize) -> Result<()> {
        let total = self.expanded.get().saturating_add(len);
        self.expanded.set(total);
        if total > EXPANSION_BUDGET {
            return Err(Error::step(
                i.line,
                keyword(&i.kind),
                format!(
                    "variable substitutions have produced more than {} MiB in this build; a chain of ARG or ENV values grows without bound",
                    EXPANSION_BUDGET >> 20
                ),
            ));
        }
        Ok(())
    }

    /// Expand with the stage's variables: its environment, then its ARGs.
    fn expand_in(&self, st: &Stage, i: &Instruction, word: &str) -> Result<String> {
        self.expand(i, word, &vars(st))
    }

    fn expand_heredoc_in(&self, st: &Stage, i: &Instruction, body: &str) -> Result<String> {
        let out = crate::subst::expand_heredoc(body, self.df.escape, &vars(st))
            .map_err(|m| Error::step(i.line, keyword(&i.kind), format!("heredoc: {m}")))?;
        self.charge(i, out.len())?;
        Ok(out)
    }

    async fn from(&mut self, i: &Instruction, globals: &BTreeMap<String, String>) -> Result<Stage> {
        let Kind::From { image, name, flags } = &i.kind else { unreachable!("called on FROM") };
        let lookup = |n: &str| globals.get(n).cloned();
        check_flags(i, flags, &["platform"])?;
        let platform = match flag(flags, "platform") {
            Some(p) => Some(
                self.expand(i, p, &lookup)?.parse::<Platform>().map_err(|e| Error::step(i.line, "FROM", format!("--platform={p}: {e}")))?,
            ),
            None => self.opts.platform.clone(),
        };
        let reference = self.expand(i, image, &lookup)?;
        if reference.is_empty() {
            return Err(Error::step(i.line, "FROM", format!("{image} expands to nothing: set the ARG it uses")));
        }
        let lower = reference.to_ascii_lowercase();
        let earlier = self.stages.iter().position(|s| s.name.as_deref() == Some(lower.as_str()));
        let (image, key) = if let Some(s) = earlier {
            (self.stages[s].image.clone(), self.stages[s].key.clone())
        } else if lower == "scratch" {
            let p = platform.clone().unwrap_or_else(|| target_platform(self.opts));
            (Image::scratch(&p, self.opts.flavor), format!("scratch {p}"))
        } else {
            let img = self
                .images
                .load(&reference, platform.as_ref())
                .await
                .map_err(|m| Error::step(i.line, "FROM", format!("{reference}: {m}")))?;
            let key = format!("image {}", img.digest());
            (img, key)
        };
        if !image.config().env().iter().any(|e| e.starts_with("PATH=")) {
            // As BuildKit does: a stage without PATH gets the default one, kept in the image.
            let mut image = image;
            image.config_mut().set_env(&format!("PATH={DEFAULT_PATH}")).map_err(|e| Error::step(i.line, "FROM", e.to_string()))?;
            return self.start(i, name, image, key, globals).await;
        }
        self.start(i, name, image, key, globals).await
    }

    async fn start(
        &mut self,
        i: &Instruction,
        name: &Option<String>,
        image: Image,
        key: String,
        globals: &BTreeMap<String, String>,
    ) -> Result<Stage> {
        let mut stage = Stage::new(name.clone(), image, imgtool_core::Digest::sha256_of(key.as_bytes()).hex().to_string());
        // ONBUILD triggers of the base run now, and are not inherited.
        let triggers: Vec<String> = stage
            .image
            .config()
            .container()
            .and_then(|c| c.get("OnBuild"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        if !triggers.is_empty() {
            stage.image.config_mut().container_mut().remove("OnBuild");
            for t in triggers {
                // A trigger is what followed ONBUILD, so it is parsed as one: the same rules
                // (no FROM, ONBUILD or MAINTAINER; one instruction) hold for an image's
                // triggers as for a Dockerfile's.
                let bad = |why: String| Error::step(i.line, "ONBUILD", format!("the base image's trigger {:?}: {why}", shown(&t)));
                let parsed = parse(&format!("ONBUILD {t}")).map_err(|e| bad(e.to_string()))?;
                let mut ti = match <[Instruction; 1]>::try_from(parsed.instructions) {
                    Ok([Instruction { kind: Kind::Onbuild(inner), .. }]) => *inner,
                    _ => return Err(bad("a trigger must be exactly one instruction".into())),
                };
                ti.line = i.line;
                Box::pin(self.step(&mut stage, &ti, globals)).await?;
            }
        }
        Ok(stage)
    }

    fn history(&self, i: &Instruction, empty: bool) -> History {
        History { created: Some(rfc3339(self.opts.epoch)), created_by: Some(i.text.clone()), empty_layer: empty, ..Default::default() }
    }

    fn chain(st: &mut Stage, what: &str) -> String {
        let key = imgtool_core::Digest::sha256_of(format!("{}\n{what}", st.key).as_bytes()).hex().to_string();
        st.key = key.clone();
        key
    }

    async fn step(&mut self, st: &mut Stage, i: &Instruction, globals: &BTreeMap<String, String>) -> Result<()> {
        let kw = keyword(&i.kind);
        match &i.kind {
            Kind::From { .. } => unreachable!("stages start at FROM"),
            Kind::Arg(pairs) => {
                for (name, default) in pairs {
                    let value = match (self.opts.build_args.get(name), default) {
                        (Some(v), _) => Some(v.clone()),
                        (None, Some(d)) => Some(self.expand_in(st, i, d)?),
                        (None, None) => globals.get(name).cloned().or_else(|| platform_arg(name, &st.image.platform())),
                    };
                    Self::chain(st, &format!("ARG {name}={value:?}"));
                    if let Some(v) = value {
                        st.args.insert(name.clone(), v);
                    }
                }
                return Ok(());
            }
            Kind::Env(pairs) => {
                // Every value sees the variables as they were before this instruction.
                let mut env = Vec::new();
                for (k, v) in pairs {
                    env.push(format!("{}={}", self.expand_in(st, i, k)?, self.expand_in(st, i, v)?));
                }
                edit(st, i, ConfigEdit { env, ..ConfigEdit::default() })?;
            }
            Kind::Label(pairs) => {
                // One pair at a time: labels keep the order they were written in.
                for (k, v) in pairs {
                    let labels = BTreeMap::from([(self.expand_in(st, i, k)?, self.expand_in(st, i, v)?)]);
                    edit(st, i, ConfigEdit { labels, ..ConfigEdit::default() })?;
                }
            }
            Kind::Maintainer(m) => edit(st, i, ConfigEdit { author: Some(m.clone()), ..ConfigEdit::default() })?,
            Kind::User(u) => edit(st, i, ConfigEdit { user: Some(self.expand_in(st, i, u)?), ..ConfigEdit::default() })?,
            Kind::Expose(words) => {
                let mut exposed_ports = Vec::new();
                for w in words {
                    let got = crate::subst::expand_words(w, self.df.escape, &vars(st))
                        .map_err(|m| Error::step(i.line, kw, format!("{}: {m}", shown(w))))?;
                    self.charge(i, got.iter().map(String::len).sum())?;
                    exposed_ports.extend(got);
                }
                edit(st, i, ConfigEdit { exposed_ports, ..ConfigEdit::default() })?;
            }
            Kind::Volume(vols) => {
                let volumes = vols.iter().map(|v| self.expand_in(st, i, v)).collect::<Result<Vec<_>, _>>()?;
                edit(st, i, ConfigEdit { volumes, ..ConfigEdit::default() })?;
            }
            Kind::Stopsignal(sig) => edit(st, i, ConfigEdit { stop_signal: Some(self.expand_in(st, i, sig)?), ..ConfigEdit::default() })?,
            Kind::Healthcheck(h) => {
                let value = match h {
                    None => json!({"Test": ["NONE"]}),
                    Some((flags, cmd)) => {
                        check_flags(i, flags, &["interval", "timeout", "start-period", "start-interval", "retries"])?;
                        let test = match cmd {
                            Command::Exec(args) => std::iter::once("CMD".to_string()).chain(args.iter().cloned()).collect::<Vec<_>>(),
                            Command::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                        };
                        let mut hc = serde_json::Map::new();
                        hc.insert("Test".into(), json!(test));
                        for (flag_name, field) in [
                            ("interval", "Interval"),
                            ("timeout", "Timeout"),
                            ("start-period", "StartPeriod"),
                            ("start-interval", "StartInterval"),
                        ] {
                            if let Some(v) = flag(flags, flag_name) {
                                let ns = duration_ns(v).ok_or_else(|| {
                                    Error::step(i.line, kw, format!("--{flag_name}={v} is not a duration (like 30s, 1m30s, 500ms)"))
                                })?;
                                hc.insert(field.into(), json!(ns));
                            }
                        }
                        if let Some(r) = flag(flags, "retries") {
                            let n: u64 = r.parse().map_err(|_| Error::step(i.line, kw, format!("--retries={r} is not a number")))?;
                            hc.insert("Retries".into(), json!(n));
                        }
                        Value::Object(hc)
                    }
                };
                st.image.config_mut().container_mut().insert("Healthcheck".into(), value);
            }
            Kind::Shell(words) => st.shell = words.clone(),
            Kind::Cmd(c) => {
                let v = command_json(c, &st.shell);
                st.image.config_mut().container_mut().insert("Cmd".into(), v);
                st.cmd_set = true;
            }
            Kind::Entrypoint(c) => {
                let v = command_json(c, &st.shell);
                let cfg = st.image.config_mut().container_mut();
                cfg.insert("Entrypoint".into(), v);
                // A base image's CMD makes no sense for a new entrypoint.
                if !st.cmd_set {
                    cfg.insert("Cmd".into(), Value::Null);
                }
            }
            Kind::Onbuild(inner) => {
                let cfg = st.image.config_mut().container_mut();
                let list = cfg.entry("OnBuild").or_insert_with(|| json!([]));
                if !list.is_array() {
                    *list = json!([]);
                }
                let text = inner.text.clone();
                if let Some(l) = list.as_array_mut() {
                    l.push(json!(text));
                }
            }
            Kind::Workdir(w) => {
                let w = self.expand_in(st, i, w)?;
                let current = st.config_str("WorkingDir");
                let abs = if w.starts_with('/') { w.clone() } else { format!("{current}/{w}") };
                let abs = format!("/{}", clean(&abs).unwrap_or_default());
                edit(st, i, ConfigEdit { workdir: Some(abs.clone()), ..ConfigEdit::default() })?;
                return self.workdir(st, i, &abs).await;
            }
            Kind::Run { flags, command, heredocs: _ } => return self.run_step(st, i, flags, command).await,
            Kind::Copy { add, flags, sources, dest, heredocs } => return self.copy(st, i, *add, flags, sources, dest, heredocs).await,
        }
        // A config-only step: a history entry marked empty, and the chain moves on.
        let summary = serde_json::to_string(st.image.config().container().unwrap_or(&serde_json::Map::new())).unwrap_or_default();
        Self::chain(st, &format!("{kw} {summary}"));
        st.image.config_mut().push_history(self.history(i, true));
        Ok(())
    }
}

/// A config instruction's edit, through the one path every config edit takes (pipeline
/// `config` steps and CLI flags too): one validation, one error text.
fn edit(st: &mut Stage, i: &Instruction, e: ConfigEdit) -> Result<(), Error> {
    st.image.config_mut().apply(&e).map_err(|err| Error::step(i.line, keyword(&i.kind), err.to_string()))
}

/// Copy a host file or tree (modes and symlinks kept) to `to`.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    for item in walkdir::WalkDir::new(from).follow_links(false) {
        let item = item.map_err(|e| e.into_io_error().unwrap_or_else(|| std::io::Error::other("filesystem loop")))?;
        let rel = item.path().strip_prefix(from).unwrap_or(Path::new(""));
        let dest = if rel.as_os_str().is_empty() { to.to_path_buf() } else { to.join(rel) };
        let ft = item.file_type();
        if ft.is_dir() {
            std::fs::create_dir_all(&dest)?;
            std::fs::set_permissions(&dest, item.metadata()?.permissions())?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(item.path())?, &dest)?;
        } else {
            std::fs::copy(item.path(), &dest)?;
        }
    }
    Ok(())
}
